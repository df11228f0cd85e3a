"""Supervision shared by the targets and the watchdog: policy, events, starting/stopping the watchdog.

The targets start and stop the endpoint's watchdog (:mod:`mlops_tasks.deploy.watchdog`)
through :func:`start_watchdog` / :func:`stop_watchdog`; the watchdog records events with
:func:`emit_endpoint_event`. Living here (not in the watchdog module, which imports the
targets) keeps ``deploy.targets`` and ``deploy.watchdog`` free of an import cycle.
:mod:`mlops_tasks.deploy.watchdog` re-exports every name.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.processes import cmdline, pid_alive, terminate
from mlops_tasks.deploy.state import endpoint_dir

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_FILE",
    "EVENTS_FILE",
    "PID_FILE",
    "RECOVERED",
    "UNHEALTHY",
    "WATCHDOG_MODULE",
    "EndpointEventEmitter",
    "SupervisionPolicy",
    "emit_endpoint_event",
    "read_events",
    "start_watchdog",
    "stop_watchdog",
    "watchdog_pid",
]

UNHEALTHY = "mlops.endpoint.unhealthy"
RECOVERED = "mlops.endpoint.recovered"
#: The watchdog process's module (edge layer: it adds the Prefect emitter to the watchdog).
WATCHDOG_MODULE = "mlops_tasks.endpoint_events"
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
        factor: int = 2**restarts
        return self.backoff_s * factor


#: Called with each event document (e.g. to send it to Prefect).
EndpointEventEmitter = Callable[[dict[str, Any]], None]


# -- events -----------------------------------------------------------------------------------


def emit_endpoint_event(
    folder: Path,
    event: str,
    endpoint: str,
    what: str,
    reason: str,
    restarts: int = 0,
    gave_up: bool = False,
    emitter: EndpointEventEmitter | None = None,
) -> dict[str, Any]:
    """Record one supervision event: ``events.jsonl``, the log, and ``emitter`` when given.

    The watchdog process started by :func:`start_watchdog` passes
    :func:`mlops_tasks.endpoint_events.emit_prefect_endpoint_event`, which sends the
    event to Prefect when ``PREFECT_API_URL`` is set (this module never imports Prefect).
    The emitter is best effort: the file and the log have the event when it fails.

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
    if emitter is not None:
        try:
            emitter(doc)
        except Exception as exc:  # the file and the log have it; the emitter is best effort
            logger.warning("Event %s not sent: %s", event, exc)
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
