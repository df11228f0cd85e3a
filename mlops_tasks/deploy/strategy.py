"""The blue-green rollout, written once against the target interface.

The interface is :class:`~mlops_tasks.deploy.targets.base.Target`.

Steps of :func:`deploy_blue_green` (SageMaker's deployment guardrails are the model):

1. **Reconcile**: read what runs from the target and the router (the state file is only
   a cache), bring back a crashed router or live slot, and if a previous run was killed
   mid-rollout send all traffic to the slot that serves the champion.
2. **Start the candidate** (the idle slot) with the new version and wait for ``/health``.
3. **Smoke test** through the preview port with real rows, compared with the registered
   model's in-process predictions.
4. **Shift traffic** (``all_at_once``, ``canary``, ``linear``) through the router's
   runtime API, or mirror it (``shadow``). Before every shift the candidate must be UP in
   the router and answer ``/health`` and ``/metrics`` (:mod:`mlops_tasks.deploy.gates`).
5. **Bake guard** after each step: the candidate's 5xx share and p95 latency, and missing
   evidence counted as a breach (no answer, DOWN, restarted, fewer requests than its
   share); a breach sends all traffic back to the old slot at once and raises
   :class:`~mlops_tasks.errors.GuardBreachError` (``CandidateUnhealthyError`` when the
   candidate itself failed).
6. **Confirm**: real requests through the live port must be answered by the candidate.
   Only then does alias ``champion`` move; the old slot stays running until this point
   whatever the termination wait says, then stays warm for the termination wait and is
   stopped once the candidate has passed one more check.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.deploy import state as _state
from mlops_tasks.deploy.gates import bake, confirm_serving, gate_candidate
from mlops_tasks.deploy.models import (
    COLORS,
    Color,
    DeploymentRecord,
    EndpointDescription,
    EndpointSpec,
    RolloutSpec,
    SlotStatus,
    now_iso,
    other,
)
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.deploy.targets.base import Target, http_get, http_post_json
from mlops_tasks.errors import (
    CandidateUnhealthyError,
    ConfigurationError,
    DeploymentError,
    MLOpsError,
    PromotionRefusedError,
    RollbackError,
    RolloutError,
    RouterError,
    SlotStartError,
    SmokeTestError,
)
from mlops_tasks.settings import MlflowConfig

logger = logging.getLogger(__name__)

#: Called with the record after every timeline event (tests and the Prefect task hook in here).
Listener = Callable[[DeploymentRecord], None]


# -- registry access ------------------------------------------------------------------------


def _champion_version(model_name: str, mlflow_config: MlflowConfig | None) -> int | None:
    from mlops_tasks.registry import get_alias_version
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    with mlflow_session(resolve_and_check(mlflow_config)) as client:
        mv = get_alias_version(client, model_name, "champion")
        return int(mv.version) if mv is not None else None


def _check_version(model_name: str, version: int, force: bool, mlflow_config: MlflowConfig | None) -> None:
    from mlops_tasks.registry import TAG_GATE_PASSED, check_model_name, get_model_version
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    check_model_name(model_name)
    with mlflow_session(resolve_and_check(mlflow_config)) as client:
        mv = get_model_version(client, model_name, version)
        if mv.tags.get(TAG_GATE_PASSED) != "true" and not force:
            raise PromotionRefusedError(
                f"{model_name!r} version {version} has not passed its quality gate, so it is not "
                "deployed; pass force=True to deploy it anyway."
            )


def _promote(model_name: str, version: int, mlflow_config: MlflowConfig | None) -> int | None:
    from mlops_tasks.registry import promote_model

    result = promote_model(model_name, version, force=True, mlflow_config=mlflow_config)
    return result.previous_version


def _reference_predictions(
    model_name: str, version: int, rows: pd.DataFrame, mlflow_config: MlflowConfig | None
) -> np.ndarray:
    import mlflow.pyfunc

    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    with mlflow_session(resolve_and_check(mlflow_config)):
        model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    return np.asarray(model.predict(rows))


# -- helpers ----------------------------------------------------------------------------------


class _Run:
    """One deployment attempt: the record, its persistence and listeners."""

    def __init__(self, record: DeploymentRecord, listener: Listener | None) -> None:
        self.record = record
        self.listener = listener

    def event(self, step: str, detail: str = "") -> None:
        self.record.event(step, detail)
        logger.info("[%s] %s %s", self.record.endpoint, step, detail)
        _state.append_record(self.record)
        if self.listener is not None:
            self.listener(self.record)

    def finish(self, outcome: str, error: str | None = None) -> DeploymentRecord:
        self.record.outcome = outcome  # type: ignore[assignment]
        self.record.error = error
        self.record.finished_at = now_iso()
        self.event(outcome, error or "")
        return self.record


def _split_doc(rows: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(rows.to_json(orient="split", index=False, date_format="iso"))}


def _same(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        return np.zeros(max(len(a), len(b)), dtype=bool)
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        return np.isclose(a.astype(float), b.astype(float), atol=tol, rtol=0, equal_nan=True)
    return a.astype(str) == b.astype(str)


def smoke_test(
    preview_address: str, rows: pd.DataFrame, expected: np.ndarray, tolerance: float = 1e-6
) -> int:
    """Send ``rows`` through the preview port and compare with ``expected``.

    Returns:
        Number of rows compared.

    Raises:
        SmokeTestError: An error answer, or predictions that differ.

    Example:
        ```python
        smoke_test("127.0.0.1:8001", holdout.head(50), model.predict(holdout.head(50)))
        ```
    """
    status, doc = http_post_json(preview_address, "/invocations", _split_doc(rows))
    if status != 200 or not isinstance(doc, dict) or "predictions" not in doc:
        raise SmokeTestError(f"Green answered the smoke test with HTTP {status}: {str(doc)[:300]}")
    got = np.asarray(doc["predictions"])
    same = _same(got, expected, tolerance)
    if not same.all():
        bad = int((~same).sum())
        first = int(np.argmin(same))
        raise SmokeTestError(
            f"Green's predictions differ from the registered model's on {bad} of {len(same)} "
            f"smoke rows (first: row {first}, served {got.ravel()[first] if len(got) else None!r}, "
            f"expected {np.asarray(expected).ravel()[first]!r}); it is not serving what was registered."
        )
    return len(same)


def _wait(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


# -- reconcile --------------------------------------------------------------------------------


def _reconcile(
    target: Target, model_name: str, mlflow_config: MlflowConfig | None, run: _Run
) -> tuple[Color | None, dict[Color, SlotStatus]]:
    """Find what is live from the target itself and repair what a crash or kill left."""
    replicas = target.endpoint.replicas
    slots = {c: target.slot_status(c) for c in COLORS}
    healthy = [c for c in COLORS if slots[c].healthy and slots[c].version is not None]
    champion = _champion_version(model_name, mlflow_config)
    last_ok = _state.last_record(target.endpoint.name, "succeeded")

    running = target.router_running()
    weights = target.router.slot_weights(replicas) if running else None
    live = _pick_live(healthy, slots, champion, last_ok, weights)
    # Starts the router when it does not run; when it runs with other ports or replica
    # count, the new file is checked (haproxy -c) and applied by a seamless reload.
    target.ensure_router(slots, live)
    if not running:
        run.event("router-started", f"live slot {live or 'none'}")
        if live is not None:
            target.router.wait_up(live, replicas, 10)
    router = target.router
    weights = router.slot_weights(replicas)

    # Router and slots disagree about addresses (a slot restarted, or a router restart
    # lost them): point the router at what really runs.
    for color in healthy:
        known = {s.name: s.address for s in router.servers("live")}
        want = slots[color].addresses
        have = [known.get(f"{color}_{i}") for i in range(1, replicas + 1)]
        if have != want:
            pairs = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in want]
            router.attach_slot(color, pairs, replicas)
            run.event("router-reattached", f"slot {color} -> {', '.join(want)}")
            router.wait_up(color, replicas, 10)

    if live is not None:
        target_weights = {live: 100, other(live): 0}
        if weights != target_weights:
            router.set_slot_weights(target_weights, replicas)
            run.event("reconciled", f"all traffic to {live} (version {slots[live].version}); "
                                    f"weights were {weights}")
        router.set_shadow(None, replicas)
    # A slot that is not live and not healthy is a leftover: stop it.
    for color in COLORS:
        if color != live and slots[color].running and not slots[color].healthy:
            target.stop_slot(color, grace_s=2)
            router.detach_slot(color, replicas)
            run.event("leftover-stopped", f"slot {color} was not healthy")
    deployed = _state.load_endpoint(target.endpoint.name) is not None
    wanted = champion if champion is not None else (last_ok.version if last_ok else None)
    if live is None and deployed and last_ok is not None and wanted is not None:
        # What should be live crashed: bring the champion (= what served) back first.
        color: Color = last_ok.live_color or "blue"
        run.event("restart-live", f"no slot serves; restarting version {wanted} in slot {color}")
        handle = target.prepare(model_name, wanted, mlflow_config)
        target.start_slot(color, model_name, wanted, handle)
        target.wait_healthy(color, 120, 2)
        router.attach_slot(color, _addr_pairs(target.slot_status(color)), replicas)
        router.wait_up(color, replicas, 10)
        router.set_slot_weights({color: 100, other(color): 0}, replicas)
        live = color
    if live is not None:
        target.set_supervised(live, True)
    slots = {c: target.slot_status(c) for c in COLORS}
    return live, slots


def _pick_live(
    healthy: list[Color], slots: dict[Color, SlotStatus], champion: int | None,
    last_ok: DeploymentRecord | None, weights: dict[Color, int] | None,
) -> Color | None:
    if not healthy:
        return None
    if weights is not None:
        weighted = [c for c in healthy if weights.get(c, 0) > 0]
        if len(weighted) == 1:
            return weighted[0]
        if not weighted:
            weighted = healthy
    else:
        weighted = healthy
    # Both serve (a run was killed mid-rollout) or the router was restarted: the champion
    # wins, then the last successful deployment, then the heavier slot.
    for color in weighted:
        if champion is not None and slots[color].version == champion:
            return color
    for color in weighted:
        if last_ok is not None and slots[color].version == last_ok.version:
            return color
    if weights is not None:
        return max(weighted, key=lambda c: weights.get(c, 0))
    return weighted[0]


# -- bake and shadow ---------------------------------------------------------------------------


def _shadow_agreement(target: Target, since: pd.Timestamp, green: Color) -> dict[str, float]:
    """Join both slots' prediction-log rows by request id and compare predictions."""
    from mlops_tasks.serving import read_prediction_log

    sink = target.folder / "prediction-log"
    if not sink.exists():
        return {"compared": 0.0, "agreement": 0.0}
    frame = read_prediction_log(str(sink), start=since)
    if frame.empty:
        return {"compared": 0.0, "agreement": 0.0}
    frame = frame.assign(_n=frame.groupby(["served_by", "request_id"]).cumcount())
    prefix = f"{target.endpoint.name}-{green}-"
    is_green = frame["served_by"].astype(str).str.startswith(prefix)
    merged = frame[~is_green].merge(frame[is_green], on=["request_id", "_n"], suffixes=("_b", "_g"))
    if merged.empty:
        return {"compared": 0.0, "agreement": 0.0}
    same = _same(merged["prediction_b"].to_numpy(), merged["prediction_g"].to_numpy(), 1e-6)
    return {"compared": float(len(merged)), "agreement": float(same.mean())}


# -- the rollout ------------------------------------------------------------------------------


def _addr_pairs(slot: SlotStatus) -> list[tuple[str, int]]:
    return [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in slot.addresses]


def _retire_after_wait(
    target: Target, lock: _state.EndpointLock, run: _Run, old: Color, wait_s: float,
    candidate: Color, addresses: list[str], mlflow_config: MlflowConfig | None,
) -> None:
    """Keep ``old`` warm for ``wait_s`` (lock released, so a rollback can use it), then stop it.

    The candidate must still be fit to serve when the old slot is about to go; if it is
    not, all traffic goes back to ``old`` (still running), the alias moves back and the
    record ends ``rolled_back``.
    """
    replicas = target.endpoint.replicas
    run.event("retire-started", f"slot {old} kept warm {wait_s:g} s, then stopped")
    if wait_s > 0:
        lock.release()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if target.router.slot_weights(replicas).get(old, 0) > 0:
                    break  # rolled back to it: nothing to retire
            except MLOpsError:
                pass
            _wait(min(0.5, max(0.0, deadline - time.monotonic())))
        try:
            lock.acquire(timeout_s=60.0)
        except DeploymentError:
            run.event("retire-skipped", f"another run holds the endpoint; slot {old} left to it")
            return
    if _router_call(target, run, lambda: target.router.slot_weights(replicas)).get(old, 0) > 0:
        run.event("retire-skipped", f"slot {old} serves again (rolled back); kept")
        return
    try:
        gate_candidate(target, candidate, addresses, f"retiring slot {old}")
    except CandidateUnhealthyError as exc:
        _undo_promotion(target, run, old, candidate, exc, mlflow_config)
        raise _typed(exc, run.record) from exc
    target.set_supervised(old, False)
    target.router.detach_slot(old, replicas)
    target.router.wait_idle(old, replicas, 10)
    target.stop_slot(old)
    run.event("blue-stopped", f"slot {old} stopped after {wait_s:g} s warm")


def _undo_promotion(
    target: Target, run: _Run, old: Color, candidate: Color, exc: BaseException,
    mlflow_config: MlflowConfig | None,
) -> None:
    """The promoted candidate failed before the old slot was retired: put the old one back."""
    record = run.record
    target.set_supervised(candidate, False)
    _abort(target, old, candidate, run, exc, "rolled_back", finish=False)
    if record.previous_version is not None:
        _promote(record.model_name, record.previous_version, mlflow_config)
        run.event("champion-moved", f"alias champion -> version {record.previous_version} (back)")
    target.set_supervised(old, True)
    run.finish("rolled_back", f"{type(exc).__name__}: {exc}")


def deploy_blue_green(
    model_name: str,
    version: int,
    *,
    endpoint: EndpointSpec | None = None,
    rollout: RolloutSpec | None = None,
    target: str = "local",
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    force: bool = False,
    lock_timeout_s: float = 0.0,
    listener: Listener | None = None,
    _kind: str = "deploy",
) -> DeploymentRecord:
    """Deploy ``version`` of ``model_name`` blue-green behind the endpoint's router.

    Args:
        model_name: Registered model name.
        version: Version to deploy (its quality gate must have passed unless ``force``).
        endpoint: Name and ports of the endpoint (default: ``default`` on port 8000).
        rollout: Strategy, bake periods, guard limits and waits.
        target: ``local`` (processes on loopback + an HAProxy process) or ``docker``
            (model-image containers + an HAProxy container, see
            :mod:`mlops_tasks.deploy.targets.docker`).
        smoke_rows: Real rows (features only) for the smoke test; default: the model's
            input example.
        mlflow_config: Where MLflow lives.
        force: Deploy a version whose gate did not pass.
        lock_timeout_s: How long to wait for another deployment of the endpoint.
        listener: Called with the record after every timeline step.

    Returns:
        The deployment record (outcome ``succeeded`` or ``noop``).

    Raises:
        EndpointBusyError: Another deployment of this endpoint runs.
        EndpointPortError: A port the endpoint needs is taken.
        RouterConfigError: HAProxy rejected the rendered configuration.
        SlotStartError: Green crashed on start or never became healthy.
        SmokeTestError: Green's predictions differ from the registered model's.
        GuardBreachError: The bake guard fired, or saw too little to judge; all traffic
            went back to the old slot.
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
    endpoint = endpoint or EndpointSpec()
    rollout = rollout or RolloutSpec()
    if version < 1:
        raise ConfigurationError(f"Model versions start at 1, got {version}.")
    _check_version(model_name, version, force, mlflow_config)
    tgt = get_target(target, endpoint)
    tgt.force = force
    lock = _state.EndpointLock(endpoint.name)
    lock.acquire(lock_timeout_s)
    try:
        return _deploy_locked(tgt, lock, model_name, version, rollout, smoke_rows, mlflow_config,
                              listener, _kind)
    finally:
        lock.release()


def _deploy_locked(
    tgt: Target, lock: _state.EndpointLock, model_name: str, version: int, spec: RolloutSpec,
    smoke_rows: pd.DataFrame | None, mlflow_config: MlflowConfig | None, listener: Listener | None,
    kind: str,
) -> DeploymentRecord:
    endpoint = tgt.endpoint
    record = DeploymentRecord(
        id=uuid.uuid4().hex[:12], endpoint=endpoint.name, target=tgt.kind, model_name=model_name,
        version=version, strategy=spec.strategy, kind=kind,  # type: ignore[arg-type]
    )
    run = _Run(record, listener)
    run.event("started", f"{model_name} version {version}, {spec.strategy}, target {tgt.kind}")
    try:
        live, slots = _reconcile(tgt, model_name, mlflow_config, run)
    except MLOpsError as exc:
        run.finish("failed", str(exc))
        if isinstance(exc, DeploymentError):
            exc.record = record
        raise
    _state.save_endpoint(endpoint, tgt.kind, model_name)
    live_version = slots[live].version if live else None
    record.previous_version = live_version
    record.live_color = live
    if live is not None and live_version == version:
        if _champion_version(model_name, mlflow_config) != version:
            _promote(model_name, version, mlflow_config)
            run.event("champion-reconciled", f"alias champion -> version {version} (what serves)")
        return run.finish("noop", None)

    candidate: Color = other(live) if live else "blue"
    outcome = "rolled_back" if live else "failed"
    try:
        addresses, probe_doc = _start_candidate(tgt, run, candidate, model_name, version, spec,
                                                smoke_rows, mlflow_config)
    except Exception as exc:
        _abort(tgt, live, candidate, run, exc, outcome)
        raise _typed(exc, record) from exc

    try:
        if not _shift_traffic(tgt, run, live, candidate, addresses, spec, probe_doc):
            return record  # shadow without promotion: the candidate was compared and stopped
        gate_candidate(tgt, candidate, addresses, "the confirmation through the live port")
        checked = confirm_serving(tgt, candidate, version)
        run.event("confirmed", f"{checked} requests through the live port answered by slot "
                               f"{candidate} (version {version})")
        tgt.router.set_preview(live, endpoint.replicas)
        record.live_color = candidate
        previous = _promote(model_name, version, mlflow_config)
    except Exception as exc:
        record.live_color = live
        _abort(tgt, live, candidate, run, exc, outcome)
        raise _typed(exc, record) from exc
    tgt.set_supervised(candidate, True)
    run.event("champion-moved", f"alias champion -> version {version} (previous {previous})")
    run.finish("succeeded", None)
    if live is not None:
        _retire_after_wait(tgt, lock, run, live, spec.termination_wait_s, candidate, addresses,
                           mlflow_config)
    return record


def _start_candidate(
    tgt: Target, run: _Run, candidate: Color, model_name: str, version: int, spec: RolloutSpec,
    smoke_rows: pd.DataFrame | None, mlflow_config: MlflowConfig | None,
) -> tuple[list[str], dict[str, Any]]:
    """Start the candidate, attach it (weight 0), smoke-test it; its addresses and a probe body."""
    replicas = tgt.endpoint.replicas
    run.event("green-starting", f"slot {candidate}")
    handle = tgt.prepare(model_name, version, mlflow_config)
    started = tgt.start_slot(candidate, model_name, version, handle)
    early = len(started.addresses) == replicas
    if early:
        # Attached at once with weight 0 and health-checked by the router: should the live
        # slot die from here on, the candidate's backup twins answer instead of nobody.
        tgt.router.attach_slot(candidate, _addr_pairs(started), replicas)
    tgt.wait_healthy(candidate, spec.load_timeout_s, spec.health_tries)
    status = tgt.slot_status(candidate)
    addresses = status.addresses
    if not early or addresses != started.addresses:
        tgt.router.attach_slot(candidate, _addr_pairs(status), replicas)
    run.event("green-healthy", f"slot {candidate} at {', '.join(addresses)}")
    tgt.router.set_preview(candidate, replicas)
    if not tgt.router.wait_up(candidate, replicas, max(5.0, spec.load_timeout_s)):
        raise SlotStartError(f"HAProxy's health checks never saw slot {candidate} UP.")
    rows = smoke_rows if smoke_rows is not None else _input_example(
        handle, model_name, version, mlflow_config
    )
    rows = rows.head(spec.smoke_rows)
    run.event("smoke-started", f"{len(rows)} rows through the preview port")
    expected = _reference_predictions(model_name, version, rows, mlflow_config)
    n = smoke_test(tgt.preview_address(), rows, expected, spec.smoke_tolerance)
    run.event("smoke-passed", f"{n} rows through the preview port match the registered model")
    return addresses, _split_doc(rows.head(1))


def _shift_traffic(
    tgt: Target, run: _Run, live: Color | None, candidate: Color, addresses: list[str],
    spec: RolloutSpec, probe_doc: dict[str, Any],
) -> bool:
    """Move traffic step by step, each step gated and baked; False when shadow ends it there."""
    replicas = tgt.endpoint.replicas
    record = run.record
    started = time.perf_counter()

    def baked(seconds: float, share: float | None, step: str) -> None:
        def keep(verdict: Any) -> None:
            record.guard = verdict.as_dict()

        bake(tgt, candidate, addresses, spec.guard, seconds, share=share, step=step,
             probe_doc=probe_doc, on_reading=keep,
             on_extend=lambda message: run.event("bake-extended", message))

    def shift(percent: int, detail: str) -> None:
        gate_candidate(tgt, candidate, addresses, f"the shift to {percent} %")
        tgt.router.set_slot_weights({candidate: percent, other(candidate): 100 - percent}, replicas)
        if percent == 100:
            record.switch_ms = (time.perf_counter() - started) * 1000
        run.event("shift", detail)

    if live is None:
        shift(100, f"{candidate} 100 % (first deployment)")
        baked(spec.bake_seconds, 1.0, "the first deployment's bake")
        return True
    if spec.strategy == "shadow":
        if not _shadow(tgt, run, live, candidate, spec, lambda: baked(spec.bake_seconds, None,
                                                                      "the shadow comparison")):
            return False
        shift(100, f"{candidate} 100 % after shadow")
        return True
    for percent in spec.steps():
        shift(percent, f"{candidate} {percent} %, {live} {100 - percent} %")
        baked(spec.bake_seconds, percent / 100, f"the {percent} % step")
    return True


def _shadow(
    tgt: Target, run: _Run, live: Color, candidate: Color, spec: RolloutSpec,
    watch: Callable[[], None],
) -> bool:
    """Mirror live traffic to the candidate, compare; False when it is stopped after it."""
    replicas = tgt.endpoint.replicas
    record = run.record
    since = pd.Timestamp.now(tz="UTC")
    tgt.router.set_shadow(candidate, replicas)
    run.event("shadow-on", f"live requests mirrored to {candidate}; clients see {live} only")
    watch()
    tgt.router.set_shadow(None, replicas)
    _wait(1.5)  # prediction logs flush every 0.5 s
    figures = _shadow_agreement(tgt, since, candidate)
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
    tgt.router.detach_slot(candidate, replicas)
    tgt.stop_slot(candidate)
    record.live_color = live
    run.finish("succeeded", None)
    return False


def _input_example(
    handle: str, model_name: str, version: int, mlflow_config: MlflowConfig | None
) -> pd.DataFrame:
    import tempfile
    from pathlib import Path

    from mlops_tasks.serving.model import download_model, load_model_folder
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    if not Path(handle).is_dir():  # an image (docker target): read the example from the registry
        with tempfile.TemporaryDirectory(prefix="mlops-example-") as tmp:
            with mlflow_session(resolve_and_check(mlflow_config)):
                folder = download_model(f"models:/{model_name}/{version}", tmp)
            return _input_example(str(folder), model_name, version, mlflow_config)
    model = load_model_folder(handle)
    try:
        example = model.input_example
    finally:
        model.close()
    split = example.get("dataframe_split") if isinstance(example, dict) else None
    if not split:
        raise SmokeTestError(
            "No smoke rows were given and the model has no input example; pass smoke_rows."
        )
    return pd.DataFrame(split["data"], columns=split.get("columns"))


def _router_call(target: Target, run: _Run, call: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Run a router call, waiting for a router that went away to come back (watchdog or us)."""
    began = time.monotonic()
    restarted = False
    while True:
        try:
            return call()
        except RouterError as exc:
            if time.monotonic() - began >= timeout_s:
                raise
            if not restarted and time.monotonic() - began > 5 and not target.router_running():
                # Nobody brought it back within 5 s: start it from what runs, live slot at 100 %.
                slots = {c: target.slot_status(c) for c in COLORS}
                live = run.record.live_color
                target.ensure_router(slots, live if live and slots[live].healthy else None)
                restarted = True
                run.event("router-started", f"the router was gone ({exc}); started again")
            _wait(0.2)


def _abort(
    tgt: Target, live: Color | None, candidate: Color, run: _Run, exc: BaseException,
    outcome: str, finish: bool = True,
) -> None:
    """All traffic back to the old slot at once, the candidate out of the router and stopped.

    When the router cannot be told (it is gone and does not come back), the candidate is
    left running: stopping it could leave a restarted router pointing at nothing. The
    next run reconciles.
    """
    replicas = tgt.endpoint.replicas
    record = run.record
    if record.failed_step is None and record.timeline:
        last = record.timeline[-1]
        record.failed_step = f"{last.step} {last.detail}".strip()[:120]
    record.live_color = live
    moved = live is None
    # A candidate that still answers finishes its requests; a dead or hung one is not waited for.
    answering = all(http_get(a, "/health", 1.0)[0] == 200 for a in tgt.slot_status(candidate).addresses)
    try:
        if live is not None:
            _router_call(tgt, run, lambda: tgt.router.set_slot_weights({live: 100, candidate: 0},
                                                                       replicas))
            moved = True
            run.event("traffic-back", f"all traffic to {live}")
        _router_call(tgt, run, lambda: tgt.router.set_shadow(None, replicas), 5)
        _router_call(tgt, run, lambda: tgt.router.detach_slot(candidate, replicas), 5)
        tgt.router.wait_idle(candidate, replicas, 5 if answering else 1)
    except MLOpsError as inner:
        run.event("abort-warning", f"router: {inner}")
    if moved:
        try:
            tgt.stop_slot(candidate, grace_s=5 if answering else 0.5)
            run.event("green-stopped", f"slot {candidate}")
        except MLOpsError as inner:  # e.g. the Docker engine went away: the next run removes it
            run.event("abort-warning", f"slot {candidate} not stopped: {inner}")
    else:
        run.event("abort-warning", f"the router could not be told; slot {candidate} left running "
                                   "for the next run to reconcile")
    if finish:
        run.finish(outcome, f"{type(exc).__name__}: {exc}")


def _typed(exc: BaseException, record: DeploymentRecord) -> MLOpsError:
    if isinstance(exc, MLOpsError):
        if isinstance(exc, DeploymentError):
            exc.record = record
        return exc
    return DeploymentError(f"Deployment of {record.model_name} version {record.version} failed: "
                           f"{type(exc).__name__}: {exc}", record=record)


# -- rollback, describe, stop -----------------------------------------------------------------


def rollback_deployment(
    endpoint_name: str = "default",
    *,
    rollout: RolloutSpec | None = None,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    lock_timeout_s: float = 0.0,
    listener: Listener | None = None,
) -> DeploymentRecord:
    """Put the previous version back at 100 % and move ``champion`` back to it.

    When the previous version's slot is still warm, only the router weights change
    (well under 2 s); otherwise the previous version is deployed again through the
    same strategy (``rollout``; default all-at-once without bake), smoke-tested with
    ``smoke_rows`` (default: the model's input example).

    Raises:
        RollbackError: Nothing is deployed, or no previous version is recorded.
        EndpointBusyError: A deployment of the endpoint runs.

    Example:
        ```python
        from mlops_tasks.deploy import rollback_deployment
        record = rollback_deployment("churn")
        print(record.version, record.outcome)
        ```
    """
    saved = _state.load_endpoint(endpoint_name)
    if saved is None:
        raise RollbackError(f"Endpoint {endpoint_name!r} has no deployment to roll back.")
    spec, kind, model_name = saved
    tgt = get_target(kind, spec)
    lock = _state.EndpointLock(endpoint_name)
    lock.acquire(lock_timeout_s)
    try:
        record = DeploymentRecord(
            id=uuid.uuid4().hex[:12], endpoint=endpoint_name, target=kind, model_name=model_name,
            version=0, strategy="all_at_once", kind="rollback",
        )
        run = _Run(record, listener)
        live, slots = _reconcile(tgt, model_name, mlflow_config, run)
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
            started = time.perf_counter()
            replicas = spec.replicas
            addrs = _addr_pairs(slots[warm])
            states = {s.name: s for s in tgt.router.servers("live")}
            if any(states.get(f"{warm}_{i}") is None or states[f"{warm}_{i}"].status.startswith("MAINT")
                   for i in range(1, replicas + 1)):
                tgt.router.attach_slot(warm, addrs, replicas)
                tgt.router.wait_up(warm, replicas, 5)
            warm_addresses = slots[warm].addresses
            try:
                gate_candidate(tgt, warm, warm_addresses, "the rollback shift")
                tgt.router.set_slot_weights({warm: 100, live: 0}, replicas)
                record.switch_ms = (time.perf_counter() - started) * 1000
                run.event("shift", f"{warm} 100 % (warm slot, version {previous})")
                confirm_serving(tgt, warm, previous)
            except MLOpsError as exc:
                tgt.router.set_slot_weights({live: 100, warm: 0}, replicas)
                run.event("traffic-back", f"all traffic to {live}")
                run.finish("failed", f"{type(exc).__name__}: {exc}")
                raise RollbackError(
                    f"Rollback of endpoint {endpoint_name!r} to version {previous} failed: {exc} "
                    f"Version {current} keeps serving.", record=record,
                ) from exc
            record.live_color = warm
            tgt.set_supervised(warm, True)
            _promote(model_name, previous, mlflow_config)
            run.event("champion-moved", f"alias champion -> version {previous}")
            run.finish("succeeded", None)
            wait = (rollout or RolloutSpec(termination_wait_s=0)).termination_wait_s
            _retire_after_wait(tgt, lock, run, live, wait, warm, warm_addresses, mlflow_config)
            return record
        run.event("redeploy", f"slot {warm} is not warm: deploying version {previous} again")
        run.finish("noop", "handed over to a redeployment of the previous version")
    finally:
        lock.release()
    return deploy_blue_green(
        model_name, previous, endpoint=spec,
        rollout=rollout or RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
        target=kind, smoke_rows=smoke_rows, mlflow_config=mlflow_config, force=True,
        lock_timeout_s=lock_timeout_s, listener=listener, _kind="rollback",
    )


def _previous_of(endpoint_name: str, version: int | None) -> int | None:
    for record in reversed(_state.read_records(endpoint_name)):
        if record.outcome == "succeeded" and record.version == version and record.previous_version:
            if record.previous_version != version:
                return record.previous_version
    return None


def describe_deployment(endpoint_name: str = "default") -> EndpointDescription:
    """What serves where right now, read back from the router and the slots.

    Raises:
        DeploymentError: The endpoint was never deployed.

    Example:
        ```python
        from mlops_tasks.deploy import describe_deployment
        info = describe_deployment("churn")
        print(info.url, info.live_version, {c: s.weight for c, s in info.slots.items()})
        ```
    """
    saved = _state.load_endpoint(endpoint_name)
    if saved is None:
        raise DeploymentError(f"Endpoint {endpoint_name!r} was never deployed (or was stopped).")
    spec, kind, model_name = saved
    tgt = get_target(kind, spec)
    slots = {c: tgt.slot_status(c) for c in COLORS}
    running = tgt.router_running()
    live = None
    if running:
        weighted = [c for c in COLORS if slots[c].weight > 0 and slots[c].healthy]
        live = max(weighted, key=lambda c: slots[c].weight) if weighted else None
    return EndpointDescription(
        endpoint=endpoint_name, target=kind, url=tgt.base_url(),
        preview_url=f"http://{tgt.preview_address()}", router_running=running, live_color=live,
        live_version=slots[live].version if live else None, model_name=model_name,
        slots=dict(slots), last_deployment=_state.last_record(endpoint_name),
    )


def stop_endpoint(endpoint_name: str = "default", *, lock_timeout_s: float = 10.0) -> bool:
    """Stop the endpoint's router and both slots and forget it is live.

    Returns:
        True when something was running.

    Example:
        ```python
        from mlops_tasks.deploy import stop_endpoint
        stop_endpoint("churn")
        ```
    """
    saved = _state.load_endpoint(endpoint_name)
    if saved is None:
        return False
    spec, kind, _ = saved
    tgt = get_target(kind, spec)
    with _state.EndpointLock(endpoint_name).hold(lock_timeout_s):
        was_running = tgt.router_running() or any(tgt.slot_status(c).running for c in COLORS)
        tgt.stop_router()
        for color in COLORS:
            tgt.stop_slot(color)
        _state.forget_endpoint(endpoint_name)
    return was_running
