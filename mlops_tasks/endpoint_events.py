"""The endpoint watchdog's process, sending its events to Prefect (edge layer: ``deploy`` stays Prefect-free).

The targets start ``python -m mlops_tasks.endpoint_events --endpoint NAME``
(:func:`mlops_tasks.deploy.supervision.start_watchdog`): the
:class:`~mlops_tasks.deploy.watchdog.Watchdog` with :func:`emit_prefect_endpoint_event` as
its emitter, so ``mlops.endpoint.unhealthy`` / ``mlops.endpoint.recovered`` reach Prefect
when ``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import os
from typing import Any

from mlops_tasks.deploy import watchdog

__all__ = ["emit_prefect_apikey_event", "emit_prefect_endpoint_event", "main"]


def emit_prefect_endpoint_event(doc: dict[str, Any]) -> None:
    """Send one supervision event document to Prefect when ``PREFECT_API_URL`` is set.

    Prefect is imported only then (the watchdog runs without it); the event's resource is
    ``mlops.endpoint.<endpoint>`` with the labels ``mlops.endpoint.what`` and
    ``mlops.endpoint.gave-up``, so an automation can page someone on
    ``mlops.endpoint.unhealthy`` (or only when it gave up).

    Args:
        doc: The document :func:`~mlops_tasks.deploy.supervision.emit_endpoint_event` wrote.

    Example:
        ```python
        emit_endpoint_event(folder, UNHEALTHY, "churn", "router", "exited",
                            emitter=emit_prefect_endpoint_event)
        ```
    """
    if not os.environ.get("PREFECT_API_URL"):
        return
    from prefect.events import emit_event

    endpoint, what, gave_up = doc["endpoint"], doc["what"], doc["gave_up"]
    emit_event(
        event=doc["event"],
        resource={
            "prefect.resource.id": f"mlops.endpoint.{endpoint}",
            "prefect.resource.name": endpoint,
            "mlops.endpoint.what": what,
            "mlops.endpoint.gave-up": str(gave_up).lower(),
        },
        payload={k: doc[k] for k in ("endpoint", "what", "reason", "restarts", "gave_up")},
    )


def emit_prefect_apikey_event(event: str, payload: dict[str, Any]) -> None:
    """Send a key event of the watchdog (an expired key) to Prefect when ``PREFECT_API_URL`` is set.

    Example:
        ```python
        emit_prefect_apikey_event("mlops.apikey.revoked", {"endpoint": "churn", "name": "svc-a"})
        ```
    """
    if not os.environ.get("PREFECT_API_URL"):
        return
    from prefect.events import emit_event

    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"mlops.endpoint.{payload['endpoint']}.apikey.{payload['name']}",
            "prefect.resource.name": payload["name"],
        },
        payload=payload,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m mlops_tasks.endpoint_events --endpoint NAME``: the watchdog, with Prefect events.

    Example:
        ```python
        main(["--endpoint", "churn"])  # blocks; the target starts it detached
        ```
    """
    return watchdog.main(
        argv,
        emitter=emit_prefect_endpoint_event,
        prog="python -m mlops_tasks.endpoint_events",
        key_emitter=emit_prefect_apikey_event,
    )


if __name__ == "__main__":
    raise SystemExit(main())
