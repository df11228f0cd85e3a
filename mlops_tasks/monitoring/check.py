"""The drift check: compare current data with the reference and decide ok, drift or not enough data.

:func:`check_drift` runs named steps: complete the arguments from the reference's
lineage, stop early on too few rows, choose the common feature columns, plan each
column's test, start the sampled HTML report, compute the full-data statistics,
check prediction and performance drift, then give the verdict.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.errors import EmptyDatasetError, NoCommonColumnsError
from mlops_tasks.monitoring.column_plan import (
    ColumnPlan,
    feature_columns,
    plan_columns,
    plan_prediction,
    prepare_current,
    run_plans,
)
from mlops_tasks.monitoring.models import (
    PREDICTION_COLUMN,
    UTILITY_COLUMNS,
    ColumnDrift,
    DriftReport,
    DriftSettings,
    DriftStatus,
    DriftWindow,
    ReferenceData,
    SkippedColumn,
    TaskType,
)
from mlops_tasks.monitoring.performance import performance_drift
from mlops_tasks.monitoring.report_html import (
    default_report_location,
    render_evidently,
    save_html,
    with_banner,
)
from mlops_tasks.settings import S3Config

__all__ = ["check_drift"]

logger = logging.getLogger(__name__)


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

    Statistics come from all rows (see :mod:`mlops_tasks.monitoring` for the tests); when
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
    ref = _resolve_reference(
        reference,
        model_name=model_name,
        model_version=model_version,
        target=target,
        task=task,
        training_metrics=training_metrics,
        reference_predictions=reference_predictions,
    )
    base = _report_fields(ref, current, settings, window, current_source, started)
    too_small = _not_enough_rows(current, settings, window, base)
    if too_small is not None:
        return too_small
    current = prepare_current(current, set(map(str, ref.frame.columns)))
    common, missing_in_current, missing_in_reference = _common_features(ref, current, settings)
    unknown_overrides = [c for c in settings.column_tests if c not in common]
    plans, skipped = plan_columns(ref.frame, current, common, settings)
    pred_plan, pred_skip = plan_prediction(ref.predictions, current, settings)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-html")
    html_job = None
    if report_location and plans:
        # Evidently renders from the sample while the full-data statistics run.
        specs = [*plans, *([pred_plan] if pred_plan else [])]
        html_job = pool.submit(render_evidently, ref.frame, current, specs, ref.predictions, settings)
    columns, skipped = _run_columns(pool, ref.frame, current, plans, skipped, common)
    warnings = _column_warnings(unknown_overrides, missing_in_current, missing_in_reference)
    prediction, pred_warning = _prediction_drift(ref.predictions, current, pred_plan, pred_skip)
    if pred_warning:
        warnings.append(pred_warning)
    performance = None
    if labels is not None:
        performance = performance_drift(
            current,
            labels,
            label_column=label_column,
            task=ref.task,
            training_metrics=ref.training_metrics or {},
            settings=settings,
        )
    report = _decide(
        columns,
        settings,
        skipped_columns=skipped,
        missing_in_current=missing_in_current,
        missing_in_reference=missing_in_reference,
        prediction=prediction,
        performance=performance,
        warnings=warnings,
        **base,
    )
    if html_job is not None and report.columns:
        _attach_html(report, html_job, report_location, s3)
    pool.shutdown(wait=True)
    report.duration_s = (datetime.now(UTC) - started).total_seconds()
    return report


@dataclass
class _Reference:
    """The reference rows and their lineage, from a :class:`ReferenceData` or the arguments."""

    frame: pd.DataFrame
    source: str | None
    model_name: str | None
    model_version: str | int | None
    target: str | None
    task: TaskType | None
    training_metrics: dict[str, float] | None
    predictions: pd.Series | None


def _resolve_reference(
    reference: pd.DataFrame | ReferenceData,
    *,
    model_name: str | None,
    model_version: str | int | None,
    target: str | None,
    task: TaskType | None,
    training_metrics: dict[str, float] | None,
    reference_predictions: pd.Series | None,
) -> _Reference:
    """The arguments, completed from the reference's lineage where they were not given."""
    source = None
    if isinstance(reference, ReferenceData):
        lineage = reference
        model_name = model_name or lineage.model_name
        model_version = model_version if model_version is not None else lineage.model_version
        target = target or lineage.target
        task = task or lineage.task
        training_metrics = training_metrics if training_metrics is not None else lineage.training_metrics
        if reference_predictions is None:
            reference_predictions = lineage.predictions
        source = lineage.source
        reference = lineage.frame
    if reference_predictions is None and PREDICTION_COLUMN in reference.columns:
        reference_predictions = reference[PREDICTION_COLUMN]
    if reference.empty:
        raise EmptyDatasetError(
            f"The reference data {source or ''} has no rows; pass a reference dataset with data."
        )
    return _Reference(
        reference, source, model_name, model_version, target, task, training_metrics, reference_predictions
    )


def _report_fields(
    ref: _Reference,
    current: pd.DataFrame,
    settings: DriftSettings,
    window: DriftWindow | None,
    current_source: str | None,
    started: datetime,
) -> dict[str, Any]:
    """The fields every report of this check carries, whatever its status."""
    base: dict[str, Any] = {
        "model_name": ref.model_name,
        "model_version": None if ref.model_version is None else str(ref.model_version),
        "reference_source": ref.source,
        "current_source": current_source,
        "window": window,
        "reference_rows": len(ref.frame),
        "current_rows": len(current),
        "drift_share_threshold": settings.drift_share,
        "checked_at": started,
    }
    if "model_version" in current.columns and len(current):
        base["served_versions"] = sorted(map(str, current["model_version"].dropna().unique().tolist()))
    return base


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _not_enough_rows(
    current: pd.DataFrame, settings: DriftSettings, window: DriftWindow | None, base: dict[str, Any]
) -> DriftReport | None:
    """A ``not_enough_data`` report when the current data is empty or under ``min_rows``."""
    where = f" in {window.describe()}" if window else ""
    # a window of a prediction log is traffic: say so first, the verdict is not a failure
    lead = "Not enough traffic: " if window else ""
    if len(current) == 0:
        return DriftReport(
            status="not_enough_data",
            reason=_capital(f"{lead}no current rows{where}: nothing to compare ")
            + "(no traffic logged in the window, or an empty dataset).",
            **base,
        )
    if len(current) < settings.min_rows:
        return DriftReport(
            status="not_enough_data",
            reason=_capital(f"{lead}only {len(current)} current rows{where}, fewer than ")
            + f"min_rows={settings.min_rows}; widen the window or lower min_rows.",
            **base,
        )
    return None


def _common_features(
    ref: _Reference, current: pd.DataFrame, settings: DriftSettings
) -> tuple[list[str], list[str], list[str]]:
    """Feature columns on both sides (utility, prediction and target columns left out)."""
    ignore = {*UTILITY_COLUMNS, PREDICTION_COLUMN}
    if ref.target:
        ignore.add(ref.target)
    common, missing_in_current, missing_in_reference = feature_columns(ref.frame, current, settings, ignore)
    if not common:
        raise NoCommonColumnsError(
            f"The reference ({sorted(map(str, ref.frame.columns))}) and the current data "
            f"({sorted(map(str, current.columns))}) share no feature column, so nothing can be "
            "compared: check that the current data is the model's input (the right sink or dataset) "
            "and that DriftSettings.columns/exclude_columns leave some feature."
        )
    return common, missing_in_current, missing_in_reference


def _run_columns(
    pool: ThreadPoolExecutor,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    plans: list[ColumnPlan],
    skipped: list[SkippedColumn],
    common: list[str],
) -> tuple[list[ColumnDrift], list[SkippedColumn]]:
    """The full-data statistics, in column order; a failure cancels the HTML rendering."""
    try:
        columns, more_skipped = run_plans(reference, current, plans)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    skipped = skipped + more_skipped
    order = {name: i for i, name in enumerate(common)}
    columns.sort(key=lambda c: order[c.column])
    skipped.sort(key=lambda s: order.get(s.column, 0))
    return columns, skipped


def _column_warnings(
    unknown_overrides: list[str], missing_in_current: list[str], missing_in_reference: list[str]
) -> list[str]:
    warnings = []
    if unknown_overrides:
        warnings.append(f"column_tests for {unknown_overrides} ignored: not common feature columns")
    if missing_in_current:
        warnings.append(
            f"{len(missing_in_current)} reference column(s) missing in current data: "
            f"{', '.join(missing_in_current)}"
        )
    if missing_in_reference:
        warnings.append(
            f"{len(missing_in_reference)} current column(s) unknown to the reference: "
            f"{', '.join(missing_in_reference)}"
        )
    return warnings


def _prediction_drift(
    reference_predictions: pd.Series | None,
    current: pd.DataFrame,
    plan: ColumnPlan | None,
    skip_reason: str | None,
) -> tuple[ColumnDrift | None, str | None]:
    """Drift of the ``prediction`` column, or the warning saying why it was not checked."""
    if plan is None:
        return None, f"prediction drift not checked: {skip_reason}" if skip_reason else None
    reference = pd.DataFrame({PREDICTION_COLUMN: np.asarray(reference_predictions)})
    checked, skipped = run_plans(reference, current, [plan])
    if checked:
        return checked[0], None
    return None, f"prediction drift not checked: {skipped[0].reason}"


def _decide(columns: list[ColumnDrift], settings: DriftSettings, **fields: Any) -> DriftReport:
    """The report with the dataset-drift share and its verdict (status and reason)."""
    drifted = sum(c.drifted for c in columns)
    share = drifted / len(columns) if columns else 0.0
    report = DriftReport(
        status="ok",
        reason="",
        columns=columns,
        drifted_columns=drifted,
        drifted_share=share,
        dataset_drift=bool(columns) and share >= settings.drift_share,
        **fields,
    )
    report.status, report.reason = _verdict(report)
    return report


def _attach_html(
    report: DriftReport, job: Future[tuple[str, int, int]], location: str | None, s3: S3Config | None
) -> None:
    """Save the rendered page with the verdict banner; a rendering failure becomes a warning."""
    try:
        page, ref_n, cur_n = job.result()
    except Exception as exc:  # the verdicts stand without the HTML; say why it is missing
        logger.warning("Evidently HTML report not rendered: %s", exc)
        report.warnings.append(f"Evidently HTML report not rendered: {type(exc).__name__}: {exc}")
        return
    # A location that cannot be written is a configuration problem: raise its typed error.
    page = with_banner(page, report, ref_n, cur_n)
    report.html_uri = save_html(page, location or default_report_location(), report, s3=s3)
    report.html_sample_rows = max(ref_n, cur_n)


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
    if parts and not report.dataset_drift:
        # whatever triggered the verdict, say which feature columns moved (or that none did)
        moved = f": {', '.join(report.drifted)}" if report.drifted_columns else ""
        parts.append(
            f"{report.drifted_columns} of {len(report.columns)} feature columns drifted "
            f"({report.drifted_share:.0%} < {report.drift_share_threshold:.0%}){moved}"
        )
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
