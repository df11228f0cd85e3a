"""The retrain pipeline: cool-down → fresh data → training pipeline → (approval) → blue-green deploy.

Started by hand, on a schedule, or by the automation on ``mlops.drift.detected``
(which fills ``model_name`` from the event). Command line:
``python -m mlops_tasks.flows.retrain --model-name churn-classifier --dataset data/new-labelled.csv``.

How each run ends (state name, then what it means):

- **Skipped** (Completed): the model was retrained less than ``cooldown_minutes`` ago;
  the message says "cool-down" and until when. Nothing was loaded or trained.
- **Completed**: a new version passed its gate and is live (champion moved), or
  ``deploy`` is off and it was registered with alias ``challenger``.
- **Failed** with the gate reasons: the new version failed its quality gate; it is
  registered without alias and production is untouched (router and champion as
  before). With ``fail_on_gate=False`` the run ends **GateFailed** (Completed) instead.
- **Rejected** / **ApprovalTimedOut** (Completed): ``require_approval`` is on and
  the reviewer said no, or nobody answered within ``approval_timeout_s``; not deployed.
- **Failed** with a typed error: bad input (no champion, no recorded training data,
  no fresh labelled rows...), invalid data, or a deployment that rolled back.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field, model_validator

from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.data import DatasetSpec
from mlops_tasks.demo import SEGMENT, TARGET
from mlops_tasks.deploy.ab_state import refuse_during_ab_test
from mlops_tasks.deploy.models import EndpointSpec, RolloutSpec
from mlops_tasks.errors import ConfigurationError, MLOpsError
from mlops_tasks.evaluation import QualityGate
from mlops_tasks.flows.deployment import DeploymentPipelineParams, deployment_pipeline
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.flows.parameters import FormParams, require_model_name
from mlops_tasks.flows.training import (
    DEFAULT_GATE,
    TrainingPipelineParams,
    TrainingPipelineResult,
    training_pipeline,
)
from mlops_tasks.retrain import RetrainClaim, RetrainData, check_retrainable, suite_without_ranges
from mlops_tasks.settings import MlflowConfig, S3Config, state_dir
from mlops_tasks.training import TrainingSpec

__all__ = [
    "ApprovalInput",
    "Outcome",
    "RetrainParams",
    "RetrainResult",
    "main",
    "retrain_pipeline",
]

Outcome = Literal[
    "deployed", "trained", "skipped", "gate_failed", "rejected", "approval_timed_out", "deploy_failed"
]


class ApprovalInput(RunInput):
    """The reviewer's answer when a retrain waits for approval (a form in the Prefect UI)."""

    approve: bool = Field(False, description="Deploy the new version blue-green now.")
    reason: str = Field("", description="Why (kept in the run's result and artifact).")


class RetrainParams(FormParams):
    """Parameters of :func:`retrain_pipeline` (one form in the Prefect UI).

    Fresh data is the live version's training split (``include_reference``) plus the
    labelled rows of ``dataset`` and/or of the prediction log joined with ``labels``.

    Example:
        ```python
        from mlops_tasks.flows.retrain import RetrainParams
        params = RetrainParams(model_name="churn-classifier",
                               dataset=DatasetSpec(uri="data/labelled-last-week.csv"),
                               cooldown_minutes=60)
        ```
    """

    model_name: str | None = Field(
        None,
        title="Model name",
        description="Registered model to retrain (required; the drift automation fills it from the event).",
    )
    dataset: DatasetSpec | None = Field(
        None,
        title="Fresh labelled dataset",
        description="Fresh rows with features and the target column (CSV/Parquet, local or s3://).",
    )
    prediction_log: str | None = Field(
        None,
        title="Prediction log",
        description="Prediction log (folder or s3://prefix) whose window is joined with `labels`. Empty "
        "with labels given: the endpoint's log, {state dir}/endpoints/{endpoint}/prediction-log.",
    )
    labels: DatasetSpec | None = Field(
        None,
        title="Labels for the prediction log",
        description="Ground truth: request_id (+ optional row) and the label column.",
    )
    label_column: str = Field("label", title="Label column", description="Label column of `labels`.")
    start: datetime | None = Field(None, title="Window start", description="Log window start (UTC).")
    end: datetime | None = Field(None, title="Window end", description="Log window end (UTC); default now.")
    last_hours: float | None = Field(
        None, gt=0, title="Last hours", description="Window of the last N hours (default 24 when no start)."
    )
    include_reference: bool = Field(
        True,
        title="Include the live version's training data",
        description="Prepend the training split recorded with the live (reference_alias) version.",
    )
    reference_alias: str = Field("champion", title="Live alias", description="Alias of the live version.")
    min_fresh_rows: int = Field(
        50, ge=1, title="Minimum fresh rows", description="Fewest fresh labelled rows worth a retrain."
    )
    data_location: str | None = Field(
        None,
        title="Where to write the training data",
        description="Parquet file for the combined data. Empty: {state dir}/retrain/{model}/{time}.parquet.",
    )
    training: TrainingSpec | None = Field(
        None,
        title="Training spec",
        description="Estimator and params. Empty: logistic regression on the live version's target.",
    )
    segment_column: str | None = Field(SEGMENT, title="Segment column", description="Evaluation slices.")
    expectation_suite: str | None = Field(
        None,
        title="Expectation suite",
        description="Great Expectations suite JSON. Empty: {state dir}/expectations/{model_name}.json.",
    )
    check_value_ranges: bool = Field(
        False,
        title="Check numeric value ranges",
        description="Keep the suite's range expectations. Off: drifted data may leave the ranges learnt "
        "from the old data; columns, types, nulls and category sets are still checked.",
    )
    holdout_fraction: float = Field(0.2, gt=0, lt=1, title="Holdout fraction")
    gate: QualityGate = Field(
        default_factory=lambda: DEFAULT_GATE,
        title="Quality gate",
        description="Thresholds the new version must meet (also against the champion).",
    )
    fail_on_gate: bool = Field(
        True,
        title="Fail the run when the gate fails",
        description="Off: a failed gate ends the run Completed with state name GateFailed.",
    )
    deploy: bool = Field(True, title="Deploy", description="Deploy blue-green when the gate passes.")
    require_approval: bool = Field(
        False, title="Require approval", description="Pause for a reviewer's approve/reject before deploying."
    )
    approval_timeout_s: int = Field(
        3600, ge=1, title="Approval timeout (s)", description="No answer by then: not deployed."
    )
    endpoint: EndpointSpec = Field(
        default_factory=lambda: EndpointSpec(name="churn", port=8000),
        title="Endpoint",
        description="Endpoint to deploy to (name keys ports, state and lock).",
    )
    rollout: RolloutSpec = Field(
        default_factory=lambda: RolloutSpec(strategy="canary", bake_seconds=10, termination_wait_s=10),
        title="Rollout",
        description="Blue-green strategy, bake periods, guard.",
    )
    target: str = Field("local", title="Deploy target", description="Where slots and router run.")
    cooldown_minutes: float = Field(
        24 * 60,
        ge=0,
        title="Cool-down (minutes)",
        description="A model is retrained at most once per this period, however many runs start (0 = off).",
    )
    s3: S3Config | None = Field(None, title="S3", description="S3 endpoint for an s3:// prediction log.")
    mlflow: MlflowConfig | None = Field(
        None, title="MLflow", description="MLflow server; empty: environment or local store."
    )

    @model_validator(mode="after")
    def _sources(self) -> RetrainParams:
        if self.start is not None and self.last_hours is not None:
            raise ValueError("give either start or last_hours, not both")
        if self.prediction_log is not None and self.labels is None:
            raise ValueError("a prediction_log needs labels (request_id + label) to become training rows")
        return self


class RetrainResult(BaseModel):
    """What a retrain did and why."""

    model_name: str
    outcome: Outcome
    reason: str
    version: int | None = Field(None, description="The version trained (None when skipped).")
    created: bool | None = Field(
        None, description="False when the same data and spec were registered before."
    )
    gate_passed: bool | None = None
    gate_reasons: list[str] = Field(default_factory=list)
    deployed: bool = False
    previous_champion: int | None = None
    champion_version: int | None = None
    data: RetrainData | None = None
    approval: dict[str, object] | None = Field(None, description="approve and reason, when asked.")
    cooldown_until: datetime | None = None
    deployment_id: str | None = None


def _location(params: RetrainParams, run_id: str) -> str:
    if params.data_location:
        return params.data_location
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return str(state_dir() / "retrain" / params.model_name / f"{stamp}-{run_id[:8]}.parquet")


def _fresh_parts(params: RetrainParams, target: str) -> list[tuple[str, object]]:
    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.monitoring import resolve_window
    from mlops_tasks.retrain import label_prediction_log

    parts: list[tuple[str, object]] = []
    if params.dataset is not None:
        parts.append((params.dataset.uri, tasks.load_dataset(params.dataset).frame))
    if params.labels is not None:
        sink = params.prediction_log or str(endpoint_dir(params.endpoint.name) / "prediction-log")
        hours = params.last_hours if params.last_hours is not None or params.start else 24.0
        window = resolve_window(params.start, params.end, hours)
        endpoint_url = (params.s3 or S3Config()).client_kwargs().get("endpoint_url")
        log = tasks.load_prediction_window(
            sink, window, model_name=params.model_name, s3_endpoint_url=endpoint_url
        )
        labels = tasks.load_dataset(params.labels).frame
        rows = label_prediction_log(log, labels, label_column=params.label_column, target=target)
        parts.append((f"{sink} {window.describe()} + {params.labels.uri}", rows))
    return parts


def _markdown(result: RetrainResult) -> str:
    lines = [
        f"# Retrain of {result.model_name}: {result.outcome}",
        "",
        result.reason,
        "",
        "| | |",
        "|---|---|",
    ]
    rows = {
        "version trained": result.version,
        "gate": {True: "passed", False: "failed"}.get(result.gate_passed),
        "deployed": "yes" if result.deployed else "no",
        "champion before": result.previous_champion,
        "champion now": result.champion_version,
        "cool-down until": result.cooldown_until,
    }
    if result.data is not None:
        rows["training rows"] = (
            f"{result.data.rows} ({result.data.reference_rows} reference, {result.data.fresh_rows} fresh)"
        )
        rows["training data"] = f"`{result.data.uri}`"
    if result.approval is not None:
        rows["approval"] = f"{result.approval.get('approve')}: {result.approval.get('reason') or ''}"
    lines += [f"| {k} | {'-' if v is None else v} |" for k, v in rows.items()]
    if result.gate_reasons:
        lines += ["", "Gate reasons:", *[f"- {r}" for r in result.gate_reasons]]
    return "\n".join(lines)


def _publish(result: RetrainResult) -> None:
    key = "".join(c if c.isalnum() else "-" for c in f"retrain-{result.model_name}".lower())[:100]
    create_markdown_artifact(
        markdown=_markdown(result),
        key=key.strip("-"),
        description=f"Retrain of {result.model_name}: {result.outcome}",
    )


def _resume_after_timeout() -> None:
    """A pause that timed out makes the server refuse any state but Failed; put the run back to
    Running (forced) so it can end with a state that says why it did not deploy."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message="approval timed out"), force=True)


def _ask_approval(params: RetrainParams, version: int, summary: str) -> tuple[str | None, dict]:
    """Pause for the reviewer; returns (outcome if not approved, the answer)."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    logger = get_run_logger()
    description = (
        f"Deploy **{params.model_name} version {version}** to endpoint `{params.endpoint.name}`?\n\n{summary}"
    )
    logger.info(
        "Waiting up to %ss for approval to deploy %s version %s",
        params.approval_timeout_s,
        params.model_name,
        version,
    )
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=description, approve=False),
            timeout=params.approval_timeout_s,
            poll_interval=max(1, min(10, params.approval_timeout_s // 30)),
        )
    except FlowPauseTimeout:
        _resume_after_timeout()
        return "approval_timed_out", {
            "approve": False,
            "reason": f"no answer within {params.approval_timeout_s}s",
        }
    decision = {"approve": bool(answer.approve), "reason": answer.reason}
    return (None if answer.approve else "rejected"), decision


@flow(name="retrain-pipeline", log_prints=False)
@typed_failure_message
def retrain_pipeline(
    params: RetrainParams = RetrainParams(),  # noqa: B008 (frozen defaults)
) -> RetrainResult:
    """Retrain a model on fresh data and deploy it blue-green when it passes its gate.

    Enforces the cool-down first (state **Skipped** inside it), then assembles
    the data, runs :func:`~mlops_tasks.flows.training.training_pipeline` as a subflow and, when
    its gate passes (and a reviewer approves, if asked), runs
    :func:`~mlops_tasks.flows.deployment.deployment_pipeline`, which moves ``champion``.

    Args:
        params: Model, fresh data, training and gate, approval, endpoint and cool-down.

    Returns:
        The :class:`RetrainResult`; the run's state name and message say the outcome.

    Raises:
        ConfigurationError: No fresh data source given, or a bad parameter.
        ModelNotFoundError: The model or its live (champion) version does not exist.
        ReferenceDataNotFoundError: The live version recorded no training data.
        DataError: Too few fresh labelled rows (e.g. labels join to nothing).
        DataValidationError: The fresh data failed the model's expectation suite.
        EndpointDeployError: The deployment failed; the previous version serves.
        AbTestRunningError: An A/B test runs on the endpoint; nothing was trained.

    Example:
        ```python
        from mlops_tasks.flows.retrain import RetrainParams, retrain_pipeline
        from mlops_tasks.data import DatasetSpec
        state = retrain_pipeline(RetrainParams(model_name="churn-classifier",
                                                 dataset=DatasetSpec(uri="new.csv")), return_state=True)
        print(state.name, state.message)
        ```
    """
    from prefect.runtime import flow_run

    require_model_name(params.model_name, "retrain-pipeline")
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    run_id = str(flow_run.id or "local")
    if params.dataset is None and params.labels is None:
        raise ConfigurationError(
            f"Retrain of {params.model_name!r} has no fresh data: give labels for the prediction log of "
            f"endpoint {params.endpoint.name!r} (labels=..., a dataset of request_id and "
            f"{params.label_column!r}; prediction_log=... for another log), or a labelled dataset "
            "(dataset=...). In the Prefect UI set them in the retrain deployment's parameters."
        )
    refuse_during_ab_test(params.endpoint.name, f"a retrain of {params.model_name}")
    live_version = None
    if params.include_reference:
        live_version, _ = check_retrainable(
            params.model_name, alias=params.reference_alias, mlflow_config=params.mlflow
        )

    claim: RetrainClaim = tasks.claim_retrain(
        params.model_name,
        cooldown_minutes=params.cooldown_minutes,
        claimant=run_id,
        mlflow_config=params.mlflow,
    )
    if not claim.claimed:
        result = RetrainResult(
            model_name=params.model_name,
            outcome="skipped",
            reason=claim.reason,
            previous_champion=live_version,
            champion_version=live_version,
            cooldown_until=claim.next_allowed_at,
        )
        _publish(result)
        return Completed(name="Skipped", message=claim.reason, data=result)  # type: ignore[return-value]  # a Prefect State: the run ends with its name/message, callers get .data

    data, target = _assemble_data(params, claim, run_id)
    trained = _train(params, data, target)
    common = dict(
        model_name=params.model_name,
        version=trained.version,
        created=trained.created,
        gate_passed=trained.gate_passed,
        gate_reasons=trained.gate_reasons,
        data=data,
        previous_champion=trained.champion_version,
        champion_version=trained.champion_version,
        cooldown_until=claim.next_allowed_at,
    )
    stopped = _stop_before_deploying(params, trained, common)
    if stopped is not None:
        return stopped  # type: ignore[return-value]  # a Prefect State: the run ends with its name/message, callers get .data
    approval = None
    if params.require_approval:
        refusal, approval = _approval(params, trained, data, common)
        if refusal is not None:
            return refusal  # type: ignore[return-value]  # a Prefect State: the run ends with its name/message, callers get .data
    return _deploy(params, trained, data, target, approval, common)  # type: ignore[return-value]  # a Prefect State: the run ends with its name/message, callers get .data


def _assemble_data(params: RetrainParams, claim: RetrainClaim, run_id: str) -> tuple[RetrainData, str]:
    """The training data (live version's split and fresh rows) and its target; releases the claim on error."""
    try:
        parts: list[tuple[str, object]] = []
        target = params.training.target if params.training else TARGET
        features = None
        if params.include_reference:
            reference = tasks.load_training_reference(
                params.model_name, alias=params.reference_alias, mlflow_config=params.mlflow
            )
            target = params.training.target if params.training else reference.target
            features = [*reference.features, target] if reference.features else None
            parts.append(("reference", reference.frame))
        parts += _fresh_parts(params, target)
        data = tasks.prepare_training_data(
            parts,
            target=target,
            location=_location(params, run_id),
            features=features,
            min_fresh_rows=params.min_fresh_rows,
        )
    except MLOpsError:
        tasks.release_retrain_claim(claim, run_id, mlflow_config=params.mlflow)
        raise
    return data, target


def _train(params: RetrainParams, data: RetrainData, target: str) -> TrainingPipelineResult:
    """Run the training pipeline on the assembled data (gate against the champion, no promotion)."""
    spec = params.training or TrainingSpec(target=target, params={"max_iter": 1000})
    suite = params.expectation_suite
    if not params.check_value_ranges:
        model_suite = suite or str(state_dir() / "expectations" / f"{params.model_name}.json")
        suite = suite_without_ranges(model_suite, data.uri.rsplit(".", 1)[0] + "-suite.json") or suite
    return training_pipeline(
        TrainingPipelineParams(
            model_name=params.model_name,
            dataset=DatasetSpec(uri=data.uri, name=f"{params.model_name}-retrain"),
            training=spec,
            segment_column=params.segment_column,
            expectation_suite=suite,
            holdout_fraction=params.holdout_fraction,
            gate=params.gate,
            compare_to_champion=True,
            promote_on_pass=False,
            fail_on_gate=False,
            mlflow=params.mlflow,
        )
    )


def _stop_before_deploying(
    params: RetrainParams, trained: TrainingPipelineResult, common: dict[str, Any]
) -> State | None:
    """The final state when the gate failed or deploying is off; ``None`` to go on."""
    if not trained.gate_passed:
        reason = (
            f"{params.model_name} version {trained.version} failed its quality gate; production "
            f"untouched (champion {trained.champion_version}): " + "; ".join(trained.gate_reasons)
        )
        result = RetrainResult(outcome="gate_failed", reason=reason, **common)
        _publish(result)
        get_run_logger().warning(reason)
        if params.fail_on_gate:
            return Failed(message=reason[:1000], data=result)
        return Completed(name="GateFailed", message=reason[:1000], data=result)
    if not params.deploy:
        reason = (
            f"{params.model_name} version {trained.version} passed its gate and holds alias "
            "challenger; not deployed (deploy=False)"
        )
        result = RetrainResult(outcome="trained", reason=reason, **common)
        _publish(result)
        return Completed(message=reason, data=result)
    return None


def _approval(
    params: RetrainParams, trained: TrainingPipelineResult, data: RetrainData, common: dict[str, Any]
) -> tuple[State | None, dict]:
    """Ask the reviewer; the final state when not approved (else ``None``) and the answer."""
    refused, approval = _ask_approval(
        params, trained.version, f"Gate passed; trained on {data.rows} rows ({data.fresh_rows} fresh)."
    )
    if refused is None:
        return None, approval
    why = (
        "rejected by the reviewer"
        if refused == "rejected"
        else f"not approved within {params.approval_timeout_s}s"
    )
    reason = (
        f"{params.model_name} version {trained.version} passed its gate but was {why}"
        f"{': ' + str(approval['reason']) if approval.get('reason') else ''}; not deployed, "
        f"champion stays {trained.champion_version}"
    )
    result = RetrainResult(outcome=refused, reason=reason, approval=approval, **common)
    _publish(result)
    name = "Rejected" if refused == "rejected" else "ApprovalTimedOut"
    return Completed(name=name, message=reason[:1000], data=result), approval


def _deploy(
    params: RetrainParams,
    trained: TrainingPipelineResult,
    data: RetrainData,
    target: str,
    approval: dict | None,
    common: dict[str, Any],
) -> State:
    """Deploy the new version blue-green (it becomes champion when live); the final state."""
    try:
        record = deployment_pipeline(
            DeploymentPipelineParams(
                model_name=params.model_name,
                version=trained.version,
                endpoint=params.endpoint,
                rollout=params.rollout,
                target=params.target,
                smoke_dataset=DatasetSpec(uri=data.uri),
                target_column=target,
                mlflow=params.mlflow,
            )
        )
    except MLOpsError as exc:
        _publish(
            RetrainResult(
                outcome="deploy_failed",
                approval=approval,
                **common,
                reason=f"{params.model_name} version {trained.version} passed its gate but its deployment "
                f"failed ({type(exc).__name__}: {exc}); the previous version keeps serving",
            )
        )
        raise
    reason = (
        f"{params.model_name} version {trained.version} passed its gate and is live on endpoint "
        f"{params.endpoint.name} ({record.outcome}); champion {trained.champion_version} -> "
        f"{trained.version}"
    )
    result = RetrainResult(
        outcome="deployed",
        reason=reason,
        deployed=True,
        approval=approval,
        deployment_id=record.id,
        **{**common, "champion_version": trained.version},
    )
    _publish(result)
    get_run_logger().info(reason)
    return Completed(message=reason, data=result)


def main(argv: list[str] | None = None) -> int:
    """Command line: retrain on a labelled dataset (and/or logged predictions + labels)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="churn-classifier")
    parser.add_argument("--dataset", help="fresh labelled dataset (CSV/Parquet)")
    parser.add_argument("--labels", help="labels (request_id, label) for the prediction log")
    parser.add_argument("--prediction-log")
    parser.add_argument("--last-hours", type=float)
    parser.add_argument("--endpoint", default="churn")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--strategy", default="canary", choices=["all_at_once", "canary", "linear", "shadow"])
    parser.add_argument("--bake", type=float, default=10.0)
    parser.add_argument("--cooldown-minutes", type=float, default=24 * 60)
    parser.add_argument("--no-deploy", action="store_true")
    args = parser.parse_args(argv)
    prepare_command("python -m mlops_tasks.flows.retrain")
    try:
        params = RetrainParams(
            model_name=args.model_name,
            dataset=DatasetSpec(uri=args.dataset) if args.dataset else None,
            labels=DatasetSpec(uri=args.labels) if args.labels else None,
            prediction_log=args.prediction_log,
            last_hours=args.last_hours,
            endpoint=EndpointSpec(name=args.endpoint, port=args.port),
            rollout=RolloutSpec(strategy=args.strategy, bake_seconds=args.bake, termination_wait_s=0),
            cooldown_minutes=args.cooldown_minutes,
            deploy=not args.no_deploy,
        )
        state = retrain_pipeline(params, return_state=True)
        result = state.result(raise_on_failure=False)
    except (MLOpsError, ValueError) as exc:
        print(f"retrain failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, BaseException):
        print(f"retrain failed: {type(result).__name__}: {result}", file=sys.stderr)
        return 1
    print(f"retrain {state.name}: {state.message}")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    raise SystemExit(main())
