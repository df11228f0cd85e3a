"""A notification block that only logs: the default target of this project's automations.

Prefect's ``SendNotification`` automation action needs a notification block. Real
channels (``SlackWebhook``, ``MicrosoftTeamsWebhook``, ``CustomWebhookNotificationBlock``,
``SendgridEmail``, ...) need a network and an account; :class:`LogNotification` works
offline: it writes the message to the Python log of the process that sends it (for an
automation: the Prefect server's log) and, when ``path`` is set, appends it as one JSON
line to a local file. Pick any other notification block by name when applying the
automations (``python -m deployments.automations apply --notify slack-webhook/ops``).

The Prefect server runs ``notify`` itself, so it must be able to import this class: the
package registers it through its ``prefect.collections`` entry point (any server started
from this project's environment finds it).

Example:
    ```python
    from mlops_tasks.notifications import LogNotification
    LogNotification(path="/tmp/notifications.jsonl").save("mlops-failures", overwrite=True)
    LogNotification.load("mlops-failures").notify("deployment failed", subject="churn")
    ```
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock
from pydantic import Field

logger = logging.getLogger(__name__)

LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def record_notification(
    body: str, subject: str | None, *, level: str = "WARNING", path: str | None = None
) -> dict[str, str | None]:
    """Log a notification and, with ``path``, append it to that file as one JSON line.

    Example:
        ```python
        entry = record_notification("run failed", "deployment-pipeline", path="/tmp/n.jsonl")
        assert entry["subject"] == "deployment-pipeline"
        ```
    """
    entry = {"time": datetime.now(UTC).isoformat(), "subject": subject, "body": body}
    logger.log(LEVELS[level], "Notification: %s: %s", subject, body)
    if path:
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    return entry


class LogNotification(NotificationBlock):
    """Notification block that writes to the log (and optionally a JSON-lines file).

    Attributes:
        level: Log level of the message.
        path: Local file to append each notification to as a JSON line; empty: log only.

    Example:
        ```python
        from mlops_tasks.notifications import LogNotification
        LogNotification().notify("model churn: deployment failed", subject="mlops")
        ```
    """

    _block_type_name = "MLOps Log Notification"
    _block_type_slug = "mlops-log-notification"
    _description = "Writes notifications to the log of the process that sends them (offline default)."

    level: Literal["INFO", "WARNING", "ERROR"] = Field("WARNING", description="Log level of the message.")
    path: str | None = Field(
        None, description="Also append each notification as a JSON line to this local file."
    )

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Log the notification (the server awaits this)."""
        record_notification(body, subject, level=self.level, path=self.path)

    @async_dispatch(anotify)
    def notify(  # type: ignore[override]  # as Prefect's own blocks: sync here, a coroutine if awaited
        self,
        body: str,
        subject: str | None = None,
    ) -> None:
        """Log the notification."""
        record_notification(body, subject, level=self.level, path=self.path)


__all__ = ["LogNotification", "record_notification"]
