"""Emitting the drift event through Prefect (edge layer: the monitoring core stays Prefect-free).

The event's name and resource come from :mod:`mlops_tasks.monitoring.event`, so an
automation can be written against them without importing Prefect's event client.
"""

from __future__ import annotations

from prefect.events import emit_event

from mlops_tasks.monitoring import EVENT_DRIFT_DETECTED, DriftReport, drift_event_resource

__all__ = ["emit_drift_event"]


def emit_drift_event(report: DriftReport) -> str | None:
    """Emit the Prefect event ``mlops.drift.detected`` when ``report.status`` is ``drift``.

    The resource id is ``mlops.model.<name>`` (labels ``mlops.model.name`` and
    ``mlops.model.version``) and the payload is :meth:`DriftReport.summary`, so an
    automation can match ``mlops.model.*`` and pass ``{{ event.resource['mlops.model.name'] }}``
    to a retrain deployment.

    Returns:
        The event id, or ``None`` when nothing was emitted (no drift, no model name,
        or events are disabled).

    Example:
        ```python
        from mlops_tasks.drift_events import emit_drift_event
        event_id = emit_drift_event(report)
        ```
    """
    if report.status != "drift" or not report.model_name:
        return None
    event = emit_event(
        event=EVENT_DRIFT_DETECTED, resource=drift_event_resource(report), payload=report.summary()
    )
    return str(event.id) if event is not None else None
