"""Start and evaluate A/B tests: the analysis spec kept with the test, outcomes, the verdict, the end.

:func:`start_test` checks the spec and starts the test at the endpoint
(:func:`mlops_tasks.deploy.ab.start_ab_test`), keeping the spec and the outcomes' source
with it. :func:`evaluate_test` reads the test's requests from the prediction log, joins
the outcomes that arrived, reads each variant's server faults from ``/metrics`` (the bake
guard's counters), runs :func:`~mlops_tasks.abtest.analyze` and acts on the verdict:

- ``B_better``: B is promoted through the blue-green steps (champion alias moves, A stopped);
- ``A_better``, ``no_difference``, ``invalid_sample_ratio``: the test ends for A;
- a guardrail breach: the test ends for A at once, whatever the primary metric says;
- ``keep_running`` past ``max_duration_h``: the test ends for A;
- otherwise it keeps running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from mlops_tasks.abtest.analysis import analyze
from mlops_tasks.abtest.models import AbSpec, AbVerdict, check_weights
from mlops_tasks.abtest.outcomes import OutcomeKey, ab_test_rows, join_outcomes
from mlops_tasks.data import DatasetSpec, load_dataset
from mlops_tasks.deploy.ab import end_ab_test, start_ab_test
from mlops_tasks.deploy.ab_state import AbTestRecord, running_ab_test
from mlops_tasks.deploy.guard import read_snapshot
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.deploy.rollout import resolve_target
from mlops_tasks.deploy.state import load_endpoint
from mlops_tasks.errors import AbTestError, AbTestNotFoundError, DatasetNotFoundError
from mlops_tasks.serving.predlog import read_prediction_log
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = ["AbEvaluation", "OutcomeSource", "evaluate_test", "start_test"]

logger = logging.getLogger(__name__)


class OutcomeSource(BaseModel):
    """Where a test's outcomes arrive and what they are keyed by.

    Example:
        ```python
        OutcomeSource(uri="s3://outcomes/rides.parquet", key="subject")
        ```
    """

    uri: str = Field(
        description="CSV/Parquet file, local or s3://, rewritten or appended as outcomes arrive."
    )
    key: OutcomeKey = Field(
        "subject", description="Column joining outcomes to requests: request_id or subject."
    )


class AbEvaluation(BaseModel):
    """One evaluation of a running test: the verdict and what was done about it."""

    test_id: str
    endpoint: str
    versions: dict[str, int]
    verdict: AbVerdict
    action: Literal["none", "promoted_b", "ended_for_a"]
    winner: Literal["A", "B"] | None = None
    reason: str
    elapsed_h: float


def start_test(
    model_name: str,
    challenger: int,
    spec: AbSpec,
    outcomes: OutcomeSource,
    *,
    endpoint: EndpointSpec | None = None,
    target: str | DeployTarget = "local",
    max_duration_h: float = 168.0,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
) -> AbTestRecord:
    """Check the spec, then start the test (the champion alias does not move).

    Raises:
        ConfigurationError: Weights that do not sum to 100 or leave a variant at 0,
            subject-keyed outcomes for a per-request test, or a non-positive duration.
        ModelNotFoundError, PromotionRefusedError: The challenger does not exist or failed its gate.
        AbTestRunningError: A test already runs on the endpoint.

    Example:
        ```python
        start_test("churn", 5, AbSpec(primary_metric="renewed", min_effect=0.02),
                   OutcomeSource(uri="outcomes.csv"), endpoint=EndpointSpec(name="churn"))
        ```
    """
    from mlops_tasks.errors import ConfigurationError

    check_weights(spec.weights)
    if spec.unit == "request" and outcomes.key != "request_id":
        raise ConfigurationError(
            "A per-request A/B test can only join outcomes keyed by request_id (each request of a "
            "subject may meet either variant); set OutcomeSource(key='request_id') or unit='subject'."
        )
    if max_duration_h <= 0:
        raise ConfigurationError(f"max_duration_h must be above 0 hours, got {max_duration_h}.")
    meta = {"spec": spec.model_dump(mode="json"), "outcomes": outcomes.model_dump(mode="json")}
    return start_ab_test(
        model_name, challenger, endpoint=endpoint, target=target, percent_a=spec.weights["A"],
        mode="sticky" if spec.unit == "subject" else "request", max_duration_h=max_duration_h,
        meta=meta, smoke_rows=smoke_rows, mlflow_config=mlflow_config, registry=registry,
    )  # fmt: skip


def _load_outcomes(source: OutcomeSource, s3: S3Config | None) -> pd.DataFrame:
    try:
        return load_dataset(DatasetSpec(uri=source.uri, s3=s3)).frame
    except DatasetNotFoundError:
        logger.info("A/B outcomes %s not there yet", source.uri)
        return pd.DataFrame(columns=[source.key])


def _server_faults(tgt: DeployTarget, test: AbTestRecord) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for variant, color in test.split.colors.items():
        snap = read_snapshot(tgt.runner, tgt.runner.slot_status(color).addresses)
        out[variant] = {"requests": float(snap.total), "share_5xx": snap.error_share}
        if snap.count:
            out[variant]["p95_latency_ms"] = snap.quantile_ms(0.95)
    return out


def _decide(verdict: AbVerdict, test: AbTestRecord) -> tuple[Literal["A", "B"] | None, str]:
    if verdict.guardrail_breaches:
        return "A", "guardrail breach: " + "; ".join(verdict.guardrail_breaches)
    if verdict.verdict == "B_better":
        return "B", f"B_better: {verdict.reason}"
    if verdict.verdict in ("A_better", "no_difference", "invalid_sample_ratio"):
        return "A", f"{verdict.verdict}: {verdict.reason}"
    if test.elapsed_h >= test.max_duration_h:
        return "A", f"no verdict within the maximum duration of {test.max_duration_h:g} h"
    return None, verdict.reason


def evaluate_test(
    endpoint_name: str,
    *,
    act: bool = True,
    prediction_log: str | Path | None = None,
    s3: S3Config | None = None,
    target: DeployTarget | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
) -> AbEvaluation:
    """Judge the endpoint's running A/B test on everything so far and act on the verdict.

    Args:
        endpoint_name: The endpoint running the test.
        act: End the test on a verdict, a guardrail breach or the maximum duration (False:
            only report).
        prediction_log: The servers' log sink (default: the endpoint folder's ``prediction-log``).
        s3: S3 endpoint and credentials for ``s3://`` outcomes.
        target: The target object (default: the one the endpoint was deployed with).
        mlflow_config: Where MLflow lives (the champion alias moves on ``B_better``).
        registry: The registry calls (default: MLflow).

    Returns:
        The verdict, what was done and why.

    Raises:
        AbTestNotFoundError: No test runs on the endpoint.
        AbTestError: The endpoint's router does not run (stopped during the test); nothing changed.
        SchemaError: The outcomes lack the key or an outcome column.
        OutcomesJoinError: Outcomes arrived but join no request or subject of the test.

    Example:
        ```python
        evaluation = evaluate_test("churn")
        print(evaluation.verdict.verdict, evaluation.action)
        ```
    """
    test = running_ab_test(endpoint_name)
    if test is None:
        raise AbTestNotFoundError(f"No A/B test runs on endpoint {endpoint_name!r}; start one first.")
    spec = AbSpec.model_validate(test.meta["spec"])
    source = OutcomeSource.model_validate(test.meta["outcomes"])
    saved = load_endpoint(endpoint_name)
    tgt = target or resolve_target(test.target, saved[0] if saved else EndpointSpec(name=endpoint_name))
    if not tgt.traffic.running():
        raise AbTestError(
            f"The router of endpoint {endpoint_name!r} does not run, so A/B test {test.id} cannot be judged; "
            "its watchdog restarts a crashed router, a stopped endpoint ends the test (stop_endpoint)."
        )
    sink = str(prediction_log or tgt.runner.folder / "prediction-log")
    log = read_prediction_log(sink, start=test.started_at) if _exists(sink) else pd.DataFrame()
    rows = ab_test_rows(log, since=test.started_at)
    columns = [spec.primary_metric, *[c for c in spec.report_metrics if c != spec.primary_metric]]
    observations = join_outcomes(
        rows, _load_outcomes(source, s3), key=source.key, columns=columns, unit=spec.unit
    )
    verdict = analyze(observations, spec, server_faults=_server_faults(tgt, test))
    winner, reason = _decide(verdict, test)
    action: Literal["none", "promoted_b", "ended_for_a"] = "none"
    if act and winner is not None:
        end_ab_test(endpoint_name, winner, reason, target=tgt, mlflow_config=mlflow_config, registry=registry)
        action = "promoted_b" if winner == "B" else "ended_for_a"
    return AbEvaluation(
        test_id=test.id, endpoint=endpoint_name, versions=dict(test.versions), verdict=verdict,
        action=action, winner=winner, reason=reason, elapsed_h=test.elapsed_h,
    )  # fmt: skip


def _exists(sink: str) -> bool:
    return sink.startswith("s3://") or Path(sink).is_dir()
