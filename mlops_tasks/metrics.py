"""Model metrics on labelled rows: the one definition training, evaluation and monitoring share.

Classification: ``accuracy``, ``f1``, ``roc_auc``, ``log_loss``; regression: ``rmse``,
``mae``, ``r2``. :data:`GREATER_IS_BETTER` gives each metric's better direction.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "CLASSIFICATION_METRICS",
    "GREATER_IS_BETTER",
    "REGRESSION_METRICS",
    "TaskType",
    "compute_metrics",
    "regression_metrics",
]

#: What a model predicts: a class or a number.
TaskType = Literal["classification", "regression"]

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
GREATER_IS_BETTER = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}


def compute_metrics(task: TaskType, model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Metrics of ``model`` on ``(x, y)``; undefined ones (one class in y) are left out.

    Example:
        ```python
        metrics = compute_metrics("classification", fitted_pipeline, holdout_x, holdout_y)
        ```
    """
    from sklearn import metrics as skm

    if len(x) == 0:
        return {}
    if task == "regression":
        return regression_metrics(np.asarray(y, dtype=float), np.asarray(model.predict(x), dtype=float))
    pred = model.predict(x)
    classes = list(getattr(model, "classes_", np.unique(y)))
    binary = len(classes) == 2
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(
            skm.f1_score(y, pred, average="binary" if binary else "macro", pos_label=classes[-1])
            if binary
            else skm.f1_score(y, pred, average="macro")
        ),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)
        out["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
        if pd.Series(y).nunique() > 1:
            if binary:
                out["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
            else:
                out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``rmse``, ``mae`` and (from two rows on) ``r2`` of predictions against the truth.

    Args:
        truth: True values, as floats.
        pred: Predicted values, as floats, in the same order.

    Returns:
        The metrics by name.

    Example:
        ```python
        import numpy as np
        assert regression_metrics(np.array([1.0, 2.0]), np.array([1.0, 2.0]))["rmse"] == 0.0
        ```
    """
    from sklearn import metrics as skm

    out = {
        "rmse": float(math.sqrt(skm.mean_squared_error(truth, pred))),
        "mae": float(skm.mean_absolute_error(truth, pred)),
    }
    if len(truth) > 1:
        out["r2"] = float(skm.r2_score(truth, pred))
    return out
