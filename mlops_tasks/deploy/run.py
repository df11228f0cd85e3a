"""One rollout attempt: its record, persisted after every event, and the listener."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlops_tasks.deploy import state
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import DeploymentRecord, Outcome, now_iso
from mlops_tasks.errors import EndpointDeployError, MLOpsError, RouterError

__all__ = ["Listener", "RolloutRun", "as_rollout_error", "router_call"]

logger = logging.getLogger(__name__)

#: Called with the record after every timeline event (tests and the Prefect task hook in here).
Listener = Callable[[DeploymentRecord], None]


class RolloutRun:
    """One deployment attempt: the record, its persistence and listeners.

    Example:
        ```python
        run = RolloutRun(record, listener=print)
        run.event("shift", "green 10 %")
        ```
    """

    def __init__(self, record: DeploymentRecord, listener: Listener | None) -> None:
        self.record = record
        self.listener = listener

    def event(self, step: str, detail: str = "") -> None:
        """Add a timeline event, save the record and call the listener."""
        self.record.event(step, detail)
        logger.info("[%s] %s %s", self.record.endpoint, step, detail)
        state.append_record(self.record)
        if self.listener is not None:
            self.listener(self.record)

    def finish(self, outcome: Outcome, error: str | None = None) -> DeploymentRecord:
        """Set the outcome (and error), stamp the end and save; the record."""
        self.record.outcome = outcome
        self.record.error = error
        self.record.finished_at = now_iso()
        self.event(outcome, error or "")
        return self.record


def as_rollout_error(exc: BaseException, record: DeploymentRecord) -> MLOpsError:
    """``exc`` as the error a rollout raises, carrying ``record``."""
    if isinstance(exc, MLOpsError):
        if isinstance(exc, EndpointDeployError):
            exc.record = record
        return exc
    return EndpointDeployError(
        f"Deployment of {record.model_name} version {record.version} failed: {type(exc).__name__}: {exc}",
        record=record,
    )


def router_call(
    target: DeployTarget, run: RolloutRun, call: Callable[[], Any], timeout_s: float = 30.0
) -> Any:
    """Run a router call, waiting for a router that went away to come back (watchdog or us).

    When nobody brought it back within 5 s, it is started again from what runs, with the
    record's live slot at 100 %.
    """
    clock = target.clock
    began = clock.monotonic()
    restarted = False
    while True:
        try:
            return call()
        except RouterError as exc:
            if clock.monotonic() - began >= timeout_s:
                raise
            if not restarted and clock.monotonic() - began > 5 and not target.traffic.running():
                slots = target.runner.slots()
                live = run.record.live_color
                target.traffic.ensure_running(slots, live if live and slots[live].healthy else None)
                restarted = True
                run.event("router-started", f"the router was gone ({exc}); started again")
            clock.sleep(0.2)
