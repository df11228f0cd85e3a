"""The blue-green rollout (:func:`deploy_blue_green`) over a slot runner and a traffic router.

The interfaces are :class:`~mlops_tasks.deploy.interfaces.SlotRunner` and
:class:`~mlops_tasks.deploy.interfaces.TrafficRouter`; the roles are the *live* slot (what
serves) and the *candidate* slot (where the new version starts).

Steps of :func:`deploy_blue_green` (SageMaker's deployment guardrails are the model):

1. **Reconcile** (:mod:`mlops_tasks.deploy.reconcile`): read what runs from the runner and
   the router (the state file is only a cache), bring back a crashed router or live slot,
   and if a previous run was killed mid-rollout send all traffic to the champion's slot.
2. **Start the candidate** (the idle slot) with the new version and wait for ``/health``.
3. **Smoke test** through the preview entry point with real rows, compared with the
   registered model's in-process predictions.
4. **Shift traffic** (``all_at_once``, ``canary``, ``linear``) through the router, or mirror
   it (``shadow``). Before every shift the candidate must be UP in the router and answer
   ``/health`` and ``/metrics`` (:mod:`mlops_tasks.deploy.gates`).
5. **Bake guard** after each step: the candidate's 5xx share and p95 latency, its 4xx
   share against the live slot's on the same traffic (a caller's 4xx never counts on its
   own), and missing evidence counted as a breach (no answer, DOWN, restarted, fewer requests than its
   share); a breach sends all traffic back to the live slot at once and raises
   :class:`~mlops_tasks.errors.GuardBreachError` (``CandidateUnhealthyError`` when the
   candidate itself failed).
6. **Confirm**: real requests through the live entry point must be answered by the
   candidate. Only then does alias ``champion`` move; the old slot stays running until this
   point whatever the termination wait says, then stays warm for the termination wait and
   is stopped once the candidate has passed one more check
   (:mod:`mlops_tasks.deploy.recovery`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlops_tasks.deploy import state
from mlops_tasks.deploy.ab_state import refuse_during_ab_test
from mlops_tasks.deploy.gates import bake, confirm_serving, gate_candidate
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import Color, DeploymentRecord, EndpointSpec, Outcome, RolloutSpec, other
from mlops_tasks.deploy.reconcile import reconcile
from mlops_tasks.deploy.recovery import abort_rollout, retire_after_wait
from mlops_tasks.deploy.registry_access import MlflowRegistryAccess, RegistryAccess
from mlops_tasks.deploy.run import Listener, RolloutRun, as_rollout_error
from mlops_tasks.deploy.smoke import smoke_test, split_doc
from mlops_tasks.errors import (
    ConfigurationError,
    EndpointDeployError,
    MLOpsError,
    RolloutError,
    SlotStartError,
)
from mlops_tasks.settings import MlflowConfig

__all__ = ["Listener", "deploy_blue_green", "resolve_target", "smoke_test"]


def resolve_target(target: str | DeployTarget, endpoint: EndpointSpec) -> DeployTarget:
    """The deploy target: ``target`` itself, or the one registered under that name.

    Example:
        ```python
        tgt = resolve_target("local", EndpointSpec(name="churn"))
        ```
    """
    if isinstance(target, str):
        from mlops_tasks.deploy.targets import get_target

        found: DeployTarget = get_target(target, endpoint)
        return found
    return target


def deploy_blue_green(
    model_name: str,
    version: int,
    *,
    endpoint: EndpointSpec | None = None,
    rollout: RolloutSpec | None = None,
    target: str | DeployTarget = "local",
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    force: bool = False,
    lock_timeout_s: float = 0.0,
    listener: Listener | None = None,
    registry: RegistryAccess | None = None,
    _kind: str = "deploy",
) -> DeploymentRecord:
    """Deploy ``version`` of ``model_name`` blue-green behind the endpoint's router.

    Args:
        model_name: Registered model name.
        version: Version to deploy (its quality gate must have passed unless ``force``).
        endpoint: Name and ports of the endpoint (default: ``default`` on port 8000).
            Ignored when ``target`` is a target object (its own endpoint is used).
        rollout: Strategy, bake periods, guard limits and waits.
        target: A target name from entry point group ``mlops_tasks.deploy_targets``
            (``local``: processes on loopback + an HAProxy process; ``docker``: model-image
            containers + an HAProxy container; ``memory``: in-memory, for tests), or a
            target object (:class:`~mlops_tasks.deploy.interfaces.DeployTarget`).
        smoke_rows: Real rows (features only) for the smoke test; default: the model's
            input example.
        mlflow_config: Where MLflow lives.
        force: Deploy a version whose gate did not pass.
        lock_timeout_s: How long to wait for another deployment of the endpoint.
        listener: Called with the record after every timeline step.
        registry: The registry calls (default: MLflow through ``mlflow_config``).

    Returns:
        The deployment record (outcome ``succeeded`` or ``noop``).

    Raises:
        EndpointBusyError: Another deployment of this endpoint runs.
        EndpointPortError: A port the endpoint needs is taken.
        RouterConfigError: The router rejected its configuration.
        SlotStartError: The candidate crashed on start or never became healthy.
        SmokeTestError: The candidate's predictions differ from the registered model's.
        GuardBreachError: The bake guard fired, or saw too little to judge; all traffic
            went back to the live slot.
        AbTestRunningError: An A/B test runs on the endpoint; wait for its verdict or end it.
        CandidateUnhealthyError: The candidate stopped answering, was marked DOWN, restarted,
            or was not found serving the live port (before a shift, during a bake, before
            the alias moved or before the old slot was retired); all traffic went back to
            the old slot and the champion alias stayed (or went back) where it was.
        RolloutError: Shadow comparison failed.

    Example:
        ```python
        from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
        record = deploy_blue_green(
            "churn-classifier", 4, endpoint=EndpointSpec(name="churn", port=8000),
            rollout=RolloutSpec(strategy="canary", canary_percent=10, bake_seconds=120),
            smoke_rows=holdout.drop(columns=["churned"]).head(50),
        )
        print(record.outcome, record.switch_ms)
        ```
    """
    rollout = rollout or RolloutSpec()
    if version < 1:
        raise ConfigurationError(f"Model versions start at 1, got {version}.")
    registry = registry or MlflowRegistryAccess(mlflow_config)
    registry.check_deployable(model_name, version, force)
    tgt = resolve_target(target, endpoint or EndpointSpec())
    refuse_during_ab_test(tgt.endpoint.name, f"deploying {model_name} version {version}")
    tgt.force = force
    lock = state.EndpointLock(tgt.endpoint.name)
    lock.acquire(lock_timeout_s)
    try:
        rollout_run = _Rollout(tgt, lock, registry, mlflow_config, rollout)
        return rollout_run.deploy(model_name, version, smoke_rows, listener, _kind)
    finally:
        lock.release()


class _Rollout:
    """One locked rollout of an endpoint: live slot, candidate slot, and the steps between."""

    def __init__(
        self,
        target: DeployTarget,
        lock: state.EndpointLock,
        registry: RegistryAccess,
        mlflow_config: MlflowConfig | None,
        spec: RolloutSpec,
    ) -> None:
        self.target, self.lock, self.registry = target, lock, registry
        self.mlflow_config, self.spec = mlflow_config, spec
        self.runner, self.traffic = target.runner, target.traffic

    def deploy(
        self,
        model_name: str,
        version: int,
        smoke_rows: pd.DataFrame | None,
        listener: Listener | None,
        kind: str,
    ) -> DeploymentRecord:
        """Reconcile, then roll ``version`` out; the record."""
        tgt, spec = self.target, self.spec
        record = DeploymentRecord(
            id=uuid.uuid4().hex[:12],
            endpoint=tgt.endpoint.name,
            target=tgt.kind,
            model_name=model_name,
            version=version,
            strategy=spec.strategy,
            kind=kind,
        )
        run = self.run = RolloutRun(record, listener)
        run.event("started", f"{model_name} version {version}, {spec.strategy}, target {tgt.kind}")
        try:
            live, slots = reconcile(tgt, model_name, self.registry, self.mlflow_config, run)
        except MLOpsError as exc:
            run.finish("failed", str(exc))
            if isinstance(exc, EndpointDeployError):
                exc.record = record
            raise
        state.save_endpoint(tgt.endpoint, tgt.kind, model_name)
        live_version = slots[live].version if live else None
        record.previous_version = live_version
        record.live_color = live
        if live is not None and live_version == version:
            if self.registry.champion(model_name) != version:
                self.registry.promote(model_name, version)
                run.event("champion-reconciled", f"alias champion -> version {version} (what serves)")
            return run.finish("noop", None)
        candidate: Color = other(live) if live else "blue"
        return self.roll_out(live, candidate, smoke_rows)

    def roll_out(
        self, live: Color | None, candidate: Color, smoke_rows: pd.DataFrame | None
    ) -> DeploymentRecord:
        """Start, smoke-test, shift, confirm, promote and retire; abort on any failure."""
        run, record, tgt = self.run, self.run.record, self.target
        outcome: Outcome = "rolled_back" if live else "failed"
        try:
            addresses, probe_doc = self.start_candidate(candidate, smoke_rows)
        except Exception as exc:
            abort_rollout(tgt, live, candidate, run, exc, outcome)
            raise as_rollout_error(exc, record) from exc
        try:
            if not self.shift_traffic(live, candidate, addresses, probe_doc):
                return record  # shadow without promotion: the candidate was compared and stopped
            gate_candidate(tgt, candidate, addresses, "the confirmation through the live port")
            checked = confirm_serving(tgt, candidate, record.version)
            run.event(
                "confirmed",
                f"{checked} requests through the live port answered by slot "
                f"{candidate} (version {record.version})",
            )
            self.traffic.set_preview(live)
            record.live_color = candidate
            previous = self.registry.promote(record.model_name, record.version)
        except Exception as exc:
            record.live_color = live
            abort_rollout(tgt, live, candidate, run, exc, outcome)
            raise as_rollout_error(exc, record) from exc
        self.runner.set_supervised(candidate, True)
        run.event("champion-moved", f"alias champion -> version {record.version} (previous {previous})")
        run.finish("succeeded", None)
        if live is not None:
            retire_after_wait(
                tgt, self.lock, run, live, self.spec.termination_wait_s, candidate, addresses, self.registry
            )
        return record

    def start_candidate(
        self, candidate: Color, smoke_rows: pd.DataFrame | None
    ) -> tuple[list[str], dict[str, Any]]:
        """Start the candidate, attach it (weight 0), smoke-test it; its addresses and a probe body."""
        run, spec, record = self.run, self.spec, self.run.record
        model_name, version = record.model_name, record.version
        run.event("green-starting", f"slot {candidate}")
        handle = self.runner.prepare(model_name, version, self.mlflow_config)
        started = self.runner.start_slot(candidate, model_name, version, handle)
        early = len(started.addresses) == self.target.endpoint.replicas
        if early:
            # Attached at once with weight 0 and health-checked by the router: should the live
            # slot die from here on, the candidate's backup twins answer instead of nobody.
            self.traffic.attach(candidate, started.addresses)
        self.runner.wait_healthy(candidate, spec.load_timeout_s, spec.health_tries, self.target.clock)
        addresses = self.runner.slot_status(candidate).addresses
        if not early or addresses != started.addresses:
            self.traffic.attach(candidate, addresses)
        run.event("green-healthy", f"slot {candidate} at {', '.join(addresses)}")
        self.traffic.set_preview(candidate)
        if not self.traffic.wait_up(candidate, max(5.0, spec.load_timeout_s), self.target.clock):
            raise SlotStartError(f"The router's health checks never saw slot {candidate} UP.")
        rows = (
            smoke_rows if smoke_rows is not None else self.registry.input_example(handle, model_name, version)
        )
        rows = rows.head(spec.smoke_rows)
        run.event("smoke-started", f"{len(rows)} rows through the preview port")
        expected = self.registry.reference_predictions(model_name, version, rows)
        n = smoke_test(self.traffic, rows, expected, spec.smoke_tolerance)
        run.event("smoke-passed", f"{n} rows through the preview port match the registered model")
        return addresses, split_doc(rows.head(1))

    def bake(
        self,
        candidate: Color,
        addresses: list[str],
        probe_doc: dict[str, Any],
        seconds: float,
        share: float | None,
        step: str,
        live: Color | None = None,
    ) -> None:
        """Bake the candidate (the record keeps the guard's last reading).

        ``live`` is the slot that gets the same traffic (split or mirrored); the guard
        compares the candidate's 4xx share with its.
        """

        def keep(verdict: Any) -> None:
            self.run.record.guard = verdict.as_dict()

        bake(
            self.target,
            candidate,
            addresses,
            self.spec.guard,
            seconds,
            share=share,
            step=step,
            probe_doc=probe_doc,
            on_reading=keep,
            on_extend=lambda message: self.run.event("bake-extended", message),
            live_addresses=self.runner.slot_status(live).addresses if live is not None else None,
        )

    def shift_traffic(
        self, live: Color | None, candidate: Color, addresses: list[str], probe_doc: dict[str, Any]
    ) -> bool:
        """Move traffic step by step, each step gated and baked; False when shadow ends it there."""
        spec, record = self.spec, self.run.record
        started = time.perf_counter()

        def shift(percent: int, detail: str) -> None:
            gate_candidate(self.target, candidate, addresses, f"the shift to {percent} %")
            weights = {candidate: percent, other(candidate): 100 - percent}
            self.traffic.set_weights(weights)
            if percent == 100:
                record.switch_ms = (time.perf_counter() - started) * 1000
            self.run.event("shift", detail)

        if live is None:
            shift(100, f"{candidate} 100 % (first deployment)")
            self.bake(candidate, addresses, probe_doc, spec.bake_seconds, 1.0, "the first deployment's bake")
            return True
        if spec.strategy == "shadow":
            if not self.shadow(
                live,
                candidate,
                lambda: self.bake(
                    candidate, addresses, probe_doc, spec.bake_seconds, None, "the shadow comparison", live
                ),
            ):
                return False
            shift(100, f"{candidate} 100 % after shadow")
            return True
        for percent in spec.steps():
            shift(percent, f"{candidate} {percent} %, {live} {100 - percent} %")
            self.bake(
                candidate,
                addresses,
                probe_doc,
                spec.bake_seconds,
                percent / 100,
                f"the {percent} % step",
                live if percent < 100 else None,
            )
        return True

    def shadow(self, live: Color, candidate: Color, watch: Callable[[], None]) -> bool:
        """Mirror live traffic to the candidate, compare; False when it is stopped after it."""
        run, spec, record = self.run, self.spec, self.run.record
        since = pd.Timestamp.now(tz="UTC")
        self.traffic.set_mirror(candidate)
        run.event("shadow-on", f"live requests mirrored to {candidate}; clients see {live} only")
        watch()
        self.traffic.set_mirror(None)
        self.target.clock.sleep(1.5)  # prediction logs flush every 0.5 s
        figures = self.runner.shadow_agreement(since, candidate)
        figures.update(record.guard)
        record.shadow = figures
        run.event("shadow-off", json.dumps(figures))
        if figures["compared"] < 1 or figures["agreement"] < spec.shadow_min_agreement:
            raise RolloutError(
                f"Shadow comparison failed: slot {candidate} agreed with {live} on "
                f"{figures['agreement']:.1%} of {int(figures['compared'])} live rows "
                f"(need {spec.shadow_min_agreement:.0%})."
            )
        if spec.promote_after_shadow:
            return True
        self.traffic.detach(candidate)
        self.runner.stop_slot(candidate)
        record.live_color = live
        run.finish("succeeded", None)
        return False
