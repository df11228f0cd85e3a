"""Where prediction-log files go: a local folder or an ``s3://bucket/prefix``, in hour partitions.

The layout is ``<sink>/date=YYYY-MM-DD/hour=HH/<file>`` (:mod:`mlops_tasks.serving.predlog`
writes and reads it); :class:`Sink` writes, lists, reads and deletes those files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_tasks.errors import PredictionLogError

__all__ = ["Sink", "partition_start"]


def _s3_client(endpoint_url: str | None = None, client_kwargs: dict[str, Any] | None = None) -> Any:
    import boto3

    kwargs = dict(client_kwargs or {})
    endpoint = endpoint_url or kwargs.pop("endpoint_url", None) or os.environ.get("MLOPS_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None, **kwargs)


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise PredictionLogError(f"S3 sink {uri!r} names no bucket.")
    return bucket, prefix.strip("/")


class Sink:
    """Where log files go: a local folder or an ``s3://bucket/prefix``.

    Args:
        uri: Local path or ``s3://`` URI.
        s3_endpoint_url: S3 API endpoint (else ``MLOPS_S3_ENDPOINT_URL`` or boto3's default).
        s3_client_kwargs: Further ``boto3.client("s3", ...)`` arguments (credentials, region),
            e.g. ``S3Config(block="prod").client_kwargs()``.

    Example:
        ```python
        sink = Sink("/var/log/predictions")
        sink.write("date=2026-01-01/hour=00/x.parquet", b"...")
        ```
    """

    def __init__(
        self, uri: str, s3_endpoint_url: str | None = None, *, s3_client_kwargs: dict[str, Any] | None = None
    ) -> None:
        self.uri = uri
        self.is_s3 = uri.startswith("s3://")
        self._endpoint = s3_endpoint_url
        self._client_kwargs = s3_client_kwargs
        self._client: Any = None
        if self.is_s3:
            self.bucket, self.prefix = _split_s3(uri)
        else:
            self.root = Path(uri[len("file://") :] if uri.startswith("file://") else uri)

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            self._client = _s3_client(self._endpoint, self._client_kwargs)
        return self._client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def check(self) -> None:
        """Make sure the sink can be written to (creates the local folder).

        Raises:
            PredictionLogError: The folder cannot be created or the bucket is unreachable.
        """
        try:
            if self.is_s3:
                self.client.head_bucket(Bucket=self.bucket)
            else:
                self.root.mkdir(parents=True, exist_ok=True)
                if not os.access(self.root, os.W_OK):
                    raise PermissionError(f"{self.root} is not writable")
        except Exception as exc:
            raise PredictionLogError(f"Prediction log sink {self.uri} is not writable: {exc}") from exc

    def write(self, rel: str, data: bytes) -> None:
        """Write one file atomically.

        Raises:
            PredictionLogError: The write failed.
        """
        try:
            if self.is_s3:
                self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)
                return
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.tmp"
            with tmp.open("wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except Exception as exc:
            raise PredictionLogError(f"Cannot write {rel} to {self.uri}: {exc}") from exc

    def list_files(self) -> list[str]:
        """Relative paths of all log files (hidden temporary files excluded), sorted."""
        out: list[str] = []
        if self.is_s3:
            paginator = self.client.get_paginator("list_objects_v2")
            base = f"{self.prefix}/" if self.prefix else ""
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(base) :]
                    if rel.startswith("date=") and not rel.rsplit("/", 1)[-1].startswith("."):
                        out.append(rel)
        elif self.root.is_dir():
            for path in self.root.glob("date=*/hour=*/*"):
                if path.is_file() and not path.name.startswith("."):
                    out.append(path.relative_to(self.root).as_posix())
        return sorted(out)

    def read(self, rel: str) -> bytes:
        """Bytes of one log file."""
        if self.is_s3:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
            return data
        return (self.root / rel).read_bytes()

    def delete(self, rels: Sequence[str]) -> None:
        """Delete log files and, locally, the partition folders they leave empty."""
        if not rels:
            return
        if self.is_s3:
            for start in range(0, len(rels), 1000):
                chunk = [{"Key": self._key(r)} for r in rels[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
            return
        for rel in rels:
            path = self.root / rel
            path.unlink(missing_ok=True)
            for parent in (path.parent, path.parent.parent):
                try:
                    parent.rmdir()
                except OSError:
                    break


def partition_start(rel: str) -> datetime | None:
    """The UTC start of the hour partition a relative path lies in."""
    parts = rel.split("/")
    if len(parts) < 3 or not parts[0].startswith("date=") or not parts[1].startswith("hour="):
        return None
    try:
        day = datetime.strptime(parts[0][5:], "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(hours=int(parts[1][5:]))
    except ValueError:
        return None
