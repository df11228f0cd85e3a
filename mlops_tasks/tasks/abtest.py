"""Tasks of the A/B test stage: start a test, evaluate it (artifact, event ``mlops.abtest.concluded``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from mlops_tasks.abtest import control as _control
from mlops_tasks.abtest.models import EVENT_ABTEST_CONCLUDED, AbSpec
from mlops_tasks.abtest.report import effect_plot_png, verdict_markdown
from mlops_tasks.deploy.ab_state import AbTestRecord
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.deploy.state import endpoint_dir
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.tasks._prefect import artifact_key, resolves_blocks

__all__ = ["evaluate_ab_test", "start_ab_test"]


@task(name="start-ab-test", timeout_seconds=1800)
@resolves_blocks
def start_ab_test(
    model_name: str,
    challenger: int,
    spec: AbSpec,
    outcomes: _control.OutcomeSource,
    *,
    endpoint: EndpointSpec | None = None,
    target: str | DeployTarget = "local",
    max_duration_h: float = 168.0,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
) -> AbTestRecord:
    """Start an A/B test of ``challenger`` against the live champion.

    Task form of :func:`mlops_tasks.abtest.control.start_test`. Not retried.

    Example:
        ```python
        start_ab_test("churn", 5, AbSpec(primary_metric="renewed", min_effect=0.02),
                      OutcomeSource(uri="outcomes.csv"), endpoint=EndpointSpec(name="churn"))
        ```
    """
    test = _control.start_test(
        model_name, challenger, spec, outcomes, endpoint=endpoint, target=target,
        max_duration_h=max_duration_h, smoke_rows=smoke_rows, mlflow_config=mlflow_config, registry=registry,
    )  # fmt: skip
    get_run_logger().info(
        "A/B test %s on %s: A version %s, B version %s, %s split, A %s %%",
        test.id, test.endpoint, test.versions["A"], test.versions["B"], test.split.mode, test.split.percent_a,
    )  # fmt: skip
    return test


@task(name="evaluate-ab-test", timeout_seconds=1800)
@resolves_blocks
def evaluate_ab_test(
    endpoint_name: str,
    *,
    act: bool = True,
    prediction_log: str | Path | None = None,
    s3: S3Config | None = None,
    target: DeployTarget | None = None,
    mlflow_config: MlflowConfig | None = None,
    registry: RegistryAccess | None = None,
) -> _control.AbEvaluation:
    """Judge the endpoint's running A/B test; publish the verdict and plot; emit the event when it ends.

    Task form of :func:`mlops_tasks.abtest.control.evaluate_test`. The markdown artifact
    (key ``abtest-<endpoint>``) shows the verdict, per-variant figures and the effect with
    its always-valid interval over time (also saved as ``abtest-<id>.png`` in the endpoint
    folder). When the test ends, ``mlops.abtest.concluded`` is emitted on resource
    ``mlops.endpoint.<name>`` with the verdict and the winner.

    Example:
        ```python
        evaluation = evaluate_ab_test("churn")
        ```
    """
    logger = get_run_logger()
    evaluation = _control.evaluate_test(
        endpoint_name, act=act, prediction_log=prediction_log, s3=s3, target=target,
        mlflow_config=mlflow_config, registry=registry,
    )  # fmt: skip
    verdict = evaluation.verdict
    logger.info("A/B test %s: %s -> %s (%s)", evaluation.test_id, verdict.verdict, evaluation.action,
                evaluation.reason)  # fmt: skip
    png = effect_plot_png(verdict)
    folder = Path(endpoint_dir(endpoint_name))
    (folder / f"abtest-{evaluation.test_id}.png").write_bytes(png)
    versions = evaluation.versions
    title = f"A/B test {evaluation.test_id} on {endpoint_name}: A v{versions['A']} vs B v{versions['B']}"
    create_markdown_artifact(
        markdown=verdict_markdown(verdict, title, evaluation.action, png),
        key=artifact_key("abtest", endpoint_name),
        description=f"A/B verdict {verdict.verdict}",
    )
    if evaluation.action != "none":
        emit_event(
            event=EVENT_ABTEST_CONCLUDED,
            resource={"prefect.resource.id": f"mlops.endpoint.{endpoint_name}",
                      "mlops.endpoint.name": endpoint_name},
            payload={
                "test_id": evaluation.test_id, "verdict": verdict.verdict, "winner": evaluation.winner,
                "action": evaluation.action, "reason": evaluation.reason, "versions": versions,
            },
        )  # fmt: skip
    return evaluation
