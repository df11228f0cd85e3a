"""Shadow comparison: did the candidate predict what the live slot did on mirrored requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlops_tasks.deploy.models import Color

__all__ = ["prediction_log_agreement", "same_predictions"]


def same_predictions(a: Any, b: Any, tol: float) -> np.ndarray:
    """Element-wise equality of two prediction arrays (numbers within ``tol``).

    Example:
        ```python
        assert same_predictions([1.0, 2.0], [1.0, 2.1], 0.2).all()
        ```
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        return np.zeros(max(len(a), len(b)), dtype=bool)
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        close: np.ndarray = np.isclose(a.astype(float), b.astype(float), atol=tol, rtol=0, equal_nan=True)
        return close
    equal: np.ndarray = a.astype(str) == b.astype(str)
    return equal


def prediction_log_agreement(sink: Path, endpoint: str, since: Any, candidate: Color) -> dict[str, float]:
    """Join both slots' prediction-log rows by request id and compare predictions.

    Args:
        sink: The endpoint's prediction-log folder.
        endpoint: Endpoint name (instances are ``<endpoint>-<color>-<i>``).
        since: Only rows logged from this timestamp on.
        candidate: The slot whose answers were mirrored.

    Returns:
        ``{"compared": rows joined, "agreement": share of equal predictions}``.

    Example:
        ```python
        prediction_log_agreement(folder / "prediction-log", "churn", since, "green")
        ```
    """
    from mlops_tasks.serving import read_prediction_log

    if not sink.exists():
        return {"compared": 0.0, "agreement": 0.0}
    frame = read_prediction_log(str(sink), start=since)
    if frame.empty:
        return {"compared": 0.0, "agreement": 0.0}
    frame = frame.assign(_n=frame.groupby(["served_by", "request_id"]).cumcount())
    is_candidate = frame["served_by"].astype(str).str.startswith(f"{endpoint}-{candidate}-")
    merged = frame[~is_candidate].merge(frame[is_candidate], on=["request_id", "_n"], suffixes=("_b", "_g"))
    if merged.empty:
        return {"compared": 0.0, "agreement": 0.0}
    same = same_predictions(merged["prediction_b"].to_numpy(), merged["prediction_g"].to_numpy(), 1e-6)
    return {"compared": float(len(merged)), "agreement": float(same.mean())}
