"""The per-endpoint watchdog: live slots and the router come back by themselves.

One small process per endpoint (``python -m mlops_tasks.deploy.watchdog --endpoint
NAME``), started detached by the target whenever the router is ensured and stopped
first by ``stop_router`` (so it never fights a deliberate stop). Every
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
``<endpoint folder>/events.jsonl``, logged, and sent to Prefect when ``PREFECT_API_URL``
is set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlops_tasks.deploy.models import COLORS, EndpointSpec
from mlops_tasks.deploy.state import endpoint_dir, supervise_lock
from mlops_tasks.deploy.targets.local import cmdline, pid_alive, terminate
from mlops_tasks.errors import DeploymentError, EndpointBusyError

logger = logging.getLogger(__name__)

UNHEALTHY = "mlops.endpoint.unhealthy"
RECOVERED = "mlops.endpoint.recovered"
WATCHDOG_MODULE = "mlops_tasks.deploy.watchdog"
PID_FILE = "watchdog.pid"
CONFIG_FILE = "supervisor.json"
EVENTS_FILE = "events.jsonl"


class SupervisionPolicy(BaseModel):
    """How often the watchdog looks and how hard it tries; each field has an environment variable.

    Example:
        ```python
        policy = SupervisionPolicy(max_restarts=3, window_s=60)
        assert policy.delay(2) == 2.0
        ```
    """

    interval_s: float = Field(0.5, gt=0, description="Check period [MLOPS_WATCHDOG_INTERVAL_S].")
    backoff_s: float = Field(
        0.5,
        ge=0,
        description="Wait before the first restart, doubled per restart [MLOPS_WATCHDOG_BACKOFF_S].",
    )
    max_restarts: int = Field(
        5,
        ge=1,
        description="Restarts within window_s before giving up; also Docker's "
        "MaximumRetryCount [MLOPS_WATCHDOG_MAX_RESTARTS].",
    )
    window_s: float = Field(300.0, gt=0, description="Window of max_restarts [MLOPS_WATCHDOG_WINDOW_S].")

    @classmethod
    def from_env(cls) -> SupervisionPolicy:
        """Defaults overridden by ``MLOPS_WATCHDOG_*`` variables."""
        from mlops_tasks.settings import get_settings

        settings = get_settings()
        values = {name: getattr(settings, f"watchdog_{name}") for name in cls.model_fields}
        return cls.model_validate({k: v for k, v in values.items() if v is not None})

    def delay(self, restarts: int) -> float:
        """Back-off before restart number ``restarts + 1`` (0.5, 1, 2, 4 ... s by default)."""
        return self.backoff_s * (2**restarts)


# -- events -----------------------------------------------------------------------------------


def emit_endpoint_event(
    folder: Path,
    event: str,
    endpoint: str,
    what: str,
    reason: str,
    restarts: int = 0,
    gave_up: bool = False,
) -> dict[str, Any]:
    """Record one supervision event: ``events.jsonl``, the log, and Prefect when configured.

    Prefect is imported only when ``PREFECT_API_URL`` is set (the watchdog runs without
    it); the event's resource is ``mlops.endpoint.<endpoint>`` with the labels
    ``mlops.endpoint.what`` and ``mlops.endpoint.gave-up``, so an automation can page
    someone on ``mlops.endpoint.unhealthy`` (or only when it gave up).

    Returns:
        The event document written.

    Example:
        ```python
        emit_endpoint_event(endpoint_dir("churn"), UNHEALTHY, "churn", "slot blue replica 1",
                            "process 4242 exited")
        ```
    """
    doc = {
        "event": event,
        "time": datetime.now(UTC).isoformat(),
        "endpoint": endpoint,
        "what": what,
        "reason": reason,
        "restarts": restarts,
        "gave_up": gave_up,
    }
    with open(folder / EVENTS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(doc) + "\n")
    level = logging.WARNING if event == UNHEALTHY else logging.INFO
    logger.log(
        level,
        "%s endpoint=%s what=%s reason=%s restarts=%d gave_up=%s",
        event,
        endpoint,
        what,
        reason,
        restarts,
        gave_up,
    )
    if os.environ.get("PREFECT_API_URL"):
        try:
            from prefect.events import emit_event

            emit_event(
                event=event,
                resource={
                    "prefect.resource.id": f"mlops.endpoint.{endpoint}",
                    "prefect.resource.name": endpoint,
                    "mlops.endpoint.what": what,
                    "mlops.endpoint.gave-up": str(gave_up).lower(),
                },
                payload={k: doc[k] for k in ("endpoint", "what", "reason", "restarts", "gave_up")},
            )
        except Exception as exc:  # the file and the log have it; Prefect is best effort
            logger.warning("Event %s not sent to Prefect: %s", event, exc)
    return doc


def read_events(name: str) -> list[dict[str, Any]]:
    """Supervision events of an endpoint, oldest first.

    Example:
        ```python
        unhealthy = [e for e in read_events("churn") if e["event"] == UNHEALTHY]
        ```
    """
    path = endpoint_dir(name) / EVENTS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- starting and stopping the watchdog -------------------------------------------------------


def watchdog_pid(folder: Path) -> int | None:
    """Pid of the endpoint's running watchdog, or ``None``."""
    try:
        pid = int((folder / PID_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) and WATCHDOG_MODULE in cmdline(pid) else None


def start_watchdog(folder: Path, kind: str, spec: EndpointSpec) -> int:
    """(Re)start the endpoint's watchdog, detached in its own session; return its pid.

    A running one is stopped first, so each deployment starts with fresh back-off
    counters. The caller holds :func:`~mlops_tasks.deploy.state.supervise_lock`.

    Example:
        ```python
        start_watchdog(target.folder, target.kind, target.endpoint)
        ```
    """
    stop_watchdog(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({"kind": kind, "spec": spec.model_dump()}), encoding="utf-8")
    log = folder / "logs" / "watchdog.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", WATCHDOG_MODULE, "--endpoint", spec.name],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )
    (folder / PID_FILE).write_text(str(proc.pid), encoding="utf-8")
    return proc.pid


def stop_watchdog(folder: Path) -> None:
    """Stop the endpoint's watchdog (by its pid file) and forget it.

    Example:
        ```python
        stop_watchdog(target.folder)
        ```
    """
    pid = watchdog_pid(folder)
    if pid is not None:
        terminate([pid], 5)
    (folder / PID_FILE).unlink(missing_ok=True)


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

    def __init__(self, name: str, policy: SupervisionPolicy | None = None) -> None:
        from mlops_tasks.deploy.targets import get_target

        self.folder = endpoint_dir(name)
        doc = json.loads((self.folder / CONFIG_FILE).read_text(encoding="utf-8"))
        self.target = get_target(doc["kind"], EndpointSpec.model_validate(doc["spec"]))
        self.name = name
        self.policy = policy or SupervisionPolicy.from_env()
        self.memory: dict[str, _Watch] = {}

    def _watch(self, what: str, token: str) -> _Watch:
        state = self.memory.get(what)
        if state is None or state.token != token:
            state = self.memory[what] = _Watch(token=token)
        return state

    def _event(self, event: str, what: str, reason: str, state: _Watch) -> None:
        emit_endpoint_event(self.folder, event, self.name, what, reason, len(state.restarts), state.gave_up)

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
        except (DeploymentError, OSError) as exc:
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


def main(argv: list[str] | None = None) -> int:
    """``python -m mlops_tasks.deploy.watchdog --endpoint NAME``: run until stopped.

    Example:
        ```python
        main(["--endpoint", "churn"])  # blocks; the target starts it detached
        ```
    """
    parser = argparse.ArgumentParser(prog="python -m mlops_tasks.deploy.watchdog")
    parser.add_argument("--endpoint", required=True, help="Endpoint name.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Watchdog(args.endpoint).run()
    return 0


__all__ = [
    "RECOVERED",
    "UNHEALTHY",
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
