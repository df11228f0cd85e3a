"""Task of the evaluation stage: evaluate a candidate, apply the gate, publish the tables."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from mlops_tasks import evaluation as _evaluation
from mlops_tasks import training as _training
from mlops_tasks.errors import MLOpsError, QualityGateError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, artifact_key, resolves_blocks

__all__ = ["evaluate_model", "publish_evaluation", "publish_plots"]


@task(name="evaluate-model", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def evaluate_model(
    trained: _training.TrainedModel,
    holdout: pd.DataFrame,
    gate: _evaluation.QualityGate,
    *,
    model_name: str | None = None,
    segment_column: str | None = None,
    compare_to_champion: bool = True,
    fail_on_error: bool = True,
    mlflow_config: MlflowConfig | None = None,
    plots: bool = True,
) -> _evaluation.EvaluationReport:
    """Evaluate a candidate and apply the quality gate.

    Task form of :func:`mlops_tasks.evaluation.evaluate_model`.

    Publishes the gate checks and the metrics as Prefect artifacts, also when the gate
    fails (:func:`publish_evaluation`). Retried on transient failures.

    Example:
        ```python
        report = evaluate_model(trained, holdout, gate, model_name="churn", fail_on_error=False)
        ```
    """
    try:
        report = _evaluation.evaluate_model(
            trained,
            holdout,
            gate,
            model_name=model_name,
            segment_column=segment_column,
            compare_to_champion=compare_to_champion,
            fail_on_error=fail_on_error,
            mlflow_config=mlflow_config,
            plots=plots,
        )
    except QualityGateError as exc:
        publish_evaluation(exc.report, model_name)
        publish_plots(exc.report, model_name, mlflow_config)
        raise
    publish_evaluation(report, model_name)
    publish_plots(report, model_name, mlflow_config)
    return report


def _table_row(check: _evaluation.GateCheck) -> dict[str, object]:
    """A gate check as a table row: numbers rounded to 4 digits, the verdict first."""
    return {
        "result": "pass" if check.passed else "FAIL",
        "check": check.check,
        "scope": check.scope,
        "observed": None if check.observed is None else round(check.observed, 4),
        "bound": None if check.bound is None else round(check.bound, 4),
        "reason": check.reason,
    }


def publish_evaluation(report: _evaluation.EvaluationReport, model_name: str | None) -> None:
    """Publish an evaluation as Prefect artifacts: the metrics (markdown) and the gate checks (table).

    Args:
        report: The evaluation, passed or failed.
        model_name: Names the artifact keys (``evaluation-<model>``, ``gate-<model>``).

    Example:
        ```python
        publish_evaluation(report, "churn-classifier")
        ```
    """
    verdict = "passed" if report.passed else "FAILED"
    create_markdown_artifact(
        markdown=report.to_markdown(),
        key=artifact_key("evaluation", model_name or "model"),
        description=f"Holdout metrics of run {report.run_id} ({report.holdout_rows} rows), "
        f"slices and champion comparison; quality gate {verdict}",
    )
    if report.checks:
        create_table_artifact(
            table=[_table_row(c) for c in report.checks],
            key=artifact_key("gate", model_name or "model"),
            description=f"Quality gate {'passed' if report.passed else 'FAILED'}",
        )
    get_run_logger().info(
        "Gate %s for run %s%s",
        "passed" if report.passed else "FAILED",
        report.run_id,
        "" if report.passed else f": {'; '.join(report.failed_reasons)}",
    )


_PLOT_TITLES = {
    "roc.png": "ROC curve",
    "precision-recall.png": "Precision-recall curve",
    "confusion-matrix.png": "Confusion matrix",
    "calibration.png": "Calibration",
    "predicted-vs-actual.png": "Predicted vs actual",
    "residuals.png": "Residuals",
}


def publish_plots(
    report: _evaluation.EvaluationReport, model_name: str | None, mlflow_config: MlflowConfig | None
) -> None:
    """Show the evaluation plots on the Prefect run page.

    Prefect's image artifacts take a URL: when the tracking server proxies artifacts each plot
    becomes an image artifact pointing at it (:func:`mlops_tasks.evaluation.plot_urls`);
    otherwise one markdown artifact names the run and the artifact paths (no expiring
    presigned links). A server that cannot be asked only costs the images, never the run.

    Args:
        report: The evaluation (its ``plots`` were logged on ``report.run_id``).
        model_name: Names the artifact keys (``plot-<model>-<plot>``, ``plots-<model>``).
        mlflow_config: Where MLflow lives.

    Example:
        ```python
        publish_plots(report, "churn-classifier", None)
        ```
    """
    if not report.plots:
        return
    name = model_name or "model"
    try:
        urls = _evaluation.plot_urls(report, mlflow_config)
    except MLOpsError as exc:
        get_run_logger().warning("Plot links not published: %s", exc)
        urls = {}
    for path, url in urls.items():
        stem = path.removeprefix("plots/").removesuffix(".png")
        title = _PLOT_TITLES.get(f"{stem}.png") or stem.replace("-", " ").capitalize()
        create_image_artifact(
            image_url=url,
            key=artifact_key(f"plot-{stem}", name),
            description=f"{title} of run {report.run_id} (MLflow artifact {path}).",
        )
    if urls:
        return
    lines = [
        f"### Evaluation plots of run `{report.run_id}`",
        "",
        "Logged on the MLflow run as image artifacts (open the run in the MLflow UI, Artifacts tab, "
        "or `mlflow artifacts download --run-id " + report.run_id + " --artifact-path plots`):",
        "",
        *[f"- `{path}`" for path in report.plots],
    ]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("plots", name),
        description=f"{len(report.plots)} evaluation plots on MLflow run {report.run_id}",
    )
