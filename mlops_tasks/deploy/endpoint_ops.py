"""Operations on a deployed endpoint: roll back, describe, stop."""

from __future__ import annotations

import time
import uuid

import pandas as pd

from mlops_tasks.deploy import state
from mlops_tasks.deploy.ab_state import close_ab_test, refuse_during_ab_test, running_ab_test
from mlops_tasks.deploy.access import describe_security, list_api_keys
from mlops_tasks.deploy.gates import confirm_serving, gate_candidate
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import (
    COLORS,
    Color,
    DeploymentRecord,
    EndpointDescription,
    RolloutSpec,
    SlotStatus,
    other,
)
from mlops_tasks.deploy.reconcile import reconcile
from mlops_tasks.deploy.recovery import retire_after_wait
from mlops_tasks.deploy.registry_access import MlflowRegistryAccess, RegistryAccess
from mlops_tasks.deploy.rollout import deploy_blue_green, resolve_target
from mlops_tasks.deploy.run import Listener, RolloutRun
from mlops_tasks.errors import EndpointDeployError, MLOpsError, RollbackError
from mlops_tasks.settings import MlflowConfig

__all__ = ["describe_deployment", "rollback_deployment", "stop_endpoint"]


def rollback_deployment(
    endpoint_name: str = "default",
    *,
    rollout: RolloutSpec | None = None,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    lock_timeout_s: float = 0.0,
    listener: Listener | None = None,
    registry: RegistryAccess | None = None,
) -> DeploymentRecord:
    """Put the previous version back at 100 % and move ``champion`` back to it.

    When the previous version's slot is still warm, only the router weights change
    (well under 2 s); otherwise the previous version is deployed again through the
    same strategy (``rollout``; default all-at-once without bake), smoke-tested with
    ``smoke_rows`` (default: the model's input example).

    Raises:
        RollbackError: Nothing is deployed, or no previous version is recorded.
        EndpointBusyError: A deployment of the endpoint runs.
        AbTestRunningError: An A/B test runs on the endpoint (end it for A instead).

    Example:
        ```python
        from mlops_tasks.deploy import rollback_deployment
        record = rollback_deployment("churn")
        print(record.version, record.outcome)
        ```
    """
    saved = state.load_endpoint(endpoint_name)
    if saved is None:
        raise RollbackError(f"Endpoint {endpoint_name!r} has no deployment to roll back.")
    refuse_during_ab_test(endpoint_name, "a rollback")
    spec, kind, model_name = saved
    tgt = resolve_target(kind, spec)
    registry = registry or MlflowRegistryAccess(mlflow_config)
    lock = state.EndpointLock(endpoint_name)
    lock.acquire(lock_timeout_s)
    try:
        record = DeploymentRecord(
            id=uuid.uuid4().hex[:12],
            endpoint=endpoint_name,
            target=kind,
            model_name=model_name,
            version=0,
            strategy="all_at_once",
            kind="rollback",
        )
        run = RolloutRun(record, listener)
        live, slots = reconcile(tgt, model_name, registry, mlflow_config, run)
        if live is None:
            raise RollbackError(f"Endpoint {endpoint_name!r} serves nothing; deploy a version first.")
        current = slots[live].version
        previous = _previous_of(endpoint_name, current)
        if previous is None:
            run.finish("failed", "no previous version recorded")
            raise RollbackError(
                f"Endpoint {endpoint_name!r} serves version {current}, and no earlier version was "
                "deployed there; deploy the version you want with deploy_blue_green.",
                record=record,
            )
        record.version, record.previous_version = previous, current
        warm = other(live)
        if slots[warm].healthy and slots[warm].version == previous:
            _warm_rollback(tgt, run, live, slots[warm], registry)
            wait = (rollout or RolloutSpec(termination_wait_s=0)).termination_wait_s
            retire_after_wait(tgt, lock, run, live, wait, warm, slots[warm].addresses, registry)
            return record
        run.event("redeploy", f"slot {warm} is not warm: deploying version {previous} again")
        run.finish("noop", "handed over to a redeployment of the previous version")
    finally:
        lock.release()
    return deploy_blue_green(
        model_name,
        previous,
        endpoint=spec,
        rollout=rollout or RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
        target=tgt,
        smoke_rows=smoke_rows,
        mlflow_config=mlflow_config,
        force=True,
        lock_timeout_s=lock_timeout_s,
        listener=listener,
        registry=registry,
        _kind="rollback",
    )


def _warm_rollback(
    tgt: DeployTarget, run: RolloutRun, live: Color, warm_slot: SlotStatus, registry: RegistryAccess
) -> None:
    """Shift all traffic to the warm slot (attached again if needed), confirm, move the alias.

    Raises:
        RollbackError: The warm slot failed its gate or confirmation; traffic went back.
    """
    record, traffic = run.record, tgt.traffic
    warm = warm_slot.color
    started = time.perf_counter()
    views = traffic.slot_servers(warm)
    if len(views) < tgt.endpoint.replicas or any(v.status.startswith("MAINT") for v in views):
        traffic.attach(warm, warm_slot.addresses)
        traffic.wait_up(warm, 5, tgt.clock)
    try:
        gate_candidate(tgt, warm, warm_slot.addresses, "the rollback shift")
        traffic.set_weights({warm: 100, live: 0})
        record.switch_ms = (time.perf_counter() - started) * 1000
        run.event("shift", f"{warm} 100 % (warm slot, version {record.version})")
        confirm_serving(tgt, warm, record.version)
    except MLOpsError as exc:
        traffic.set_weights({live: 100, warm: 0})
        run.event("traffic-back", f"all traffic to {live}")
        run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise RollbackError(
            f"Rollback of endpoint {record.endpoint!r} to version {record.version} failed: {exc} "
            f"Version {record.previous_version} keeps serving.",
            record=record,
        ) from exc
    record.live_color = warm
    tgt.runner.set_supervised(warm, True)
    registry.promote(record.model_name, record.version)
    run.event("champion-moved", f"alias champion -> version {record.version}")
    run.finish("succeeded", None)


def _previous_of(endpoint_name: str, version: int | None) -> int | None:
    for record in reversed(state.read_records(endpoint_name)):
        if record.outcome == "succeeded" and record.version == version and record.previous_version:
            if record.previous_version != version:
                return record.previous_version
    return None


def _slot_views(tgt: DeployTarget) -> tuple[dict[Color, SlotStatus], bool]:
    """Each slot's status with the router's weight and state filled in; the router runs."""
    slots = tgt.runner.slots()
    running = tgt.traffic.running()
    if running:
        try:
            views = tgt.traffic.servers()
        except MLOpsError:
            views = []
        for color in COLORS:
            first = next((v for v in views if v.color == color and not v.backup), None)
            if first is not None:
                weight = 0 if first.status.startswith("MAINT") else first.weight
                slots[color] = slots[color].model_copy(
                    update={"weight": weight, "router_state": first.status}
                )
    return slots, running


def describe_deployment(endpoint_name: str = "default") -> EndpointDescription:
    """What serves where right now, read back from the router and the slots.

    Raises:
        EndpointDeployError: The endpoint was never deployed.

    Example:
        ```python
        from mlops_tasks.deploy import describe_deployment
        info = describe_deployment("churn")
        print(info.url, info.live_version, {c: s.weight for c, s in info.slots.items()})
        ```
    """
    saved = state.load_endpoint(endpoint_name)
    if saved is None:
        raise EndpointDeployError(f"Endpoint {endpoint_name!r} was never deployed (or was stopped).")
    spec, kind, model_name = saved
    tgt = resolve_target(kind, spec)
    slots, running = _slot_views(tgt)
    live: Color | None = None
    weighted = [c for c in COLORS if slots[c].weight > 0 and slots[c].healthy] if running else []
    if weighted:
        heaviest = max(weighted, key=lambda c: slots[c].weight)  # no Optional context for max
        live = heaviest
    host = "127.0.0.1" if spec.host in ("0.0.0.0", "") else spec.host
    scheme = "https" if spec.security.tls else "http"
    return EndpointDescription(
        endpoint=endpoint_name,
        target=kind,
        url=f"{scheme}://{host}:{spec.port}",
        preview_url=f"{scheme}://{host}:{spec.preview}",
        router_running=running,
        live_color=live,
        live_version=slots[live].version if live else None,
        model_name=model_name,
        slots=dict(slots),
        last_deployment=state.last_record(endpoint_name),
        api_keys=list_api_keys(endpoint_name) if spec.security.api_keys and kind == "local" else [],
        security=describe_security(endpoint_name) if spec.security.enabled and kind == "local" else None,
    )


def stop_endpoint(endpoint_name: str = "default", *, lock_timeout_s: float = 10.0) -> bool:
    """Stop the endpoint's router and both slots and forget it is live (an A/B test on it ends too).

    Returns:
        True when something was running.

    Example:
        ```python
        from mlops_tasks.deploy import stop_endpoint
        stop_endpoint("churn")
        ```
    """
    saved = state.load_endpoint(endpoint_name)
    if saved is None:
        return False
    spec, kind, _ = saved
    tgt = resolve_target(kind, spec)
    with state.EndpointLock(endpoint_name).hold(lock_timeout_s):
        slots = tgt.runner.slots()
        was_running = tgt.traffic.running() or any(s.running for s in slots.values())
        tgt.traffic.stop()
        for color in COLORS:
            tgt.runner.stop_slot(color)
        state.forget_endpoint(endpoint_name)
        test = running_ab_test(endpoint_name)
        if test is not None:
            close_ab_test(test, "A", "the endpoint was stopped during the test; nothing was promoted")
    return was_running
