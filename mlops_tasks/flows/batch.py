"""Batch scoring: score a dataset with ``models:/<name>@champion`` and write the predictions next to it.

The predictions are written in the prediction log's layout and columns
(``request_id``, ``timestamp``, ``model_name``, ``model_version``, ``served_by``, the
features, ``prediction``), by default as a log sink ``<dataset folder>/<stem>-predictions``
(local or S3), so :func:`mlops_tasks.flows.monitoring.drift_check` reads a batch exactly like
server traffic: ``DriftCheckParams(prediction_log=result.sink, ...)``.

A dataset that is a folder or an ``s3://`` prefix of Parquet/CSV files (larger than memory) is
scored on a Dask cluster, one task per file: the one named by ``cluster`` (an address, or a
local cluster of worker processes started for the run), or the cluster of prefect-dask's
``DaskTaskRunner`` when the flow runs with one (:func:`dask_task_runner`). One file without a
``cluster`` is scored in this process, as before.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger

from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.cluster import DaskClusterSpec
from mlops_tasks.data import DatasetSpec
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.scoring import BatchPredictions
from mlops_tasks.stages.params import BatchPredictParams
from mlops_tasks.stages.scoring import default_output, predictions_summary, scores_on_dask, scoring_arguments

__all__ = [
    "BatchPredictParams",
    "batch_predict",
    "dask_task_runner",
    "default_output",
    "main",
]


def dask_task_runner(cluster: DaskClusterSpec | None = None) -> Any:
    """prefect-dask's ``DaskTaskRunner`` for ``cluster``: its address, or a LocalCluster of worker processes.

    Example:
        ```python
        from mlops_tasks.flows.batch import batch_predict, dask_task_runner
        from mlops_tasks.cluster import DaskClusterSpec
        runner = dask_task_runner(DaskClusterSpec(address="tcp://10.0.0.5:8786"))
        batch_predict.with_options(task_runner=runner)(params)
        ```
    """
    from prefect_dask import DaskTaskRunner

    spec = cluster or DaskClusterSpec()
    if spec.address is not None:
        return DaskTaskRunner(address=spec.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": spec.n_workers,
            "threads_per_worker": spec.threads_per_worker,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "memory_limit": spec.memory_limit or 0,
        }
    )


@flow(name="batch-predict", log_prints=False)
@typed_failure_message
def batch_predict(params: BatchPredictParams) -> BatchPredictions:
    """Score a dataset with the champion and write predictions next to it.

    Args:
        params: Model, dataset and output.

    Returns:
        Where the predictions went (``sink`` is the log to give the drift check).

    Raises:
        ModelNotFoundError: No such model, version or alias.
        SchemaError: The dataset lacks feature columns of the model, or a partition's schema
            differs from the others'.
        ClusterUnavailableError: The Dask scheduler named by ``cluster`` did not answer.

    Example:
        ```python
        from mlops_tasks.flows.batch import BatchPredictParams, batch_predict
        from mlops_tasks.data import DatasetSpec
        out = batch_predict(BatchPredictParams(model_name="churn-classifier",
                                               dataset=DatasetSpec(uri="data/new.csv")))
        print(out.sink, out.rows)
        ```
    """
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    if scores_on_dask(params):
        # submitted: under a DaskTaskRunner the task runs on the cluster and scores on it
        result: BatchPredictions = tasks.score_partitions.submit(
            params.dataset.uri,
            params.model_name,
            **scoring_arguments(params, f"batch:{params.dataset.display_name}"),
            cluster=params.cluster,
        ).result()
    else:
        loaded = tasks.load_dataset(params.dataset)
        result = tasks.score_batch(
            loaded.frame, params.model_name, **scoring_arguments(params, f"batch:{loaded.info.name}")
        )
    get_run_logger().info(predictions_summary(params, result))
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: score a dataset with the champion."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--model-name", default="churn-classifier")
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--dask-address", default=None, help="Score on this Dask scheduler (tcp://host:port or tls://...)."
    )
    args = parser.parse_args(argv)
    prepare_command("python -m mlops_tasks.flows.batch")
    result = batch_predict(
        BatchPredictParams(
            model_name=args.model_name,
            dataset=DatasetSpec(uri=args.dataset),
            output=args.output,
            cluster=DaskClusterSpec(address=args.dask_address) if args.dask_address else None,
        )
    )
    print(f"scored {result.rows} rows with version {result.model_version}: {result.output_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
