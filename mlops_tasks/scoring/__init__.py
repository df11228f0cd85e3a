"""Batch scoring: score a dataset with a registered model, written in the prediction-log layout.

The rows written have the prediction log's columns, so the drift check
(:func:`mlops_tasks.monitoring.load_current`, :func:`mlops_tasks.monitoring.check_drift`)
reads a scored batch exactly like server traffic.

- :func:`score_batch`: one in-memory frame, in this process (the single-machine path).
- :func:`score_partitions`: a folder or ``s3://`` prefix of Parquet/CSV files larger than
  memory, each file scored on the Dask worker that reads it (:mod:`mlops_tasks.scoring.distributed`).
"""

from __future__ import annotations

from mlops_tasks.scoring.distributed import score_partitions
from mlops_tasks.scoring.frame import PREDICTION_COLUMN, BatchPredictions, log_rows, score_batch
from mlops_tasks.scoring.partitions import is_partitioned, list_partitions
from mlops_tasks.scoring.shipping import ModelPayload, fetch_model_payload

__all__ = [
    "PREDICTION_COLUMN",
    "BatchPredictions",
    "ModelPayload",
    "fetch_model_payload",
    "is_partitioned",
    "list_partitions",
    "log_rows",
    "score_batch",
    "score_partitions",
]
