"""Fault injection for rollout tests and the rollout-faults bench (issue 11).

Pieces, each usable alone:

- **Faults** (:class:`Fault` and its subclasses): the candidate's servers killed
  (SIGKILL every replica) or hung (SIGSTOP; :meth:`Fault.cleanup` always sends SIGCONT),
  the old (live) slot killed, the router killed (SIGKILL of the HAProxy master and its
  workers; docker: of the router container's host pid), the router's configuration
  check failing (an ``MLOPS_HAPROXY_BIN`` wrapper whose ``-c`` fails; docker: the
  target's check run in the router image is made to fail). A slow candidate and one
  answering 500s are registered model versions instead (:class:`SlowModel`,
  ``SpikeModel`` of :mod:`tests.deploy_support`).
- **Phase** (:class:`Phase`, :class:`Trigger`): which timeline event of the rollout
  (and which occurrence, and how long after it) fires a fault. The strategy calls its
  listener synchronously in the rollout thread after every event, so a fault without
  delay lands exactly at that point; a delay runs in a thread ("during the bake").
- **EndpointMonitor**: a thread polling the router's admin socket every ~25 ms that
  measures the longest window in which no server of backend ``live`` is UP with weight
  above 0 while some slot is healthy, and, apart, how long the router itself was gone.
- **judge_scenario**: the wrong outcomes of one faulted rollout (an unhealthy candidate
  promoted, ``succeeded`` while the live port is not served by the new version, the
  champion alias moved on failure, a rerun that does not reconcile).

Processes are signalled by pid only; containers by the host pid of their main process
(``State.Pid``), as a crash would hit them, not through ``docker kill``.
"""

from __future__ import annotations

import http.client
import os
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_tasks.deploy.models import Color, DeploymentRecord, EndpointSpec, other
from mlops_tasks.deploy.router import LIVE, PARKED, RouterClient, haproxy_binary
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.deploy.targets.base import Target, http_get
from mlops_tasks.errors import RouterConfigError, RouterError

# -- a slow model ------------------------------------------------------------------------------


class SlowModel:
    """Answers like ``inner`` but sleeps ``seconds`` first on batches of fewer than 3 rows.

    The smoke test (50 rows) and the server's warm-up (its 5-row input example) are fast;
    live single-row requests wait: a candidate whose latency blows up under real traffic.
    Register it with ``register_version(..., pickled=True)`` (like ``SpikeModel``).
    """

    def __init__(self, inner: Any, seconds: float = 3.0) -> None:
        self.inner = inner
        self.seconds = seconds

    def predict(self, x: Any) -> Any:
        """Sleep on small batches, then predict with ``inner``."""
        if len(x) < 3:
            time.sleep(self.seconds)
        return self.inner.predict(x)


# -- processes ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def signal_pids(pids: list[int], sig: signal.Signals) -> list[int]:
    """Send ``sig`` to each live pid; return those signalled."""
    done = []
    for pid in pids:
        if pid > 0 and _alive(pid):
            try:
                os.kill(pid, sig)
                done.append(pid)
            except ProcessLookupError:
                pass
    return done


def wait_gone(pids: list[int], timeout_s: float = 5.0) -> bool:
    """Wait until none of ``pids`` runs (reaped or zombie); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def slot_host_pids(target: Target, color: Color) -> list[int]:
    """Host pids of the slot's servers: the processes (local) or each container's main process."""
    status = target.slot_status(color)
    if status.pids:
        return list(status.pids)
    pids = []
    for cid in status.containers:
        container = target.client.containers.get(cid)  # type: ignore[attr-defined]
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        if pid > 0:
            pids.append(pid)
    return pids


def router_host_pids(target: Target) -> list[int]:
    """Host pids of the router: the HAProxy master and its workers (docker: the container's)."""
    if target.kind == "docker":
        container = target._router_container()  # type: ignore[attr-defined]
        if container is None:
            return []
        container.reload()
        master = int(container.attrs.get("State", {}).get("Pid") or 0)
    else:
        pid_file = target.folder / "haproxy.pid"
        try:
            master = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
    if master <= 0:
        return []
    return [master, *_children(master)]


# -- faults ------------------------------------------------------------------------------------


@dataclass
class FaultContext:
    """Where a fault lands: the endpoint, its target and which slot served when the run began."""

    kind: str
    endpoint: EndpointSpec
    live_color: Color

    @property
    def target(self) -> Target:
        """A fresh target object (reads what runs now)."""
        return get_target(self.kind, self.endpoint)

    @property
    def candidate_color(self) -> Color:
        """The idle slot the rollout starts the new version in."""
        return other(self.live_color)


class Fault:
    """One injected fault: :meth:`inject` at the chosen phase, :meth:`cleanup` always.

    Subclasses implement :meth:`_inject` (and :meth:`cleanup` when there is something to undo).
    """

    #: Short name used in scenario lines.
    name: str = "fault"
    #: Hits the candidate (so promoting the candidate after it fired is wrong).
    hits_candidate: bool = False
    #: Kills the router (its down window is reported apart).
    hits_router: bool = False

    def __init__(self, ctx: FaultContext) -> None:
        self.ctx = ctx
        #: Processes this fault killed or froze (the failed-request allowance counts them).
        self.processes: list[int] = []
        self.injected_at: float | None = None

    def inject(self) -> None:
        """Apply the fault now (called from a :class:`Trigger`)."""
        self.injected_at = time.monotonic()
        self._inject()

    def _inject(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Undo what can be undone (a frozen process continues); safe to call twice."""
        return None


class KillSlot(Fault):
    """SIGKILL every replica of a slot (the candidate, or the old live slot)."""

    def __init__(self, ctx: FaultContext, which: str = "candidate") -> None:
        super().__init__(ctx)
        self.which = which
        self.name = f"kill-{which}"
        self.hits_candidate = which == "candidate"

    def _inject(self) -> None:
        color = self.ctx.candidate_color if self.which == "candidate" else self.ctx.live_color
        self.processes = signal_pids(slot_host_pids(self.ctx.target, color), signal.SIGKILL)
        wait_gone(self.processes, 5)


class HangCandidate(Fault):
    """SIGSTOP every replica of the candidate: it keeps its sockets but answers nothing."""

    name = "hang-candidate"
    hits_candidate = True

    def _inject(self) -> None:
        self.processes = signal_pids(
            slot_host_pids(self.ctx.target, self.ctx.candidate_color), signal.SIGSTOP
        )

    def cleanup(self) -> None:
        signal_pids(self.processes, signal.SIGCONT)


class KillRouter(Fault):
    """SIGKILL the router: the HAProxy master and its workers (docker: the container's process)."""

    name = "kill-router"
    hits_router = True

    def _inject(self) -> None:
        self.processes = signal_pids(router_host_pids(self.ctx.target), signal.SIGKILL)
        wait_gone(self.processes, 5)


_WRAPPER = """#!/bin/sh
# mlops-tasks fault injection: HAProxy whose configuration check fails while {flag} exists.
for arg in "$@"; do
  if [ "$arg" = "-c" ] && [ -e '{flag}' ]; then
    echo "[ALERT] injected fault: configuration check fails" >&2
    exit 1
  fi
done
exec '{real}' "$@"
"""


class FailingReload(Fault):
    """The router's configuration check fails, so a deploy that must reload cannot.

    Local target: ``MLOPS_HAPROXY_BIN`` points at a wrapper of the real binary whose
    ``-c`` fails once :meth:`inject` has created its flag file (everything else runs the
    real HAProxy). Docker target: the check in the router image is replaced by one that
    fails. Use it with a deploy that changes the configuration (another replica count).
    """

    name = "fail-reload"

    def __init__(self, ctx: FaultContext) -> None:
        super().__init__(ctx)
        self._dir = Path(tempfile.mkdtemp(prefix="mlops-fault-haproxy-"))
        self.flag = self._dir / "fail"
        self._saved_bin = os.environ.get("MLOPS_HAPROXY_BIN")
        self._patched: tuple[type, Any] | None = None
        if ctx.kind == "local":
            wrapper = self._dir / "haproxy"
            wrapper.write_text(_WRAPPER.format(flag=self.flag, real=haproxy_binary()), encoding="utf-8")
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.environ["MLOPS_HAPROXY_BIN"] = str(wrapper)

    def _inject(self) -> None:
        self.flag.touch()
        if self.ctx.kind != "local" and self._patched is None:
            cls = type(self.ctx.target)
            original = cls.__dict__["check_config"]
            flag = self.flag

            def failing_check(target: Any, path: Path) -> None:
                if flag.exists():
                    raise RouterConfigError(
                        f"HAProxy rejected the configuration {path}: "
                        "[ALERT] injected fault: configuration check fails"
                    )
                original(target, path)

            cls.check_config = failing_check  # type: ignore[attr-defined]
            self._patched = (cls, original)

    def cleanup(self) -> None:
        self.flag.unlink(missing_ok=True)
        if self._patched is not None:
            cls, original = self._patched
            cls.check_config = original  # type: ignore[attr-defined]
            self._patched = None
        if self.ctx.kind == "local":
            if self._saved_bin is None:
                os.environ.pop("MLOPS_HAPROXY_BIN", None)
            else:
                os.environ["MLOPS_HAPROXY_BIN"] = self._saved_bin
        for path in self._dir.glob("*"):
            path.unlink(missing_ok=True)
        if self._dir.exists():
            self._dir.rmdir()


class NoFault(Fault):
    """Nothing injected: the fault is in the candidate's model itself (slow, 500s)."""

    name = "none"

    def _inject(self) -> None:
        pass


FAULTS: dict[str, Callable[[FaultContext], Fault]] = {
    "kill-candidate": lambda ctx: KillSlot(ctx, "candidate"),
    "hang-candidate": HangCandidate,
    "kill-live": lambda ctx: KillSlot(ctx, "live"),
    "kill-router": KillRouter,
    "fail-reload": FailingReload,
    "slow-candidate": NoFault,
    "spike-candidate": NoFault,
}


# -- phases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """A point of the rollout: the ``occurrence``-th timeline event ``step`` (counted among
    events of that step), if its detail contains ``detail``, plus ``delay_s`` (run in a
    thread, so the rollout goes on).

    Example:
        ```python
        during_canary_bake = Phase("shift", detail="10 %", delay_s=1.0)
        canary_last_shift = Phase("shift", 2, "100 %")
        ```
    """

    step: str
    occurrence: int = 1
    detail: str = ""
    delay_s: float = 0.0

    def matches(self, step: str, detail: str) -> bool:
        """The event is this phase's step and its detail matches (occurrence aside)."""
        return step == self.step and self.detail in detail

    @property
    def label(self) -> str:
        """Short text for scenario lines: ``shift#1[10 %]+1.0s``."""
        text = f"{self.step}#{self.occurrence}"
        if self.detail:
            text += f"[{self.detail.strip()}]"
        if self.delay_s:
            text += f"+{self.delay_s:g}s"
        return text


class Trigger:
    """A rollout listener that runs ``action`` once, at ``phase``.

    Errors of ``action`` are kept in :attr:`error` (never raised into the rollout).
    :meth:`cancel` stops a delayed action that has not run yet.

    Example:
        ```python
        trigger = Trigger(Phase("shift", detail="10 %", delay_s=1), fault.inject)
        deploy_blue_green(..., listener=trigger)
        assert trigger.fired_at is not None
        ```
    """

    def __init__(
        self,
        phase: Phase | None,
        action: Callable[[], None],
        also: Callable[[DeploymentRecord], None] | None = None,
    ) -> None:
        self.phase = phase
        self.action = action
        self.also = also
        self.seen = 0
        #: ``(step, monotonic time)`` of every event the rollout reported.
        self.steps: list[tuple[str, float]] = []
        self.fired_at: float | None = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, record: DeploymentRecord) -> None:
        event = record.timeline[-1]
        self.steps.append((event.step, time.monotonic()))
        if self.also is not None:
            self.also(record)
        if self.phase is None or event.step != self.phase.step:
            return
        self.seen += 1
        if self.seen != self.phase.occurrence or not self.phase.matches(event.step, event.detail):
            return
        if self.phase.delay_s > 0:
            self._thread = threading.Thread(target=self._later, daemon=True)
            self._thread.start()
        else:
            self._fire()

    def _later(self) -> None:
        assert self.phase is not None
        if not self._cancel.wait(self.phase.delay_s):
            self._fire()

    def _fire(self) -> None:
        try:
            self.action()
        except Exception as exc:  # kept for the report; the rollout must not see it
            self.error = exc
        finally:
            self.fired_at = time.monotonic()

    def cancel(self, join_s: float = 10.0) -> None:
        """Stop a pending delayed action and wait for a running one."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(join_s)

    @property
    def fired(self) -> bool:
        """The action ran."""
        return self.fired_at is not None

    def reached(self, step: str) -> float | None:
        """Monotonic time of the first ``step`` event (None if the rollout never got there)."""
        return next((t for s, t in self.steps if s == step), None)


# -- endpoint monitor --------------------------------------------------------------------------


@dataclass
class Windows:
    """Longest and summed length (ms) of the windows a condition held."""

    longest_ms: float = 0.0
    total_ms: float = 0.0
    count: int = 0
    _since: float | None = None

    def update(self, holds: bool, now: float) -> None:
        """Open, extend or close the current window."""
        if holds and self._since is None:
            self._since = now
        elif not holds and self._since is not None:
            self._close(now)

    def _close(self, now: float) -> None:
        assert self._since is not None
        length = (now - self._since) * 1000
        self.longest_ms = max(self.longest_ms, length)
        self.total_ms += length
        self.count += 1
        self._since = None

    def finish(self, now: float) -> None:
        """Close a window still open."""
        if self._since is not None:
            self._close(now)


class EndpointMonitor:
    """Polls the router every ``interval_s`` and measures when nothing serves though it could.

    ``down``: no server of backend ``live`` is UP with weight above 0 while some slot is
    healthy (a server UP in any backend, or one answering ``/health``): traffic could be
    served and is not. ``router``: the admin socket does not answer (router gone;
    nothing can answer until it is back). ``nothing``: no weighted server UP and no
    healthy slot either (reported for information: the fault took everything down).

    Example:
        ```python
        with EndpointMonitor(target.router) as monitor:
            deploy_blue_green(...)
        print(monitor.down.longest_ms, monitor.router.longest_ms)
        ```
    """

    def __init__(self, router: RouterClient, interval_s: float = 0.025, max_s: float = 900.0) -> None:
        self.client = RouterClient(router.socket_path, timeout_s=1.0)
        self.interval_s = interval_s
        self.max_s = max_s
        self.down = Windows()
        self.router = Windows()
        self.nothing = Windows()
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EndpointMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and close open windows."""
        self._stop.set()
        self._thread.join(10)

    def _healthy_somewhere(self, servers: list[Any]) -> bool:
        if any(s.up for s in servers):
            return True
        addresses = {s.address for s in servers if s.address and s.address != f"{PARKED[0]}:{PARKED[1]}"}
        return any(http_get(a, "/health", timeout_s=0.3)[0] == 200 for a in sorted(addresses))

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            try:
                servers = self.client.servers()
            except RouterError:
                self.router.update(True, now)
                self.down.update(False, now)
                self.nothing.update(False, now)
            else:
                self.router.update(False, now)
                serving = any(s.up and s.weight > 0 for s in servers if s.backend == LIVE)
                healthy = False if serving else self._healthy_somewhere(servers)
                self.down.update(not serving and healthy, now)
                self.nothing.update(not serving and not healthy, now)
            self.polls += 1
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - now)))
        end = time.monotonic()
        for windows in (self.down, self.router, self.nothing):
            windows.finish(end)


# -- checks ------------------------------------------------------------------------------------


def served_version(port: int, body: bytes, host: str = "127.0.0.1", timeout_s: float = 2.0) -> str | None:
    """``X-Model-Version`` of one fresh request to the live port (None: failed or not 200)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("X-Model-Version") if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def live_port_serves(port: int, version: int, body: bytes, *, needed: int = 5, within_s: float = 5.0) -> bool:
    """``needed`` fresh requests in a row answered 200 by ``version`` within ``within_s``."""
    deadline = time.monotonic() + within_s
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if served_version(port, body) == str(version) else 0
        if streak >= needed:
            return True
        if streak == 0:
            time.sleep(0.1)
    return False


@dataclass
class Expectation:
    """What a faulted rollout of ``candidate`` (from ``previous``) must not do."""

    previous: int
    candidate: int
    #: The candidate's model is bad (slow, 500s): promoting it is always wrong.
    candidate_bad: bool = False
    #: The fault hit the candidate (killed, hung) before the alias could move.
    candidate_faulted: bool = False


@dataclass
class Outcome:
    """What happened: the record's outcome, the error raised and the alias after the run."""

    outcome: str
    error: BaseException | None
    champion_after: int | None
    live_port_ok: bool | None = None
    notes: list[str] = field(default_factory=list)


def judge_scenario(expect: Expectation, got: Outcome) -> list[str]:
    """The wrong outcomes of one rollout under a fault (empty when it did the right thing).

    - an unhealthy candidate promoted (bad model, or faulted before the alias moved);
    - ``succeeded`` while the live port is not served by the new version;
    - the champion alias moved although the run did not succeed;
    - a run that did not succeed raised nothing, or raised something that is not a
      ``EndpointDeployError`` carrying the record.
    """
    from mlops_tasks.errors import EndpointDeployError

    wrong = []
    promoted = got.champion_after == expect.candidate and expect.candidate != expect.previous
    if promoted and (expect.candidate_bad or expect.candidate_faulted):
        wrong.append(f"unhealthy candidate v{expect.candidate} promoted (outcome {got.outcome})")
    if got.outcome == "succeeded" and got.live_port_ok is False:
        wrong.append("succeeded but the live port is not served by the new version")
    if got.outcome != "succeeded" and got.champion_after != expect.previous:
        wrong.append(f"champion alias moved to v{got.champion_after} on outcome {got.outcome}")
    if got.outcome in ("rolled_back", "failed"):
        if got.error is None:
            wrong.append(f"outcome {got.outcome} but nothing raised")
        elif not isinstance(got.error, EndpointDeployError) or getattr(got.error, "record", None) is None:
            wrong.append(f"raised {type(got.error).__name__}, not a EndpointDeployError with its record")
    elif got.outcome != "succeeded":
        wrong.append(
            f"run ended with outcome {got.outcome}"
            + (f" and {type(got.error).__name__}: {got.error}" if got.error else "")
        )
    return wrong


def reconcile_problems(endpoint_name: str, champion: int | None, expected: int) -> list[str]:
    """Problems of the endpoint after a rerun: exactly one weighted slot, serving the champion."""
    from mlops_tasks.deploy import describe_deployment

    info = describe_deployment(endpoint_name)
    problems = []
    weighted = {c: s for c, s in info.slots.items() if s.weight > 0}
    if not info.router_running:
        problems.append("router not running after the rerun")
    if len(weighted) != 1:
        problems.append(
            f"{len(weighted)} weighted slots after the rerun: "
            f"{ {c: (s.version, s.weight) for c, s in info.slots.items()} }"
        )
    versions = {s.version for s in weighted.values()}
    if versions != {champion} or champion != expected:
        problems.append(
            f"after the rerun the weighted slot serves {sorted(map(str, versions))}, champion "
            f"v{champion}, expected v{expected}"
        )
    return problems


@dataclass
class FaultRun:
    """One rollout under a fault: what it returned or raised, and what the load and router saw."""

    record: DeploymentRecord | None
    error: BaseException | None
    trigger: Trigger
    fault: Fault
    monitor: EndpointMonitor
    load: Any  # tests.deploy_support.LoadResult
    connections: int
    live_ok: bool | None
    started: float
    finished: float

    @property
    def outcome(self) -> str:
        """The record's outcome (``?`` when no record was written)."""
        return self.record.outcome if self.record is not None else "?"

    @property
    def candidate_faulted(self) -> bool:
        """The fault hit the candidate before the champion alias moved."""
        moved = self.trigger.reached("champion-moved")
        at = self.fault.injected_at
        return bool(self.fault.hits_candidate and at is not None and (moved is None or at < moved))

    def allowance(self, extra_processes: int = 0) -> int:
        """Failed requests allowed: one per open connection per process killed or frozen."""
        killed = 0 if self.fault.hits_router else len(self.fault.processes)
        return (killed + extra_processes) * self.connections


def run_faulted_rollout(
    deploy: Callable[[Callable[[DeploymentRecord], None]], DeploymentRecord],
    *,
    fault: Fault,
    phase: Phase | None,
    endpoint: EndpointSpec,
    router: RouterClient,
    bodies: list[bytes],
    candidate: int,
    connections: int = 8,
    rate: float = 40.0,
    warmup_answers: int = 40,
) -> FaultRun:
    """Run ``deploy(listener)`` under keep-alive load with ``fault`` injected at ``phase``.

    The load (the tests' ``LoadClient``) and an :class:`EndpointMonitor` run from before
    the rollout until some answers after it; when the run said ``succeeded`` the live port
    must answer with ``candidate`` (:func:`live_port_serves`). Errors of the rollout are
    returned, not raised. The caller owns the fault's lifetime (:func:`injected`).
    """
    from mlops_tasks.deploy.state import read_records
    from tests.deploy_support import LoadClient

    trigger = Trigger(phase, fault.inject)
    monitor = EndpointMonitor(router)
    error: BaseException | None = None
    record: DeploymentRecord | None = None
    with LoadClient(
        "127.0.0.1", endpoint.port, bodies, connections=connections, rate=rate, timeout_s=30
    ) as load:
        load.wait_answers(warmup_answers, timeout_s=20)
        monitor.start()
        started = time.monotonic()
        try:
            record = deploy(trigger)
        except Exception as exc:  # judged by the caller: a EndpointDeployError carrying its record
            error = exc
            record = getattr(exc, "record", None)
        finished = time.monotonic()
        trigger.cancel()
        if record is None:
            records = read_records(endpoint.name)
            record = records[-1] if records else None
        live_ok = None
        if record is not None and record.outcome == "succeeded":
            live_ok = live_port_serves(endpoint.port, candidate, bodies[0])
        load.wait_answers(len(load.result.answers) + warmup_answers, timeout_s=5)
    monitor.stop()
    return FaultRun(
        record, error, trigger, fault, monitor, load.result, connections, live_ok, started, finished
    )


@contextmanager
def injected(fault: Fault) -> Iterator[Fault]:
    """Context that always cleans ``fault`` up."""
    try:
        yield fault
    finally:
        fault.cleanup()
