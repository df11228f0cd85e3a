"""The per-endpoint watchdog: live slots and the router come back by themselves.

One small process per endpoint (``python -m mlops_tasks.endpoint_events --endpoint
NAME``, the edge entry point that adds the Prefect emitter), started detached by the
target whenever the router is ensured and stopped first by ``stop_router`` (so it never
fights a deliberate stop). Every
:attr:`SupervisionPolicy.interval_s` it takes the endpoint's ``supervise.lock``
(:func:`~mlops_tasks.deploy.state.supervise_lock`, the same lock the target holds
while it starts or stops a slot or the router) and checks:

- **local target**: the HAProxy master (pid + admin socket) and every replica of every
  *supervised* slot (pid alive and a model-server command line). A dead one is started
  again with the same argv, model handle and port; a dead HAProxy master is started
  again from the same ``haproxy.cfg`` (its workers exit with the master; any left are
  killed by session id first) and loads the last runtime state from ``server-state``.
- **docker target**: Docker restarts the containers (restart policy ``on-failure`` on
  the router and on supervised slots); the watchdog only observes (``RestartCount``),
  re-points the router's servers when a restarted slot container got another address,
  and reports.

New slots are unsupervised: a candidate that dies during a bake is not restarted, the
rollout guard must see it die. The strategy supervises a slot once it is confirmed
live (:meth:`~mlops_tasks.deploy.targets.base.Target.set_supervised`).

Restarts back off (``backoff_s``, doubled for each restart within ``window_s``) and stop
after ``max_restarts`` within the window; the next deployment (which starts a fresh
watchdog) tries again. Every down and up is an event (:func:`emit_endpoint_event`):
``mlops.endpoint.unhealthy`` / ``mlops.endpoint.recovered``, appended to
``<endpoint folder>/events.jsonl``, logged, and passed to the watchdog's emitter (the
process sends them to Prefect when ``PREFECT_API_URL`` is set; this module never imports
Prefect). Policy, events and starting/stopping live in :mod:`mlops_tasks.deploy.supervision`
(re-exported here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from mlops_tasks.deploy.apikeys import Emit, KeyStore
from mlops_tasks.deploy.models import COLORS, EndpointSpec
from mlops_tasks.deploy.processes import cmdline, pid_alive
from mlops_tasks.deploy.state import endpoint_dir, supervise_lock
from mlops_tasks.deploy.supervision import (
    CONFIG_FILE,
    PID_FILE,
    RECOVERED,
    UNHEALTHY,
    EndpointEventEmitter,
    SupervisionPolicy,
    emit_endpoint_event,
    read_events,
    start_watchdog,
    stop_watchdog,
    watchdog_pid,
)
from mlops_tasks.errors import EndpointBusyError, EndpointDeployError

logger = logging.getLogger(__name__)

# -- the checks -------------------------------------------------------------------------------


@dataclass
class _Watch:
    """What the watchdog remembers about one supervised thing."""

    token: str = ""
    down_since: float | None = None
    restarts: list[float] = field(default_factory=list)
    next_try: float | None = None
    gave_up: bool = False
    seen_restart_count: int | None = None


class Watchdog:
    """Checks one endpoint's router and supervised slots; see the module docstring.

    Example:
        ```python
        dog = Watchdog("churn")
        dog.check()  # one round (the process runs dog.run())
        ```
    """

    def __init__(
        self,
        name: str,
        policy: SupervisionPolicy | None = None,
        emitter: EndpointEventEmitter | None = None,
        key_emitter: Emit | None = None,
    ) -> None:
        from mlops_tasks.deploy.targets import get_target

        self.folder = endpoint_dir(name)
        doc = json.loads((self.folder / CONFIG_FILE).read_text(encoding="utf-8"))
        self.target = get_target(doc["kind"], EndpointSpec.model_validate(doc["spec"]))
        self.name = name
        self.policy = policy or SupervisionPolicy.from_env()
        self.emitter = emitter
        #: Receives ``mlops.apikey.revoked`` (reason ``expired``) for keys whose expiry passed.
        self.key_emitter = key_emitter
        self.memory: dict[str, _Watch] = {}

    def _watch(self, what: str, token: str) -> _Watch:
        state = self.memory.get(what)
        if state is None or state.token != token:
            state = self.memory[what] = _Watch(token=token)
        return state

    def _event(self, event: str, what: str, reason: str, state: _Watch) -> None:
        emit_endpoint_event(
            self.folder,
            event,
            self.name,
            what,
            reason,
            len(state.restarts),
            state.gave_up,
            emitter=self.emitter,
        )

    def run(self) -> None:
        """Check every ``interval_s`` until the pid file names another process."""
        me = str(os.getpid())
        while True:
            try:
                if (self.folder / PID_FILE).read_text().strip() != me:
                    logger.info("Watchdog of %s replaced or stopped; exiting", self.name)
                    return
            except OSError:
                return
            try:
                with supervise_lock(self.folder, timeout_s=2.0):
                    self.check()
            except EndpointBusyError:
                pass  # the target is starting or stopping something: look next round
            except Exception:  # one bad round (engine away, a file half-written) must not end it
                logger.exception("Watchdog round of %s failed; trying again next round", self.name)
            time.sleep(self.policy.interval_s)

    def check(self) -> None:
        """One round over the router and the supervised slots (the caller holds the lock)."""
        if self.target.kind == "docker":
            self._check_docker()
        else:
            self._check_local()
            self.expire_keys()

    def expire_keys(self) -> list[str]:
        """Remove keys whose expiry passed (files, then the router) and report each; their names.

        The router already refuses an expired key by itself; this sends the event and
        keeps the files tidy. A failure is logged and tried again next round.
        """
        security = self.target.endpoint.security
        if not security.api_keys:
            return []
        try:
            running = self.target.router_running()
            store = KeyStore(
                self.folder, self.target.router.command if running else None, self.key_emitter, self.name
            )
            return store.expire(security)
        except Exception:
            logger.exception("Expiring API keys of %s failed; trying again next round", self.name)
            return []

    # -- local: the watchdog restarts -----------------------------------------------------------

    def _step(self, what: str, state: _Watch, alive: bool, healthy: bool, reason: str, revive: Any) -> None:
        """Advance one thing's state: report down/up, restart with back-off, give up."""
        now = time.monotonic()
        if alive:
            state.next_try = None
            if healthy and state.down_since is not None:
                self._event(RECOVERED, what, f"back after {now - state.down_since:.1f} s", state)
                state.down_since = None
            return
        if state.gave_up:
            return
        if state.down_since is None:
            state.down_since = now
            self._event(UNHEALTHY, what, reason, state)
        recent = [t for t in state.restarts if now - t < self.policy.window_s]
        if len(recent) >= self.policy.max_restarts:
            state.gave_up = True
            self._event(
                UNHEALTHY,
                what,
                f"gave up after {len(recent)} restarts within {self.policy.window_s:g} s ({reason})",
                state,
            )
            return
        if state.next_try is None:
            state.next_try = now + self.policy.delay(len(recent))
        if now < state.next_try:
            return
        state.restarts.append(now)
        state.next_try = None
        try:
            revive()
        except (EndpointDeployError, OSError) as exc:
            logger.warning("Restart of %s of endpoint %s failed: %s", what, self.name, exc)

    def _check_local(self) -> None:
        from mlops_tasks.deploy.targets.local import LocalTarget

        target = self.target
        assert isinstance(target, LocalTarget)
        master = target.router_master_pid()
        if master is not None:  # no pid file: the router was stopped on purpose (or never ran)
            state = self._watch("router", "router")
            alive = pid_alive(master) and "haproxy" in cmdline(master)
            self._step(
                "router",
                state,
                alive,
                alive and target.router.alive(),
                f"HAProxy master {master} is not running",
                target.revive_router,
            )
        for color in COLORS:
            doc = target.read_slot(color)
            if doc is None or not doc.get("supervised"):
                continue
            token = f"{doc.get('started')}:{doc.get('supervised_at')}"
            for i, (pid, port) in enumerate(zip(doc["pids"], doc["ports"], strict=True), start=1):
                what = f"slot {color} replica {i}"
                state = self._watch(what, token)
                alive = pid_alive(pid) and "mlops_tasks.serving" in cmdline(pid)
                healthy = alive and _http_ok(f"127.0.0.1:{port}")
                self._step(
                    what,
                    state,
                    alive,
                    healthy,
                    f"model server {pid} on port {port} is not running",
                    lambda c=color, n=i: target.revive_replica(c, n),
                )

    # -- docker: Docker restarts, the watchdog watches and re-points ------------------------

    def _observe(
        self,
        what: str,
        state: _Watch,
        running: bool,
        healthy: bool,
        restart_count: int,
        exhausted: bool,
        exit_code: Any,
    ) -> None:
        if state.seen_restart_count is None:
            state.seen_restart_count = restart_count
        if restart_count > state.seen_restart_count or not running:
            state.restarts += [time.monotonic()] * max(0, restart_count - state.seen_restart_count)
            state.seen_restart_count = restart_count
            if state.down_since is None:
                state.down_since = time.monotonic()
                self._event(
                    UNHEALTHY, what, f"container exited (code {exit_code}); Docker restarts it", state
                )
        if not running and exhausted and not state.gave_up:
            state.gave_up = True
            self._event(
                UNHEALTHY,
                what,
                f"Docker gave up after {restart_count} restarts (exit code {exit_code})",
                state,
            )
        if running and healthy and state.down_since is not None:
            self._event(RECOVERED, what, f"back after {time.monotonic() - state.down_since:.1f} s", state)
            state.down_since = None
            state.gave_up = False

    def _check_docker(self) -> None:
        from mlops_tasks.deploy.targets.docker import DockerTarget

        target = self.target
        assert isinstance(target, DockerTarget)
        router = target.router_container_state()
        if router is not None:
            state = self._watch("router", router["id"])
            running = router["status"] == "running"
            self._observe(
                "router",
                state,
                running,
                running and target.router.alive(),
                router["restart_count"],
                router["exhausted"],
                router["exit_code"],
            )
        router_up = target.router_running()
        for color in COLORS:
            for replica in target.slot_container_states(color):
                running = replica["status"] == "running" and replica["address"] is not None
                healthy = running and _http_ok(replica["address"])
                if healthy and router_up:
                    # A restarted slot container may get another address, and a restarted
                    # router starts with the addresses its file was rendered with.
                    target.repoint(color, replica["replica"], replica["address"])
                if replica["supervised"]:
                    what = f"slot {color} replica {replica['replica']}"
                    self._observe(
                        what,
                        self._watch(what, replica["id"]),
                        running,
                        healthy,
                        replica["restart_count"],
                        replica["exhausted"],
                        replica["exit_code"],
                    )


def _http_ok(address: str) -> bool:
    from mlops_tasks.deploy.targets.base import http_get

    return http_get(address, "/health", timeout_s=1.0)[0] == 200


def main(
    argv: list[str] | None = None,
    emitter: EndpointEventEmitter | None = None,
    prog: str = "python -m mlops_tasks.deploy.watchdog",
    key_emitter: Emit | None = None,
) -> int:
    """``python -m mlops_tasks.deploy.watchdog --endpoint NAME``: run until stopped.

    Without ``emitter`` (as ``python -m mlops_tasks.deploy.watchdog``) events go to
    ``events.jsonl`` and the log only; the process the targets start
    (:func:`mlops_tasks.endpoint_events.main`) passes the Prefect emitter.

    Example:
        ```python
        main(["--endpoint", "churn"])  # blocks; the target starts it detached
        ```
    """
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--endpoint", required=True, help="Endpoint name.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Watchdog(args.endpoint, emitter=emitter, key_emitter=key_emitter).run()
    return 0


__all__ = [
    "RECOVERED",
    "UNHEALTHY",
    "EndpointEventEmitter",
    "SupervisionPolicy",
    "Watchdog",
    "emit_endpoint_event",
    "main",
    "read_events",
    "start_watchdog",
    "stop_watchdog",
    "watchdog_pid",
]

if __name__ == "__main__":
    raise SystemExit(main())
