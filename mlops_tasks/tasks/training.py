"""Task of the training stage: fit and track a model."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from mlops_tasks import cluster as _cluster
from mlops_tasks import data as _data
from mlops_tasks import training as _training
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = ["train_model"]


@task(name="train-model", **IO_RETRIES)
@resolves_blocks
def train_model(
    train: pd.DataFrame,
    spec: _training.TrainingSpec,
    *,
    data: _data.DatasetInfo,
    segment_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    reuse_existing: bool = True,
    cluster: _cluster.DaskClusterSpec | None = None,
) -> _training.TrainedModel:
    """Fit the spec's pipeline and track it in MLflow.

    Task form of :func:`mlops_tasks.training.train_model`.

    Retried on transient failures (MLflow not answering). With ``cluster``, the hyper-parameter
    search's candidates are fitted on that Dask cluster.

    Example:
        ```python
        trained = train_model(train, TrainingSpec(target="churned"), data=ds.info)
        ```
    """
    trained = _training.train_model(
        train,
        spec,
        data=data,
        segment_column=segment_column,
        mlflow_config=mlflow_config,
        reuse_existing=reuse_existing,
        cluster=cluster,
    )
    get_run_logger().info(
        "%s run %s (%s)", "Reused" if trained.reused else "Trained", trained.run_id, trained.model_uri
    )
    return trained
