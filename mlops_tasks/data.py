"""Datasets: read and write CSV or Parquet from a local path or ``s3://``, fingerprint, split.

The fingerprint is a SHA-256 over column names and row contents (pandas'
stable row hashing), so the same data gives the same fingerprint wherever it
is read from; it is recorded on every training run as lineage.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops_tasks.errors import (
    ConfigurationError,
    DataError,
    DatasetNotFoundError,
    EmptyDatasetError,
    SchemaError,
    ServiceUnavailableError,
    StorageError,
)
from mlops_tasks.settings import S3Config

__all__ = [
    "DatasetFormat",
    "DatasetInfo",
    "DatasetSpec",
    "LoadedDataset",
    "fingerprint_frame",
    "load_dataset",
    "require_columns",
    "s3_client",
    "split_dataset",
    "split_s3_uri",
    "translate_s3_error",
    "write_dataset",
]

logger = logging.getLogger(__name__)

DatasetFormat = Literal["auto", "csv", "parquet"]


class DatasetSpec(BaseModel):
    """Where a dataset lives and how to read it.

    Example:
        ```python
        from mlops_tasks.data import DatasetSpec
        spec = DatasetSpec(uri="s3://bucket/churn/2026-11.parquet", target="churned")
        ```
    """

    model_config = ConfigDict(frozen=True)

    uri: str = Field(..., description="Local path or s3://bucket/key of a CSV or Parquet file.")
    format: DatasetFormat = Field("auto", description="File format; 'auto' uses the suffix.")
    name: str | None = Field(None, description="Name recorded as lineage; defaults to the file name.")
    s3: S3Config | None = Field(None, description="S3 endpoint and credentials for s3:// URIs.")

    @property
    def display_name(self) -> str:
        """The dataset's name: ``name`` or the file name of the URI."""
        return self.name or Path(urlparse(self.uri).path).name or self.uri


class DatasetInfo(BaseModel):
    """What was read: recorded as lineage on training runs."""

    uri: str
    name: str
    format: Literal["csv", "parquet"]
    rows: int
    columns: list[str]
    fingerprint: str = Field(..., description="sha256 of column names and row contents.")


@dataclass
class LoadedDataset:
    """A DataFrame together with the lineage of where it came from."""

    frame: pd.DataFrame
    info: DatasetInfo


def _resolve_format(uri: str, fmt: DatasetFormat) -> Literal["csv", "parquet"]:
    if fmt != "auto":
        return fmt
    suffix = Path(urlparse(uri).path).suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".csv", ".txt"}:
        return "csv"
    raise ConfigurationError(
        f"Cannot tell the format of dataset {uri!r} from its suffix {suffix!r}; "
        "pass format='csv' or format='parquet'."
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Bucket and key of ``s3://bucket/key``.

    Args:
        uri: An ``s3://`` URI naming an object.

    Returns:
        ``(bucket, key)``.

    Raises:
        ConfigurationError: The URI has no bucket or no key.

    Example:
        ```python
        from mlops_tasks.data import split_s3_uri
        assert split_s3_uri("s3://data/churn/train.parquet") == ("data", "churn/train.parquet")
        ```
    """
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise ConfigurationError(f"S3 URI {uri!r} must look like s3://bucket/key.")
    return bucket, key


def s3_client(s3: S3Config | None = None) -> Any:
    """A boto3 S3 client built from ``s3`` (explicit fields, its block) or the environment.

    Raises:
        BlockNotFoundError: ``s3.block`` names no ``AwsCredentials`` block.
    """
    import boto3

    return boto3.client("s3", **(s3 or S3Config()).client_kwargs())


def translate_s3_error(exc: Exception, uri: str, s3: S3Config | None = None) -> Exception:
    """Map a boto3/botocore exception on ``uri`` into the library's exception tree.

    ``s3`` (the settings used) lets the message say where the refused credentials came from.
    """
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError):
        return ServiceUnavailableError(
            f"S3 endpoint for {uri!r} did not answer ({exc}); check the endpoint URL "
            "(MLOPS_S3_ENDPOINT_URL / AWS_ENDPOINT_URL) and that the server runs."
        )
    if isinstance(exc, NoCredentialsError):
        return StorageError(
            f"No AWS credentials to read {uri!r}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or pass an S3Config."
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchBucket", "NoSuchKey", "404", "NotFound"}:
            return DatasetNotFoundError(f"{uri!r} does not exist (S3 said {code}); check the bucket and key.")
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            source = (s3 or S3Config()).describe_source()
            what = (
                "the access key id is unknown"
                if code == "InvalidAccessKeyId"
                else "the secret key does not match"
                if code == "SignatureDoesNotMatch"
                else "the credentials lack permission"
            )
            return StorageError(
                f"S3 refused access to {uri!r} ({code}: {what}); the credentials came from {source}: "
                "fix them there (rotate the AwsCredentials block, or AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY) or the bucket policy."
            )
        return StorageError(f"S3 request for {uri!r} failed ({code}): {exc}")
    return StorageError(f"S3 request for {uri!r} failed: {exc}")


def _read_bytes(uri: str, s3: S3Config | None) -> bytes:
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        client = s3_client(s3)
        try:
            data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return data
        except Exception as exc:
            raise translate_s3_error(exc, uri, s3) from exc
    path = Path(uri).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Dataset file {str(path)!r} does not exist; check the path (relative paths are "
            f"resolved from {Path.cwd()})."
        )
    return path.read_bytes()


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """A stable content fingerprint of ``frame``: sha256 of column names and row hashes.

    Example:
        ```python
        import pandas as pd
        from mlops_tasks.data import fingerprint_frame
        assert fingerprint_frame(pd.DataFrame({"a": [1]})) == fingerprint_frame(pd.DataFrame({"a": [1]}))
        ```
    """
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Read a CSV or Parquet dataset from a local path or ``s3://`` and fingerprint it.

    Args:
        spec: Where the dataset is and how to read it.

    Returns:
        The frame and its lineage (:class:`DatasetInfo`).

    Raises:
        ConfigurationError: The URI or format is not usable.
        DatasetNotFoundError: The file, bucket or key does not exist.
        EmptyDatasetError: The file holds no rows or no columns.
        StorageError: S3 refused the request.
        ServiceUnavailableError: The S3 endpoint did not answer.
        DataError: The file is not valid CSV or Parquet.

    Example:
        ```python
        from mlops_tasks.data import DatasetSpec, load_dataset
        ds = load_dataset(DatasetSpec(uri="data/churn.csv"))
        print(ds.info.rows, ds.info.fingerprint[:12])
        ```
    """
    fmt = _resolve_format(spec.uri, spec.format)
    raw = _read_bytes(spec.uri, spec.s3)
    if not raw.strip():
        raise EmptyDatasetError(f"Dataset {spec.uri!r} is empty (0 bytes); point at a file with data.")
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(raw))
        else:
            frame = pd.read_parquet(io.BytesIO(raw))
    except pd.errors.EmptyDataError as exc:
        raise EmptyDatasetError(f"Dataset {spec.uri!r} has no columns; check the file.") from exc
    except Exception as exc:
        raise DataError(
            f"Dataset {spec.uri!r} could not be parsed as {fmt} ({exc}); check the file or its format."
        ) from exc
    if frame.empty:
        raise EmptyDatasetError(f"Dataset {spec.uri!r} has a header but no rows; point at a file with data.")
    info = DatasetInfo(
        uri=spec.uri,
        name=spec.display_name,
        format=fmt,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        fingerprint=fingerprint_frame(frame),
    )
    logger.info("Loaded dataset %s: %d rows, fingerprint %s", spec.uri, info.rows, info.fingerprint[:12])
    return LoadedDataset(frame=frame, info=info)


def write_dataset(frame: pd.DataFrame, uri: str, *, s3: S3Config | None = None) -> str:
    """Write ``frame`` as CSV or Parquet (by suffix) to a local path or ``s3://``.

    Args:
        frame: Data to write.
        uri: Destination; the suffix (.csv or .parquet) picks the format.
        s3: S3 endpoint and credentials for ``s3://`` destinations.

    Returns:
        The URI written.

    Raises:
        ConfigurationError: Unknown suffix or malformed S3 URI.
        StorageError: S3 refused the write.
        ServiceUnavailableError: The S3 endpoint did not answer.
    """
    fmt = _resolve_format(uri, "auto")
    buffer = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        client = s3_client(s3)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        except Exception as exc:
            raise translate_s3_error(exc, uri, s3) from exc
    else:
        path = Path(uri).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
    logger.info("Wrote %d rows to %s", len(frame), uri)
    return uri


def require_columns(frame: pd.DataFrame, columns: list[str], *, what: str) -> None:
    """Raise :class:`SchemaError` naming every column of ``columns`` missing from ``frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{what} needs column(s) {missing} which the data lacks "
            f"(it has {list(map(str, frame.columns))}); fix the data or the spec."
        )


def split_dataset(
    frame: pd.DataFrame,
    *,
    target: str,
    holdout_fraction: float = 0.2,
    seed: int = 42,
    stratify: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and holdout deterministically (same seed, same rows).

    Args:
        frame: The full dataset, target column included.
        target: Target column; used for stratification.
        holdout_fraction: Share of rows kept out for evaluation, in (0, 1).
        seed: Random seed; the same seed gives the same split.
        stratify: Keep class proportions in both parts (classification).

    Returns:
        ``(train, holdout)`` frames with a fresh index.

    Raises:
        ConfigurationError: ``holdout_fraction`` out of range.
        SchemaError: The target column is missing.
        DataError: Too few rows, or a class too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < holdout_fraction < 1.0:
        raise ConfigurationError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}.")
    require_columns(frame, [target], what="Splitting")
    if len(frame) < 4:
        raise DataError(f"Only {len(frame)} rows: too few to split into train and holdout.")
    labels = None
    if stratify:
        counts = frame[target].value_counts()
        if (counts < 2).any():
            raise DataError(
                f"Target {target!r} has classes with a single row ({list(counts[counts < 2].index)}); "
                "stratified splitting needs at least 2 per class: add data or set stratify=False."
            )
        labels = frame[target]
    train, holdout = train_test_split(frame, test_size=holdout_fraction, random_state=seed, stratify=labels)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)
