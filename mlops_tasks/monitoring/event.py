"""The drift event's name and resource (pure data; :mod:`mlops_tasks.drift_events` emits it)."""

from __future__ import annotations

from mlops_tasks.monitoring.models import DriftReport

__all__ = ["EVENT_DRIFT_DETECTED", "drift_event_resource"]

EVENT_DRIFT_DETECTED = "mlops.drift.detected"
"""Name of the Prefect event emitted when a check finds drift."""


def drift_event_resource(report: DriftReport) -> dict[str, str]:
    """The Prefect resource of a drift event: ``mlops.model.<name>`` with the version as a label.

    Example:
        ```python
        resource = drift_event_resource(report)
        assert resource["prefect.resource.id"] == f"mlops.model.{report.model_name}"
        ```
    """
    name = report.model_name or "unknown"
    resource = {
        "prefect.resource.id": f"mlops.model.{name}",
        "prefect.resource.name": name,
        "mlops.model.name": name,
    }
    if report.model_version:
        resource["mlops.model.version"] = report.model_version
    return resource
