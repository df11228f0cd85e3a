"""Which columns a drift check compares, with which test and threshold, and running the plan.

The plan is made cheaply before any statistic runs (so the HTML report can start
rendering from a sample while the full-data statistics run): common feature
columns, Evidently's column type and default test for each, per-column overrides.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_tasks.errors import ConfigurationError
from mlops_tasks.monitoring.column_types import SMALL_REFERENCE_ROWS, choose_stattest, infer_column_type
from mlops_tasks.monitoring.models import (
    NUMERICAL_ONLY_TESTS,
    PREDICTION_COLUMN,
    UTILITY_COLUMNS,
    ColumnDrift,
    ColumnType,
    DriftSettings,
    SkippedColumn,
    StatTestName,
    default_threshold,
)
from mlops_tasks.monitoring.statistics import compute_column_drift, finite_values

__all__ = [
    "ColumnPlan",
    "feature_columns",
    "plan_columns",
    "plan_prediction",
    "prepare_current",
    "run_plans",
]

_STAT_WORKERS = 2  # columns computed side by side (numpy releases the GIL while sorting)


def feature_columns(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, ignore: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """The feature columns to compare, after ``settings.columns``/``exclude_columns`` and ``ignore``.

    Returns:
        Common columns (reference order), reference columns missing in the current
        data, current columns the reference lacks.

    Raises:
        ConfigurationError: A column of ``settings.columns`` is on neither side.
    """
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
class ColumnPlan:
    """One column to compare: its type, the test and threshold chosen for it.

    ``counts`` holds the current values' counts when planning already computed them
    (object columns), so the statistic does not count again.
    """

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
        if n_ref > SMALL_REFERENCE_ROWS:
            return "jensenshannon"
        distinct = len(set(ref.dropna().unique()) | set(cur.dropna().unique()))
        return choose_stattest("categorical", n_ref, distinct)
    r, c = finite_values(ref), finite_values(cur)
    if np.unique(r[:2000]).size > 5 or np.unique(c[:2000]).size > 5:
        distinct = 6  # more than 5 for sure: that is all the choice needs
    else:
        distinct = int(np.union1d(pd.unique(r), pd.unique(c)).size)
    return choose_stattest("numerical", int(r.size), distinct)


def _column_kind(series: pd.Series, reference: pd.Series) -> tuple[ColumnType, pd.Series | None]:
    """Evidently's type of a current column, with its value counts when computing the type made them."""
    if series.dtype != object:
        return _typed_column(series, reference), None
    # One hash pass gives both Evidently's type rule (distinct vs count) and the counts.
    counts = series.value_counts(dropna=True, sort=False)
    kind: ColumnType = "unknown"
    first, last = _edge_value(series, first=True), _edge_value(series, first=False)
    if isinstance(first, str) and isinstance(last, str):
        kind = "text" if len(counts) > counts.sum() * 0.5 else "categorical"
    return kind, counts


def plan_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], settings: DriftSettings
) -> tuple[list[ColumnPlan], list[SkippedColumn]]:
    """Type, test and threshold of each column, or the reason it cannot be compared.

    Args:
        reference: Reference rows.
        current: Current rows.
        columns: Columns present on both sides.
        settings: Per-column tests and thresholds.

    Returns:
        The plans and the skipped columns (all null on one side, free text, other types).

    Raises:
        ConfigurationError: A per-column test does not fit the column's type.
    """
    plans: list[ColumnPlan] = []
    skipped: list[SkippedColumn] = []
    for name in columns:
        series = current[name]
        if not _has_values(series) or not _has_values(reference[name]):
            side = "current" if not _has_values(series) else "reference"
            skipped.append(SkippedColumn(column=name, reason=f"every value is null in the {side} data"))
            continue
        kind, counts = _column_kind(series, reference[name])
        if kind == "text":
            skipped.append(
                SkippedColumn(
                    column=name,
                    reason="free-text column (more than half the values distinct); "
                    "Evidently would train a domain classifier on it, which this check does not do. "
                    "Exclude it or convert it to a category.",
                )
            )
            continue
        if kind not in ("numerical", "categorical"):
            skipped.append(
                SkippedColumn(
                    column=name,
                    reason=f"column type {kind} (dtype {series.dtype}) is not checked for drift, "
                    "as in Evidently; cast it to float, int64 or str to check it",
                )
            )
            continue
        test = settings.column_tests.get(name)
        if test is not None and test in NUMERICAL_ONLY_TESTS and kind != "numerical":
            raise ConfigurationError(
                f"Test {test!r} needs a numerical column but {name!r} is {kind}; use "
                "jensenshannon, chisquare or z for it."
            )
        test = test or _planned_test(reference[name], series, kind)
        threshold = settings.column_thresholds.get(name, default_threshold(test))
        plans.append(ColumnPlan(name, kind, test, float(threshold), counts))
    return plans, skipped


def run_plans(
    reference: pd.DataFrame, current: pd.DataFrame, plans: list[ColumnPlan]
) -> tuple[list[ColumnDrift], list[SkippedColumn]]:
    """Compute the planned statistics over all rows, two columns at a time.

    Returns:
        The verdicts and the columns that turned out to have no value on one side.
    """

    def run(plan: ColumnPlan) -> ColumnDrift | SkippedColumn:
        return compute_column_drift(
            plan.name,
            reference[plan.name],
            current[plan.name],
            plan.kind,
            plan.test,
            plan.threshold,
            plan.counts if plan.kind == "categorical" else None,
        )

    # numpy sorts release the GIL: two columns run side by side.
    with ThreadPoolExecutor(max_workers=_STAT_WORKERS) as pool:
        results = list(pool.map(run, plans))
    checked = [r for r in results if isinstance(r, ColumnDrift)]
    return checked, [r for r in results if isinstance(r, SkippedColumn)]


def prepare_current(current: pd.DataFrame, reference_columns: set[str]) -> pd.DataFrame:
    """Undo the prediction log's ``feature_`` prefix on features named like a utility column."""
    renames = {
        f"feature_{name}": name
        for name in (*UTILITY_COLUMNS, PREDICTION_COLUMN)
        if f"feature_{name}" in current.columns and name in reference_columns
    }
    return current.rename(columns=renames) if renames else current


def plan_prediction(
    reference_predictions: pd.Series | None, current: pd.DataFrame, settings: DriftSettings
) -> tuple[ColumnPlan | None, str | None]:
    """The plan for the ``prediction`` column, or why it is not compared.

    Returns:
        ``(plan, None)``; ``(None, reason)`` when it cannot be compared; ``(None, None)``
        when not asked for (``check_prediction`` off, no reference predictions, or no
        ``prediction`` column in the current data).
    """
    if not settings.check_prediction or reference_predictions is None or PREDICTION_COLUMN not in current:
        return None, None
    ref_pred = pd.Series(np.asarray(reference_predictions), name=PREDICTION_COLUMN)
    frame = pd.DataFrame({PREDICTION_COLUMN: ref_pred})
    plans, skipped = plan_columns(frame, current[[PREDICTION_COLUMN]], [PREDICTION_COLUMN], settings)
    if plans:
        return plans[0], None
    return None, skipped[0].reason if skipped else "prediction column not comparable"
