"""Batch scoring: score a dataset with ``models:/<name>@champion`` and write the predictions next to it.

The predictions are written in the prediction log's layout and columns
(``request_id``, ``timestamp``, ``model_name``, ``model_version``, ``served_by``, the
features, ``prediction``), by default as a log sink ``<dataset folder>/<stem>-predictions``
(local or S3), so :func:`flows.monitoring.drift_check` reads a batch exactly like
server traffic: ``DriftCheckParams(prediction_log=result.sink, ...)``.
"""

from __future__ import annotations

import argparse

from prefect import flow, get_run_logger

from flows.entry import prepare_command
from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.data import DatasetSpec
from mlops_tasks.scoring import BatchPredictions
from mlops_tasks.stages.params import BatchPredictParams
from mlops_tasks.stages.scoring import default_output

__all__ = [
    "BatchPredictParams",
    "batch_predict",
    "default_output",
    "main",
]


@flow(name="batch-predict", log_prints=False)
def batch_predict(params: BatchPredictParams) -> BatchPredictions:
    """Score a dataset with the champion and write predictions next to it.

    Args:
        params: Model, dataset and output.

    Returns:
        Where the predictions went (``sink`` is the log to give the drift check).

    Raises:
        ModelNotFoundError: No such model, version or alias.
        SchemaError: The dataset lacks feature columns of the model.

    Example:
        ```python
        from flows.batch import BatchPredictParams, batch_predict
        from mlops_tasks.data import DatasetSpec
        out = batch_predict(BatchPredictParams(model_name="churn-classifier",
                                               dataset=DatasetSpec(uri="data/new.csv")))
        print(out.sink, out.rows)
        ```
    """
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    loaded = tasks.load_dataset(params.dataset)
    output = params.output or default_output(params.dataset.uri)
    result = tasks.score_batch(
        loaded.frame,
        params.model_name,
        output=output,
        alias=params.alias,
        version=params.version,
        id_column=params.id_column,
        mlflow_config=params.mlflow,
        s3=params.dataset.s3,
        served_by=f"batch:{loaded.info.name}",
    )
    get_run_logger().info(
        "Predictions of %s v%s for %d rows: %s",
        params.model_name,
        result.model_version,
        result.rows,
        result.output_uri,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: score a dataset with the champion."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--model-name", default="churn-classifier")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    prepare_command("python -m flows.batch")
    result = batch_predict(
        BatchPredictParams(
            model_name=args.model_name,
            dataset=DatasetSpec(uri=args.dataset),
            output=args.output,
        )
    )
    print(f"scored {result.rows} rows with version {result.model_version}: {result.output_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
