"""The smoke test: real rows through the router's preview entry point to the candidate."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.deploy.haproxy.router import http_request
from mlops_tasks.deploy.interfaces import TrafficRouter
from mlops_tasks.deploy.shadow import same_predictions
from mlops_tasks.errors import SmokeTestError

__all__ = ["smoke_test", "split_doc"]


def split_doc(rows: pd.DataFrame) -> dict[str, Any]:
    """``rows`` as a ``dataframe_split`` request body."""
    return {"dataframe_split": json.loads(rows.to_json(orient="split", index=False, date_format="iso"))}


def smoke_test(
    preview: str | TrafficRouter, rows: pd.DataFrame, expected: np.ndarray, tolerance: float = 1e-6
) -> int:
    """Send ``rows`` through the preview entry point and compare with ``expected``.

    Args:
        preview: The router (its preview entry point is used), or the preview ``host:port``.
        rows: Feature rows.
        expected: The registered model's predictions for ``rows``.
        tolerance: Largest absolute difference allowed between numeric predictions.

    Returns:
        Number of rows compared.

    Raises:
        SmokeTestError: An error answer, or predictions that differ.

    Example:
        ```python
        smoke_test(target.traffic, holdout.head(50), model.predict(holdout.head(50)))
        ```
    """
    body = json.dumps(split_doc(rows)).encode()
    headers = {"Content-Type": "application/json"}
    if isinstance(preview, str):
        reply = http_request(preview, "POST", "/invocations", body, headers)
    else:
        reply = preview.send("preview", "POST", "/invocations", body, headers)
    try:
        doc: Any = json.loads(reply.body) if reply.status else reply.error
    except ValueError:
        doc = reply.body.decode(errors="replace")
    if reply.status != 200 or not isinstance(doc, dict) or "predictions" not in doc:
        raise SmokeTestError(
            f"The candidate answered the smoke test with HTTP {reply.status}: {str(doc)[:300]}"
        )
    got = np.asarray(doc["predictions"])
    same = same_predictions(got, expected, tolerance)
    if not same.all():
        bad = int((~same).sum())
        first = int(np.argmin(same))
        raise SmokeTestError(
            f"The candidate's predictions differ from the registered model's on {bad} of "
            f"{len(same)} smoke rows (first: row {first}, served "
            f"{got.ravel()[first] if len(got) else None!r}, expected "
            f"{np.asarray(expected).ravel()[first]!r}); it is not serving what was registered."
        )
    return len(same)
