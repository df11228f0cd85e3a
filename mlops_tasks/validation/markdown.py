"""Markdown cell formatting for validation reports (escaping, clipping, short value lists)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_expected", "describe_observed", "md_cell"]


def md_cell(value: Any) -> str:
    r"""A value as one Markdown table cell: whitespace collapsed, pipes escaped.

    Args:
        value: Anything; converted with ``str``.

    Returns:
        Text safe inside a ``| ... |`` table row.

    Example:
        ```python
        assert md_cell("yes|no") == "yes\|no"
        ```
    """
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def _short(value: Any, limit: int = 10) -> str:
    if isinstance(value, list):
        shown = ", ".join(_short(v) for v in value[:limit])
        more = f", ... ({len(value)} in all)" if len(value) > limit else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return _clip(repr(value) if isinstance(value, str) else str(value), 80)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_expected(expected: Mapping[str, Any]) -> str:
    """What an expectation asked for, as ``key=value`` pairs with long values shortened.

    Args:
        expected: ``FailedExpectation.expected``.

    Returns:
        For example ``min_value=0, max_value=120``; ``-`` when empty.

    Example:
        ```python
        assert describe_expected({"min_value": 0}) == "min_value=0"
        ```
    """
    return ", ".join(f"{key}={_short(value)}" for key, value in expected.items()) or "-"


def describe_observed(observed: Mapping[str, Any]) -> str:
    """What GX found for a failed expectation, in a few words.

    Args:
        observed: ``FailedExpectation.observed``.

    Returns:
        GX's error, or the unexpected count and share with example values, missing or
        unexpected columns, or the observed value; ``-`` when there is nothing to say.

    Example:
        ```python
        assert describe_observed({"unexpected_count": 2}) == "2 unexpected"
        ```
    """
    if "exception" in observed:
        return f"error: {_clip(str(observed['exception']), 160)}"
    parts = []
    if "unexpected_count" in observed:
        share = observed.get("unexpected_percent")
        pct = f" ({share:.3g}%)" if isinstance(share, int | float) else ""
        parts.append(f"{observed['unexpected_count']} unexpected{pct}")
    if observed.get("partial_unexpected_list"):
        parts.append(f"e.g. {_short(observed['partial_unexpected_list'])}")
    mismatched = (observed.get("details") or {}).get("mismatched") or {}
    if not isinstance(mismatched, dict):  # an ordered column list: positions that differ
        mismatched = {}
        parts.append(f"observed {_short(observed.get('observed_value'))}")
    for key in ("missing", "unexpected"):
        if mismatched.get(key):
            parts.append(f"{key}: {_short(mismatched[key])}")
    if not parts and "observed_value" in observed:
        parts.append(f"observed {_short(observed['observed_value'])}")
    return "; ".join(parts) or "-"
