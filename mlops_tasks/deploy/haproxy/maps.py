"""Replacing a whole HAProxy map on the running router at once (its runtime API).

``prepare map`` opens a new version of the map, ``add map @<version>`` fills it, and
``commit map @<version>`` swaps it in atomically: every request sees either the old or the
new map, never a half-written one.
"""

from __future__ import annotations

from collections.abc import Callable

from mlops_tasks.errors import RouterError

__all__ = ["replace_map"]


def replace_map(command: Callable[[str], str], ref: str, lines: list[str]) -> None:
    """Replace map ``ref`` of the running router with ``lines`` (``key value``), atomically.

    Raises:
        RouterError: The router refused a command (the map it holds is unchanged).

    Example:
        ```python
        replace_map(router.command, "/run/ep/apikeys.map", ["3fa9... svc-a|0|0"])
        ```
    """
    answer = command(f"prepare map {ref}")
    version = answer.strip().rsplit(" ", 1)[-1]
    if not version.isdigit():
        raise RouterError(f"unexpected answer to prepare map: {answer.strip()!r}")
    if lines:
        command(f"add map @{version} {ref} <<\n" + "\n".join(lines) + "\n")
    command(f"commit map @{version} {ref}")
