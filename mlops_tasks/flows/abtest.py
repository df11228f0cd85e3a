"""A/B tests on live traffic: start one (``ab_test_pipeline``), evaluate running ones (``ab_evaluate``).

``ab_test_pipeline`` starts a registered challenger beside the endpoint's champion with a
traffic split (sticky by ``X-Subject-Id`` or per request), the primary metric and the
minimum effect that matters, guardrails and a maximum duration; the champion alias does
not move. ``ab_evaluate`` (deployment ``ab-evaluate/hourly``) judges the running test on
the outcomes that arrived, with an always-valid sequential test, and on a verdict
promotes the winner through the blue-green machinery or ends the test for the champion;
a guardrail breach ends it for the champion at once. Each evaluation leaves a markdown
artifact (verdict, plot of the effect and its interval) and a concluded test emits
``mlops.abtest.concluded``.

    python -m mlops_tasks.flows.abtest start --model-name churn-classifier --challenger 5 \\
        --outcomes outcomes.csv --metric renewed --min-effect 0.02
    python -m mlops_tasks.flows.abtest evaluate --endpoint churn
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from prefect import flow, get_run_logger
from prefect.states import Completed
from pydantic import Field

from mlops_tasks import tasks
from mlops_tasks.abtest import AbGuardrails, AbSpec
from mlops_tasks.abtest.control import AbEvaluation, OutcomeSource
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.deploy.ab_state import AbTestRecord, running_ab_test
from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.flows.parameters import FormParams, require_model_name
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = ["AbEvaluateParams", "AbTestParams", "ab_evaluate", "ab_test_pipeline", "main"]


class AbTestParams(FormParams):
    """Parameters of :func:`ab_test_pipeline` (one form in the Prefect UI).

    Example:
        ```python
        from mlops_tasks.flows.abtest import AbTestParams
        params = AbTestParams(model_name="churn-classifier", challenger=5, primary_metric="renewed",
                              min_effect=0.02, outcomes={"uri": "s3://outcomes/churn.parquet"})
        ```
    """

    model_name: str | None = Field(None, description="Registered model whose champion serves the endpoint.")
    challenger: int = Field(..., ge=1, description="Registered version to test (its gate must have passed).")
    endpoint: EndpointSpec = Field(default_factory=lambda: EndpointSpec(name="churn"))
    target: str = Field("local", description="Deploy target the endpoint runs on (local or docker).")
    weights: dict[str, int] = Field(
        default_factory=lambda: {"A": 50, "B": 50}, description="Percent of subjects for A (champion) and B."
    )
    sticky: bool = Field(True, description="Assign by X-Subject-Id (True) or each request at random.")
    primary_metric: str = Field(..., description="Outcome column (or accuracy/abs_error/squared_error).")
    higher_is_better: bool | None = Field(None, description="Direction of the metric (default by name).")
    min_effect: float = Field(..., gt=0, description="Smallest absolute difference that matters.")
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_samples: int = Field(100, ge=2, description="Subjects with an outcome per variant before a verdict.")
    guardrails: AbGuardrails = Field(default_factory=AbGuardrails)
    report_metrics: list[str] = Field(
        default_factory=list, description="Other outcome columns reported per variant (they never decide)."
    )
    max_duration_h: float = Field(336.0, gt=0, description="The test ends for the champion after this long.")
    outcomes: OutcomeSource = Field(..., description="Where outcomes arrive (CSV/Parquet, local or s3://).")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")

    def spec(self) -> AbSpec:
        """The analysis spec these parameters describe."""
        return AbSpec(
            primary_metric=self.primary_metric, higher_is_better=self.higher_is_better,
            min_effect=self.min_effect, alpha=self.alpha, weights=self.weights,
            unit="subject" if self.sticky else "request", min_samples=self.min_samples,
            guardrails=self.guardrails, report_metrics=self.report_metrics,
        )  # fmt: skip


class AbEvaluateParams(FormParams):
    """Parameters of :func:`ab_evaluate`."""

    endpoint_name: str = Field("churn", description="Endpoint whose running A/B test is judged.")
    act: bool = Field(True, description="Promote or end on a verdict (False: report only).")
    prediction_log: str | None = Field(None, description="Log sink; empty: the endpoint's own.")
    s3: S3Config | None = Field(None, title="S3", description="S3 endpoint for s3:// outcomes or logs.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


@flow(name="ab-test-pipeline", log_prints=False)
@typed_failure_message
def ab_test_pipeline(params: AbTestParams) -> AbTestRecord:
    """Start an A/B test of a registered challenger against the live champion.

    Raises:
        ConfigurationError: Bad weights, subject-keyed outcomes for a per-request test.
        ModelNotFoundError, PromotionRefusedError: The challenger does not exist or failed its gate.
        AbTestRunningError: The endpoint already runs a test.

    Example:
        ```python
        from mlops_tasks.flows.abtest import AbTestParams, ab_test_pipeline
        ab_test_pipeline(AbTestParams(model_name="churn-classifier", challenger=5, primary_metric="renewed",
                                      min_effect=0.02, outcomes={"uri": "outcomes.csv"}))
        ```
    """
    model_name = require_model_name(params.model_name, "ab-test-pipeline")
    params = resolve_config_blocks(params)
    spec = params.spec()  # bad weights fail here, before anything starts
    return tasks.start_ab_test(
        model_name, params.challenger, spec, params.outcomes, endpoint=params.endpoint, target=params.target,
        max_duration_h=params.max_duration_h, mlflow_config=params.mlflow,
    )  # fmt: skip


@flow(name="ab-evaluate", log_prints=False)
@typed_failure_message
def ab_evaluate(params: AbEvaluateParams = AbEvaluateParams()) -> AbEvaluation | None:  # noqa: B008
    """Judge the endpoint's running A/B test and act on the verdict (scheduled hourly).

    Ends **Completed** with "no A/B test runs" when there is none (the schedule keeps
    running between tests).

    Example:
        ```python
        from mlops_tasks.flows.abtest import AbEvaluateParams, ab_evaluate
        ab_evaluate(AbEvaluateParams(endpoint_name="churn"))
        ```
    """
    params = resolve_config_blocks(params)
    if running_ab_test(params.endpoint_name) is None:
        get_run_logger().info("No A/B test runs on endpoint %s", params.endpoint_name)
        return Completed(message=f"no A/B test runs on endpoint {params.endpoint_name}")  # type: ignore[return-value]  # a Prefect State
    evaluation: AbEvaluation = tasks.evaluate_ab_test(
        params.endpoint_name, act=params.act, prediction_log=params.prediction_log, s3=params.s3,
        mlflow_config=params.mlflow,
    )  # fmt: skip
    message = f"{evaluation.verdict.verdict}: {evaluation.action} ({evaluation.reason})"
    return Completed(message=message[:1000], data=evaluation)  # type: ignore[return-value]  # a Prefect State


def main(argv: list[str] | None = None) -> int:
    """Command line: ``start`` a test or ``evaluate`` the running one."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start")
    start.add_argument("--model-name", default="churn-classifier")
    start.add_argument("--challenger", type=int, required=True)
    start.add_argument("--endpoint", default="churn")
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--metric", required=True)
    start.add_argument("--min-effect", type=float, required=True)
    start.add_argument("--percent-a", type=int, default=50)
    start.add_argument("--per-request", action="store_true")
    start.add_argument("--outcomes", required=True)
    start.add_argument("--outcomes-key", default="subject", choices=["subject", "request_id"])
    evaluate = sub.add_parser("evaluate")
    evaluate.add_argument("--endpoint", default="churn")
    evaluate.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "start":
        key: Literal["subject", "request_id"] = args.outcomes_key
        test = ab_test_pipeline(
            AbTestParams(
                model_name=args.model_name, challenger=args.challenger,
                endpoint=EndpointSpec(name=args.endpoint, port=args.port), primary_metric=args.metric,
                min_effect=args.min_effect, weights={"A": args.percent_a, "B": 100 - args.percent_a},
                sticky=not args.per_request, outcomes=OutcomeSource(uri=args.outcomes, key=key),
            )
        )  # fmt: skip
        print(f"A/B test {test.id} started: {test.versions}")
        return 0
    state = ab_evaluate(
        AbEvaluateParams(endpoint_name=args.endpoint, act=not args.report_only), return_state=True
    )
    print(state.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
