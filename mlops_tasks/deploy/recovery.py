"""Getting out of a rollout: abort back to the live slot, undo a promotion, retire the old slot."""

from __future__ import annotations

from mlops_tasks.deploy import state
from mlops_tasks.deploy.gates import gate_candidate
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import Color, Outcome
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.deploy.run import RolloutRun, as_rollout_error, router_call
from mlops_tasks.errors import CandidateUnhealthyError, EndpointDeployError, MLOpsError

__all__ = ["abort_rollout", "retire_after_wait", "undo_promotion"]


def abort_rollout(
    target: DeployTarget,
    live: Color | None,
    candidate: Color,
    run: RolloutRun,
    exc: BaseException,
    outcome: Outcome,
    finish: bool = True,
) -> None:
    """All traffic back to the live slot at once, the candidate out of the router and stopped.

    When the router cannot be told (it is gone and does not come back), the candidate is
    left running: stopping it could leave a restarted router pointing at nothing. The
    next run reconciles.
    """
    runner, traffic = target.runner, target.traffic
    record = run.record
    if record.failed_step is None and record.timeline:
        last = record.timeline[-1]
        record.failed_step = f"{last.step} {last.detail}".strip()[:120]
    record.live_color = live
    moved = live is None
    # A candidate that still answers finishes its requests; a dead or hung one is not waited for.
    try:
        answering = runner.answers_health(runner.slot_status(candidate).addresses, 1.0)
    except MLOpsError:  # the runner cannot even say (e.g. the Docker engine is gone)
        answering = False
    try:
        if live is not None:
            router_call(target, run, lambda: traffic.set_weights({live: 100, candidate: 0}))
            moved = True
            run.event("traffic-back", f"all traffic to {live}")
        router_call(target, run, lambda: traffic.set_mirror(None), 5)
        router_call(target, run, lambda: traffic.detach(candidate), 5)
        traffic.wait_idle(candidate, 5 if answering else 1, target.clock)
    except MLOpsError as inner:
        run.event("abort-warning", f"router: {inner}")
    if moved:
        try:
            runner.stop_slot(candidate, grace_s=5 if answering else 0.5)
            run.event("green-stopped", f"slot {candidate}")
        except MLOpsError as inner:  # e.g. the Docker engine went away: the next run removes it
            run.event("abort-warning", f"slot {candidate} not stopped: {inner}")
    else:
        run.event(
            "abort-warning",
            f"the router could not be told; slot {candidate} left running for the next run to reconcile",
        )
    if finish:
        run.finish(outcome, f"{type(exc).__name__}: {exc}")


def undo_promotion(
    target: DeployTarget,
    run: RolloutRun,
    old: Color,
    candidate: Color,
    exc: BaseException,
    registry: RegistryAccess,
) -> None:
    """The promoted candidate failed before the old slot was retired: put the old one back."""
    record = run.record
    target.runner.set_supervised(candidate, False)
    abort_rollout(target, old, candidate, run, exc, "rolled_back", finish=False)
    if record.previous_version is not None:
        registry.promote(record.model_name, record.previous_version)
        run.event("champion-moved", f"alias champion -> version {record.previous_version} (back)")
    target.runner.set_supervised(old, True)
    run.finish("rolled_back", f"{type(exc).__name__}: {exc}")


def _wait_warm(target: DeployTarget, old: Color, wait_s: float) -> None:
    """Keep ``old`` warm up to ``wait_s``; returns early when traffic went back to it."""
    clock = target.clock
    deadline = clock.monotonic() + wait_s
    while clock.monotonic() < deadline:
        try:
            if target.traffic.weights().get(old, 0) > 0:
                return  # rolled back to it: nothing to retire
        except MLOpsError:
            pass
        clock.sleep(min(0.5, max(0.0, deadline - clock.monotonic())))


def retire_after_wait(
    target: DeployTarget,
    lock: state.EndpointLock,
    run: RolloutRun,
    old: Color,
    wait_s: float,
    candidate: Color,
    addresses: list[str],
    registry: RegistryAccess,
) -> None:
    """Keep ``old`` warm for ``wait_s`` (lock released, so a rollback can use it), then stop it.

    The candidate must still be fit to serve when the old slot is about to go; if it is
    not, all traffic goes back to ``old`` (still running), the alias moves back and the
    record ends ``rolled_back``.

    Raises:
        CandidateUnhealthyError: The candidate failed its last check (after the undo).
    """
    traffic = target.traffic
    run.event("retire-started", f"slot {old} kept warm {wait_s:g} s, then stopped")
    if wait_s > 0:
        lock.release()
        _wait_warm(target, old, wait_s)
        try:
            lock.acquire(timeout_s=60.0)
        except EndpointDeployError:
            run.event("retire-skipped", f"another run holds the endpoint; slot {old} left to it")
            return
    if router_call(target, run, traffic.weights).get(old, 0) > 0:
        run.event("retire-skipped", f"slot {old} serves again (rolled back); kept")
        return
    try:
        gate_candidate(target, candidate, addresses, f"retiring slot {old}")
    except CandidateUnhealthyError as exc:
        undo_promotion(target, run, old, candidate, exc, registry)
        raise as_rollout_error(exc, run.record) from exc
    target.runner.set_supervised(old, False)
    traffic.detach(old)
    traffic.wait_idle(old, 10, target.clock)
    target.runner.stop_slot(old)
    run.event("blue-stopped", f"slot {old} stopped after {wait_s:g} s warm")
