"""Drift check settings and results: what a check is asked, and everything it found.

Also the prediction-log column names and MLflow tag names the check relies on, and
the table of Evidently 0.7 test names and default thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_tasks.metrics import TaskType

__all__ = [
    "MONITORING_EXPERIMENT_SUFFIX",
    "NUMERICAL_ONLY_TESTS",
    "PREDICTION_COLUMN",
    "REFERENCE_ARTIFACT",
    "STAT_TESTS",
    "TAG_DRIFT_STATUS",
    "TAG_MODEL_NAME",
    "TAG_MODEL_VERSION",
    "UTILITY_COLUMNS",
    "ColumnDrift",
    "ColumnType",
    "DriftReport",
    "DriftSettings",
    "DriftStatus",
    "DriftWindow",
    "PerformanceCheck",
    "PerformanceDrift",
    "ReferenceData",
    "SkippedColumn",
    "StatTestName",
    "TaskType",
    "default_threshold",
    "error_report",
]


StatTestName = Literal["wasserstein", "jensenshannon", "ks", "chisquare", "z"]
ColumnType = Literal["numerical", "categorical", "text", "datetime", "unknown"]
DriftStatus = Literal["ok", "drift", "not_enough_data", "error"]

UTILITY_COLUMNS = ("request_id", "timestamp", "model_name", "model_version", "served_by")
"""Prediction-log columns that are not features (never checked for drift)."""
PREDICTION_COLUMN = "prediction"
MONITORING_EXPERIMENT_SUFFIX = "-monitoring"
TAG_MODEL_NAME = "mlops.model_name"
TAG_MODEL_VERSION = "mlops.model_version"
TAG_DRIFT_STATUS = "mlops.drift.status"
REFERENCE_ARTIFACT = "reference/train.parquet"

STAT_TESTS: dict[str, dict[str, Any]] = {
    "wasserstein": {"display": "Wasserstein distance (normed)", "threshold": 0.1, "kind": "distance"},
    "jensenshannon": {"display": "Jensen-Shannon distance", "threshold": 0.1, "kind": "distance"},
    "ks": {"display": "K-S p_value", "threshold": 0.05, "kind": "p_value"},
    "chisquare": {"display": "chi-square p_value", "threshold": 0.05, "kind": "p_value"},
    "z": {"display": "Z-test p_value", "threshold": 0.05, "kind": "p_value"},
}
"""Evidently 0.7 display names, default thresholds and verdict kinds of the tests used by default."""
NUMERICAL_ONLY_TESTS = {"wasserstein", "ks"}
"""Tests that only apply to numerical columns."""


def default_threshold(test: StatTestName) -> float:
    """Evidently's default threshold of ``test`` (0.1 for distances, 0.05 for p-values).

    Example:
        ```python
        from mlops_tasks.monitoring import default_threshold
        assert default_threshold("wasserstein") == 0.1
        ```
    """
    return float(STAT_TESTS[test]["threshold"])


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
        5_000,
        ge=100,
        le=200_000,
        description="Rows of each side (seeded sample) the Evidently HTML is rendered from.",
    )
    sample_seed: int = Field(0, description="Seed of the HTML sample.")
    check_prediction: bool = Field(True, description="Also check drift of the prediction column.")
    performance_tolerance: float = Field(
        0.05,
        ge=0,
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
    error_bound: float | None = Field(
        None,
        description="Largest possible distance of value from the exact statistic when it was bounded "
        "from merged per-partition histograms (check_drift_on_cluster); None: exact.",
    )

    @property
    def test_display_name(self) -> str:
        """Evidently's display name of the test, e.g. ``Wasserstein distance (normed)``."""
        return str(STAT_TESTS[self.stattest]["display"])


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
            "ok": "No drift",
            "drift": "DRIFT DETECTED",
            "not_enough_data": "Not enough data",
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
            sample = (
                f" (rendered from a sample of {self.html_sample_rows:,} rows per side; verdicts use all rows)"
                if self.html_sample_rows
                else ""
            )
            lines.append(f"- Evidently report: {self.html_uri}{sample}")
        if self.mlflow_run_id:
            lines.append(f"- MLflow monitoring run: `{self.mlflow_run_id}`")
        for label, names in (
            ("missing in current", self.missing_in_current),
            ("missing in reference", self.missing_in_reference),
        ):
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
            lines += [
                "",
                f"**Performance** ({self.performance.labelled_rows} labelled rows): "
                f"{self.performance.reason}",
            ]
            if self.performance.checks:
                lines += [
                    "",
                    "| metric | current | training | tolerance | degraded |",
                    "|---|---|---|---|---|",
                ]
                for p in self.performance.checks:
                    train = "n/a" if p.training is None else f"{p.training:.4g}"
                    lines.append(
                        f"| {p.metric} | {p.current:.4g} | {train} | {p.tolerance:g} | "
                        f"{'**yes**' if p.degraded else 'no'} |"
                    )
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
        status="error",
        reason=f"{type(exc).__name__}: {exc}",
        model_name=model_name,
        model_version=model_version,
        window=window,
    )
