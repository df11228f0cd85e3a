"""Task of batch scoring: score a frame with a registered model."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from mlops_tasks import scoring as _scoring
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = ["score_batch"]


@task(name="score-batch", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def score_batch(
    frame: pd.DataFrame,
    model_name: str,
    *,
    output: str,
    alias: str = "champion",
    version: int | str | None = None,
    id_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    s3: S3Config | None = None,
    served_by: str = "batch",
) -> _scoring.BatchPredictions:
    """Score a frame and write predictions in the prediction-log layout.

    Task form of :func:`mlops_tasks.scoring.score_batch`.

    Retried on transient failures.

    Example:
        ```python
        out = score_batch(frame, "churn-classifier", output="data/churn-predictions")
        ```
    """
    out = _scoring.score_batch(
        frame,
        model_name,
        output=output,
        alias=alias,
        version=version,
        id_column=id_column,
        mlflow_config=mlflow_config,
        s3=s3,
        served_by=served_by,
    )
    get_run_logger().info(
        "Scored %d rows with %s v%s -> %s", out.rows, model_name, out.model_version, out.output_uri
    )
    return out
