"""Progress lines: to this package's logger and to an optional callback (e.g. a run logger)."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["LogFn", "emit_progress"]

logger = logging.getLogger("mlops_tasks.containerize")

#: A callback receiving progress lines, e.g. a Prefect run logger's ``info``.
LogFn = Callable[[str], None]


def emit_progress(log: LogFn | None, message: str) -> None:
    """Log ``message`` at INFO and pass it to ``log`` when one is given.

    Args:
        log: Progress callback, or None.
        message: One line.

    Example:
        ```python
        emit_progress(print, "Wheelhouse 3f2a: 41 wheels")
        ```
    """
    logger.info("%s", message)
    if log is not None:
        log(message)
