"""Drift monitoring: compare what the model sees now with what it was trained on.

**Reference** is the training split recorded on the model version's MLflow run
(artifact ``reference/train.parquet``) or any dataset you pass; **current** is a
window ``[start, end)`` of the prediction log written by the model server (or by
:func:`score_batch`) or any dataset.

Per-column statistics are computed here, vectorized over the *full* data, and
reproduce Evidently 0.7's ``DataDriftPreset`` exactly: the same column types
(Evidently's inference on the current data), the same size-aware choice of test
and the same implementations and default thresholds:

| column type | reference rows | distinct values | test | drift when |
|---|---|---|---|---|
| numerical | > 1000 | > 5 | `wasserstein` (normed) | value >= 0.1 |
| numerical | > 1000 | <= 5 | `jensenshannon` | value >= 0.1 |
| categorical | > 1000 | any | `jensenshannon` | value >= 0.1 |
| numerical | <= 1000 | > 5 | `ks` | p-value <= 0.05 |
| numerical / categorical | <= 1000 | 3-5 (num.), > 2 (cat.) | `chisquare` | p-value < 0.05 |
| numerical / categorical | <= 1000 | <= 2 | `z` | p-value < 0.05 |

("reference rows" are the reference's values and "distinct values" those of
reference and current together, both after dropping nulls and infinities.) The dataset drifts when the
share of drifted columns is at least ``drift_share`` (0.5). Thresholds and tests
can be overridden per column.

The Evidently HTML report is rendered from a seeded sample (``html_sample_rows``
rows of each side, with the tests and thresholds chosen on the full data); the
verdicts come from the full data and a banner at the top of the HTML says so.
"""

from __future__ import annotations

import html as _html
import io
import json
import logging
import math
import re
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_tasks.errors import (
    ConfigurationError,
    EmptyDatasetError,
    ModelNotFoundError,
    NoCommonColumnsError,
    PredictionLogError,
    ReferenceDataNotFoundError,
    RegistryError,
)
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig, S3Config, state_dir

logger = logging.getLogger(__name__)

StatTestName = Literal["wasserstein", "jensenshannon", "ks", "chisquare", "z"]
ColumnType = Literal["numerical", "categorical", "text", "datetime", "unknown"]
DriftStatus = Literal["ok", "drift", "not_enough_data", "error"]
TaskType = Literal["classification", "regression"]

EVENT_DRIFT_DETECTED = "mlops.drift.detected"
"""Name of the Prefect event emitted when a check finds drift."""
UTILITY_COLUMNS = ("request_id", "timestamp", "model_name", "model_version", "served_by")
"""Prediction-log columns that are not features (never checked for drift)."""
PREDICTION_COLUMN = "prediction"
MONITORING_EXPERIMENT_SUFFIX = "-monitoring"
TAG_MODEL_NAME = "mlops.model_name"
TAG_MODEL_VERSION = "mlops.model_version"
TAG_DRIFT_STATUS = "mlops.drift.status"
REFERENCE_ARTIFACT = "reference/train.parquet"

# Evidently 0.7 names, default thresholds and verdict rules of the tests used by default.
_TESTS: dict[str, dict[str, Any]] = {
    "wasserstein": {"display": "Wasserstein distance (normed)", "threshold": 0.1, "kind": "distance"},
    "jensenshannon": {"display": "Jensen-Shannon distance", "threshold": 0.1, "kind": "distance"},
    "ks": {"display": "K-S p_value", "threshold": 0.05, "kind": "p_value"},
    "chisquare": {"display": "chi-square p_value", "threshold": 0.05, "kind": "p_value"},
    "z": {"display": "Z-test p_value", "threshold": 0.05, "kind": "p_value"},
}
_NUMERICAL_ONLY = {"wasserstein", "ks"}
_INTEGER_CARDINALITY_LIMIT = 10  # evidently.core.datasets.INTEGER_CARDINALITY_LIMIT
_SMALL_REFERENCE = 1000
_BINCOUNT_MAX_RANGE = 4_000_000
_STAT_WORKERS = 2  # columns computed side by side (numpy releases the GIL while sorting)


def default_threshold(test: StatTestName) -> float:
    """Evidently's default threshold of ``test`` (0.1 for distances, 0.05 for p-values).

    Example:
        ```python
        from mlops_tasks.monitoring import default_threshold
        assert default_threshold("wasserstein") == 0.1
        ```
    """
    return float(_TESTS[test]["threshold"])


class DriftSettings(BaseModel):
    """How a drift check decides: tests, thresholds, minimum sizes, HTML sampling.

    Example:
        ```python
        from mlops_tasks.monitoring import DriftSettings
        settings = DriftSettings(
            min_rows=500,
            column_thresholds={"monthly_charges": 0.2},
            column_tests={"age": "ks"},
        )
        ```
    """

    model_config = ConfigDict(frozen=True)

    drift_share: float = Field(
        0.5, gt=0, le=1, description="The dataset drifts when at least this share of columns drift."
    )
    column_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-column threshold overriding the test's default."
    )
    column_tests: dict[str, StatTestName] = Field(
        default_factory=dict,
        description="Per-column test overriding Evidently's choice (wasserstein, jensenshannon, ks, "
        "chisquare, z).",
    )
    columns: list[str] | None = Field(
        None, description="Check only these columns (default: every common feature column)."
    )
    exclude_columns: list[str] = Field(
        default_factory=list, description="Columns never checked (ids, free text, timestamps)."
    )
    min_rows: int = Field(
        100, ge=1, description="Fewer current rows than this ends with status not_enough_data."
    )
    html_sample_rows: int = Field(
        5_000, ge=100, le=200_000,
        description="Rows of each side (seeded sample) the Evidently HTML is rendered from.",
    )
    sample_seed: int = Field(0, description="Seed of the HTML sample.")
    check_prediction: bool = Field(True, description="Also check drift of the prediction column.")
    performance_tolerance: float = Field(
        0.05, ge=0,
        description="Largest allowed drop of a metric against its training-time holdout value "
        "(absolute, in the metric's better direction).",
    )
    min_labelled_rows: int = Field(
        30, ge=1, description="Fewer joined labels than this: performance is reported as not checked."
    )

    @model_validator(mode="after")
    def _valid(self) -> DriftSettings:
        bad = {c: t for c, t in self.column_thresholds.items() if not (t > 0 and math.isfinite(t))}
        if bad:
            raise ValueError(f"column_thresholds must be positive numbers, got {bad}")
        return self


class DriftWindow(BaseModel):
    """The time window ``[start, end)`` of the current data (UTC), when it came from a log.

    Example:
        ```python
        from datetime import UTC, datetime
        from mlops_tasks.monitoring import DriftWindow
        window = DriftWindow(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC))
        print(window.describe())
        ```
    """

    start: datetime | None = None
    end: datetime | None = None

    def describe(self) -> str:
        """``[start, end)`` in ISO format, open ends shown as ``...``."""
        lo = self.start.isoformat() if self.start else "..."
        hi = self.end.isoformat() if self.end else "..."
        return f"[{lo}, {hi})"


class ColumnDrift(BaseModel):
    """The verdict on one column, computed on the full data.

    Example:
        ```python
        from mlops_tasks.monitoring import ColumnDrift
        c = ColumnDrift(column="age", column_type="numerical", stattest="wasserstein",
                        statistic="distance", value=0.12, threshold=0.1, drifted=True,
                        reference_rows=1000, current_rows=500)
        ```
    """

    column: str
    column_type: Literal["numerical", "categorical"]
    stattest: StatTestName
    statistic: Literal["distance", "p_value"] = Field(
        ..., description="distance: drift when value >= threshold; p_value: when below it."
    )
    value: float
    threshold: float
    drifted: bool
    reference_rows: int = Field(..., description="Non-null reference values compared.")
    current_rows: int = Field(..., description="Non-null current values compared.")

    @property
    def test_display_name(self) -> str:
        """Evidently's display name of the test, e.g. ``Wasserstein distance (normed)``."""
        return str(_TESTS[self.stattest]["display"])


class SkippedColumn(BaseModel):
    """A column present on both sides that could not be checked, and why.

    Example:
        ```python
        from mlops_tasks.monitoring import SkippedColumn
        SkippedColumn(column="notes", reason="every value is null in the current data")
        ```
    """

    column: str
    reason: str


class PerformanceCheck(BaseModel):
    """One metric on the labelled current rows against its training-time holdout value.

    Example:
        ```python
        from mlops_tasks.monitoring import PerformanceCheck
        PerformanceCheck(metric="accuracy", current=0.71, training=0.82, tolerance=0.05, degraded=True)
        ```
    """

    metric: str
    current: float
    training: float | None
    tolerance: float
    degraded: bool


class PerformanceDrift(BaseModel):
    """Performance on labelled current rows (labels joined on ``request_id``).

    Example:
        ```python
        if report.performance and report.performance.degraded:
            print(report.performance.reason)
        ```
    """

    labelled_rows: int
    current_rows: int
    checks: list[PerformanceCheck] = Field(default_factory=list)
    degraded: bool = False
    reason: str


class DriftReport(BaseModel):
    """Everything a drift check found; JSON-serialisable (``model_dump(mode="json")``).

    ``status`` is ``ok`` (no drift), ``drift`` (dataset drift, prediction drift or
    degraded performance), ``not_enough_data`` (empty or too small a window, or no
    column with values) or ``error`` (the check could not run; ``reason`` says why).

    Example:
        ```python
        from mlops_tasks.monitoring import check_drift
        report = check_drift(reference_frame, current_frame, model_name="churn")
        print(report.status, report.reason)
        for column in report.columns:
            print(column.column, column.stattest, column.value, column.drifted)
        ```
    """

    status: DriftStatus
    reason: str
    model_name: str | None = None
    model_version: str | None = None
    reference_source: str | None = None
    current_source: str | None = None
    window: DriftWindow | None = None
    reference_rows: int = 0
    current_rows: int = 0
    served_versions: list[str] = Field(
        default_factory=list, description="model_version values found in the prediction log window."
    )
    columns: list[ColumnDrift] = Field(default_factory=list)
    skipped_columns: list[SkippedColumn] = Field(default_factory=list)
    missing_in_current: list[str] = Field(
        default_factory=list, description="Reference feature columns absent from the current data."
    )
    missing_in_reference: list[str] = Field(
        default_factory=list, description="Current columns the reference lacks (not checked)."
    )
    drift_share_threshold: float = 0.5
    drifted_columns: int = 0
    drifted_share: float = 0.0
    dataset_drift: bool = False
    prediction: ColumnDrift | None = None
    performance: PerformanceDrift | None = None
    html_uri: str | None = None
    html_sample_rows: int | None = Field(
        None, description="Rows of each side the HTML was rendered from (verdicts use all rows)."
    )
    mlflow_run_id: str | None = None
    warnings: list[str] = Field(default_factory=list)
    checked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    duration_s: float | None = None

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.drifted]

    def summary(self) -> dict[str, Any]:
        """The compact, JSON-ready summary used as the event payload and the flow's message.

        Example:
            ```python
            payload = report.summary()
            assert payload["status"] in {"ok", "drift", "not_enough_data", "error"}
            ```
        """
        return {
            "status": self.status,
            "reason": self.reason,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "dataset_drift": self.dataset_drift,
            "drifted_share": round(self.drifted_share, 6),
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": self.drifted,
            "checked_columns": len(self.columns),
            "prediction_drift": bool(self.prediction and self.prediction.drifted),
            "performance_degraded": bool(self.performance and self.performance.degraded),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "window_start": self.window.start.isoformat() if self.window and self.window.start else None,
            "window_end": self.window.end.isoformat() if self.window and self.window.end else None,
            "html_uri": self.html_uri,
            "mlflow_run_id": self.mlflow_run_id,
            "checked_at": self.checked_at.isoformat(),
        }

    def to_markdown(self) -> str:
        """A markdown summary with one table row per column (for a Prefect artifact)."""
        title = {
            "ok": "No drift", "drift": "DRIFT DETECTED", "not_enough_data": "Not enough data",
            "error": "Drift check failed",
        }[self.status]
        model = f" for `{self.model_name}` v{self.model_version}" if self.model_name else ""
        lines = [f"### {title}{model}", "", self.reason, ""]
        if self.window:
            lines.append(f"- window: {self.window.describe()}")
        lines.append(f"- rows: reference {self.reference_rows:,}, current {self.current_rows:,}")
        if self.columns:
            lines.append(
                f"- drifted columns: {self.drifted_columns} of {len(self.columns)} "
                f"({self.drifted_share:.0%}; dataset drift at >= {self.drift_share_threshold:.0%})"
            )
        if self.html_uri:
            sample = f" (rendered from a sample of {self.html_sample_rows:,} rows per side; " \
                     "verdicts use all rows)" if self.html_sample_rows else ""
            lines.append(f"- Evidently report: {self.html_uri}{sample}")
        if self.mlflow_run_id:
            lines.append(f"- MLflow monitoring run: `{self.mlflow_run_id}`")
        for label, names in (("missing in current", self.missing_in_current),
                             ("missing in reference", self.missing_in_reference)):
            if names:
                lines.append(f"- {label} (not checked): {', '.join(names)}")
        for skipped in self.skipped_columns:
            lines.append(f"- skipped `{skipped.column}`: {skipped.reason}")
        for warning in self.warnings:
            lines.append(f"- warning: {warning}")
        rows = list(self.columns) + ([self.prediction] if self.prediction else [])
        if rows:
            lines += ["", "| column | type | test | value | threshold | drift |", "|---|---|---|---|---|---|"]
            for c in rows:
                lines.append(
                    f"| {c.column} | {c.column_type} | {c.stattest} | {c.value:.4g} | "
                    f"{c.threshold:g} | {'**yes**' if c.drifted else 'no'} |"
                )
        if self.performance:
            lines += ["", f"**Performance** ({self.performance.labelled_rows} labelled rows): "
                      f"{self.performance.reason}"]
            if self.performance.checks:
                lines += ["", "| metric | current | training | tolerance | degraded |",
                          "|---|---|---|---|---|"]
                for p in self.performance.checks:
                    train = "n/a" if p.training is None else f"{p.training:.4g}"
                    lines.append(f"| {p.metric} | {p.current:.4g} | {train} | {p.tolerance:g} | "
                                 f"{'**yes**' if p.degraded else 'no'} |")
        return "\n".join(lines)


@dataclass
class ReferenceData:
    """Reference rows with the lineage of the model version they belong to.

    Example:
        ```python
        from mlops_tasks.monitoring import ReferenceData, check_drift
        reference = ReferenceData(frame=train_frame, source="data/train.parquet", model_name="churn")
        report = check_drift(reference, current_frame)
        ```
    """

    frame: pd.DataFrame
    source: str
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    model_uri: str | None = None
    target: str | None = None
    task: TaskType | None = None
    features: list[str] = field(default_factory=list)
    training_metrics: dict[str, float] = field(default_factory=dict)
    predictions: pd.Series | None = None


# --- column types and test choice -------------------------------------------------------


def infer_column_type(series: pd.Series) -> ColumnType:
    """Evidently 0.7's column type inference (``evidently.core.datasets.infer_column_type``).

    Floats are numerical; integers are categorical up to 10 distinct values and
    numerical above; strings are categorical unless more than half the values are
    distinct (then text); bools and pandas categoricals are categorical.

    Example:
        ```python
        import pandas as pd
        from mlops_tasks.monitoring import infer_column_type
        assert infer_column_type(pd.Series([1, 2, 3])) == "categorical"
        assert infer_column_type(pd.Series([1.5, 2.0])) == "numerical"
        ```
    """
    name = series.dtype.name
    if name.startswith("float"):
        return "numerical"
    if name.startswith("int"):
        return "categorical" if series.nunique() <= _INTEGER_CARDINALITY_LIMIT else "numerical"
    if name in ("string", "str"):
        return "text" if series.nunique() > series.count() * 0.5 else "categorical"
    if name == "object":
        values = series.dropna()
        if values.empty:
            return "unknown"
        if isinstance(values.iloc[0], str) and isinstance(values.iloc[-1], str):
            return "text" if series.nunique() > series.count() * 0.5 else "categorical"
        return "unknown"
    if name in ("bool", "category"):
        return "categorical"
    if name.startswith("datetime"):
        return "datetime"
    return "unknown"


def choose_stattest(column_type: str, reference_rows: int, distinct_values: int) -> StatTestName:
    """Evidently 0.7's default test (``registry._get_default_stattest``) for a column.

    Args:
        column_type: ``numerical`` or ``categorical``.
        reference_rows: Non-null reference values.
        distinct_values: Distinct non-null values over reference and current together.

    Returns:
        The test name.

    Example:
        ```python
        from mlops_tasks.monitoring import choose_stattest
        assert choose_stattest("numerical", 50_000, 900) == "wasserstein"
        assert choose_stattest("categorical", 500, 4) == "chisquare"
        ```
    """
    if reference_rows <= _SMALL_REFERENCE:
        if column_type == "numerical" and distinct_values > 5:
            return "ks"
        return "chisquare" if distinct_values > 2 else "z"
    if column_type == "numerical" and distinct_values > 5:
        return "wasserstein"
    return "jensenshannon"


# --- statistics, vectorized over the full data ---------------------------------------------


@dataclass
class _Counts:
    keys: np.ndarray  # sorted distinct values of both sides
    ref: np.ndarray  # counts per key
    cur: np.ndarray


@dataclass
class _Numeric:
    ref_values: np.ndarray  # finite values
    cur_values: np.ndarray
    ref_sorted: np.ndarray | None = None
    cur_sorted: np.ndarray | None = None
    counts: _Counts | None = None
    distinct: int = 0
    ref_distinct: int = 0


def _run_lengths(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    counts = np.diff(np.r_[starts, sorted_values.size])
    return sorted_values[starts], counts


def _align(keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray, counts_b: np.ndarray) -> _Counts:
    keys = np.union1d(keys_a, keys_b)
    ref = np.zeros(keys.size, dtype=np.int64)
    cur = np.zeros(keys.size, dtype=np.int64)
    ref[np.searchsorted(keys, keys_a)] = counts_a
    cur[np.searchsorted(keys, keys_b)] = counts_b
    return _Counts(keys, ref, cur)


def _numeric_profile(ref: np.ndarray, cur: np.ndarray) -> _Numeric:
    """Distinct values (and counts when there are few) of two finite numeric arrays."""
    prof = _Numeric(ref, cur)
    if np.issubdtype(ref.dtype, np.integer) and np.issubdtype(cur.dtype, np.integer):
        lo = int(min(ref.min(), cur.min()))
        hi = int(max(ref.max(), cur.max()))
        if hi - lo <= _BINCOUNT_MAX_RANGE:
            cr = np.bincount(ref - lo, minlength=hi - lo + 1)
            cc = np.bincount(cur - lo, minlength=hi - lo + 1)
            present = np.flatnonzero(cr + cc)
            prof.counts = _Counts((present + lo).astype(np.float64), cr[present], cc[present])
            prof.distinct = int(present.size)
            prof.ref_distinct = int(np.count_nonzero(cr))
            return prof
    rs = np.sort(ref.astype(np.float64, copy=False))
    cs = np.sort(cur.astype(np.float64, copy=False))
    prof.ref_sorted, prof.cur_sorted = rs, cs
    ref_distinct = int(np.count_nonzero(rs[1:] != rs[:-1])) + 1
    cur_distinct = int(np.count_nonzero(cs[1:] != cs[:-1])) + 1
    prof.ref_distinct = ref_distinct
    if ref_distinct + cur_distinct <= 200_000:  # discrete enough: work on counts
        ur, nr = _run_lengths(rs)
        uc, nc = _run_lengths(cs)
        prof.counts = _align(ur, nr, uc, nc)
        prof.distinct = int(prof.counts.keys.size)
    else:  # continuous: only "more than 5" matters for the test choice
        prof.distinct = max(ref_distinct, cur_distinct)
    return prof


def _wasserstein_norm(prof: _Numeric) -> float:
    """scipy.stats.wasserstein_distance / max(std(reference), 0.001), as Evidently computes it."""
    norm = max(float(np.std(prof.ref_values)), 0.001)
    if prof.counts is not None:
        c = prof.counts
        # F_ref - F_cur at each distinct value times the gap to the next one: the same
        # terms as scipy's _cdf_distance (its extra terms at tied values are zero).
        u_cdf = np.cumsum(c.ref)[:-1] / prof.ref_values.size
        v_cdf = np.cumsum(c.cur)[:-1] / prof.cur_values.size
        distance = float(np.dot(np.abs(u_cdf - v_cdf), np.diff(c.keys)))
    else:
        rs, cs = prof.ref_sorted, prof.cur_sorted
        assert rs is not None and cs is not None
        both = np.concatenate((rs, cs))
        order = np.argsort(both, kind="stable")  # merges two sorted runs: linear time
        merged = both[order]
        ref_seen = np.cumsum(order[:-1] < rs.size)
        seen = np.arange(1, merged.size, dtype=np.int64)
        u_cdf = ref_seen / rs.size
        v_cdf = (seen - ref_seen) / cs.size
        distance = float(np.dot(np.abs(u_cdf - v_cdf), np.diff(merged)))
    return distance / norm


def _js_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, n_ref: int, n_cur: int) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref_counts / n_ref, cur_counts / n_cur))


def _js_histogram(prof: _Numeric) -> float:
    """Jensen-Shannon on Sturges bins of both sides (Evidently's get_binned_data, > 20 values)."""
    combined = np.concatenate((prof.ref_values, prof.cur_values)).astype(np.float64, copy=False)
    bins = np.histogram_bin_edges(combined, bins="sturges")
    ref = np.histogram(prof.ref_values, bins)[0]
    cur = np.histogram(prof.cur_values, bins)[0]
    return _js_from_counts(ref, cur, prof.ref_values.size, prof.cur_values.size)


def _chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray, n_ref: int, n_cur: int) -> float:
    from scipy.stats import chisquare

    expected = ref_counts * (n_cur / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts.astype(np.float64), expected)[1])


def _z_test(
    keys_sorted_counts: tuple[np.ndarray, np.ndarray], n_ref: int, n_cur: int, same_single: bool
) -> float:
    """Evidently's two-proportion z-test on "is not the smallest value"."""
    from scipy.stats import norm

    if same_single:
        return 1.0
    ref_counts, cur_counts = keys_sorted_counts
    p1 = float(n_ref - ref_counts[0]) / n_ref
    p2 = float(n_cur - cur_counts[0]) / n_cur
    pooled = float(p1 * n_ref + p2 * n_cur) / (n_ref + n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _categorical_counts(vr: pd.Series, vc: pd.Series) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts of both sides aligned on the sorted union of the values they hold."""
    vr, vc = vr[vr > 0], vc[vc > 0]  # a pandas categorical counts its unused categories as 0
    keys = list(dict.fromkeys([*vr.index.tolist(), *vc.index.tolist()]))
    try:
        keys = sorted(keys)
    except TypeError:  # mixed types: Evidently sorts too, and would fail; keep a stable order
        keys = sorted(keys, key=str)
    ref_counts = vr.reindex(keys, fill_value=0).to_numpy(np.int64)
    return keys, ref_counts, vc.reindex(keys, fill_value=0).to_numpy(np.int64)


def _finite(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    if np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
    return values


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    column_type: Literal["numerical", "categorical"],
    *,
    test: StatTestName | None = None,
    threshold: float | None = None,
) -> ColumnDrift | SkippedColumn:
    """Drift statistic of one column over all its values, as Evidently 0.7 computes it.

    Nulls and infinities are dropped first; the test is Evidently's default for the
    type, size and number of distinct values unless ``test`` is given.

    Args:
        name: Column name.
        reference: Reference values.
        current: Current values.
        column_type: ``numerical`` or ``categorical``.
        test: Test to use instead of the default.
        threshold: Threshold instead of the test's default.

    Returns:
        The verdict, or a :class:`SkippedColumn` when one side has no value.

    Raises:
        ConfigurationError: ``test`` cannot be used on a column of this type.

    Example:
        ```python
        import pandas as pd
        from mlops_tasks.monitoring import column_drift
        drift = column_drift("x", pd.Series(range(5000)) * 1.0, pd.Series(range(100, 5100)) * 1.0,
                             "numerical")
        print(drift.stattest, drift.value, drift.drifted)
        ```
    """
    if test is not None and test in _NUMERICAL_ONLY and column_type != "numerical":
        raise ConfigurationError(
            f"Test {test!r} needs a numerical column but {name!r} is {column_type}; use "
            "jensenshannon, chisquare or z for it."
        )
    return _column_drift(name, reference, current, column_type, test, threshold)


def _column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    column_type: Literal["numerical", "categorical"],
    test: StatTestName | None,
    threshold: float | None,
    cur_counts: pd.Series | None = None,
) -> ColumnDrift | SkippedColumn:
    if column_type == "numerical":
        r, c = _finite(reference), _finite(current)
        n_ref, n_cur = int(r.size), int(c.size)
    else:
        ref_counts_s = reference.value_counts(dropna=True, sort=False)
        cur_counts_s = current.value_counts(dropna=True, sort=False) if cur_counts is None else cur_counts
        n_ref, n_cur = int(ref_counts_s.sum()), int(cur_counts_s.sum())
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return SkippedColumn(column=name, reason=f"every value is null in the {side} data")

    if column_type == "numerical":
        prof = _numeric_profile(r, c)
        chosen = test or choose_stattest("numerical", n_ref, prof.distinct)
        if chosen in ("chisquare", "z", "jensenshannon") and prof.counts is None and not (
            chosen == "jensenshannon" and prof.ref_distinct > 20
        ):
            ur, nr_ = _run_lengths(prof.ref_sorted)  # type: ignore[arg-type]
            uc, nc_ = _run_lengths(prof.cur_sorted)  # type: ignore[arg-type]
            prof.counts = _align(ur, nr_, uc, nc_)
        if chosen == "wasserstein":
            value = _wasserstein_norm(prof)
        elif chosen == "ks":
            from scipy.stats import ks_2samp

            value = float(ks_2samp(r, c)[1])
        elif chosen == "jensenshannon":
            if prof.ref_distinct > 20:
                value = _js_histogram(prof)
            else:
                assert prof.counts is not None
                value = _js_from_counts(prof.counts.ref, prof.counts.cur, n_ref, n_cur)
        else:
            assert prof.counts is not None
            counts = prof.counts
            if chosen == "chisquare":
                value = _chisquare(counts.ref, counts.cur, n_ref, n_cur)
            else:
                single = counts.keys.size == 1
                value = _z_test((counts.ref, counts.cur), n_ref, n_cur, single)
    else:
        keys, ref_counts, cur_array = _categorical_counts(ref_counts_s, cur_counts_s)
        chosen = test or choose_stattest("categorical", n_ref, len(keys))
        if chosen == "jensenshannon":
            value = _js_from_counts(ref_counts, cur_array, n_ref, n_cur)
        elif chosen == "chisquare":
            value = _chisquare(ref_counts, cur_array, n_ref, n_cur)
        else:
            value = _z_test((ref_counts, cur_array), n_ref, n_cur, len(keys) == 1)

    limit = float(threshold if threshold is not None else _TESTS[chosen]["threshold"])
    kind = _TESTS[chosen]["kind"]
    if kind == "distance":
        drifted = value >= limit
    elif chosen == "ks":
        drifted = value <= limit
    else:
        drifted = value < limit
    return ColumnDrift(
        column=name, column_type=column_type, stattest=chosen, statistic=kind, value=float(value),
        threshold=limit, drifted=bool(drifted), reference_rows=n_ref, current_rows=n_cur,
    )


# --- the check ----------------------------------------------------------------------------


def _feature_columns(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, ignore: set[str]
) -> tuple[list[str], list[str], list[str]]:
    excluded = set(settings.exclude_columns) | ignore
    ref_cols = [str(c) for c in reference.columns if c not in excluded]
    cur_cols = [str(c) for c in current.columns if c not in excluded]
    if settings.columns is not None:
        wanted = list(settings.columns)
        missing_both = [c for c in wanted if c not in ref_cols and c not in cur_cols]
        if missing_both:
            raise ConfigurationError(
                f"Columns {missing_both} were asked for but neither the reference nor the current "
                "data has them; fix DriftSettings.columns."
            )
        ref_cols = [c for c in wanted if c in ref_cols]
        cur_cols = [c for c in wanted if c in cur_cols]
    cur_set, ref_set = set(cur_cols), set(ref_cols)
    common = [c for c in ref_cols if c in cur_set]
    return common, [c for c in ref_cols if c not in cur_set], [c for c in cur_cols if c not in ref_set]


def _typed_column(series_cur: pd.Series, series_ref: pd.Series) -> ColumnType:
    kind = infer_column_type(series_cur)
    if kind == "unknown" and series_cur.isna().all():
        kind = infer_column_type(series_ref)
    return kind


@dataclass
class _Plan:
    name: str
    kind: Literal["numerical", "categorical"]
    test: StatTestName
    threshold: float
    counts: pd.Series | None = None


def _has_values(series: pd.Series) -> bool:
    """Whether ``series`` holds a non-null value (looks at the first rows before scanning all)."""
    return bool(series.iloc[:1000].notna().any() or series.notna().any())


def _edge_value(series: pd.Series, first: bool) -> Any:
    """The first (or last) non-null value, as Evidently's type inference looks at it."""
    edge = (series.iloc[:1000] if first else series.iloc[-1000:]).dropna()
    if edge.empty:
        edge = series.dropna()
    return edge.iloc[0] if first else edge.iloc[-1]


def _planned_test(ref: pd.Series, cur: pd.Series, kind: str) -> StatTestName:
    """Evidently's default test for a column, decided cheaply before the statistics run."""
    if kind == "categorical":
        n_ref = int(ref.count())
        if n_ref > _SMALL_REFERENCE:
            return "jensenshannon"
        distinct = len(set(ref.dropna().unique()) | set(cur.dropna().unique()))
        return choose_stattest("categorical", n_ref, distinct)
    r, c = _finite(ref), _finite(cur)
    if np.unique(r[:2000]).size > 5 or np.unique(c[:2000]).size > 5:
        distinct = 6  # more than 5 for sure: that is all the choice needs
    else:
        distinct = int(np.union1d(pd.unique(r), pd.unique(c)).size)
    return choose_stattest("numerical", int(r.size), distinct)


def _plan_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], settings: DriftSettings
) -> tuple[list[_Plan], list[SkippedColumn]]:
    plans: list[_Plan] = []
    skipped: list[SkippedColumn] = []
    for name in columns:
        counts = None
        series = current[name]
        if not _has_values(series) or not _has_values(reference[name]):
            side = "current" if not _has_values(series) else "reference"
            skipped.append(SkippedColumn(column=name, reason=f"every value is null in the {side} data"))
            continue
        if series.dtype == object:
            # One hash pass gives both Evidently's type rule (distinct vs count) and the counts.
            counts = series.value_counts(dropna=True, sort=False)
            kind: ColumnType = "unknown"
            first, last = _edge_value(series, first=True), _edge_value(series, first=False)
            if isinstance(first, str) and isinstance(last, str):
                kind = "text" if len(counts) > counts.sum() * 0.5 else "categorical"
        else:
            kind = _typed_column(series, reference[name])
        if kind == "text":
            skipped.append(SkippedColumn(
                column=name, reason="free-text column (more than half the values distinct); "
                "Evidently would train a domain classifier on it, which this check does not do. "
                "Exclude it or convert it to a category."))
            continue
        if kind not in ("numerical", "categorical"):
            skipped.append(SkippedColumn(
                column=name, reason=f"column type {kind} (dtype {series.dtype}) is not checked for drift, "
                "as in Evidently; cast it to float, int64 or str to check it"))
            continue
        test = settings.column_tests.get(name)
        if test is not None and test in _NUMERICAL_ONLY and kind != "numerical":
            raise ConfigurationError(
                f"Test {test!r} needs a numerical column but {name!r} is {kind}; use "
                "jensenshannon, chisquare or z for it."
            )
        test = test or _planned_test(reference[name], series, kind)
        threshold = settings.column_thresholds.get(name, default_threshold(test))
        plans.append(_Plan(name, kind, test, float(threshold), counts))  # type: ignore[arg-type]
    return plans, skipped


def _run_plans(
    reference: pd.DataFrame, current: pd.DataFrame, plans: list[_Plan]
) -> tuple[list[ColumnDrift], list[SkippedColumn]]:
    def run(plan: _Plan) -> ColumnDrift | SkippedColumn:
        return _column_drift(
            plan.name, reference[plan.name], current[plan.name], plan.kind, plan.test, plan.threshold,
            plan.counts if plan.kind == "categorical" else None,
        )

    # numpy sorts release the GIL: two columns run side by side.
    with ThreadPoolExecutor(max_workers=_STAT_WORKERS) as pool:
        results = list(pool.map(run, plans))
    checked = [r for r in results if isinstance(r, ColumnDrift)]
    return checked, [r for r in results if isinstance(r, SkippedColumn)]


def _prepare_current(current: pd.DataFrame, reference_columns: set[str]) -> pd.DataFrame:
    """Undo the prediction log's ``feature_`` prefix on features named like a utility column."""
    renames = {
        f"feature_{name}": name
        for name in (*UTILITY_COLUMNS, PREDICTION_COLUMN)
        if f"feature_{name}" in current.columns and name in reference_columns
    }
    return current.rename(columns=renames) if renames else current


def _performance(
    current: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label_column: str,
    task: TaskType | None,
    training_metrics: dict[str, float],
    settings: DriftSettings,
) -> PerformanceDrift:
    from mlops_tasks.evaluation import GREATER_IS_BETTER

    for frame, what in ((labels, "labels"), (current, "current data")):
        needed = ["request_id", label_column] if what == "labels" else ["request_id", PREDICTION_COLUMN]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            return PerformanceDrift(
                labelled_rows=0, current_rows=len(current),
                reason=f"not checked: the {what} lack column(s) {missing}",
            )
    # A request of several rows logs them under one request_id: the n-th label of an id (or the
    # labels' own ``row`` column) goes with the n-th row of that request.
    left = current[["request_id", PREDICTION_COLUMN]].assign(
        _row=current.groupby("request_id", sort=False).cumcount()
    )
    right = labels[["request_id", label_column]].assign(
        _row=labels["row"].to_numpy() if "row" in labels.columns
        else labels.groupby("request_id", sort=False).cumcount()
    )
    joined = left.merge(right.drop_duplicates(["request_id", "_row"], keep="last"),
                        on=["request_id", "_row"], how="inner").dropna()
    n = len(joined)
    if n == 0:
        return PerformanceDrift(
            labelled_rows=0, current_rows=len(current),
            reason=f"not checked: none of the {len(labels)} labels joined a request_id of the "
            f"{len(current)} current rows (labels for another window or another id scheme?)",
        )
    if n < settings.min_labelled_rows:
        return PerformanceDrift(
            labelled_rows=n, current_rows=len(current),
            reason=f"not checked: {n} labelled rows, fewer than min_labelled_rows="
            f"{settings.min_labelled_rows}",
        )
    truth, pred = joined[label_column], joined[PREDICTION_COLUMN]
    if task is None:
        task = "classification" if infer_column_type(truth) == "categorical" else "regression"
    metrics = _prediction_metrics(task, truth, pred)
    checks = []
    for metric, value in metrics.items():
        trained = training_metrics.get(f"holdout_{metric}")
        degraded = False
        if trained is not None:
            change = value - trained if GREATER_IS_BETTER[metric] else trained - value
            degraded = change < -settings.performance_tolerance
        checks.append(PerformanceCheck(
            metric=metric, current=value, training=trained,
            tolerance=settings.performance_tolerance, degraded=degraded,
        ))
    worse = [c.metric for c in checks if c.degraded]
    compared = [c for c in checks if c.training is not None]
    if not compared:
        reason = "no training-time holdout metrics recorded: current metrics reported only"
    elif worse:
        reason = f"degraded beyond tolerance {settings.performance_tolerance:g}: {', '.join(worse)}"
    else:
        reason = f"within tolerance {settings.performance_tolerance:g} of the training-time holdout"
    return PerformanceDrift(
        labelled_rows=n, current_rows=len(current), checks=checks, degraded=bool(worse), reason=reason,
    )


def _prediction_metrics(task: TaskType, truth: pd.Series, pred: pd.Series) -> dict[str, float]:
    """Metrics computable from predictions alone (no probabilities in the log)."""
    from sklearn import metrics as skm

    if task == "regression":
        t, p = truth.to_numpy(dtype=float), pred.to_numpy(dtype=float)
        out = {
            "rmse": float(math.sqrt(skm.mean_squared_error(t, p))),
            "mae": float(skm.mean_absolute_error(t, p)),
        }
        if len(t) > 1:
            out["r2"] = float(skm.r2_score(t, p))
        return out
    classes = sorted(set(truth.tolist()) | set(pred.tolist()), key=str)
    if len(classes) == 2:
        f1 = skm.f1_score(truth, pred, average="binary", pos_label=classes[-1])
    else:
        f1 = skm.f1_score(truth, pred, average="macro")
    return {"accuracy": float(skm.accuracy_score(truth, pred)), "f1": float(f1)}


def check_drift(
    reference: pd.DataFrame | ReferenceData,
    current: pd.DataFrame,
    *,
    settings: DriftSettings | None = None,
    model_name: str | None = None,
    model_version: str | int | None = None,
    window: DriftWindow | None = None,
    current_source: str | None = None,
    target: str | None = None,
    reference_predictions: pd.Series | None = None,
    labels: pd.DataFrame | None = None,
    label_column: str = "label",
    task: TaskType | None = None,
    training_metrics: dict[str, float] | None = None,
    report_location: str | None = None,
    s3: S3Config | None = None,
) -> DriftReport:
    """Compare current data with the reference: per-column drift, prediction and performance drift.

    Statistics come from all rows (see the module docs for the tests); when
    ``report_location`` is given the Evidently HTML report is rendered from a
    seeded sample and saved there.

    Args:
        reference: Reference rows, or a :class:`ReferenceData` from
            :func:`load_reference` (which brings model name, version, target,
            training metrics and the model's predictions on the reference).
        current: Current rows (a prediction-log window or any dataset). Utility
            columns (``request_id``, ``timestamp``, ...) are ignored; ``prediction``
            is checked as prediction drift.
        settings: Tests, thresholds, minimum rows, HTML sample size.
        model_name: Model the data belongs to (for the report and the event).
        model_version: Its version.
        window: Time window of the current data, for the report.
        current_source: Where the current data came from, for the report.
        target: Target column of the reference (never checked as a feature).
        reference_predictions: Predictions on the reference rows; compared with the
            current ``prediction`` column. Default: the reference's own ``prediction``
            column if it has one, else none (no prediction drift check).
        labels: Ground truth with ``request_id`` and ``label_column``; joined on
            ``request_id`` for performance drift. A request of several rows logs them
            under one id: its labels are matched by position (or by a ``row`` column).
        label_column: Label column of ``labels``.
        task: ``classification`` or ``regression`` (default: from the reference
            lineage, else guessed from the labels).
        training_metrics: Training-time metrics (``holdout_<metric>``) to compare with.
        report_location: Local folder or ``s3://bucket/prefix`` for the HTML report;
            ``None`` renders no HTML.
        s3: S3 endpoint and credentials for an ``s3://`` report location.

    Returns:
        The report. Empty or too small current data gives status ``not_enough_data``.

    Raises:
        EmptyDatasetError: The reference has no rows.
        NoCommonColumnsError: Reference and current share no feature column.
        ConfigurationError: A per-column test does not fit the column's type.
        StorageError: The HTML report cannot be written to an ``s3://`` location.

    Example:
        ```python
        from mlops_tasks.demo import make_churn_data
        from mlops_tasks.monitoring import check_drift
        reference = make_churn_data(5000, seed=1)
        current = make_churn_data(2000, seed=2, drift=0.8)
        report = check_drift(reference, current, target="churned")
        print(report.status, report.drifted)
        ```
    """
    started = datetime.now(UTC)
    settings = settings or DriftSettings()
    ref_source = None
    if isinstance(reference, ReferenceData):
        ref = reference
        model_name = model_name or ref.model_name
        model_version = model_version if model_version is not None else ref.model_version
        target = target or ref.target
        task = task or ref.task
        training_metrics = training_metrics if training_metrics is not None else ref.training_metrics
        if reference_predictions is None:
            reference_predictions = ref.predictions
        ref_source = ref.source
        reference = ref.frame
    if reference_predictions is None and PREDICTION_COLUMN in reference.columns:
        reference_predictions = reference[PREDICTION_COLUMN]
    if reference.empty:
        raise EmptyDatasetError(
            f"The reference data {ref_source or ''} has no rows; pass a reference dataset with data."
        )
    base = {
        "model_name": model_name,
        "model_version": None if model_version is None else str(model_version),
        "reference_source": ref_source,
        "current_source": current_source,
        "window": window,
        "reference_rows": len(reference),
        "current_rows": len(current),
        "drift_share_threshold": settings.drift_share,
        "checked_at": started,
    }
    if "model_version" in current.columns and len(current):
        base["served_versions"] = sorted(map(str, current["model_version"].dropna().unique().tolist()))
    where = f" in {window.describe()}" if window else ""
    if len(current) == 0:
        return DriftReport(
            status="not_enough_data", reason=f"No current rows{where}: nothing to compare "
            "(no traffic logged in the window, or an empty dataset).", **base,
        )
    if len(current) < settings.min_rows:
        return DriftReport(
            status="not_enough_data",
            reason=f"Only {len(current)} current rows{where}, fewer than min_rows={settings.min_rows}; "
            "widen the window or lower min_rows.", **base,
        )
    current = _prepare_current(current, set(map(str, reference.columns)))
    ignore = {*UTILITY_COLUMNS, PREDICTION_COLUMN}
    if target:
        ignore.add(target)
    common, missing_in_current, missing_in_reference = _feature_columns(reference, current, settings, ignore)
    if not common:
        raise NoCommonColumnsError(
            f"The reference ({sorted(map(str, reference.columns))}) and the current data "
            f"({sorted(map(str, current.columns))}) share no feature column, so nothing can be "
            "compared: check that the current data is the model's input (the right sink or dataset) "
            "and that DriftSettings.columns/exclude_columns leave some feature."
        )
    unknown_overrides = [c for c in settings.column_tests if c not in common]
    plans, skipped = _plan_columns(reference, current, common, settings)
    pred_plan, pred_skip = _plan_prediction(reference_predictions, current, settings)
    html_job = None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-html")
    if report_location and plans:
        # Evidently renders from the sample while the full-data statistics run.
        specs = [p for p in plans] + ([pred_plan] if pred_plan else [])
        html_job = pool.submit(
            _render_evidently, reference, current, specs, reference_predictions, settings,
        )
    try:
        columns, more_skipped = _run_plans(reference, current, plans)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    skipped += more_skipped
    order = {name: i for i, name in enumerate(common)}
    columns.sort(key=lambda c: order[c.column])
    skipped.sort(key=lambda s: order.get(s.column, 0))

    warnings = []
    if unknown_overrides:
        warnings.append(f"column_tests for {unknown_overrides} ignored: not common feature columns")
    if missing_in_current:
        warnings.append(f"{len(missing_in_current)} reference column(s) missing in current data: "
                        f"{', '.join(missing_in_current)}")
    if missing_in_reference:
        warnings.append(f"{len(missing_in_reference)} current column(s) unknown to the reference: "
                        f"{', '.join(missing_in_reference)}")

    prediction = None
    if pred_plan is not None:
        result = _run_plans(pd.DataFrame({PREDICTION_COLUMN: np.asarray(reference_predictions)}),
                            current, [pred_plan])
        if result[0]:
            prediction = result[0][0]
        else:
            warnings.append(f"prediction drift not checked: {result[1][0].reason}")
    elif pred_skip:
        warnings.append(f"prediction drift not checked: {pred_skip}")

    performance = None
    if labels is not None:
        performance = _performance(
            current, labels, label_column=label_column, task=task,
            training_metrics=training_metrics or {}, settings=settings,
        )

    drifted = sum(c.drifted for c in columns)
    share = drifted / len(columns) if columns else 0.0
    dataset_drift = bool(columns) and share >= settings.drift_share
    report = DriftReport(
        status="ok", reason="", columns=columns, skipped_columns=skipped,
        missing_in_current=missing_in_current, missing_in_reference=missing_in_reference,
        drifted_columns=drifted, drifted_share=share, dataset_drift=dataset_drift,
        prediction=prediction, performance=performance, warnings=warnings, **base,
    )
    report.status, report.reason = _verdict(report)
    if html_job is not None and report.columns:
        try:
            page, ref_n, cur_n = html_job.result()
        except Exception as exc:  # the verdicts stand without the HTML; say why it is missing
            logger.warning("Evidently HTML report not rendered: %s", exc)
            report.warnings.append(f"Evidently HTML report not rendered: {type(exc).__name__}: {exc}")
        else:
            # A location that cannot be written is a configuration problem: raise its typed error.
            page = _with_banner(page, report, ref_n, cur_n)
            report.html_uri = save_html(page, report_location or default_report_location(), report, s3=s3)
            report.html_sample_rows = max(ref_n, cur_n)
    pool.shutdown(wait=True)
    report.duration_s = (datetime.now(UTC) - started).total_seconds()
    return report


def _verdict(report: DriftReport) -> tuple[DriftStatus, str]:
    if not report.columns:
        return "not_enough_data", (
            f"None of the {len(report.skipped_columns)} common column(s) has values on both sides "
            f"({'; '.join(f'{s.column}: {s.reason}' for s in report.skipped_columns)}); nothing to compare."
        )
    parts = []
    if report.dataset_drift:
        parts.append(
            f"dataset drift: {report.drifted_columns} of {len(report.columns)} columns drifted "
            f"({report.drifted_share:.0%} >= {report.drift_share_threshold:.0%}): {', '.join(report.drifted)}"
        )
    if report.prediction and report.prediction.drifted:
        parts.append(
            f"prediction drift ({report.prediction.stattest} {report.prediction.value:.4g}, "
            f"threshold {report.prediction.threshold:g})"
        )
    if report.performance and report.performance.degraded:
        parts.append(f"performance {report.performance.reason}")
    if parts:
        return "drift", "Drift detected: " + "; ".join(parts) + "."
    detail = (
        f"{report.drifted_columns} of {len(report.columns)} columns drifted "
        f"({report.drifted_share:.0%} < {report.drift_share_threshold:.0%})"
    )
    if report.drifted_columns:
        detail += f": {', '.join(report.drifted)}"
    return "ok", f"No drift: {detail}."


# --- HTML report ----------------------------------------------------------------------------


def _sample_positions(n_rows: int, rows: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of ``rows`` rows, ``None`` when all rows fit."""
    if n_rows <= rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=rows, replace=False))


def _take(frame: pd.DataFrame, columns: list[str], positions: np.ndarray | None) -> pd.DataFrame:
    """The sampled rows of ``columns`` (rows first, so no full-size copy is made)."""
    rows = frame if positions is None else frame.iloc[positions]
    return rows[columns].reset_index(drop=True)


def render_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    report: DriftReport,
    settings: DriftSettings | None = None,
    reference_predictions: pd.Series | None = None,
) -> str:
    """Evidently's ``DataDriftPreset`` HTML on a seeded sample, headed by the full-data verdicts.

    The preset gets the tests and thresholds chosen on the full data, so its
    plots use the same statistics; its numbers are the sample's, and a banner at
    the top says that the verdicts (shown in the banner's table) come from all rows.
    :func:`check_drift` does this itself when given a ``report_location``.

    Args:
        reference: Reference rows.
        current: Current rows.
        report: The full-data report (columns, tests, thresholds).
        settings: Sample size and seed.
        reference_predictions: Predictions on the reference, to show prediction drift.

    Returns:
        A standalone HTML page.

    Example:
        ```python
        page = render_html(reference, current, report)
        Path("drift.html").write_text(page)
        ```
    """
    specs = [_Plan(c.column, c.column_type, c.stattest, c.threshold) for c in report.columns]
    if report.prediction is not None and reference_predictions is not None:
        p = report.prediction
        specs.append(_Plan(p.column, p.column_type, p.stattest, p.threshold))
    page, ref_n, cur_n = _render_evidently(
        reference, current, specs, reference_predictions, settings or DriftSettings()
    )
    return _with_banner(page, report, ref_n, cur_n)


def _render_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: list[_Plan],
    reference_predictions: pd.Series | None,
    settings: DriftSettings,
) -> tuple[str, int, int]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [s.name for s in specs if s.name != PREDICTION_COLUMN]
    ref_pos = _sample_positions(len(reference), settings.html_sample_rows, settings.sample_seed)
    cur_pos = _sample_positions(len(current), settings.html_sample_rows, settings.sample_seed + 1)
    ref_sample = _take(reference, names, ref_pos)
    with_prediction = len(names) < len(specs)
    cur_sample = _take(current, names + ([PREDICTION_COLUMN] if with_prediction else []), cur_pos)
    if with_prediction and reference_predictions is not None:
        predictions = np.asarray(reference_predictions)
        if len(predictions) != len(reference):
            raise ValueError(
                f"{len(predictions)} reference predictions for {len(reference)} reference rows"
            )
        ref_sample[PREDICTION_COLUMN] = predictions if ref_pos is None else predictions[ref_pos]
    # A column with values in the full data may have none in the sample: leave it out of the HTML.
    shown = [s for s in specs if s.name in ref_sample.columns and s.name in cur_sample.columns
             and ref_sample[s.name].notna().any() and cur_sample[s.name].notna().any()]
    definition = DataDefinition(
        numerical_columns=[s.name for s in shown if s.kind == "numerical"],
        categorical_columns=[s.name for s in shown if s.kind == "categorical"],
    )
    preset = DataDriftPreset(
        columns=[s.name for s in shown],
        drift_share=settings.drift_share,
        per_column_method={s.name: s.test for s in shown},
        per_column_threshold={s.name: s.threshold for s in shown},
    )
    cols = [s.name for s in shown]
    snapshot = Report([preset]).run(
        Dataset.from_pandas(cur_sample[cols], data_definition=definition),
        Dataset.from_pandas(ref_sample[cols], data_definition=definition),
    )
    return snapshot.get_html_str(as_iframe=False), len(ref_sample), len(cur_sample)


def _with_banner(page: str, report: DriftReport, ref_n: int, cur_n: int) -> str:
    banner = _banner(report, ref_n, cur_n)
    match = re.search(r"<body[^>]*>", page)
    if match:
        return page[: match.end()] + banner + page[match.end():]
    return banner + page


def _plan_prediction(
    reference_predictions: pd.Series | None, current: pd.DataFrame, settings: DriftSettings
) -> tuple[_Plan | None, str | None]:
    if not settings.check_prediction or reference_predictions is None or PREDICTION_COLUMN not in current:
        return None, None
    ref_pred = pd.Series(np.asarray(reference_predictions), name=PREDICTION_COLUMN)
    frame = pd.DataFrame({PREDICTION_COLUMN: ref_pred})
    plans, skipped = _plan_columns(frame, current[[PREDICTION_COLUMN]], [PREDICTION_COLUMN], settings)
    if plans:
        return plans[0], None
    return None, skipped[0].reason if skipped else "prediction column not comparable"


def _banner(report: DriftReport, ref_sample: int, cur_sample: int) -> str:
    esc = _html.escape
    rows = "".join(
        f"<tr><td>{esc(c.column)}</td><td>{c.column_type}</td><td>{esc(c.test_display_name)}</td>"
        f"<td>{c.value:.6g}</td><td>{c.threshold:g}</td>"
        f"<td style='color:{'#b00' if c.drifted else '#070'}'>"
        f"{'drift' if c.drifted else 'no drift'}</td></tr>"
        for c in report.columns + ([report.prediction] if report.prediction else [])
    )
    model = ""
    if report.model_name:
        model = f" &mdash; model {esc(report.model_name)} v{esc(report.model_version or '?')}"
    window = f"<p>Window: {esc(report.window.describe())}</p>" if report.window else ""
    return (
        "<div id='mlops-drift-summary' style='font-family:sans-serif;margin:16px;padding:12px;"
        "border:2px solid #888;background:#fafafa'>"
        f"<h2>Drift check: {esc(report.status.upper())}{model}</h2>"
        f"<p>{esc(report.reason)}</p>{window}"
        f"<p><b>Verdicts below are computed on the full data</b> ({report.reference_rows:,} reference rows, "
        f"{report.current_rows:,} current rows) with Evidently's tests and thresholds. The Evidently "
        f"report that follows was rendered from a seeded random sample of {ref_sample:,} reference and "
        f"{cur_sample:,} current rows, so its plots and scores are the sample's and may differ slightly.</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>column</th><th>type</th><th>test</th><th>value (full data)</th><th>threshold</th>"
        f"<th>verdict</th></tr>{rows}</table></div>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "data"


def save_html(page: str, location: str, report: DriftReport, *, s3: S3Config | None = None) -> str:
    """Write the HTML report under ``location`` (local folder or ``s3://bucket/prefix``).

    The file is ``<location>/<model>/<checked_at>-<id>/drift-report.html``.

    Returns:
        The URI written (a local path or an ``s3://`` URI).

    Raises:
        StorageError: S3 refused the write.
        ServiceUnavailableError: The S3 endpoint did not answer.

    Example:
        ```python
        uri = save_html(page, "s3://reports/drift", report)
        ```
    """
    from mlops_tasks.data import _split_s3_uri, s3_client, translate_s3_error

    stamp = f"{report.checked_at:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    rel = f"{_slug(report.model_name or 'data')}/{stamp}/drift-report.html"
    data = page.encode("utf-8")
    if location.startswith("s3://"):
        uri = f"{location.rstrip('/')}/{rel}"
        bucket, key = _split_s3_uri(uri)
        try:
            s3_client(s3).put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/html")
        except Exception as exc:
            raise translate_s3_error(exc, uri) from exc
        return uri
    path = Path(location).expanduser().resolve() / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def default_report_location() -> str:
    """``<state dir>/monitoring``: where HTML reports go when no location is given."""
    return str(state_dir() / "monitoring")


# --- reference and current data --------------------------------------------------------------


def load_reference(
    model_name: str,
    *,
    version: int | str | None = None,
    alias: str = "champion",
    mlflow_config: MlflowConfig | None = None,
    with_predictions: bool = True,
) -> ReferenceData:
    """The training split recorded for a model version, with its lineage.

    Args:
        model_name: Registered model name.
        version: Version number; default: the version holding ``alias``.
        alias: Alias used when ``version`` is not given.
        mlflow_config: Where MLflow lives.
        with_predictions: Score the reference with the model (for prediction drift).

    Returns:
        The reference frame (features only), target, task, features, the run's
        ``holdout_*`` metrics and, when asked, the model's predictions on it.

    Raises:
        ModelNotFoundError: No such model, version or alias.
        ReferenceDataNotFoundError: The version's run did not record
            ``reference/train.parquet`` (not trained by :mod:`mlops_tasks.training`).

    Example:
        ```python
        from mlops_tasks.monitoring import load_reference
        ref = load_reference("churn-classifier")          # the champion's training split
        print(ref.model_version, len(ref.frame), ref.features)
        ```
    """
    from mlops_tasks.registry import check_model_name, get_alias_version, get_model_version
    from mlops_tasks.tracking import mlflow_session, resolve_and_check
    from mlops_tasks.training import TAG_TARGET, TAG_TASK

    check_model_name(model_name)
    resolved = resolve_and_check(mlflow_config)
    with mlflow_session(resolved) as client:
        if version is not None:
            mv = get_model_version(client, model_name, version)
        else:
            mv = get_alias_version(client, model_name, alias)
            if mv is None:
                raise ModelNotFoundError(
                    f"Model {model_name!r} has no version with alias {alias!r}; promote one "
                    f"(promote_model) or pass a version number."
                )
        label = f"model {model_name!r} version {mv.version}"
        if not mv.run_id:
            raise ReferenceDataNotFoundError(
                f"{label} has no MLflow run, so no reference data was recorded; pass a reference "
                "dataset to the drift check (reference=DatasetSpec(...))."
            )
        try:
            run = client.get_run(mv.run_id)
        except Exception as exc:
            raise RegistryError(f"Reading run {mv.run_id} of {label} failed: {exc}") from exc
        reference = _download_reference(client, mv.run_id, label)
        model_uri = f"models:/{model_name}/{mv.version}"
        params = run.data.params
        features = [
            f for key in ("numeric_features", "categorical_features")
            for f in params.get(key, "").split(",") if f
        ]
        target = run.data.tags.get(TAG_TARGET)
        task = run.data.tags.get(TAG_TASK)
        predictions = None
        if with_predictions:
            predictions = _predict(model_uri, reference, features, label)
    frame = reference[[c for c in features if c in reference.columns]] if features else reference.drop(
        columns=[target] if target in reference.columns else []
    )
    return ReferenceData(
        frame=frame.reset_index(drop=True),
        source=f"{model_uri} (run {mv.run_id}, {REFERENCE_ARTIFACT})",
        model_name=model_name,
        model_version=str(mv.version),
        run_id=mv.run_id,
        model_uri=model_uri,
        target=target,
        task=task if task in ("classification", "regression") else None,  # type: ignore[arg-type]
        features=features,
        training_metrics={k: float(v) for k, v in run.data.metrics.items() if k.startswith("holdout_")},
        predictions=predictions,
    )


def _download_reference(client: Any, run_id: str, label: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
        except Exception as exc:
            raise ReferenceDataNotFoundError(
                f"{label} (run {run_id}) has no recorded reference data: artifact {REFERENCE_ARTIFACT} "
                "is missing (the model was not trained with mlops_tasks.training.train_model, or the "
                "artifact was deleted). Pass a reference dataset to the drift check "
                "(reference=DatasetSpec(uri=...)), or retrain the model with the training pipeline."
            ) from exc
        return pd.read_parquet(path)


def _predict(model_uri: str, frame: pd.DataFrame, features: list[str], label: str) -> pd.Series | None:
    import mlflow.sklearn

    try:
        model = mlflow.sklearn.load_model(model_uri)
        x = frame[features] if features else frame
        return pd.Series(np.asarray(model.predict(x)), name=PREDICTION_COLUMN)
    except Exception as exc:  # prediction drift is optional: the data checks still run
        logger.warning("Cannot score the reference of %s for prediction drift: %s", label, exc)
        return None


def resolve_window(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    last_hours: float | None = None,
    now: datetime | None = None,
) -> DriftWindow:
    """Decide ``[start, end)`` in UTC: explicit bounds, or the last ``last_hours`` up to ``end``/now.

    Naive datetimes and strings are taken as UTC.

    Raises:
        ConfigurationError: ``start`` is not before ``end``, or both ``start`` and ``last_hours``.

    Example:
        ```python
        from mlops_tasks.monitoring import resolve_window
        window = resolve_window(last_hours=24)
        ```
    """
    def utc(value: datetime | str | None) -> datetime | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.to_pydatetime()

    lo, hi = utc(start), utc(end)
    if last_hours is not None:
        if lo is not None:
            raise ConfigurationError("Give either start or last_hours, not both.")
        if last_hours <= 0:
            raise ConfigurationError(f"last_hours must be positive, got {last_hours}.")
        hi = hi or (now or datetime.now(UTC))
        lo = hi - timedelta(hours=last_hours)
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigurationError(f"The window start {lo.isoformat()} is not before its end {hi.isoformat()}.")
    return DriftWindow(start=lo, end=hi)


def load_current(
    sink: str,
    window: DriftWindow | None = None,
    *,
    model_name: str | None = None,
    s3_endpoint_url: str | None = None,
    s3: S3Config | None = None,
) -> pd.DataFrame:
    """Read a prediction-log window (local folder or ``s3://`` prefix) for one model.

    Args:
        sink: The prediction log the server (or :func:`score_batch`) wrote.
        window: ``[start, end)``; ``None`` reads everything.
        model_name: Keep only rows of this model (when the log has ``model_name``).
        s3_endpoint_url: S3 endpoint for ``s3://`` sinks.
        s3: S3 endpoint and credentials (explicit, block or environment) for ``s3://`` sinks.

    Returns:
        The rows (possibly none).

    Raises:
        DatasetNotFoundError: A local sink folder does not exist.
        PredictionLogError: A log file cannot be read.

    Example:
        ```python
        current = load_current("/var/log/predictions", resolve_window(last_hours=24))
        ```
    """
    from mlops_tasks.serving.predlog import read_prediction_log

    window = window or DriftWindow()
    on_s3 = s3 is not None and sink.startswith("s3://")
    client_kwargs = s3.client_kwargs() if s3 is not None and on_s3 else None
    try:
        frame = read_prediction_log(sink, window.start, window.end, s3_endpoint_url=s3_endpoint_url,
                                    s3_client_kwargs=client_kwargs)
    except PredictionLogError as exc:
        if s3 is None or not on_s3:
            raise
        raise PredictionLogError(f"{exc} (the credentials came from {s3.describe_source()})") from exc
    if model_name and "model_name" in frame.columns and len(frame):
        frame = frame[frame["model_name"] == model_name].reset_index(drop=True)
    return frame


# --- outputs: MLflow and the Prefect event ----------------------------------------------------


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)[:250]


def monitoring_experiment(config: ResolvedMlflowConfig) -> ResolvedMlflowConfig:
    """The same MLflow settings with the experiment ``<experiment>-monitoring``."""
    name = config.experiment_name + MONITORING_EXPERIMENT_SUFFIX
    return config.model_copy(update={"experiment_name": name})


def log_drift_run(
    report: DriftReport, *, mlflow_config: MlflowConfig | None = None, html_path: str | None = None
) -> str:
    """Log the report on a run of the ``<experiment>-monitoring`` experiment; return its id.

    Metrics: ``drift_share``, ``drifted_columns``, ``checked_columns``, row counts
    and one ``drift.<column>`` value per column (``prediction_drift``, ``perf.<metric>``
    when checked). Tags: ``mlops.model_name``, ``mlops.model_version``,
    ``mlops.drift.status``. Artifacts: ``drift/report.json`` and the HTML report.

    Raises:
        ServiceUnavailableError: The MLflow server did not answer.

    Example:
        ```python
        run_id = log_drift_run(report, mlflow_config=MlflowConfig(tracking_uri="http://mlflow:5000"))
        ```
    """
    import time

    from mlflow.entities import Metric

    from mlops_tasks.tracking import ensure_experiment, mlflow_session, resolve_and_check

    resolved = monitoring_experiment(resolve_and_check(mlflow_config))
    now = int(time.time() * 1000)
    values: dict[str, float] = {
        "drift_share": report.drifted_share,
        "drifted_columns": float(report.drifted_columns),
        "checked_columns": float(len(report.columns)),
        "dataset_drift": float(report.dataset_drift),
        "reference_rows": float(report.reference_rows),
        "current_rows": float(report.current_rows),
    }
    for c in report.columns:
        values[_metric_key(f"drift.{c.column}")] = c.value
    if report.prediction:
        values["prediction_drift"] = report.prediction.value
    if report.performance:
        values["labelled_rows"] = float(report.performance.labelled_rows)
        for p in report.performance.checks:
            values[_metric_key(f"perf.{p.metric}")] = p.current
    tags = {
        TAG_DRIFT_STATUS: report.status,
        "mlops.drift.dataset_drift": str(report.dataset_drift).lower(),
        "mlops.monitoring": "drift",
    }
    if report.model_name:
        tags[TAG_MODEL_NAME] = report.model_name
    if report.model_version:
        tags[TAG_MODEL_VERSION] = report.model_version
    if report.window and report.window.start:
        tags["mlops.window_start"] = report.window.start.isoformat()
    if report.window and report.window.end:
        tags["mlops.window_end"] = report.window.end.isoformat()
    name = f"drift-{report.model_name or 'data'}"
    if report.model_version:
        name += f"-v{report.model_version}"
    with mlflow_session(resolved) as client:
        experiment_id = ensure_experiment(client, resolved)
        run = client.create_run(experiment_id, tags=tags, run_name=name)
        run_id = run.info.run_id
        try:
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()
                                              if math.isfinite(float(v))])
            client.log_text(run_id, json.dumps(report.model_dump(mode="json"), indent=2), "drift/report.json")
            if html_path and not html_path.startswith("s3://") and Path(html_path).is_file():
                client.log_artifact(run_id, html_path, artifact_path="drift")
            elif report.html_uri:
                client.set_tag(run_id, "mlops.drift.html_uri", report.html_uri)
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
    return run_id


def drift_event_resource(report: DriftReport) -> dict[str, str]:
    """The Prefect resource of a drift event: ``mlops.model.<name>`` with the version as a label.

    Example:
        ```python
        resource = drift_event_resource(report)
        assert resource["prefect.resource.id"] == f"mlops.model.{report.model_name}"
        ```
    """
    name = report.model_name or "unknown"
    resource = {
        "prefect.resource.id": f"mlops.model.{name}",
        "prefect.resource.name": name,
        "mlops.model.name": name,
    }
    if report.model_version:
        resource["mlops.model.version"] = report.model_version
    return resource


def emit_drift_event(report: DriftReport) -> str | None:
    """Emit the Prefect event ``mlops.drift.detected`` when ``report.status`` is ``drift``.

    The resource id is ``mlops.model.<name>`` (labels ``mlops.model.name`` and
    ``mlops.model.version``) and the payload is :meth:`DriftReport.summary`, so an
    automation can match ``mlops.model.*`` and pass ``{{ event.resource['mlops.model.name'] }}``
    to a retrain deployment.

    Returns:
        The event id, or ``None`` when nothing was emitted (no drift, no model name,
        or events are disabled).

    Example:
        ```python
        event_id = emit_drift_event(report)
        ```
    """
    if report.status != "drift" or not report.model_name:
        return None
    from prefect.events import emit_event

    event = emit_event(
        event=EVENT_DRIFT_DETECTED, resource=drift_event_resource(report), payload=report.summary()
    )
    return str(event.id) if event is not None else None


def error_report(
    exc: BaseException,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    window: DriftWindow | None = None,
) -> DriftReport:
    """A report with status ``error`` carrying the exception's message as its reason.

    Example:
        ```python
        report = error_report(exc, model_name="churn")
        ```
    """
    return DriftReport(
        status="error", reason=f"{type(exc).__name__}: {exc}", model_name=model_name,
        model_version=model_version, window=window,
    )


# --- batch scoring ------------------------------------------------------------------------------


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
    :func:`load_current` and the drift check read them like server traffic. ``output``
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
    import mlflow.sklearn

    from mlops_tasks.data import require_columns, write_dataset
    from mlops_tasks.registry import get_alias_version, get_model_version
    from mlops_tasks.serving.predlog import Sink
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    if frame.empty:
        raise EmptyDatasetError("The dataset to score has no rows.")
    resolved = resolve_and_check(mlflow_config)
    with mlflow_session(resolved) as client:
        mv = get_model_version(client, model_name, version) if version is not None else \
            get_alias_version(client, model_name, alias)
        if mv is None:
            raise ModelNotFoundError(
                f"Model {model_name!r} has no version with alias {alias!r}; promote one or pass a version."
            )
        run = client.get_run(mv.run_id) if mv.run_id else None
        model = mlflow.sklearn.load_model(f"models:/{model_name}/{mv.version}")
    params = run.data.params if run else {}
    features = [f for key in ("numeric_features", "categorical_features")
                for f in params.get(key, "").split(",") if f]
    if not features:
        features = [str(c) for c in getattr(model, "feature_names_in_", frame.columns)]
    require_columns(frame, features, what=f"Scoring with {model_name} v{mv.version}")
    predictions = np.asarray(model.predict(frame[features]))
    now = datetime.now(UTC)
    ids = (frame[id_column].astype(str).to_numpy() if id_column else
           np.array([f"batch-{now:%Y%m%dT%H%M%S}-{i}" for i in range(len(frame))], dtype=object))
    out = pd.DataFrame({
        "request_id": ids,
        "timestamp": pd.Series([pd.Timestamp(now)] * len(frame), dtype="datetime64[us, UTC]"),
        "model_name": model_name,
        "model_version": str(mv.version),
        "served_by": served_by,
    })
    for name in features:
        column = f"feature_{name}" if name in (*UTILITY_COLUMNS, PREDICTION_COLUMN) else name
        out[column] = frame[name].to_numpy()
    out[PREDICTION_COLUMN] = predictions
    suffix = Path(output.split("?")[0]).suffix.lower()
    if suffix in (".parquet", ".pq", ".csv"):
        uri = write_dataset(out, output, s3=s3)
        return BatchPredictions(model_name=model_name, model_version=str(mv.version), rows=len(out),
                                output_uri=uri, sink=None, timestamp=now)
    buffer = io.BytesIO()
    out.to_parquet(buffer, index=False)
    rel = f"date={now:%Y-%m-%d}/hour={now:%H}/{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.parquet"
    sink = Sink(output, s3_client_kwargs=(s3 or S3Config()).client_kwargs())
    sink.write(rel, buffer.getvalue())
    uri = f"{output.rstrip('/')}/{rel}"
    return BatchPredictions(model_name=model_name, model_version=str(mv.version), rows=len(out),
                            output_uri=uri, sink=output, timestamp=now)
