"""A tiny estimator whose ``fit`` waits for a second fit: two fits finish only if they overlap.

Imported by path (``concurrency_support.BarrierClassifier``) from a ``TrainingSpec``.
"""

from __future__ import annotations

import threading

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

__all__ = ["FIT_BARRIER", "BarrierClassifier"]

#: Both fits must reach it within 60 s, else ``fit`` raises ``BrokenBarrierError``.
FIT_BARRIER = threading.Barrier(2, timeout=60)


class BarrierClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression that waits on :data:`FIT_BARRIER` before fitting."""

    _parameter_constraints: dict = {"tag": [int]}  # noqa: RUF012 - scikit-learn's validation table

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    def fit(self, x, y):  # noqa: D102 - scikit-learn protocol
        FIT_BARRIER.wait()
        self.model_ = LogisticRegression(max_iter=500).fit(x, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, x):  # noqa: D102
        return self.model_.predict(x)

    def predict_proba(self, x):  # noqa: D102
        return self.model_.predict_proba(x)
