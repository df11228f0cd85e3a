"""Task of the evaluation stage: evaluate a candidate, apply the gate, publish the tables."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mlops_tasks import evaluation as _evaluation
from mlops_tasks import training as _training
from mlops_tasks.errors import QualityGateError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, artifact_key, resolves_blocks

__all__ = ["evaluate_model", "publish_evaluation"]


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
        )
    except QualityGateError as exc:
        publish_evaluation(exc.report, model_name)
        raise
    publish_evaluation(report, model_name)
    return report


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
    create_markdown_artifact(
        markdown=report.to_markdown(), key=artifact_key("evaluation", model_name or "model")
    )
    if report.checks:
        create_table_artifact(
            table=[c.model_dump() for c in report.checks],
            key=artifact_key("gate", model_name or "model"),
            description=f"Quality gate {'passed' if report.passed else 'FAILED'}",
        )
    get_run_logger().info(
        "Gate %s for run %s%s",
        "passed" if report.passed else "FAILED",
        report.run_id,
        "" if report.passed else f": {'; '.join(report.failed_reasons)}",
    )
