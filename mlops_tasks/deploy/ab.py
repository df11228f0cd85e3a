"""A/B tests at the endpoint: start a challenger beside the champion, split, end with one live.

:func:`start_ab_test` starts the challenger (variant ``B``) in the idle slot with the
same steps as a rollout's candidate (start, health, router checks, smoke test through the
preview port), then has the router split live traffic by variant
(:meth:`~mlops_tasks.deploy.interfaces.TrafficRouter.set_split`). The champion alias does
not move. :func:`end_ab_test` ends it with exactly one version live: for ``B`` it is the
end of a blue-green rollout (gate, all traffic to B, confirmation through the live port,
the champion alias moves, the old slot retired); for ``A`` all traffic goes back to the
champion at once and the challenger is stopped.

While a test runs (``<endpoint folder>/abtest.json``), :func:`refuse_during_ab_test`
makes deployments and retrains fail with :class:`~mlops_tasks.errors.AbTestRunningError`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import pandas as pd

from mlops_tasks.deploy import state
from mlops_tasks.deploy.ab_state import (
    AbTestRecord,
    close_ab_test,
    refuse_during_ab_test,
    running_ab_test,
    save_ab_test,
)
from mlops_tasks.deploy.gates import confirm_serving, gate_candidate
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import (
    AbSplit,
    DeploymentRecord,
    EndpointSpec,
    RolloutSpec,
    other,
)
from mlops_tasks.deploy.reconcile import reconcile
from mlops_tasks.deploy.recovery import abort_rollout, retire_after_wait
from mlops_tasks.deploy.registry_access import MlflowRegistryAccess, RegistryAccess
from mlops_tasks.deploy.rollout import _Rollout, resolve_target
from mlops_tasks.deploy.run import RolloutRun, as_rollout_error
from mlops_tasks.errors import AbTestError, AbTestNotFoundError, ConfigurationError
from mlops_tasks.settings import MlflowConfig

__all__ = ["end_ab_test", "start_ab_test"]

logger = logging.getLogger(__name__)


def start_ab_test(
    model_name: str,
    challenger: int,
    *,
    endpoint: EndpointSpec | None = None,
    target: str | DeployTarget = "local",
    percent_a: int = 50,
    mode: Literal["sticky", "request"] = "sticky",
    max_duration_h: float = 168.0,
    meta: dict[str, Any] | None = None,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
    lock_timeout_s: float = 0.0,
) -> AbTestRecord:
    """Start an A/B test: ``challenger`` (B) beside the live champion (A), traffic split by variant.

    Args:
        model_name: Registered model name (the champion serves the endpoint).
        challenger: Version to test; it must exist and have passed its quality gate.
        endpoint: The endpoint (ignored when ``target`` is a target object).
        target: Target name or object, as for :func:`~mlops_tasks.deploy.deploy_blue_green`.
        percent_a: Share of subjects (or requests) for A, 1-99.
        mode: ``sticky`` (by ``X-Subject-Id``) or ``request`` (each request at random).
        max_duration_h: Hours after which the evaluation ends the test for A.
        meta: Kept with the test (the analysis spec, where outcomes arrive).
        smoke_rows: Rows for the challenger's smoke test (default: its input example).
        mlflow_config: Where MLflow lives.
        registry: The registry calls (default: MLflow).
        lock_timeout_s: How long to wait for another deployment of the endpoint.

    Returns:
        The test's record (also in ``<endpoint folder>/abtest.json``).

    Raises:
        ConfigurationError: ``percent_a`` outside 1-99, or the challenger is what serves.
        ModelNotFoundError: No such version.
        PromotionRefusedError: The challenger did not pass its quality gate.
        AbTestRunningError: A test already runs on the endpoint.
        AbTestError: The endpoint serves nothing (deploy the champion first).
        SlotStartError, SmokeTestError: The challenger did not start or predicts differently
            from its registered model; the champion keeps serving everything.

    Example:
        ```python
        test = start_ab_test("churn-classifier", 5, endpoint=EndpointSpec(name="churn"), percent_a=50)
        ```
    """
    if not 1 <= percent_a <= 99:
        raise ConfigurationError(
            f"A/B split gives A {percent_a} % of traffic; each variant needs 1-99 % (weights summing to 100)."
        )
    tgt = resolve_target(target, endpoint or EndpointSpec())
    refuse_during_ab_test(tgt.endpoint.name, "a second A/B test")
    registry = registry or MlflowRegistryAccess(mlflow_config)
    registry.check_deployable(model_name, challenger, False)
    lock = state.EndpointLock(tgt.endpoint.name)
    lock.acquire(lock_timeout_s)
    try:
        refuse_during_ab_test(tgt.endpoint.name, "a second A/B test")
        return _start(tgt, lock, registry, mlflow_config, model_name, challenger, smoke_rows,
                      AbSplit(mode=mode, percent_a=percent_a, colors={"A": "blue", "B": "green"}),
                      max_duration_h, meta or {})  # fmt: skip
    finally:
        lock.release()


def _record(tgt: DeployTarget, model_name: str, version: int) -> DeploymentRecord:
    return DeploymentRecord(
        id=uuid.uuid4().hex[:12], endpoint=tgt.endpoint.name, target=tgt.kind, model_name=model_name,
        version=version, strategy="all_at_once", kind="abtest",
    )  # fmt: skip


def _start(
    tgt: DeployTarget,
    lock: state.EndpointLock,
    registry: RegistryAccess,
    mlflow_config: MlflowConfig | None,
    model_name: str,
    challenger: int,
    smoke_rows: pd.DataFrame | None,
    split: AbSplit,
    max_duration_h: float,
    meta: dict[str, Any],
) -> AbTestRecord:
    rollout = _Rollout(tgt, lock, registry, mlflow_config, RolloutSpec())
    run = rollout.run = RolloutRun(_record(tgt, model_name, challenger), None)
    run.event("abtest-starting", f"{model_name} version {challenger} as variant B")
    live, slots = reconcile(tgt, model_name, registry, mlflow_config, run)
    live_version = slots[live].version if live else None
    if live is None or live_version is None:
        run.finish("failed", "nothing serves")
        raise AbTestError(
            f"Endpoint {tgt.endpoint.name!r} serves nothing, so there is no champion to test against; "
            "deploy the champion first (deployment_pipeline)."
        )
    if live_version == challenger:
        run.finish("failed", "challenger already live")
        raise ConfigurationError(
            f"Version {challenger} already serves endpoint {tgt.endpoint.name!r} as the champion; "
            "name another registered version as the challenger."
        )
    run.record.previous_version = live_version
    candidate = other(live)
    try:
        rollout.start_candidate(candidate, smoke_rows)
        gate_candidate(tgt, candidate, tgt.runner.slot_status(candidate).addresses, "the A/B split")
        tgt.traffic.set_split(split.model_copy(update={"colors": {"A": live, "B": candidate}}))
    except Exception as exc:
        abort_rollout(tgt, live, candidate, run, exc, "rolled_back")
        raise as_rollout_error(exc, run.record) from exc
    tgt.runner.set_supervised(candidate, True)
    test = AbTestRecord(
        id=run.record.id, endpoint=tgt.endpoint.name, target=tgt.kind, model_name=model_name,
        versions={"A": live_version, "B": challenger}, split=tgt.traffic.split() or split,
        max_duration_h=max_duration_h, meta=meta,
    )  # fmt: skip
    save_ab_test(test)
    run.event("abtest-started", f"A: version {live_version} ({live}), B: version {challenger} ({candidate})")
    run.record.live_color = live
    run.finish("succeeded", None)
    logger.info("A/B test %s started on %s", test.id, tgt.endpoint.name)
    return test


def end_ab_test(
    endpoint_name: str,
    winner: Literal["A", "B"],
    reason: str,
    *,
    target: DeployTarget | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
    termination_wait_s: float = 0.0,
    lock_timeout_s: float = 30.0,
) -> AbTestRecord:
    """End the endpoint's A/B test with exactly one version live: ``winner``'s.

    ``B``: promoted through the blue-green steps (gate, all traffic, confirmation through
    the live port, champion alias, old slot retired); should any step fail, everything
    goes back to A. ``A``: all traffic back to the champion at once, the challenger stopped.

    Raises:
        AbTestNotFoundError: No test runs on the endpoint.
        CandidateUnhealthyError: B was to win but does not serve; A serves everything.

    Example:
        ```python
        end_ab_test("churn", "B", "B_better: rated_4plus +1.6 points")
        ```
    """
    test = running_ab_test(endpoint_name)
    if test is None:
        raise AbTestNotFoundError(f"No A/B test runs on endpoint {endpoint_name!r}; nothing to end.")
    tgt = target or resolve_target(test.target, _endpoint_spec(endpoint_name))
    registry = registry or MlflowRegistryAccess(mlflow_config)
    lock = state.EndpointLock(endpoint_name)
    lock.acquire(lock_timeout_s)
    try:
        run = RolloutRun(_record(tgt, test.model_name, test.versions["B"]), None)
        run.record.previous_version = test.versions["A"]
        run.event("abtest-ending", f"winner {winner}: {reason}")
        if winner == "B":
            winner = _promote_b(tgt, lock, run, test, registry, termination_wait_s)
        else:
            _back_to_a(tgt, run, test)
    finally:
        lock.release()
    return close_ab_test(test, winner, reason)


def _endpoint_spec(endpoint_name: str) -> EndpointSpec:
    saved = state.load_endpoint(endpoint_name)
    return saved[0] if saved else EndpointSpec(name=endpoint_name)


def _promote_b(
    tgt: DeployTarget,
    lock: state.EndpointLock,
    run: RolloutRun,
    test: AbTestRecord,
    registry: RegistryAccess,
    wait_s: float,
) -> Literal["A", "B"]:
    a, b = test.split.colors["A"], test.split.colors["B"]
    addresses = tgt.runner.slot_status(b).addresses
    try:
        gate_candidate(tgt, b, addresses, "the A/B winner's promotion")
        tgt.traffic.set_weights({b: 100, a: 0})
        tgt.traffic.set_split(None)
        run.event("shift", f"{b} 100 % (A/B winner)")
        confirm_serving(tgt, b, test.versions["B"])
        tgt.traffic.set_preview(a)
        run.record.live_color = b
        previous = registry.promote(test.model_name, test.versions["B"])
    except Exception as exc:
        _split_off(tgt)
        run.record.live_color = a
        abort_rollout(tgt, a, b, run, exc, "rolled_back")
        close_ab_test(test, "A", f"B won but could not be promoted: {exc}")
        raise as_rollout_error(exc, run.record) from exc
    run.event("champion-moved", f"alias champion -> version {test.versions['B']} (previous {previous})")
    run.finish("succeeded", None)
    retire_after_wait(tgt, lock, run, a, wait_s, b, addresses, registry)
    return "B"


def _split_off(tgt: DeployTarget) -> None:
    try:
        tgt.traffic.set_split(None)
    except Exception as exc:  # the router is gone: abort_rollout reconciles what it can
        logger.warning("A/B split not cleared on %s: %s", tgt.endpoint.name, exc)


def _back_to_a(tgt: DeployTarget, run: RolloutRun, test: AbTestRecord) -> None:
    a, b = test.split.colors["A"], test.split.colors["B"]
    tgt.traffic.set_weights({a: 100, b: 0})
    _split_off(tgt)
    run.event("traffic-back", f"all traffic to {a} (A)")
    tgt.traffic.detach(b)
    tgt.traffic.wait_idle(b, 5, tgt.clock)
    tgt.runner.stop_slot(b, grace_s=5)
    run.record.live_color = a
    run.finish("rolled_back", "A/B test ended for A")
