"""A partitioned dataset: a folder or ``s3://`` prefix of Parquet or CSV files, read one file at a time.

The client only lists the files (:func:`list_partitions`); the workers read them. S3
credentials reach the workers inside a Dask worker plugin
(:class:`mlops_tasks.scoring.worker_plugin.S3Credentials`, registered by the client through
Dask's own plugin mechanism), never through the workers' environment.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import pandas as pd

from mlops_tasks.errors import DatasetNotFoundError, EmptyDatasetError, SchemaError
from mlops_tasks.serving.model import ColumnSpec

__all__ = [
    "PARTITION_SUFFIXES",
    "Partition",
    "is_partitioned",
    "list_partitions",
    "partition_schema",
    "read_columns",
    "read_partition",
    "s3_kwargs_on_worker",
]

PARTITION_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class Partition(NamedTuple):
    """One file of a partitioned dataset and what identifies its content (size, ETag or mtime)."""

    uri: str
    size: int
    version: str


def is_partitioned(uri: str) -> bool:
    """Whether ``uri`` names a folder or prefix of files rather than one file.

    Example:
        ```python
        assert is_partitioned("s3://data/scoring/2026-11/") and not is_partitioned("data/x.parquet")
        ```
    """
    if PurePosixPath(uri.split("?")[0]).suffix.lower() in PARTITION_SUFFIXES:
        return False
    return uri.startswith("s3://") or Path(uri).expanduser().is_dir() or uri.endswith("/")


def _list_s3(uri: str, s3_kwargs: dict[str, Any]) -> list[Partition]:
    import boto3

    from mlops_tasks.data import translate_s3_error

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    found: list[Partition] = []
    try:
        paginator = boto3.client("s3", **s3_kwargs).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=base):
            found.extend(
                Partition(f"s3://{bucket}/{obj['Key']}", int(obj.get("Size", 0)), str(obj.get("ETag", "")))
                for obj in page.get("Contents", [])
            )
    except Exception as exc:
        raise translate_s3_error(exc, uri) from exc
    return found


def list_partitions(uri: str, s3_kwargs: dict[str, Any] | None = None) -> list[Partition]:
    """The dataset's files (``.parquet``/``.pq`` or ``.csv``, hidden files skipped), sorted.

    Args:
        uri: A local folder (searched recursively) or an ``s3://bucket/prefix``.
        s3_kwargs: ``boto3.client("s3", ...)`` arguments for an ``s3://`` prefix.

    Returns:
        The files (paths or ``s3://`` URIs, all of one format) with their size and content version.

    Raises:
        DatasetNotFoundError: The local folder does not exist.
        EmptyDatasetError: No Parquet or CSV file under ``uri``.
        SchemaError: Files of both formats are mixed.

    Example:
        ```python
        files = list_partitions("data/scoring/2026-11")
        ```
    """
    if uri.startswith("s3://"):
        found = _list_s3(uri, s3_kwargs or {})
    else:
        root = Path(uri).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"Dataset folder {str(root)!r} does not exist; check the path (relative paths are "
                f"resolved from {Path.cwd()})."
            )
        found = [
            Partition(str(p), (st := p.stat()).st_size, str(st.st_mtime_ns))
            for p in root.rglob("*")
            if p.is_file()
        ]
    files = sorted(
        (
            f
            for f in found
            if PurePosixPath(f.uri).suffix.lower() in PARTITION_SUFFIXES
            and not PurePosixPath(f.uri).name.startswith(".")
        ),
        key=lambda f: f.uri,
    )
    if not files:
        raise EmptyDatasetError(
            f"Dataset {uri!r} holds no .parquet or .csv file; point at a folder or prefix of partitions."
        )
    formats = {PARTITION_SUFFIXES[PurePosixPath(f.uri).suffix.lower()] for f in files}
    if len(formats) > 1:
        odd = next(f.uri for f in files if PurePosixPath(f.uri).suffix.lower() == ".csv")
        raise SchemaError(
            f"Dataset {uri!r} mixes Parquet and CSV files (e.g. {odd!r}); keep one format per dataset."
        )
    return files


def s3_kwargs_on_worker(plugin_name: str | None) -> dict[str, Any]:
    """The S3 client arguments registered as plugin ``plugin_name`` on this worker (``{}`` if none)."""
    if plugin_name is None:
        return {}
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(plugin_name)
    except ValueError:  # not running on a worker
        return {}
    return dict(getattr(plugin, "client_kwargs", {}) or {})


def _source(uri: str, s3_kwargs: dict[str, Any]) -> Any:
    if not uri.startswith("s3://"):
        return uri
    import boto3

    from mlops_tasks.data import split_s3_uri, translate_s3_error

    bucket, key = split_s3_uri(uri)
    try:
        body = boto3.client("s3", **s3_kwargs).get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise translate_s3_error(exc, uri) from exc
    return io.BytesIO(body)


def partition_schema(uri: str, s3_kwargs: dict[str, Any]) -> dict[str, str]:
    """Column name -> type name of one partition (Parquet: Arrow types; CSV: the header, untyped).

    Reads only the Parquet footer (a local file) or the CSV header.
    """
    try:
        if uri.lower().endswith(".csv"):
            header = pd.read_csv(_source(uri, s3_kwargs), nrows=0)
            return {str(c): "csv" for c in header.columns}
        import pyarrow.parquet as pq

        schema = pq.read_schema(_source(uri, s3_kwargs))
        return {name: str(schema.field(name).type) for name in schema.names}
    except (OSError, ValueError) as exc:
        raise SchemaError(f"Partition {uri!r} cannot be read as a table ({exc}); fix or remove it.") from exc


def read_partition(
    uri: str, columns: list[ColumnSpec], s3_kwargs: dict[str, Any], extra: list[str]
) -> pd.DataFrame:
    """Read the signature's columns (and ``extra``) of one partition, cast to the signature's dtypes.

    Raises:
        SchemaError: The file lacks a column or a value does not fit its signature type.
    """
    wanted = [c.name for c in columns] + [e for e in extra if e not in {c.name for c in columns}]
    try:
        if uri.lower().endswith(".csv"):
            frame = pd.read_csv(_source(uri, s3_kwargs), usecols=wanted)
        else:
            frame = pd.read_parquet(_source(uri, s3_kwargs), columns=wanted)
    except (KeyError, ValueError) as exc:
        raise SchemaError(
            f"Partition {uri!r} lacks column(s) the model needs ({exc}); it needs {wanted}."
        ) from exc
    for spec in columns:
        try:
            frame[spec.name] = frame[spec.name].astype(spec.dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(
                f"Column {spec.name!r} of partition {uri!r} does not fit the model signature type "
                f"{spec.type!r} ({exc}); fix the file or retrain on this schema."
            ) from exc
    return frame


def read_columns(uri: str, columns: list[str] | None, s3_kwargs: dict[str, Any]) -> pd.DataFrame:
    """Read only ``columns`` (``None``: all) of one partition (Parquet reads nothing else from the file).

    Raises:
        SchemaError: The file lacks one of the columns.
    """
    try:
        if uri.lower().endswith(".csv"):
            return pd.read_csv(_source(uri, s3_kwargs), usecols=columns)
        return pd.read_parquet(_source(uri, s3_kwargs), columns=columns)
    except (KeyError, ValueError) as exc:
        raise SchemaError(f"Partition {uri!r} lacks column(s) of {columns} ({exc}).") from exc
