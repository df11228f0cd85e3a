"""Drift monitoring: compare what the model sees now with what it was trained on.

**Reference** is the training split recorded on the model version's MLflow run
(artifact ``reference/train.parquet``) or any dataset you pass; **current** is a
window ``[start, end)`` of the prediction log written by the model server (or by
:func:`mlops_tasks.scoring.score_batch`) or any dataset.

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

Modules: :mod:`~mlops_tasks.monitoring.models` (settings, report, constants),
:mod:`~mlops_tasks.monitoring.column_types` (types and test choice),
:mod:`~mlops_tasks.monitoring.statistics` (the statistics),
:mod:`~mlops_tasks.monitoring.column_plan` (columns, tests and thresholds of a check),
:mod:`~mlops_tasks.monitoring.performance` (performance drift),
:mod:`~mlops_tasks.monitoring.check` (:func:`check_drift` and its verdict),
:mod:`~mlops_tasks.monitoring.report_html` (the HTML report),
:mod:`~mlops_tasks.monitoring.reference` and :mod:`~mlops_tasks.monitoring.window` (reading
reference and current data), :mod:`~mlops_tasks.monitoring.mlflow_log` (the MLflow run),
:mod:`~mlops_tasks.monitoring.event` (the drift event's name and resource; Prefect emits it
in :mod:`mlops_tasks.drift_events`). Nothing here imports Prefect.
"""

from __future__ import annotations

import warnings
from typing import Any

from mlops_tasks.monitoring.check import check_drift
from mlops_tasks.monitoring.column_types import choose_stattest, infer_column_type
from mlops_tasks.monitoring.event import EVENT_DRIFT_DETECTED, drift_event_resource
from mlops_tasks.monitoring.mlflow_log import log_drift_run, monitoring_experiment
from mlops_tasks.monitoring.models import (
    MONITORING_EXPERIMENT_SUFFIX,
    PREDICTION_COLUMN,
    REFERENCE_ARTIFACT,
    TAG_DRIFT_STATUS,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    UTILITY_COLUMNS,
    ColumnDrift,
    ColumnType,
    DriftReport,
    DriftSettings,
    DriftStatus,
    DriftWindow,
    PerformanceCheck,
    PerformanceDrift,
    ReferenceData,
    SkippedColumn,
    StatTestName,
    TaskType,
    default_threshold,
    error_report,
)
from mlops_tasks.monitoring.reference import download_reference, load_reference
from mlops_tasks.monitoring.report_html import default_report_location, render_html, save_html
from mlops_tasks.monitoring.statistics import column_drift
from mlops_tasks.monitoring.window import load_current, resolve_window

__all__ = [
    "EVENT_DRIFT_DETECTED",
    "MONITORING_EXPERIMENT_SUFFIX",
    "PREDICTION_COLUMN",
    "REFERENCE_ARTIFACT",
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
    "check_drift",
    "choose_stattest",
    "column_drift",
    "default_report_location",
    "default_threshold",
    "download_reference",
    "drift_event_resource",
    "error_report",
    "infer_column_type",
    "load_current",
    "load_reference",
    "log_drift_run",
    "monitoring_experiment",
    "render_html",
    "resolve_window",
    "save_html",
]

_MOVED_TO_SCORING = ("BatchPredictions", "score_batch")


def __getattr__(name: str) -> Any:
    """Old import path of batch scoring, now :mod:`mlops_tasks.scoring` (deprecated, one minor release)."""
    if name in _MOVED_TO_SCORING:
        warnings.warn(
            f"mlops_tasks.monitoring.{name} moved to mlops_tasks.scoring.{name}; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        from mlops_tasks import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
