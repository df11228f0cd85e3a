"""Performance drift: metrics on the labelled current rows against the training-time holdout."""

from __future__ import annotations

import pandas as pd

from mlops_tasks.monitoring.column_types import infer_column_type
from mlops_tasks.monitoring.models import (
    PREDICTION_COLUMN,
    DriftSettings,
    PerformanceCheck,
    PerformanceDrift,
    TaskType,
)

__all__ = ["performance_drift"]


def performance_drift(
    current: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label_column: str,
    task: TaskType | None,
    training_metrics: dict[str, float],
    settings: DriftSettings,
) -> PerformanceDrift:
    """Join labels to the current rows on ``request_id`` and compare metrics with training time.

    A request of several rows logs them under one ``request_id``: the n-th label of an
    id (or the labels' own ``row`` column) goes with the n-th row of that request.

    Args:
        current: Current rows with ``request_id`` and ``prediction``.
        labels: Ground truth with ``request_id`` and ``label_column``.
        label_column: Label column of ``labels``.
        task: ``classification`` or ``regression``; ``None`` guesses it from the labels.
        training_metrics: Training-time metrics; ``holdout_<metric>`` values are compared.
        settings: ``performance_tolerance`` and ``min_labelled_rows``.

    Returns:
        The checks, or a result saying why performance was not checked.
    """
    for frame, what in ((labels, "labels"), (current, "current data")):
        needed = ["request_id", label_column] if what == "labels" else ["request_id", PREDICTION_COLUMN]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            return PerformanceDrift(
                labelled_rows=0,
                current_rows=len(current),
                reason=f"not checked: the {what} lack column(s) {missing}",
            )
    joined = _join_labels(current, labels, label_column)
    n = len(joined)
    if n == 0:
        return PerformanceDrift(
            labelled_rows=0,
            current_rows=len(current),
            reason=f"not checked: none of the {len(labels)} labels joined a request_id of the "
            f"{len(current)} current rows (labels for another window or another id scheme?)",
        )
    if n < settings.min_labelled_rows:
        return PerformanceDrift(
            labelled_rows=n,
            current_rows=len(current),
            reason=f"not checked: {n} labelled rows, fewer than min_labelled_rows="
            f"{settings.min_labelled_rows}",
        )
    truth, pred = joined[label_column], joined[PREDICTION_COLUMN]
    if task is None:
        task = "classification" if infer_column_type(truth) == "categorical" else "regression"
    metrics = _prediction_metrics(task, truth, pred)
    checks = _compare(metrics, training_metrics, settings.performance_tolerance)
    worse = [c.metric for c in checks if c.degraded]
    return PerformanceDrift(
        labelled_rows=n,
        current_rows=len(current),
        checks=checks,
        degraded=bool(worse),
        reason=_reason(checks, worse, settings.performance_tolerance),
    )


def _join_labels(current: pd.DataFrame, labels: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Predictions and labels side by side, matched on ``request_id`` and position in the request."""
    left = current[["request_id", PREDICTION_COLUMN]].assign(
        _row=current.groupby("request_id", sort=False).cumcount()
    )
    right = labels[["request_id", label_column]].assign(
        _row=labels["row"].to_numpy()
        if "row" in labels.columns
        else labels.groupby("request_id", sort=False).cumcount()
    )
    return left.merge(
        right.drop_duplicates(["request_id", "_row"], keep="last"), on=["request_id", "_row"], how="inner"
    ).dropna()


def _compare(
    metrics: dict[str, float], training_metrics: dict[str, float], tolerance: float
) -> list[PerformanceCheck]:
    """One check per metric: degraded when worse than ``holdout_<metric>`` by more than ``tolerance``."""
    from mlops_tasks.metrics import GREATER_IS_BETTER

    checks = []
    for metric, value in metrics.items():
        trained = training_metrics.get(f"holdout_{metric}")
        degraded = False
        if trained is not None:
            change = value - trained if GREATER_IS_BETTER[metric] else trained - value
            degraded = change < -tolerance
        checks.append(
            PerformanceCheck(
                metric=metric,
                current=value,
                training=trained,
                tolerance=tolerance,
                degraded=degraded,
            )
        )
    return checks


def _reason(checks: list[PerformanceCheck], worse: list[str], tolerance: float) -> str:
    if not [c for c in checks if c.training is not None]:
        return "no training-time holdout metrics recorded: current metrics reported only"
    if worse:
        return f"degraded beyond tolerance {tolerance:g}: {', '.join(worse)}"
    return f"within tolerance {tolerance:g} of the training-time holdout"


def _prediction_metrics(task: TaskType, truth: pd.Series, pred: pd.Series) -> dict[str, float]:
    """Metrics computable from predictions alone (no probabilities in the log)."""
    from sklearn import metrics as skm

    from mlops_tasks.metrics import regression_metrics

    if task == "regression":
        return regression_metrics(truth.to_numpy(dtype=float), pred.to_numpy(dtype=float))
    classes = sorted(set(truth.tolist()) | set(pred.tolist()), key=str)
    if len(classes) == 2:
        f1 = skm.f1_score(truth, pred, average="binary", pos_label=classes[-1])
    else:
        f1 = skm.f1_score(truth, pred, average="macro")
    return {"accuracy": float(skm.accuracy_score(truth, pred)), "f1": float(f1)}
