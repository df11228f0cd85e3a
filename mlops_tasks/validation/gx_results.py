"""Turning a Great Expectations validation result into a :class:`ValidationReport`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import great_expectations.exceptions as gx_exceptions
import numpy as np
import pandas as pd
from great_expectations.compatibility.pydantic import ValidationError as GxPydanticValidationError
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from mlops_tasks.validation.engine import result_path
from mlops_tasks.validation.messages import explain_failures
from mlops_tasks.validation.report import (
    MAX_PARTIAL_UNEXPECTED,
    ExpectationPath,
    FailedExpectation,
    ValidationReport,
)

__all__ = ["failure_message", "report_from_result"]

# Expectation kwargs that say where or how GX runs, not what is expected.
_NON_EXPECTED_KWARGS = frozenset({"column", "batch_id", "result_format", "catch_exceptions"})

# Kwargs GX omits from a configuration when they hold their default value; the report
# states them anyway so ``expected`` says e.g. ``mostly=1.0``.
_IMPLICIT_KWARGS = ("mostly", "exact_match")

# Keys of a GX result kept in FailedExpectation.observed, in this order.
_OBSERVED_KEYS = (
    "observed_value",
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
    "partial_unexpected_list",
    "details",
)


def report_from_result(
    result: ExpectationSuiteValidationResult,
    *,
    suite: ExpectationSuite,
    dataset: str,
    df: pd.DataFrame,
    duration: float,
) -> ValidationReport:
    """Build the JSON-serialisable report from GX's suite validation result.

    Args:
        result: What ``batch.validate(suite)`` returned.
        suite: The suite validated against.
        dataset: Label of the data.
        df: The validated frame (for row and column counts).
        duration: Seconds the validation took.

    Returns:
        The report; failures sorted table-level first, then by column. ``paths`` says
        how each result was computed, and ``gx_result`` holds ``result`` itself.

    Example:
        ```python
        report = report_from_result(result, suite=suite, dataset="train", df=df, duration=0.4)
        ```
    """
    columns = [str(c) for c in df.columns]
    failed = [_failed_expectation(r, columns) for r in result.results if not r.success]
    # GX returns results grouped by its own scheduling; show table-level failures first,
    # then the failures of each column together.
    failed.sort(key=lambda f: (f.column is not None, f.column or ""))
    stats = dict(result.statistics or {})
    evaluated = int(stats.get("evaluated_expectations", len(result.results)))
    successful = int(stats.get("successful_expectations", evaluated - len(failed)))
    statistics: dict[str, Any] = {
        key: _json_scalar(value) for key, value in stats.items() if value is not None
    }
    statistics["row_count"] = int(df.shape[0])
    statistics["column_count"] = int(df.shape[1])
    statistics["duration_seconds"] = round(duration, 4)
    paths = [_path(r) for r in result.results]
    statistics["fast_path_expectations"] = sum(1 for p in paths if p.path == "fast")
    statistics["gx_expectations"] = len(paths) - statistics["fast_path_expectations"]
    return ValidationReport(
        suite_name=suite.name,
        dataset=dataset,
        success=bool(result.success),
        evaluated=evaluated,
        successful=successful,
        failed=failed,
        statistics=statistics,
        paths=paths,
    ).with_gx_result(result)


def _path(result: ExpectationValidationResult) -> ExpectationPath:
    config = result.expectation_config
    column = config.kwargs.get("column") if config is not None else None
    path, reason = result_path(result)
    return ExpectationPath(
        expectation_type=config.type if config is not None else "unknown",
        column=str(column) if column is not None else None,
        path=path,
        reason=reason,
    )


def _failed_expectation(result: ExpectationValidationResult, columns: Sequence[str]) -> FailedExpectation:
    config = result.expectation_config
    kwargs = _to_json(dict(config.kwargs)) if config is not None else {}
    expected = {
        key: value for key, value in kwargs.items() if key not in _NON_EXPECTED_KWARGS and value is not None
    }
    if config is not None:
        expected.update(_implicit_defaults(config, expected))
    column = kwargs.get("column")
    column = str(column) if column is not None else None
    observed: dict[str, Any]
    message = _exception_message(result.exception_info or {})
    if message is not None:
        if column is not None and column not in columns:
            message = f"column {column!r} is not in the data ({message})"
        observed = {"exception": message}
    else:
        raw = _to_json(dict(result.result or {}))
        observed = {key: raw[key] for key in _OBSERVED_KEYS if key in raw}
        if "partial_unexpected_list" in observed:
            observed["partial_unexpected_list"] = observed["partial_unexpected_list"][:MAX_PARTIAL_UNEXPECTED]
    return FailedExpectation(
        expectation_type=config.type if config is not None else "unknown",
        column=column,
        expected=expected,
        observed=observed,
        path=result_path(result)[0],
    )


def _implicit_defaults(config: ExpectationConfiguration, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Values of ``mostly``/``exact_match`` that GX leaves out of kwargs when at default."""
    missing = [key for key in _IMPLICIT_KWARGS if key not in expected]
    if not missing:
        return {}
    try:
        expectation = config.to_domain_obj()
    except (gx_exceptions.GreatExpectationsError, GxPydanticValidationError, ValueError):
        return {}
    found = {key: getattr(expectation, key, None) for key in missing}
    return {key: _to_json(value) for key, value in found.items() if value is not None}


def _exception_message(exception_info: Mapping[str, Any]) -> str | None:
    """GX's message when it raised, from either shape of ``exception_info``."""
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "Great Expectations raised")
    # When a metric fails, exception_info maps metric ids to per-metric info dicts.
    for info in exception_info.values():
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message") or "Great Expectations raised")
    return None


def _to_json(value: Any) -> Any:
    """Make GX/numpy values plain JSON types (NaN and infinities become None)."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_to_json(v) for v in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return _to_json(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(pd.Timestamp(value).isoformat())
    return str(value)


def failure_message(report: ValidationReport) -> str:
    """The message of the :class:`~mlops_tasks.errors.DataValidationError` for a failed report.

    Args:
        report: A report whose ``success`` is false.

    Returns:
        The dataset, suite, failure count and columns, and what to do next.

    Example:
        ```python
        raise DataValidationError(failure_message(report), report=report)
        ```
    """
    parts = []
    columns = [f.column for f in report.failed if f.column is not None]
    if columns:
        parts.append(f"columns: {', '.join(dict.fromkeys(columns))}")
    for failure in report.failed:
        mismatched = (failure.observed.get("details") or {}).get("mismatched") or {}
        if not isinstance(mismatched, dict):
            continue  # expect_table_columns_to_match_ordered_list lists positions instead
        for key in ("missing", "unexpected"):
            if mismatched.get(key):
                parts.append(f"{key} columns: {', '.join(map(str, mismatched[key]))}")
    where = f" ({'; '.join(parts)})" if parts else ""
    explained = explain_failures(report.failed)
    return (
        f"Dataset {report.dataset!r} failed {len(report.failed)} of {report.evaluated} "
        f"expectations of suite {report.suite_name!r}{where}: {explained}. Fix the data, or if "
        f"the change is intended, update the suite file (edit it, or regenerate it with "
        f"suggest_expectations() and write_suite())."
    )
