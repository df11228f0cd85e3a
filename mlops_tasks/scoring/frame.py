"""Batch scoring of one in-memory frame, written in the prediction-log layout.

The rows written have the prediction log's columns, so the drift check
(:func:`mlops_tasks.monitoring.load_current`, :func:`mlops_tasks.monitoring.check_drift`)
reads a scored batch exactly like server traffic.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from mlops_tasks.errors import EmptyDatasetError, ModelNotFoundError
from mlops_tasks.serving.predlog import RESERVED_COLUMNS
from mlops_tasks.serving.sink import Sink
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = ["PREDICTION_COLUMN", "BatchPredictions", "log_rows", "score_batch"]

PREDICTION_COLUMN = "prediction"
"""The prediction log's prediction column (a feature named like it, or like a reserved
column of :mod:`mlops_tasks.serving.predlog`, is written with the prefix ``feature_``)."""


class BatchPredictions(BaseModel):
    """What :func:`score_batch` wrote.

    Example:
        ```python
        out = score_batch(frame, "churn-classifier", output="data/scored")
        print(out.sink, out.rows, out.model_version)
        ```
    """

    model_name: str
    model_version: str
    rows: int
    output_uri: str = Field(..., description="The file written, or the sink when written as a log.")
    sink: str | None = Field(None, description="Prediction-log sink to pass to the drift check.")
    timestamp: datetime
    partitions: int = Field(1, description="Partitions scored (one per file of a partitioned dataset).")


def log_rows(
    frame: pd.DataFrame,
    features: list[str],
    predictions: Any,
    *,
    request_ids: Any,
    timestamp: datetime,
    model_name: str,
    model_version: str,
    served_by: str,
) -> pd.DataFrame:
    """The prediction log's rows for scored ``frame``: identity columns, the features, ``prediction``.

    A feature named like a reserved column (or ``prediction``) is written as ``feature_<name>``.

    Example:
        ```python
        rows = log_rows(frame, ["x"], [1, 0], request_ids=["a", "b"], timestamp=now,
                        model_name="churn", model_version="3", served_by="batch")
        ```
    """
    out = pd.DataFrame(
        {
            "request_id": np.asarray(request_ids, dtype=object),
            "timestamp": pd.Series([pd.Timestamp(timestamp)] * len(frame), dtype="datetime64[us, UTC]"),
            "model_name": model_name,
            "model_version": model_version,
            "served_by": served_by,
        }
    )
    for name in features:
        column = f"feature_{name}" if name in (*RESERVED_COLUMNS, PREDICTION_COLUMN) else name
        out[column] = frame[name].to_numpy()
    out[PREDICTION_COLUMN] = np.asarray(predictions)
    return out


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
) -> BatchPredictions:
    """Score ``frame`` with a registered model and write predictions in the prediction-log layout.

    The rows written have the prediction log's columns (``request_id``, ``timestamp``,
    ``model_name``, ``model_version``, ``served_by``, the features, ``prediction``), so
    :func:`mlops_tasks.monitoring.load_current` and the drift check read them like server traffic. ``output``
    ending in ``.parquet`` or ``.csv`` is written as one file; anything else is a sink
    (local folder or ``s3://`` prefix) written as ``date=YYYY-MM-DD/hour=HH/<stamp>.parquet``.

    Args:
        frame: Rows to score (extra columns are kept in the output only if they are features).
        model_name: Registered model.
        output: A file (``.parquet``/``.csv``) or a sink folder/prefix.
        alias: Alias scored with when ``version`` is not given.
        version: Version to score with.
        id_column: Column holding a row id to use as ``request_id`` (default: generated).
        mlflow_config: Where MLflow lives.
        s3: S3 endpoint and credentials.
        served_by: Written to ``served_by``.

    Returns:
        Where the predictions are and how many rows.

    Raises:
        ModelNotFoundError: No such model, version or alias.
        SchemaError: The frame lacks feature columns of the model.
        EmptyDatasetError: The frame has no rows.

    Example:
        ```python
        out = score_batch(frame, "churn-classifier", output="s3://scores/churn/")
        print(out.sink, out.rows)
        ```
    """
    from mlops_tasks.data import require_columns, write_dataset
    from mlops_tasks.registry import get_alias_version, get_model_version
    from mlops_tasks.tracking import connect, load_sklearn_model

    if frame.empty:
        raise EmptyDatasetError("The dataset to score has no rows.")
    resolved, client = connect(mlflow_config)
    mv = (
        get_model_version(client, model_name, version)
        if version is not None
        else get_alias_version(client, model_name, alias)
    )
    if mv is None:
        raise ModelNotFoundError(
            f"Model {model_name!r} has no version with alias {alias!r}; promote one or pass a version."
        )
    run = client.get_run(mv.run_id) if mv.run_id else None
    model = load_sklearn_model(resolved, f"models:/{model_name}/{mv.version}")
    params = run.data.params if run else {}
    features = [
        f for key in ("numeric_features", "categorical_features") for f in params.get(key, "").split(",") if f
    ]
    if not features:
        features = [str(c) for c in getattr(model, "feature_names_in_", frame.columns)]
    require_columns(frame, features, what=f"Scoring with {model_name} v{mv.version}")
    predictions = np.asarray(model.predict(frame[features]))
    now = datetime.now(UTC)
    ids = (
        frame[id_column].astype(str).to_numpy()
        if id_column
        else np.array([f"batch-{now:%Y%m%dT%H%M%S}-{i}" for i in range(len(frame))], dtype=object)
    )
    out = log_rows(
        frame,
        features,
        predictions,
        request_ids=ids,
        timestamp=now,
        model_name=model_name,
        model_version=str(mv.version),
        served_by=served_by,
    )
    suffix = Path(output.split("?")[0]).suffix.lower()
    if suffix in (".parquet", ".pq", ".csv"):
        uri = write_dataset(out, output, s3=s3)
        return BatchPredictions(
            model_name=model_name,
            model_version=str(mv.version),
            rows=len(out),
            output_uri=uri,
            sink=None,
            timestamp=now,
        )
    buffer = io.BytesIO()
    out.to_parquet(buffer, index=False)
    rel = f"date={now:%Y-%m-%d}/hour={now:%H}/{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.parquet"
    sink = Sink(output, s3_client_kwargs=(s3 or S3Config()).client_kwargs())
    sink.write(rel, buffer.getvalue())
    uri = f"{output.rstrip('/')}/{rel}"
    return BatchPredictions(
        model_name=model_name,
        model_version=str(mv.version),
        rows=len(out),
        output_uri=uri,
        sink=output,
        timestamp=now,
    )
