"""The drift check on windows larger than memory: per-partition statistics on a Dask cluster, merged.

The current window is a folder or ``s3://`` prefix of Parquet files (a prediction-log sink, or
a partitioned batch from :func:`mlops_tasks.scoring.score_partitions`). The reference (the
model's training data) fits in memory. Each worker reads its partitions' feature columns and
returns small summaries, which the client merges:

- **Counts stay exact.** Categorical columns, and numeric columns with at most
  ``DISCRETE_VALUES`` distinct values, are merged as exact value counts; their statistic
  (chi-square, z-test, Jensen-Shannon, Wasserstein, K-S) is then exactly the in-memory one.
- **Continuous columns are bounded.** Wasserstein and K-S need every value of a column at once;
  a second pass counts the current values per bin of fixed edges (the reference's quantiles),
  which gives an interval that contains the exact statistic (:mod:`mlops_tasks.monitoring.bounds`).
  Its midpoint is reported. When the threshold lies inside the interval, the verdict is not
  certain from the bounds: that column alone is gathered and computed exactly.

So every verdict equals the in-memory check's; a reported value of a continuous column differs
from the exact one by at most its bound (``ColumnDrift.error_bound``, ``None`` when exact).
With a ``report_location``, each worker also keeps a seeded random key per row and returns its
rows with the smallest keys; the client keeps the smallest of those: a uniform sample of all
rows, from which the Evidently HTML is rendered as the in-memory check renders it from its own.

:func:`check_log_drift_on_cluster` reads a prediction log's window the same way: the files of
the hour partitions overlapping it, each worker keeping the rows of the window and the model.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.cluster import DaskClusterSpec, use_or_open_client
from mlops_tasks.errors import PredictionLogError
from mlops_tasks.monitoring.bounds import histogram_edges, ks_bounds, wasserstein_bounds
from mlops_tasks.monitoring.check import _decide, _report_fields, _resolve_reference
from mlops_tasks.monitoring.column_plan import feature_columns, plan_columns
from mlops_tasks.monitoring.column_types import (
    INTEGER_CARDINALITY_LIMIT,
    SMALL_REFERENCE_ROWS,
    choose_stattest,
)
from mlops_tasks.monitoring.models import (
    PREDICTION_COLUMN,
    STAT_TESTS,
    UTILITY_COLUMNS,
    ColumnDrift,
    DriftReport,
    DriftSettings,
    DriftWindow,
    ReferenceData,
    SkippedColumn,
)
from mlops_tasks.monitoring.report_html import render_html, save_html
from mlops_tasks.monitoring.statistics import compute_column_drift, finite_values
from mlops_tasks.scoring.partitions import list_partitions, read_columns, s3_kwargs_on_worker
from mlops_tasks.serving.predlog import window_files
from mlops_tasks.settings import S3Config

__all__ = ["DISCRETE_VALUES", "HISTOGRAM_BINS", "check_drift_on_cluster", "check_log_drift_on_cluster"]

logger = logging.getLogger(__name__)

DISCRETE_VALUES = 100_000
"""Distinct values of a numeric column kept as exact counts; past it the column is continuous."""
HISTOGRAM_BINS = 4096
"""Bins (at the reference's quantiles) of a continuous column's current histogram."""

_Summary = dict[str, Any]  # per column: n, low, high, counts ({value: count} or None)


@dataclass(frozen=True)
class _PartitionReader:
    """Reads columns of one partition on a worker: S3 credentials from a plugin, rows filtered.

    A prediction log's hour partitions hold rows a little outside the window and rows of
    other models: ``start``/``end`` filter on ``timestamp``, ``model_name`` on its column.
    """

    plugin: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    model_name: str | None = None

    def read(self, uri: str, columns: list[str]) -> pd.DataFrame:
        extra = [c for c in ("timestamp", "model_name") if self._filters(c)]
        frame = read_columns(uri, [*columns, *extra], s3_kwargs_on_worker(self.plugin))
        keep = np.ones(len(frame), dtype=bool)
        if self.start is not None or self.end is not None:
            stamps = pd.to_datetime(frame["timestamp"], utc=True)
            if self.start is not None:
                keep &= (stamps >= pd.Timestamp(self.start)).to_numpy()
            if self.end is not None:
                keep &= (stamps < pd.Timestamp(self.end)).to_numpy()
        if self.model_name is not None:
            keep &= (frame["model_name"].astype(str) == self.model_name).to_numpy()
        return frame.loc[keep, columns] if not keep.all() else frame[columns]

    def _filters(self, column: str) -> bool:
        if column == "timestamp":
            return self.start is not None or self.end is not None
        return self.model_name is not None


def _sample(frame: pd.DataFrame, uri: str, rows: int, seed: int) -> pd.DataFrame:
    """Bottom-``rows`` of a seeded random key per row: merged the same way, a uniform sample of all rows."""
    keyed = frame.assign(_key=np.random.default_rng([seed, zlib.crc32(uri.encode())]).random(len(frame)))
    return keyed.nsmallest(rows, "_key") if len(keyed) > rows else keyed


def _summarize(
    uri: str, kinds: dict[str, str], reader: _PartitionReader, cap: int, sample_rows: int, seed: int
) -> dict[str, _Summary]:
    frame = reader.read(uri, list(kinds))
    out: dict[str, _Summary] = {"": {"rows": len(frame)}}
    if sample_rows:
        out[""]["sample"] = _sample(frame, uri, sample_rows, seed)
    for name, kind in kinds.items():
        if kind == "numerical":
            values = finite_values(frame[name])
            keys, counts = np.unique(values, return_counts=True)
            out[name] = {
                "n": int(values.size),
                "low": float(values.min()) if values.size else np.inf,
                "high": float(values.max()) if values.size else -np.inf,
                "counts": dict(zip(keys.tolist(), counts.tolist(), strict=True))
                if keys.size <= cap
                else None,
            }
        else:
            counts_s = frame[name].value_counts(dropna=True, sort=False)
            out[name] = {"n": int(counts_s.sum()), "counts": counts_s.to_dict()}
    return out


def _merge(a: dict[str, _Summary], b: dict[str, _Summary], cap: int, sample_rows: int) -> dict[str, _Summary]:
    merged: dict[str, _Summary] = {"": {"rows": a[""]["rows"] + b[""]["rows"]}}
    if sample_rows:
        both: pd.DataFrame = pd.concat([a[""]["sample"], b[""]["sample"]], ignore_index=True)
        merged[""]["sample"] = both.nsmallest(sample_rows, "_key") if len(both) > sample_rows else both
    for name in a.keys() - {""}:
        x, y = a[name], b[name]
        counts = None
        if x["counts"] is not None and y["counts"] is not None:
            counts = dict(x["counts"])
            for key, count in y["counts"].items():
                counts[key] = counts.get(key, 0) + count
            if "low" in x and len(counts) > cap:
                counts = None
        merged[name] = {**x, "n": x["n"] + y["n"], "counts": counts}
        if "low" in x:
            merged[name]["low"], merged[name]["high"] = min(x["low"], y["low"]), max(x["high"], y["high"])
    return merged


def _histogram(uri: str, name: str, edges: np.ndarray, reader: _PartitionReader) -> np.ndarray:
    values = finite_values(reader.read(uri, [name])[name])
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size)[: edges.size]


def _column_values(uri: str, name: str, reader: _PartitionReader) -> np.ndarray:
    return finite_values(reader.read(uri, [name])[name])


def _counts_series(summary: _Summary) -> pd.Series:
    counts = summary["counts"]
    return pd.Series(list(counts.values()), index=list(counts.keys()), dtype=np.int64)


def _planned_test(kind: str, reference: pd.Series, summary: _Summary) -> Any:
    """Evidently's default test from the merged summary, as the in-memory plan decides it."""
    if kind == "categorical":
        n_ref = int(reference.count())
        if n_ref > SMALL_REFERENCE_ROWS:
            return "jensenshannon"
        distinct = len(set(reference.dropna().unique()) | set(summary["counts"]))
        return choose_stattest("categorical", n_ref, distinct)
    ref = finite_values(reference)
    if summary["counts"] is None:
        distinct = 6  # more distinct values than counts kept: "more than 5" is all the choice needs
    else:
        keys = np.fromiter(summary["counts"], dtype=np.float64, count=len(summary["counts"]))
        distinct = int(np.union1d(np.unique(ref.astype(np.float64)), keys).size)
    return choose_stattest("numerical", int(ref.size), distinct)


def _exact_numeric(
    name: str, reference: pd.Series, summary: _Summary, test: Any, threshold: Any
) -> ColumnDrift | SkippedColumn:
    counts = _counts_series(summary)
    current = pd.Series(np.repeat(counts.index.to_numpy(np.float64), counts.to_numpy()))
    return compute_column_drift(name, reference, current, "numerical", test, threshold)


def _continuous(
    client: Any,
    uris: list[str],
    reader: _PartitionReader,
    name: str,
    reference: pd.Series,
    summary: _Summary,
    test: Any,
    threshold: Any,
) -> ColumnDrift | SkippedColumn:
    """A continuous column: bounds from a merged histogram, exact when the threshold is inside them."""
    ref = np.sort(finite_values(reference).astype(np.float64))
    chosen = test or choose_stattest("numerical", ref.size, DISCRETE_VALUES + 1)
    limit = float(threshold if threshold is not None else STAT_TESTS[chosen]["threshold"])
    n_cur = summary["n"]
    exact_needed = chosen not in ("wasserstein", "ks") or ref.size == 0 or n_cur == 0
    # K-S p-values of samples up to 10,000 values are scipy's exact ones: small, so gathered
    exact_needed = exact_needed or (chosen == "ks" and max(ref.size, n_cur) <= 10_000)
    bounds = None
    if not exact_needed:
        edges = histogram_edges(
            ref, min(ref[0], summary["low"]), max(ref[-1], summary["high"]), HISTOGRAM_BINS
        )
        counts = reduce(
            np.add,
            client.gather(client.map(_histogram, uris, name=name, edges=edges, reader=reader, pure=False)),
        )
        if chosen == "wasserstein":
            bounds = wasserstein_bounds(ref, edges, counts, max(float(np.std(ref)), 0.001))
            low, high = bounds.low, bounds.high
        else:
            from scipy.stats import distributions

            m, n = sorted([float(ref.size), float(n_cur)], reverse=True)
            en = np.round(m * n / (m + n))
            d = ks_bounds(ref, edges, counts)
            low, high = float(distributions.kstwo.sf(d.high, en)), float(distributions.kstwo.sf(d.low, en))
        if not (low <= limit <= high):
            value = (low + high) / 2
            drifted = value >= limit if STAT_TESTS[chosen]["kind"] == "distance" else value <= limit
            return ColumnDrift(
                column=name,
                column_type="numerical",
                stattest=chosen,
                statistic=STAT_TESTS[chosen]["kind"],
                value=value,
                threshold=limit,
                drifted=bool(drifted),
                reference_rows=int(ref.size),
                current_rows=int(n_cur),
                error_bound=(high - low) / 2,
            )
        logger.info("Column %s: threshold %g inside [%g, %g]; computing it exactly", name, limit, low, high)
    values = np.concatenate(
        client.gather(client.map(_column_values, uris, name=name, reader=reader, pure=False))
    )
    return compute_column_drift(name, reference, pd.Series(values), "numerical", chosen, limit)


def _column_result(
    client: Any,
    uris: list[str],
    reader: _PartitionReader,
    name: str,
    kind: str,
    integer: bool,
    reference: pd.DataFrame,
    total: dict[str, _Summary],
    settings: DriftSettings,
) -> ColumnDrift | SkippedColumn:
    """One column's verdict from the merged summaries (exact counts, or bounds then exact)."""
    summary = total[name]
    if integer:  # Evidently's rule: integers with at most 10 distinct values are categorical
        few = summary["counts"] is not None and len(summary["counts"]) <= INTEGER_CARDINALITY_LIMIT
        kind = "categorical" if few else "numerical"
    test = settings.column_tests.get(name) or _planned_test(kind, reference[name], summary)
    threshold = settings.column_thresholds.get(name)
    if kind == "categorical":
        empty = pd.Series([], dtype=object)
        counts = _counts_series(summary)
        return compute_column_drift(name, reference[name], empty, "categorical", test, threshold, counts)
    if summary["counts"] is not None:
        return _exact_numeric(name, reference[name], summary, test, threshold)
    return _continuous(client, uris, reader, name, reference[name], summary, test, threshold)


def check_drift_on_cluster(
    reference: pd.DataFrame | ReferenceData,
    current_uri: str,
    *,
    settings: DriftSettings | None = None,
    target: str | None = None,
    model_name: str | None = None,
    model_version: str | int | None = None,
    s3: S3Config | None = None,
    cluster: DaskClusterSpec | None = None,
    client: Any = None,
    discrete_values: int = DISCRETE_VALUES,
    report_location: str | None = None,
) -> DriftReport:
    """Per-column drift of a partitioned window against the reference, statistics computed on Dask.

    Args:
        reference: Reference rows (the model's training data; it fits in memory), or the
            :class:`ReferenceData` of :func:`load_reference` (its lineage fills model, version
            and target).
        current_uri: Folder or ``s3://`` prefix of the current window's Parquet files.
        settings: Tests, thresholds, columns, minimum rows (as for :func:`check_drift`).
        target: Target column of the reference (never checked).
        model_name: For the report.
        model_version: For the report.
        s3: S3 endpoint and credentials (sent to the workers in a Dask worker plugin).
        cluster: The Dask cluster; ignored when ``client`` is given.
        client: A connected ``distributed.Client``.
        discrete_values: Distinct values of a numeric column kept as exact counts.
        report_location: Folder or ``s3://`` prefix for the Evidently HTML report, rendered
            from a uniform seeded sample of ``settings.html_sample_rows`` current rows drawn on
            the workers (None: no HTML).

    Returns:
        The report: per-column verdicts equal to :func:`check_drift`'s; continuous columns
        carry ``error_bound`` unless computed exactly.

    Raises:
        EmptyDatasetError: The window holds no Parquet file, or the reference no row.
        NoCommonColumnsError: The window's files share no feature column with the reference.
        ClusterUnavailableError: The Dask scheduler did not answer.

    Example:
        ```python
        report = check_drift_on_cluster(train_frame, "s3://logs/churn/date=2026-11-30/",
                                        target="churned", cluster=DaskClusterSpec(n_workers=2))
        print(report.status, [(c.column, c.value, c.error_bound) for c in report.columns])
        ```
    """
    s3_kwargs = (s3 or S3Config()).client_kwargs() if current_uri.startswith("s3://") else {}
    uris = [p.uri for p in list_partitions(current_uri, s3_kwargs)]
    job = _ClusterJob(
        settings or DriftSettings(), s3, s3_kwargs, cluster, client, discrete_values, report_location
    )
    return job.check(
        reference, uris, current_uri, None, _PartitionReader(), target, model_name, model_version
    )


def check_log_drift_on_cluster(
    reference: pd.DataFrame | ReferenceData,
    prediction_log: str,
    window: DriftWindow | None = None,
    *,
    settings: DriftSettings | None = None,
    target: str | None = None,
    model_name: str | None = None,
    model_version: str | int | None = None,
    s3: S3Config | None = None,
    cluster: DaskClusterSpec | None = None,
    client: Any = None,
    discrete_values: int = DISCRETE_VALUES,
    report_location: str | None = None,
) -> DriftReport:
    """:func:`check_drift_on_cluster` over a window of a prediction log: the drift check's own source.

    The workers read the Parquet files of the hour partitions overlapping ``window`` and keep
    the rows whose ``timestamp`` lies in it and, with ``model_name``, that model's rows; so the
    rows checked are the ones :func:`~mlops_tasks.monitoring.load_current` would read into
    memory. Arguments as :func:`check_drift_on_cluster`'s.

    Raises:
        PredictionLogError: The log cannot be listed, or its window holds JSON-lines files
            (the cluster reads Parquet; log as Parquet, the server's default).
        DatasetNotFoundError: A local log folder does not exist.
        EmptyDatasetError: The reference has no row.
        ClusterUnavailableError: The Dask scheduler did not answer.

    Example:
        ```python
        from mlops_tasks.monitoring import resolve_window
        report = check_log_drift_on_cluster(reference, "s3://logs/churn", resolve_window(last_hours=24),
                                            model_name="churn-classifier", s3=s3,
                                            cluster=DaskClusterSpec(address="tcp://10.0.0.5:8786"))
        ```
    """
    window = window or DriftWindow()
    s3_kwargs = (s3 or S3Config()).client_kwargs() if prediction_log.startswith("s3://") else {}
    uris = window_files(prediction_log, window.start, window.end, s3_client_kwargs=s3_kwargs or None)
    jsonl = [uri for uri in uris if uri.endswith(".jsonl")]
    if jsonl:
        raise PredictionLogError(
            f"Prediction log {prediction_log!r} holds JSON-lines files in the window (e.g. {jsonl[0]!r}); "
            "the drift check on a cluster reads Parquet files. Log as Parquet (the server's default "
            "log format) or check this window without a cluster."
        )
    reader = _PartitionReader(start=window.start, end=window.end, model_name=model_name)
    job = _ClusterJob(
        settings or DriftSettings(), s3, s3_kwargs, cluster, client, discrete_values, report_location
    )
    return job.check(reference, uris, prediction_log, window, reader, target, model_name, model_version)


@dataclass
class _ClusterJob:
    """One drift check on a cluster: settings and where things are; :meth:`check` runs it."""

    settings: DriftSettings
    s3: S3Config | None
    s3_kwargs: dict[str, Any]
    cluster: DaskClusterSpec | None
    client: Any
    discrete_values: int
    report_location: str | None

    def check(
        self,
        reference: pd.DataFrame | ReferenceData,
        uris: list[str],
        source: str,
        window: DriftWindow | None,
        reader: _PartitionReader,
        target: str | None,
        model_name: str | None,
        model_version: str | int | None,
    ) -> DriftReport:
        started = datetime.now(UTC)
        settings = self.settings
        ref = _resolve_reference(
            reference,
            model_name=model_name,
            model_version=model_version,
            target=target,
            task=None,
            training_metrics=None,
            reference_predictions=None,
        )
        base = _report_fields(ref, pd.DataFrame(), settings, window, source, started)
        del base["current_rows"]  # counted on the workers
        if not uris:
            return _too_few(0, source, settings, base)
        plan = _plan(ref, read_columns(uris[0], None, self.s3_kwargs), settings)
        sample_rows = settings.html_sample_rows if self.report_location else 0
        cap = self.discrete_values
        with (
            use_or_open_client(self.cluster, self.client) as dask_client,
            self._s3_plugin(dask_client, source, reader) as reader,
        ):
            summaries = dask_client.gather(
                dask_client.map(
                    _summarize,
                    uris,
                    kinds=plan.kinds,
                    reader=reader,
                    cap=cap,
                    sample_rows=sample_rows,
                    seed=settings.sample_seed + 1,
                    pure=False,
                )
            )
            total = reduce(lambda a, b: _merge(a, b, cap, sample_rows), summaries)
            rows = int(total[""]["rows"])
            if rows < settings.min_rows:
                return _too_few(rows, source, settings, base)
            results = [
                _column_result(
                    dask_client, uris, reader, name, kind, name in plan.integers, ref.frame, total, settings
                )
                for name, kind in plan.kinds.items()
            ]
        report = _decide(
            [r for r in results if isinstance(r, ColumnDrift)],
            settings,
            skipped_columns=[*plan.skipped, *(r for r in results if isinstance(r, SkippedColumn))],
            missing_in_current=plan.missing_in_current,
            missing_in_reference=plan.missing_in_reference,
            warnings=[],
            current_rows=rows,
            **base,
        )
        if self.report_location:
            self._attach_html(report, ref.frame, total[""]["sample"].drop(columns="_key"))
        report.duration_s = (datetime.now(UTC) - started).total_seconds()
        return report

    @contextlib.contextmanager
    def _s3_plugin(self, client: Any, source: str, reader: _PartitionReader) -> Iterator[_PartitionReader]:
        """``reader`` naming a worker plugin that holds the S3 credentials while the check runs."""
        if not self.s3_kwargs:
            yield reader
            return
        from mlops_tasks.scoring.worker_plugin import S3Credentials

        plugin = f"mlops-s3-drift-{abs(hash(source)) % 10**8}"
        client.register_plugin(S3Credentials(plugin, self.s3_kwargs))
        try:
            yield replace(reader, plugin=plugin)
        finally:
            client.unregister_worker_plugin(plugin)

    def _attach_html(self, report: DriftReport, reference: pd.DataFrame, sample: pd.DataFrame) -> None:
        """The Evidently page from the workers' sample, headed by the all-rows verdicts."""
        assert self.report_location is not None
        try:
            page = render_html(reference, sample.reset_index(drop=True), report, self.settings)
        except Exception as exc:  # noqa: BLE001 - the verdicts stand without the HTML; say why it is missing
            logger.warning("Evidently HTML report not rendered: %s", exc)
            report.warnings.append(f"Evidently HTML report not rendered: {type(exc).__name__}: {exc}")
            return
        report.html_uri = save_html(page, self.report_location, report, s3=self.s3)
        report.html_sample_rows = max(min(len(reference), self.settings.html_sample_rows), len(sample))


@dataclass
class _Plan:
    """Which columns the check summarises, and how, decided from one partition as check_drift decides."""

    kinds: dict[str, str]
    integers: set[str]
    skipped: list[SkippedColumn]
    missing_in_current: list[str]
    missing_in_reference: list[str]


def _plan(ref: Any, sample: pd.DataFrame, settings: DriftSettings) -> _Plan:
    ignore = {*UTILITY_COLUMNS, PREDICTION_COLUMN, *([ref.target] if ref.target else [])}
    common, missing_in_current, missing_in_reference = feature_columns(ref.frame, sample, settings, ignore)
    plans, skipped = plan_columns(ref.frame, sample, common, settings)
    # integer columns are summarised as numbers; their type (categorical up to 10 distinct values,
    # as Evidently infers it) is decided on the merged counts, not on one partition
    integers = {p.name for p in plans if pd.api.types.is_integer_dtype(sample[p.name].dtype)}
    kinds: dict[str, str] = {p.name: "numerical" if p.name in integers else p.kind for p in plans}
    return _Plan(kinds, integers, list(skipped), missing_in_current, missing_in_reference)


def _too_few(rows: int, source: str, settings: DriftSettings, base: dict[str, Any]) -> DriftReport:
    return DriftReport(
        status="not_enough_data",
        reason=f"Only {rows} current rows in {source}, fewer than min_rows={settings.min_rows}.",
        current_rows=rows,
        **base,
    )
