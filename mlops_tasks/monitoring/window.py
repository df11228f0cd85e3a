"""Reading the current data: the time window and the prediction-log rows in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from mlops_tasks.errors import ConfigurationError, PredictionLogError
from mlops_tasks.monitoring.models import DriftWindow
from mlops_tasks.settings import S3Config

__all__ = ["load_current", "resolve_window"]


def resolve_window(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    last_hours: float | None = None,
    now: datetime | None = None,
) -> DriftWindow:
    """Decide ``[start, end)`` in UTC: explicit bounds, or the last ``last_hours`` up to ``end``/now.

    Naive datetimes and strings are taken as UTC.

    Raises:
        ConfigurationError: ``start`` is not before ``end``, or both ``start`` and ``last_hours``.

    Example:
        ```python
        from mlops_tasks.monitoring import resolve_window
        window = resolve_window(last_hours=24)
        ```
    """

    def utc(value: datetime | str | None) -> datetime | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.to_pydatetime()

    lo, hi = utc(start), utc(end)
    if last_hours is not None:
        if lo is not None:
            raise ConfigurationError("Give either start or last_hours, not both.")
        if last_hours <= 0:
            raise ConfigurationError(f"last_hours must be positive, got {last_hours}.")
        hi = hi or (now or datetime.now(UTC))
        lo = hi - timedelta(hours=last_hours)
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigurationError(f"The window start {lo.isoformat()} is not before its end {hi.isoformat()}.")
    return DriftWindow(start=lo, end=hi)


def load_current(
    sink: str,
    window: DriftWindow | None = None,
    *,
    model_name: str | None = None,
    s3_endpoint_url: str | None = None,
    s3: S3Config | None = None,
) -> pd.DataFrame:
    """Read a prediction-log window (local folder or ``s3://`` prefix) for one model.

    Args:
        sink: The prediction log the server (or :func:`score_batch`) wrote.
        window: ``[start, end)``; ``None`` reads everything.
        model_name: Keep only rows of this model (when the log has ``model_name``).
        s3_endpoint_url: S3 endpoint for ``s3://`` sinks.
        s3: S3 endpoint and credentials (explicit, block or environment) for ``s3://`` sinks.

    Returns:
        The rows (possibly none).

    Raises:
        DatasetNotFoundError: A local sink folder does not exist.
        PredictionLogError: A log file cannot be read.

    Example:
        ```python
        current = load_current("/var/log/predictions", resolve_window(last_hours=24))
        ```
    """
    from mlops_tasks.serving.predlog import read_prediction_log

    window = window or DriftWindow()
    on_s3 = s3 is not None and sink.startswith("s3://")
    client_kwargs = s3.client_kwargs() if s3 is not None and on_s3 else None
    try:
        frame: pd.DataFrame = read_prediction_log(
            sink, window.start, window.end, s3_endpoint_url=s3_endpoint_url, s3_client_kwargs=client_kwargs
        )
    except PredictionLogError as exc:
        if s3 is None or not on_s3:
            raise
        raise PredictionLogError(f"{exc} (the credentials came from {s3.describe_source()})") from exc
    if model_name and "model_name" in frame.columns and len(frame):
        frame = frame[frame["model_name"] == model_name].reset_index(drop=True)
    return frame
