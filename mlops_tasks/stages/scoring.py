"""The batch-score stage without Prefect: score a dataset with a registered version.

:func:`run_batch_score` is what ``mlops-tasks batch-score`` runs; the Prefect flow
:func:`flows.batch.batch_predict` runs the same core functions through its tasks.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

from mlops_tasks.data import load_dataset
from mlops_tasks.scoring import BatchPredictions, is_partitioned, score_batch, score_partitions
from mlops_tasks.stages.params import BatchPredictParams

__all__ = ["default_output", "predictions_summary", "run_batch_score", "scoring_arguments", "scores_on_dask"]

logger = logging.getLogger(__name__)


def default_output(uri: str) -> str:
    """``<folder>/<stem>-predictions`` next to a local or ``s3://`` dataset.

    Example:
        ```python
        assert default_output("s3://b/d/churn.csv") == "s3://b/d/churn-predictions"
        ```
    """
    if uri.startswith("s3://"):
        path = PurePosixPath(uri[len("s3://") :])
        return f"s3://{path.parent / (path.stem + '-predictions')}"
    path = PurePosixPath(uri)
    return str(path.parent / f"{path.stem}-predictions")


def scores_on_dask(params: BatchPredictParams) -> bool:
    """Whether ``params`` are scored on Dask: a partitioned dataset, or a ``cluster`` given."""
    return is_partitioned(params.dataset.uri) or params.cluster is not None


def scoring_arguments(params: BatchPredictParams, served_by: str) -> dict[str, Any]:
    """The keyword arguments :func:`~mlops_tasks.scoring.score_batch` takes from ``params``.

    :func:`~mlops_tasks.scoring.score_partitions` takes the same plus ``cluster``.

    Args:
        params: Model, alias or version, dataset and output.
        served_by: The ``served_by`` column of the rows written (``batch:<dataset name>``).

    Example:
        ```python
        result = score_batch(frame, params.model_name, **scoring_arguments(params, "batch:new"))
        ```
    """
    return {
        "output": params.output or default_output(params.dataset.uri),
        "alias": params.alias,
        "version": params.version,
        "id_column": params.id_column,
        "mlflow_config": params.mlflow,
        "s3": params.dataset.s3,
        "served_by": served_by,
    }


def predictions_summary(params: BatchPredictParams, result: BatchPredictions) -> str:
    """One log line: which version scored how many rows (in how many partitions), and where to.

    Example:
        ```python
        logger.info(predictions_summary(params, result))
        ```
    """
    partitions = f" in {result.partitions} partitions" if scores_on_dask(params) else ""
    return (
        f"Predictions of {params.model_name} v{result.model_version} for {result.rows} rows"
        f"{partitions}: {result.output_uri}"
    )


def run_batch_score(params: BatchPredictParams) -> BatchPredictions:
    """Score the dataset and write the predictions in the prediction-log layout.

    Args:
        params: Model, alias or version, dataset and output.

    Returns:
        Where the predictions went (``sink`` is the log to give the drift check).

    A folder or ``s3://`` prefix of files (or a ``cluster``) is scored on Dask with
    :func:`mlops_tasks.scoring.score_partitions`, as the flow does.

    Raises:
        ModelNotFoundError: No such model, version or alias.
        SchemaError: The dataset lacks feature columns of the model.
        ClusterUnavailableError: The Dask scheduler named by ``cluster`` did not answer.

    Example:
        ```python
        from mlops_tasks.data import DatasetSpec
        from mlops_tasks.stages.params import BatchPredictParams
        from mlops_tasks.stages.scoring import run_batch_score
        out = run_batch_score(BatchPredictParams(model_name="churn-classifier",
                                                 dataset=DatasetSpec(uri="data/new.csv")))
        ```
    """
    if scores_on_dask(params):
        result = score_partitions(
            params.dataset.uri,
            params.model_name,
            **scoring_arguments(params, f"batch:{params.dataset.display_name}"),
            cluster=params.cluster,
        )
    else:
        loaded = load_dataset(params.dataset)
        result = score_batch(
            loaded.frame, params.model_name, **scoring_arguments(params, f"batch:{loaded.info.name}")
        )
    logger.info(predictions_summary(params, result))
    return result
