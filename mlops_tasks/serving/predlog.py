"""Prediction log: every answered row, written off the request path in batches.

Layout (one file per flush and hour, never rewritten)::

    <sink>/date=YYYY-MM-DD/hour=HH/<YYYYMMDDTHHMMSSffffff>Z-<uuid8>.parquet   (or .jsonl)

Columns: ``request_id``, ``timestamp`` (UTC), ``model_name``, ``model_version``,
``served_by``, ``caller`` (the API key's name the router vouched for; null without
keys, and in partitions written before the column existed), ``variant`` and ``subject``
(A/B tests: the variant the router assigned and the caller's ``X-Subject-Id``; nullable,
written only by files that saw them, so older partitions read with nulls there), one
column per input feature (a feature whose name clashes with one of these gets the prefix
``feature_``), and ``prediction``.

``<sink>`` is a local folder (files are written to a hidden temporary name and
renamed, so readers never see half a file) or an ``s3://bucket/prefix`` (one
``PutObject`` per file; the endpoint comes from ``MLOPS_S3_ENDPOINT_URL`` or boto3's
own configuration). :func:`read_prediction_log` reads it back.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlops_tasks.errors import DatasetNotFoundError, PredictionLogError
from mlops_tasks.serving.sink import Sink, partition_start

logger = logging.getLogger("mlops_tasks.serving.predlog")

RESERVED_COLUMNS = (
    "request_id",
    "timestamp",
    "model_name",
    "model_version",
    "served_by",
    "caller",
    "variant",
    "subject",
)
#: Nullable string columns written only when some request of the file had them.
AB_COLUMNS = ("variant", "subject")
FORMATS = ("parquet", "jsonl")


@dataclass
class _Entry:
    request_ids: list[str]  # one per request
    timestamps: list[float]  # one per request
    row_counts: list[int] | None  # rows per request (None: one row each)
    features: Any  # 2-D ndarray (signature order) or dict name -> 1-D array
    predictions: np.ndarray
    n_rows: int
    callers: list[str | None] | None = None  # one per request (None: no caller known)
    variants: list[str | None] | None = None  # one per request (A/B tests)
    subjects: list[str | None] | None = None


@dataclass
class LogStats:
    """Counters of a :class:`PredictionLogWriter` (read by ``/metrics`` and ``/health``).

    Example:
        ```python
        stats = writer.stats
        print(stats.written_rows, stats.dropped_rows, stats.last_error)
        ```
    """

    written_rows: int = 0
    dropped_rows: int = 0
    files_written: int = 0
    write_errors: int = 0
    pruned_files: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PredictionLogWriter:
    """Buffer answered rows and write them to a sink from a background thread.

    ``append`` only puts a reference on a list (no I/O, no conversion); the thread
    wakes every ``flush_interval_s`` (or sooner once ``max_batch_rows`` are waiting),
    builds one table per hour partition and writes it. A write that fails drops its
    rows and counts them in ``stats.dropped_rows``; so do rows that arrive while more
    than ``max_pending_rows`` wait. :meth:`close` writes everything still buffered.

    Args:
        sink: Local folder or ``s3://bucket/prefix``.
        feature_names: Input column names in signature order (for matrix entries).
        model_name: Written to every row.
        model_version: Written to every row.
        served_by: Instance name written to every row.
        fmt: ``parquet`` or ``jsonl``.
        flush_interval_s: Seconds between flushes.
        max_batch_rows: Rows that trigger an early flush.
        max_pending_rows: Rows buffered at most; more are dropped (and counted).
        retention_hours: Partitions whose hour ended more than this long ago are
            deleted (at start and hourly); ``None`` or ``0`` keeps everything.
        s3_endpoint_url: S3 API endpoint for ``s3://`` sinks.

    Example:
        ```python
        writer = PredictionLogWriter("/tmp/plog", ["x"], "m", "1", "host:8080")
        writer.start()
        writer.append(["req-1"], [time.time()], np.array([[1.0]]), np.array([0]))
        # two requests, 2 rows and 1 row
        writer.append(["a", "b"], [time.time()] * 2, np.array([[1.0], [2.0], [3.0]]),
                      np.array([0, 1, 1]), row_counts=[2, 1])
        writer.close()
        ```
    """

    def __init__(
        self,
        sink: str,
        feature_names: Sequence[str],
        model_name: str,
        model_version: str,
        served_by: str,
        fmt: str = "parquet",
        flush_interval_s: float = 2.0,
        max_batch_rows: int = 50_000,
        max_pending_rows: int = 1_000_000,
        retention_hours: float | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise PredictionLogError(f"Unknown prediction log format {fmt!r}; use {FORMATS}.")
        self.sink = Sink(sink, s3_endpoint_url)
        self.feature_names = list(feature_names)
        self.model_name = model_name
        self.model_version = model_version
        self.served_by = served_by
        self.fmt = fmt
        self.flush_interval_s = flush_interval_s
        self.max_batch_rows = max_batch_rows
        self.max_pending_rows = max_pending_rows
        self.retention_hours = retention_hours or None
        self.stats = LogStats()
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    # -- request path ---------------------------------------------------------------

    def append(
        self,
        request_ids: list[str],
        timestamps: list[float],
        features: Any,
        predictions: np.ndarray,
        row_counts: list[int] | None = None,
        callers: list[str | None] | None = None,
        variants: list[str | None] | None = None,
        subjects: list[str | None] | None = None,
    ) -> None:
        """Queue rows for writing (cheap; safe from any thread).

        Args:
            request_ids: One id per row, or one per request when ``row_counts`` is given.
            timestamps: One UNIX time per entry of ``request_ids``.
            features: ``(n_rows, n_features)`` array in ``feature_names`` order, or a dict
                of column name -> 1-D array.
            predictions: One prediction per row.
            row_counts: Rows of each request (they sum to the number of rows).
            callers: The caller (API key name) of each entry of ``request_ids``; None
                when no caller is known.
            variants: A/B variant of each entry of ``request_ids`` (``None``: not in a test).
            subjects: The caller's subject of each entry of ``request_ids``.
        """
        n = len(request_ids) if row_counts is None else sum(row_counts)
        with self._lock:
            if self._pending_rows + n > self.max_pending_rows:
                self.stats.dropped_rows += n
                return
            self._pending.append(
                _Entry(
                    request_ids, timestamps, row_counts, features, predictions, n, callers, variants, subjects
                )
            )
            self._pending_rows += n
            wake = self._pending_rows >= self.max_batch_rows
        if wake:
            self._wake.set()

    @property
    def degraded(self) -> str | None:
        """Why the log is degraded (its last write error), or ``None`` when healthy."""
        return self.stats.last_error

    @property
    def pending_rows(self) -> int:
        """Rows waiting to be written."""
        return self._pending_rows

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Check the sink, prune old partitions and start the writer thread.

        A sink that cannot be written is reported through :attr:`degraded`, not raised:
        the server keeps answering.
        """
        # Import the encoders now, not in the first flush while requests are being served.
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        try:
            self.sink.check()
        except PredictionLogError as exc:
            self._fail(str(exc))
            logger.error("%s", exc)
        self._prune_if_due(force=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything buffered and stop the thread."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()

    def flush(self) -> None:
        """Write all buffered rows now (in the calling thread)."""
        with self._lock:
            entries, self._pending, self._pending_rows = self._pending, [], 0
        if entries:
            self._write(entries)

    def _run(self) -> None:
        try:  # Linux: lower this thread's priority so the request thread wins the CPU
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stop
            try:
                self.flush()
                self._prune_if_due()
            except Exception as exc:  # never let the thread die
                logger.exception("prediction log writer error")
                self._fail(f"{type(exc).__name__}: {exc}")
            if stopping:
                return

    def _fail(self, message: str) -> None:
        self.stats.write_errors += 1
        self.stats.last_error = message
        self.stats.last_error_time = time.time()

    # -- writing -----------------------------------------------------------------------

    def _columns(self, entries: list[_Entry]) -> dict[str, Any]:
        ids: list[str] = []
        times: list[float] = []
        counts: list[int] = []
        callers: list[str | None] = []
        for e in entries:
            ids.extend(e.request_ids)
            callers.extend(e.callers if e.callers is not None else [None] * len(e.request_ids))
            times.extend(e.timestamps)
            counts.extend(e.row_counts if e.row_counts is not None else [1] * len(e.request_ids))
        repeat = np.array(counts, dtype=np.int64)
        cols: dict[str, Any] = {
            "request_id": np.repeat(np.array(ids, dtype=object), repeat),
            "timestamp": np.repeat(
                (np.array(times, dtype=np.float64) * 1e6).astype("datetime64[us]"), repeat
            ),
        }
        n = int(repeat.sum())
        cols["model_name"] = np.full(n, self.model_name, dtype=object)
        cols["model_version"] = np.full(n, self.model_version, dtype=object)
        cols["served_by"] = np.full(n, self.served_by, dtype=object)
        cols["caller"] = np.repeat(np.array(callers, dtype=object), repeat)
        if any(e.variants is not None or e.subjects is not None for e in entries):
            for name, attr in (("variant", "variants"), ("subject", "subjects")):
                texts: list[str | None] = []
                for e in entries:
                    texts.extend(getattr(e, attr) or [None] * len(e.request_ids))
                cols[name] = np.repeat(np.array(texts, dtype=object), repeat)
        names = self.feature_names
        if not names and entries and isinstance(entries[0].features, dict):
            names = list(entries[0].features)
        matrices = all(not isinstance(e.features, dict) for e in entries)
        matrix = np.concatenate([e.features for e in entries]) if matrices and entries else None
        for j, name in enumerate(names):
            if matrix is not None:
                values = matrix[:, j]
            else:
                values = np.concatenate(
                    [
                        np.asarray(e.features[name]) if isinstance(e.features, dict) else e.features[:, j]
                        for e in entries
                    ]
                )
            reserved = name in RESERVED_COLUMNS or name == "prediction"
            cols[f"feature_{name}" if reserved else name] = values
        preds = [np.asarray(e.predictions) for e in entries]
        pred = np.concatenate(preds) if preds else np.array([])
        cols["prediction"] = list(pred) if pred.ndim > 1 else pred
        return cols

    def _encode(self, cols: dict[str, Any], rows: np.ndarray | None) -> bytes:
        import pyarrow as pa

        arrays = {}
        for name, values in cols.items():
            v = (
                values
                if rows is None
                else ([values[i] for i in rows] if isinstance(values, list) else values[rows])
            )
            if name == "timestamp":
                arrays[name] = pa.array(v, type=pa.timestamp("us", tz="UTC"))
            elif isinstance(v, list):
                arrays[name] = pa.array([np.asarray(x).tolist() for x in v])
            else:
                arrays[name] = pa.array(v, from_pandas=True)
        table = pa.table(arrays)
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            # A native Arrow buffer: no Python callbacks (and no GIL) while encoding.
            sink = pa.BufferOutputStream()
            # Dictionary-encode only the string columns: trying it on unique floats
            # costs several times the rest of the encoding.
            strings = [
                n
                for n in ("request_id", "model_name", "model_version", "served_by", "caller", *AB_COLUMNS)
                if n in arrays
            ]
            pq.write_table(table, sink, compression="snappy", use_dictionary=strings)
            encoded: bytes = sink.getvalue().to_pybytes()
            return encoded
        frame = table.to_pandas()
        lines: str = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
        return lines.encode("utf-8")

    def _write(self, entries: list[_Entry]) -> None:
        n_rows = sum(e.n_rows for e in entries)
        try:
            cols = self._columns(entries)
            hours = (cols["timestamp"].astype("datetime64[h]")).astype(np.int64)
            unique = np.unique(hours)
            pieces: list[tuple[str, bytes, int]] = []
            for hour in unique:
                rows = None if len(unique) == 1 else np.nonzero(hours == hour)[0]
                start = datetime.fromtimestamp(int(hour) * 3600, tz=UTC)
                now = datetime.now(UTC)
                rel = (
                    f"date={start:%Y-%m-%d}/hour={start:%H}/"
                    f"{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.{self.fmt}"
                )
                count = n_rows if rows is None else len(rows)
                pieces.append((rel, self._encode(cols, rows), count))
        except Exception as exc:
            self.stats.dropped_rows += n_rows
            self._fail(f"Cannot encode {n_rows} rows: {type(exc).__name__}: {exc}")
            logger.exception("prediction log encoding failed")
            return
        for rel, data, count in pieces:
            try:
                self.sink.write(rel, data)
            except PredictionLogError as exc:
                self.stats.dropped_rows += count
                self._fail(str(exc))
                logger.error("prediction log: %s (%d rows dropped)", exc, count)
                continue
            self.stats.written_rows += count
            self.stats.files_written += 1
            self.stats.last_error = None

    def _prune_if_due(self, force: bool = False) -> None:
        if not self.retention_hours:
            return
        now = time.time()
        if not force and now - self._last_prune < 3600:
            return
        self._last_prune = now
        try:
            self.stats.pruned_files += prune_prediction_log(
                self.sink, self.retention_hours, now=datetime.now(UTC)
            )
        except Exception as exc:
            logger.warning("prediction log retention failed: %s", exc)


def prune_prediction_log(sink: str | Sink, retention_hours: float, now: datetime | None = None) -> int:
    """Delete partitions whose hour ended more than ``retention_hours`` ago.

    Args:
        sink: Local folder, ``s3://`` URI or :class:`Sink`.
        retention_hours: Age limit.
        now: Reference time (UTC); defaults to now.

    Returns:
        The number of files deleted.

    Example:
        ```python
        prune_prediction_log("/var/log/predictions", retention_hours=24 * 30)
        ```
    """
    sink = sink if isinstance(sink, Sink) else Sink(sink)
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(hours=retention_hours)
    old = []
    for rel in sink.list_files():
        start = partition_start(rel)
        if start is not None and start + timedelta(hours=1) <= cutoff:
            old.append(rel)
    sink.delete(old)
    return len(old)


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _files_in_window(store: Sink, lo: datetime | None, hi: datetime | None) -> list[str]:
    """Relative paths of the sink's files in hour partitions that overlap ``[lo, hi)``."""
    try:
        files = store.list_files()
    except Exception as exc:
        fix = "; check the S3 endpoint and credentials (S3Config, AwsCredentials block)"
        fix = fix if store.is_s3 else ""
        raise PredictionLogError(f"Cannot list prediction log {store.uri}: {exc}{fix}") from exc
    out = []
    for rel in files:
        part = partition_start(rel)
        if part is None:
            continue
        if lo is not None and part + timedelta(hours=1) <= lo:
            continue
        if hi is not None and part >= hi:
            continue
        out.append(rel)
    return out


def window_files(
    sink: str,
    start: Any = None,
    end: Any = None,
    s3_endpoint_url: str | None = None,
    s3_client_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """The log files (local paths or ``s3://`` URIs) of the hour partitions overlapping ``[start, end)``.

    What :func:`read_prediction_log` reads, without reading it: the drift check on a Dask
    cluster hands these files to its workers (and filters their rows on ``timestamp``).

    Raises:
        DatasetNotFoundError: A local sink folder does not exist.
        PredictionLogError: The sink cannot be listed.

    Example:
        ```python
        files = window_files("s3://ml-logs/churn", start="2026-11-30", end="2026-12-01")
        ```
    """
    store = Sink(sink, s3_endpoint_url, s3_client_kwargs=s3_client_kwargs)
    if not store.is_s3 and not store.root.is_dir():
        raise DatasetNotFoundError(f"Prediction log folder {store.root} does not exist.")
    rels = _files_in_window(store, _as_utc(start), _as_utc(end))
    if store.is_s3:
        return [f"s3://{store.bucket}/{store._key(rel)}" for rel in rels]
    return [str(store.root / rel) for rel in rels]


def read_prediction_log(
    sink: str,
    start: Any = None,
    end: Any = None,
    s3_endpoint_url: str | None = None,
    s3_client_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Read the prediction log of a sink into one pandas DataFrame.

    Only the hour partitions overlapping ``[start, end)`` are read; rows are then
    filtered on ``timestamp`` and sorted by it.

    Args:
        sink: Local folder or ``s3://bucket/prefix`` the server logged to.
        start: Earliest timestamp kept (inclusive); datetime or string, naive means UTC.
        end: Latest timestamp kept (exclusive).
        s3_endpoint_url: S3 API endpoint (else ``MLOPS_S3_ENDPOINT_URL`` / boto3 default).
        s3_client_kwargs: Further ``boto3.client("s3", ...)`` arguments (credentials, region).

    Returns:
        A DataFrame with ``request_id``, ``timestamp`` (tz-aware UTC), ``model_name``,
        ``model_version``, ``served_by``, ``caller`` (null where unknown or written before
        the column existed), the feature columns and ``prediction``, plus ``variant`` and
        ``subject`` when any file read has them (null in older files); empty (with no
        columns) when nothing was logged in the window.

    Raises:
        DatasetNotFoundError: A local sink folder does not exist.
        PredictionLogError: A file cannot be read.

    Example:
        ```python
        df = read_prediction_log("s3://ml-logs/churn", start="2026-01-01")
        df.groupby("model_version").prediction.mean()
        ```
    """
    import pandas as pd

    store = Sink(sink, s3_endpoint_url, s3_client_kwargs=s3_client_kwargs)
    if not store.is_s3 and not store.root.is_dir():
        raise DatasetNotFoundError(f"Prediction log folder {store.root} does not exist.")
    lo, hi = _as_utc(start), _as_utc(end)
    frames = []
    for rel in _files_in_window(store, lo, hi):
        try:
            data = store.read(rel)
            if rel.endswith(".parquet"):
                frame = pd.read_parquet(io.BytesIO(data))
            elif rel.endswith(".jsonl"):
                frame = pd.read_json(io.BytesIO(data), lines=True, dtype=False)
                frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
                for col in ("request_id", "model_name", "model_version", "served_by"):
                    frame[col] = frame[col].astype(str)
            else:
                continue
        except Exception as exc:
            raise PredictionLogError(f"Cannot read prediction log file {rel}: {exc}") from exc
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    if "caller" not in out.columns:  # only partitions written before the column existed
        out.insert(min(5, len(out.columns)), "caller", None)
    out["caller"] = [v if isinstance(v, str) else None for v in out["caller"]]
    if lo is not None:
        out = out[out["timestamp"] >= pd.Timestamp(lo)]
    if hi is not None:
        out = out[out["timestamp"] < pd.Timestamp(hi)]
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)
