"""Tasks of batch scoring: score a frame in process, or a partitioned dataset on a Dask cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
from prefect import get_run_logger, task

from mlops_tasks import scoring as _scoring
from mlops_tasks.cluster import DaskClusterSpec
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = ["score_batch", "score_partitions"]


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


@contextlib.contextmanager
def _worker_client() -> Iterator[Any]:
    """The cluster's client when this task runs on a Dask worker (prefect-dask), else ``None``."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None
        return
    # secede from the worker's thread pool while the partitions run on the same cluster
    with worker_client() as client:
        yield client


@task(name="score-partitions", timeout_seconds=6 * 3600, **IO_RETRIES)
@resolves_blocks
def score_partitions(
    dataset_uri: str,
    model_name: str,
    *,
    output: str,
    alias: str = "champion",
    version: int | str | None = None,
    id_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    s3: S3Config | None = None,
    served_by: str = "batch",
    cluster: DaskClusterSpec | None = None,
) -> _scoring.BatchPredictions:
    """Score a folder or ``s3://`` prefix of partitions on a Dask cluster, one task per file.

    Task form of :func:`mlops_tasks.scoring.score_partitions`. Under prefect-dask's
    ``DaskTaskRunner`` (the flow submitted this task to the cluster) the partitions run on that
    same cluster and ``cluster`` is ignored; otherwise ``cluster`` names it (an address, or a
    local cluster of worker processes started for the task).

    Retried on transient failures; a retried job overwrites the files it wrote before.

    Example:
        ```python
        out = score_partitions("s3://data/scoring/2026-11/", "churn-classifier",
                               output="s3://data/scoring/2026-11-predictions",
                               cluster=DaskClusterSpec(address="tls://dask.internal:8786"))
        ```
    """
    with _worker_client() as client:
        out = _scoring.score_partitions(
            dataset_uri,
            model_name,
            output=output,
            alias=alias,
            version=version,
            id_column=id_column,
            mlflow_config=mlflow_config,
            s3=s3,
            served_by=served_by,
            cluster=cluster,
            client=client,
        )
    get_run_logger().info(
        "Scored %d rows in %d partitions with %s v%s -> %s",
        out.rows,
        out.partitions,
        model_name,
        out.model_version,
        out.output_uri,
    )
    return out
