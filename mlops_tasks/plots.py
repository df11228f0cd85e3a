"""Evaluation plots: what people look at before they trust a model.

Classification: ROC and precision-recall curves, confusion matrix, calibration; regression:
predicted vs actual and residuals; both: per-slice metric bars with the gate's threshold
drawn. The champion's curve is drawn beside the candidate's when there is one.

Drawn with matplotlib's object API only (``Figure`` rendered by the Agg canvas, never
``pyplot``): pyplot keeps global state, and fits may run concurrently in one process.

Example:
    ```python
    from mlops_tasks.plots import classification_figures, save_figures
    figures = classification_figures(y_true, proba, classes=[0, 1])
    paths = save_figures(figures, "/tmp/plots")     # roc.png, precision-recall.png, ...
    ```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "classification_figures",
    "evaluation_figures",
    "regression_figures",
    "save_figures",
    "slice_figure",
]

_SIZE = (6.0, 4.5)
_CANDIDATE = "#1f77b4"
_CHAMPION = "#ff7f0e"


def _figure(title: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=_SIZE, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no pyplot, no display
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _binary_scores(y: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 truth for the positive class, its scores) of a binary problem."""
    positive = classes[-1]
    return (y == positive).astype(int), proba[:, -1]


def _roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    from sklearn.metrics import auc, roc_curve

    fig, ax = _figure("ROC curve (holdout)")
    for (label, (truth, score)), color in zip(curves.items(), (_CANDIDATE, _CHAMPION), strict=False):
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, color=color, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return fig


def _precision_recall(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure("Precision-recall curve (holdout)")
    base = None
    for (label, (truth, score)), color in zip(curves.items(), (_CANDIDATE, _CHAMPION), strict=False):
        precision, recall, _ = precision_recall_curve(truth, score)
        ap = average_precision_score(truth, score)
        ax.plot(recall, precision, color=color, label=f"{label} (AP {ap:.3f})")
        base = float(np.mean(truth))
    if base is not None:
        ax.axhline(base, color="grey", linestyle=":", label=f"positive rate {base:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    return fig


def _calibration(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    from sklearn.calibration import calibration_curve

    fig, ax = _figure("Calibration (holdout, 10 bins)")
    for (label, (truth, score)), color in zip(curves.items(), (_CANDIDATE, _CHAMPION), strict=False):
        observed, predicted = calibration_curve(truth, score, n_bins=10, strategy="uniform")
        ax.plot(predicted, observed, marker="o", color=color, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.legend(loc="upper left")
    return fig


def _confusion(y: np.ndarray, pred: np.ndarray, classes: Sequence[Any]) -> Figure:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y, pred, labels=list(classes))
    fig, ax = _figure("Confusion matrix (holdout, candidate)")
    ax.grid(False)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(classes))
    ax.set_xticks(list(ticks), [str(c) for c in classes])
    ax.set_yticks(list(ticks), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in ticks:
        for j in ticks:
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    return fig


def classification_figures(
    y_true: Sequence[Any] | np.ndarray,
    proba: np.ndarray | None,
    *,
    classes: Sequence[Any],
    pred: Sequence[Any] | np.ndarray | None = None,
    champion_proba: np.ndarray | None = None,
    champion_label: str = "champion",
) -> dict[str, Figure]:
    """ROC, precision-recall, calibration (binary, with probabilities) and the confusion matrix.

    Args:
        y_true: True classes of the holdout.
        proba: The candidate's ``predict_proba`` (columns in ``classes`` order), or ``None``
            for a model without probabilities (only the confusion matrix is drawn).
        classes: The model's classes (``model.classes_``); the last is the positive one.
        pred: The candidate's predicted classes (default: the most probable class).
        champion_proba: The champion's ``predict_proba`` on the same rows, drawn beside.
        champion_label: Legend label of the champion (e.g. ``champion v3``).

    Returns:
        Figures by file name: ``roc.png``, ``precision-recall.png``, ``calibration.png``
        (binary problems with probabilities) and ``confusion-matrix.png``.

    Example:
        ```python
        figures = classification_figures(y, model.predict_proba(x), classes=model.classes_)
        ```
    """
    y = np.asarray(y_true)
    if pred is None:
        if proba is None:
            raise ValueError("give pred or proba")
        pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    figures = {"confusion-matrix.png": _confusion(y, np.asarray(pred), classes)}
    if proba is None or len(classes) != 2 or len(np.unique(y)) < 2:
        return figures
    curves = {"candidate": _binary_scores(y, proba, classes)}
    if champion_proba is not None:
        curves[champion_label] = _binary_scores(y, champion_proba, classes)
    figures["roc.png"] = _roc(curves)
    figures["precision-recall.png"] = _precision_recall(curves)
    figures["calibration.png"] = _calibration(curves)
    return figures


def regression_figures(
    y_true: Sequence[float] | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    *,
    champion_pred: Sequence[float] | np.ndarray | None = None,
    champion_label: str = "champion",
) -> dict[str, Figure]:
    """Predicted vs actual and residuals vs predicted, the champion's beside the candidate's.

    Args:
        y_true: True values of the holdout.
        pred: The candidate's predictions.
        champion_pred: The champion's predictions on the same rows.
        champion_label: Legend label of the champion.

    Returns:
        Figures by file name: ``predicted-vs-actual.png`` and ``residuals.png``.

    Example:
        ```python
        figures = regression_figures(y, model.predict(x))
        ```
    """
    truth = np.asarray(y_true, dtype=float)
    series = {"candidate": np.asarray(pred, dtype=float)}
    if champion_pred is not None:
        series[champion_label] = np.asarray(champion_pred, dtype=float)
    fig, ax = _figure("Predicted vs actual (holdout)")
    for (label, values), color in zip(series.items(), (_CANDIDATE, _CHAMPION), strict=False):
        ax.scatter(truth, values, s=8, alpha=0.5, color=color, label=label)
    low = float(np.nanmin([truth.min(), *(v.min() for v in series.values())]))
    high = float(np.nanmax([truth.max(), *(v.max() for v in series.values())]))
    ax.plot([low, high], [low, high], color="grey", linestyle=":", label="perfect")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.legend(loc="upper left")
    residual_fig, rax = _figure("Residuals (actual - predicted) vs predicted")
    for (label, values), color in zip(series.items(), (_CANDIDATE, _CHAMPION), strict=False):
        rax.scatter(values, truth - values, s=8, alpha=0.5, color=color, label=label)
    rax.axhline(0.0, color="grey", linestyle=":")
    rax.set_xlabel("predicted")
    rax.set_ylabel("residual")
    rax.legend(loc="upper left")
    return {"predicted-vs-actual.png": fig, "residuals.png": residual_fig}


def slice_figure(
    slice_metrics: Mapping[str, Mapping[str, float]],
    slice_rows: Mapping[str, int],
    metric: str,
    *,
    thresholds: Mapping[str, float] | None = None,
    champion: Mapping[str, Mapping[str, float]] | None = None,
) -> Figure:
    """Bars of one metric per slice, with the gate's thresholds drawn as lines.

    Args:
        slice_metrics: ``EvaluationReport.slice_metrics`` (slice key -> metric -> value).
        slice_rows: Holdout rows per slice (written under each bar).
        metric: The metric to draw.
        thresholds: Lines to draw, label -> value (e.g. ``{"gate min 0.7": 0.7}``).
        champion: The champion's per-slice metrics, drawn as a second bar when given.

    Returns:
        The figure (file name ``slices-<metric>.png`` by convention).

    Example:
        ```python
        fig = slice_figure(report.slice_metrics, report.slice_rows, "accuracy",
                           thresholds={"slice min 0.6": 0.6})
        ```
    """
    keys = list(slice_metrics)
    values = [slice_metrics[k].get(metric, np.nan) for k in keys]
    fig, ax = _figure(f"{metric} per slice (holdout)")
    positions = np.arange(len(keys))
    width = 0.4 if champion else 0.6
    ax.bar(positions - (width / 2 if champion else 0), values, width, color=_CANDIDATE, label="candidate")
    if champion:
        other = [champion.get(k, {}).get(metric, np.nan) for k in keys]
        ax.bar(positions + width / 2, other, width, color=_CHAMPION, label="champion")
    for (label, value), style in zip((thresholds or {}).items(), ("--", "-.", ":"), strict=False):
        ax.axhline(value, color="red", linestyle=style, label=label)
    ax.set_xticks(list(positions), [f"{k}\n({slice_rows.get(k, 0)} rows)" for k in keys], fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def save_figures(figures: Mapping[str, Figure], folder: str | Path) -> list[Path]:
    """Write each figure as a PNG into ``folder`` (created) and return the paths.

    Example:
        ```python
        paths = save_figures(regression_figures(y, pred), "/tmp/plots")
        ```
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, format="png")
        paths.append(path)
    return paths


def evaluation_figures(
    task: str,
    model: Any,
    x: Any,
    y: Any,
    *,
    champion_model: Any = None,
    champion_label: str = "champion",
    slice_metrics: Mapping[str, Mapping[str, float]] | None = None,
    slice_rows: Mapping[str, int] | None = None,
    slice_thresholds: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Figure]:
    """Every evaluation plot of a candidate on its holdout (and the champion's beside it).

    Args:
        task: ``classification`` or ``regression``.
        model: The candidate (a fitted scikit-learn estimator or pipeline).
        x: Holdout features.
        y: Holdout target.
        champion_model: The champion, scored on the same rows, or ``None``.
        champion_label: Legend label of the champion.
        slice_metrics: Per-slice metrics (slice key -> metric -> value).
        slice_rows: Holdout rows per slice.
        slice_thresholds: Metric -> {line label -> value} to draw on that metric's slice bars;
            one ``slices-<metric>.png`` is drawn per metric named here.

    Returns:
        Figures by file name.

    Example:
        ```python
        figures = evaluation_figures("classification", model, x, y, champion_model=champion)
        ```
    """
    if task == "regression":
        figures = regression_figures(
            y,
            model.predict(x),
            champion_pred=None if champion_model is None else champion_model.predict(x),
            champion_label=champion_label,
        )
    else:
        has_proba = hasattr(model, "predict_proba")
        classes = list(getattr(model, "classes_", np.unique(np.asarray(y))))
        champion_proba = None
        if champion_model is not None and hasattr(champion_model, "predict_proba"):
            if list(getattr(champion_model, "classes_", classes)) == classes:
                champion_proba = champion_model.predict_proba(x)
        figures = classification_figures(
            y,
            model.predict_proba(x) if has_proba else None,
            classes=classes,
            pred=model.predict(x),
            champion_proba=champion_proba,
            champion_label=champion_label,
        )
    if slice_metrics:
        for metric, lines in (slice_thresholds or {}).items():
            figures[f"slices-{metric}.png"] = slice_figure(
                slice_metrics, slice_rows or {}, metric, thresholds=lines
            )
    return figures
