"""One line per failed expectation: what was expected and what was observed.

The :class:`~mlops_tasks.errors.DataValidationError` message lists the first few of these,
so the bounds and the offending values are in the message itself, not only in
``exc.report`` or the artifact, e.g. ``driver_age: 201 values outside [11.4, 90.6], e.g. -5``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlops_tasks.validation.markdown import describe_expected, describe_observed
from mlops_tasks.validation.report import FailedExpectation

__all__ = ["MESSAGE_FAILURES", "explain_failure", "explain_failures"]

#: How many failed expectations the error message spells out (the report holds them all).
MESSAGE_FAILURES = 3


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _examples(observed: Mapping[str, Any], limit: int = 3) -> str:
    values = observed.get("partial_unexpected_list") or []
    if not values:
        return ""
    shown = ", ".join(_value(v) for v in values[:limit])
    return f", e.g. {shown}"


def _count(observed: Mapping[str, Any], noun: str = "values") -> str:
    count = observed.get("unexpected_count")
    share = observed.get("unexpected_percent")
    pct = f" ({share:.3g}%)" if isinstance(share, int | float) else ""
    return f"{count} {noun}{pct}" if count is not None else f"some {noun}"


def _bounds(expected: Mapping[str, Any]) -> str:
    low, high = expected.get("min_value"), expected.get("max_value")
    left = "[" if not expected.get("strict_min") else "("
    right = "]" if not expected.get("strict_max") else ")"
    low_text = "-inf" if low is None else _value(low)
    high_text = "inf" if high is None else _value(high)
    return f"{left}{low_text}, {high_text}{right}"


def _short_set(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(_value(v) for v in list(values)[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "{" + shown + more + "}"


def _mostly(expected: Mapping[str, Any]) -> str:
    mostly = expected.get("mostly")
    return (
        f" (allowed: at most {1 - float(mostly):.0%})"
        if isinstance(mostly, int | float) and mostly < 1
        else ""
    )


def _table_columns(observed: Mapping[str, Any]) -> str | None:
    mismatched = (observed.get("details") or {}).get("mismatched")
    if not isinstance(mismatched, Mapping):
        return None
    parts = [
        f"{key} columns {list(mismatched[key])}" for key in ("missing", "unexpected") if mismatched.get(key)
    ]
    return ", ".join(parts) or None


def explain_failure(failure: FailedExpectation) -> str:
    """What one failed expectation expected and what the data held, in one line.

    Args:
        failure: One entry of ``ValidationReport.failed``.

    Returns:
        For example ``driver_age: 201 values outside [11.4, 90.6], e.g. -5``,
        ``plan: 3 values not in {'basic', 'pro'}, e.g. 'gold'``,
        ``(table): missing columns ['age']``; any other expectation type as
        ``column: <type> expected <kwargs>, observed <what GX found>``.

    Example:
        ```python
        failure = FailedExpectation(
            expectation_type="expect_column_values_to_be_between", column="age",
            expected={"min_value": 0, "max_value": 120},
            observed={"unexpected_count": 2, "partial_unexpected_list": [-1, 300]})
        assert explain_failure(failure) == "age: 2 values outside [0, 120], e.g. -1, 300"
        ```
    """
    where = failure.column if failure.column is not None else "(table)"
    exp, obs, kind = failure.expected, failure.observed, failure.expectation_type
    if failure.raised:
        return f"{where}: {kind} could not be checked: {describe_observed(obs)}"
    text: str | None = None
    if kind == "expect_column_values_to_be_between":
        text = f"{_count(obs)} outside {_bounds(exp)}{_mostly(exp)}{_examples(obs)}"
    elif kind in (
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_table_row_count_to_be_between",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
    ):
        what = kind.removeprefix("expect_").removesuffix("_to_be_between").replace("_", " ")
        text = f"{what} {_value(obs.get('observed_value'))}, expected within {_bounds(exp)}"
    elif kind == "expect_column_values_to_be_in_set":
        text = f"{_count(obs)} not in {_short_set(exp.get('value_set') or [])}{_mostly(exp)}{_examples(obs)}"
    elif kind == "expect_column_values_to_not_be_null":
        text = f"{_count(obs, 'nulls')}{_mostly(exp)}, expected none"
    elif kind in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
        wanted = exp.get("type_") or exp.get("type_list")
        text = f"type {_value(obs.get('observed_value'))}, expected {wanted}"
    elif kind in ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"):
        text = _table_columns(obs) or f"columns {obs.get('observed_value')}, expected {exp.get('column_set')}"
    elif kind == "expect_column_values_to_be_unique":
        text = f"{_count(obs, 'duplicated values')}{_examples(obs)}, expected all unique"
    elif kind == "expect_column_values_to_match_regex":
        text = f"{_count(obs)} not matching {exp.get('regex')!r}{_examples(obs)}"
    if text is None:
        text = f"{kind} expected {describe_expected(exp)}, observed {describe_observed(obs)}"
    return f"{where}: {text}"


def explain_failures(failed: Sequence[FailedExpectation], limit: int = MESSAGE_FAILURES) -> str:
    """The first ``limit`` failures explained, ``"; "``-joined, with how many more there are.

    Args:
        failed: ``ValidationReport.failed``.
        limit: How many to spell out.

    Returns:
        For example ``driver_age: 201 values outside [11.4, 90.6], e.g. -5; plan: 3 values
        not in {'basic', 'pro'}, e.g. 'gold'; and 2 more``; empty when nothing failed.

    Example:
        ```python
        print(explain_failures(report.failed))
        ```
    """
    lines = [explain_failure(f) for f in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"and {len(failed) - limit} more")
    return "; ".join(lines)
