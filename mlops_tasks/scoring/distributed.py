"""Batch scoring larger than memory: each partition scored on the Dask worker that reads it.

:func:`score_partitions` lists the dataset's files on the client, resolves the model version
once and scatters it to every worker once (:mod:`mlops_tasks.scoring.shipping`), checks that
every partition has the same schema (reading only footers and headers, on the workers), then
maps one task per file: read it with the signature's dtypes, predict, write the prediction-log
rows atomically to a deterministic name in the sink. Only row counts come back to the client:
no step gathers the dataset.

Names are deterministic per job (``<stamp>Z-<job key>-p<index>.parquet`` under the log's
``date=/hour=`` folders, the job key a hash of the model version, the output and every input
file's size and content version), so a partition that Dask retries after its worker died, or
a whole job retried after a failure, overwrites its own file instead of adding a duplicate.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from mlops_tasks.cluster import DaskClusterSpec, is_loopback_address, use_or_open_client
from mlops_tasks.errors import ConfigurationError, SchemaError
from mlops_tasks.scoring.frame import BatchPredictions, log_rows
from mlops_tasks.scoring.partitions import (
    PARTITION_SUFFIXES,
    Partition,
    list_partitions,
    partition_schema,
    read_partition,
    s3_kwargs_on_worker,
)
from mlops_tasks.scoring.shipping import ModelPayload, fetch_model_payload, load_on_worker
from mlops_tasks.serving.sink import Sink
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = ["ScoringJob", "score_partition", "score_partitions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringJob:
    """What every partition task of one job shares (small: sent with each task)."""

    key: str
    timestamp: datetime
    output: str
    model_name: str
    model_version: str
    served_by: str
    id_column: str | None
    s3_plugin: str | None

    def relative_path(self, index: int) -> str:
        """The partition's file in the prediction-log layout (the same on every retry)."""
        ts = self.timestamp
        return f"date={ts:%Y-%m-%d}/hour={ts:%H}/{ts:%Y%m%dT%H%M%S%f}Z-{self.key}-p{index:05d}.parquet"


def score_partition(partition: str, index: int, payload: ModelPayload, job: ScoringJob) -> int:
    """Score one file on this worker and write its predictions atomically; returns the rows written.

    Raises:
        SchemaError: The file lacks a feature or a value does not fit its signature type.
        WorkerEnvironmentError: This worker's scikit-learn differs from the model's.
        ModelLoadError: The model cannot be deserialized on this worker.
        PredictionLogError: The sink cannot be written.
    """
    model = load_on_worker(payload)
    s3_kwargs = s3_kwargs_on_worker(job.s3_plugin)
    extra = [*payload.features, *([job.id_column] if job.id_column else [])]
    frame = read_partition(partition, payload.columns, s3_kwargs, extra)
    if frame.empty:
        return 0
    predictions = model.predict(frame[payload.features])
    ids = (
        frame[job.id_column].astype(str).to_numpy()
        if job.id_column
        else np.array([f"{job.key}-{index}-{row}" for row in range(len(frame))], dtype=object)
    )
    rows = log_rows(
        frame,
        payload.features,
        predictions,
        request_ids=ids,
        timestamp=job.timestamp,
        model_name=job.model_name,
        model_version=job.model_version,
        served_by=job.served_by,
    )
    buffer = io.BytesIO()
    rows.to_parquet(buffer, index=False)
    Sink(job.output, s3_client_kwargs=s3_kwargs).write(job.relative_path(index), buffer.getvalue())
    return len(rows)


def _partition_schema(partition: str, plugin: str | None) -> dict[str, str]:
    return partition_schema(partition, s3_kwargs_on_worker(plugin))


def _check_schemas(partitions: list[Partition], schemas: list[dict[str, str]], payload: ModelPayload) -> None:
    first, expected = partitions[0].uri, schemas[0]
    missing = [f for f in payload.features if f not in expected]
    if missing:
        raise SchemaError(
            f"Partition {first!r} lacks feature column(s) {missing} of {payload.label}; "
            f"it has {sorted(expected)}. Fix the data or score with a model trained on this schema."
        )
    for part, schema in zip(partitions[1:], schemas[1:], strict=True):
        if schema != expected:
            diff = sorted(set(schema.items()) ^ set(expected.items()))
            raise SchemaError(
                f"Partition {part.uri!r} has a different schema from {first!r} (differing columns/types: "
                f"{diff}); every partition must have the same columns and types. Fix or remove that file."
            )


def _job_key(
    partitions: list[Partition], payload: ModelPayload, output: str, served_by: str, ids: str | None
) -> str:
    identity = json.dumps(
        [
            payload.name,
            payload.version,
            payload.digest,
            output,
            served_by,
            ids,
            [tuple(p) for p in partitions],
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def _job_timestamp(sink: Sink, key: str) -> datetime:
    """The timestamp of an earlier attempt of this job (so its files are overwritten), else now."""
    for rel in sink.list_files():
        name = PurePosixPath(rel).name
        if f"Z-{key}-p" in name:
            return datetime.strptime(name.split("Z-", 1)[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    return datetime.now(UTC)


def _validate(dataset_uri: str, model_name: str, output: str) -> None:
    if not model_name.strip():
        raise ConfigurationError("model_name is empty; name the registered model to score with.")
    if not dataset_uri.strip():
        raise ConfigurationError("The dataset URI is empty; name a folder or s3:// prefix of partitions.")
    if PurePosixPath(output.split("?")[0]).suffix.lower() in PARTITION_SUFFIXES:
        raise ConfigurationError(
            f"Output {output!r} names one file, but partitioned scoring writes a prediction-log sink: "
            "pass a folder or an s3:// prefix."
        )


def _require_shared_output(address: str | None, output: str) -> None:
    if address is not None and not is_loopback_address(address) and not output.startswith("s3://"):
        raise ConfigurationError(
            f"The Dask scheduler {address} is on another machine, so its workers cannot write the local "
            f"folder {output!r}; pass an s3:// output (and an s3:// dataset the workers can read)."
        )


def _run(client: Any, partitions: list[Partition], payload: ModelPayload, job: ScoringJob) -> int:
    uris = [p.uri for p in partitions]
    schemas = client.gather(client.map(_partition_schema, uris, plugin=job.s3_plugin, pure=False))
    _check_schemas(partitions, schemas, payload)
    model = client.scatter(payload, broadcast=True, hash=False)
    futures = client.map(
        score_partition,
        uris,
        range(len(uris)),
        payload=model,
        job=job,
        key=[f"score-{job.key}-p{i:05d}" for i in range(len(uris))],
    )
    try:
        return int(sum(client.gather(futures)))
    finally:
        client.cancel([*futures, model])


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
    client: Any = None,
) -> BatchPredictions:
    """Score a partitioned dataset on a Dask cluster, one partition per task, into a prediction-log sink.

    Args:
        dataset_uri: A folder or ``s3://`` prefix of Parquet (or CSV) files of one schema.
        model_name: Registered model.
        output: Sink folder or ``s3://`` prefix (``s3://`` when the cluster is on other machines).
        alias: Alias resolved once, when ``version`` is not given.
        version: Version to score with.
        id_column: Column holding a row id to use as ``request_id`` (default: ``<job>-<part>-<row>``).
        mlflow_config: Where MLflow lives (read on the client only).
        s3: S3 endpoint and credentials for the dataset and the sink (sent to the workers in a
            Dask worker plugin).
        served_by: Written to ``served_by``.
        cluster: The Dask cluster (by address, or a local one started for the job); ignored when
            ``client`` is given.
        client: A connected ``distributed.Client`` (e.g. from prefect-dask's task runner).

    Returns:
        The sink written, the rows, and the number of partitions.

    Raises:
        ConfigurationError: Bad arguments, or a local output with a cluster on other machines.
        DatasetNotFoundError: The dataset folder does not exist.
        EmptyDatasetError: The folder or prefix holds no Parquet or CSV file.
        SchemaError: A partition's schema differs from the others' (named), or lacks a feature.
        ModelNotFoundError: No such model, version or alias.
        ClusterUnavailableError: The Dask scheduler did not answer.
        WorkerEnvironmentError: A worker's scikit-learn differs from the model's.
        ModelLoadError: The workers cannot deserialize the model.

    Example:
        ```python
        from mlops_tasks.cluster import DaskClusterSpec
        out = score_partitions("data/scoring/2026-11", "churn-classifier",
                               output="data/scoring/2026-11-predictions",
                               cluster=DaskClusterSpec(n_workers=2))
        print(out.rows, out.partitions, out.sink)
        ```
    """
    _validate(dataset_uri, model_name, output)
    spec = cluster or DaskClusterSpec()
    if client is None:
        _require_shared_output(spec.address, output)
    uses_s3 = dataset_uri.startswith("s3://") or output.startswith("s3://")
    s3_kwargs = (s3 or S3Config()).client_kwargs() if uses_s3 else {}
    partitions = list_partitions(dataset_uri, s3_kwargs)
    payload = fetch_model_payload(model_name, alias=alias, version=version, mlflow_config=mlflow_config)
    key = _job_key(partitions, payload, output, served_by, id_column)
    sink = Sink(output, s3_client_kwargs=s3_kwargs)
    sink.check()
    job = ScoringJob(
        key=key,
        timestamp=_job_timestamp(sink, key),
        output=output,
        model_name=model_name,
        model_version=payload.version,
        served_by=served_by,
        id_column=id_column,
        s3_plugin=f"mlops-s3-{key}" if uses_s3 else None,
    )
    with use_or_open_client(spec, client) as dask_client:
        if client is not None:
            _require_shared_output(str(dask_client.scheduler.address), output)
        if job.s3_plugin is not None:
            from mlops_tasks.scoring.worker_plugin import S3Credentials

            dask_client.register_plugin(S3Credentials(job.s3_plugin, s3_kwargs))
        try:
            rows = _run(dask_client, partitions, payload, job)
        finally:
            if job.s3_plugin is not None:
                dask_client.unregister_worker_plugin(job.s3_plugin)
    logger.info(
        "Scored %d rows in %d partitions with %s -> %s (job %s)",
        rows,
        len(partitions),
        payload.label,
        output,
        key,
    )
    return BatchPredictions(
        model_name=model_name,
        model_version=payload.version,
        rows=rows,
        output_uri=output,
        sink=output,
        timestamp=job.timestamp,
        partitions=len(partitions),
    )
