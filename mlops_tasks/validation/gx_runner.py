"""Validating a DataFrame against a suite: the fast path, with Great Expectations as engine of record."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
from great_expectations.core import ExpectationSuite

from mlops_tasks.errors import ConfigurationError, DataValidationError
from mlops_tasks.validation.engine import Engine, run_suite
from mlops_tasks.validation.frames import check_frame
from mlops_tasks.validation.gx_results import failure_message, report_from_result
from mlops_tasks.validation.report import MAX_PARTIAL_UNEXPECTED, ValidationReport

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_RESULT_FORMAT", "validate_dataframe"]

#: GX result format of a validation unless one is given: counts, percentages and up to
#: MAX_PARTIAL_UNEXPECTED example values, without copying unexpected rows into the result.
DEFAULT_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_PARTIAL_UNEXPECTED,
    "include_unexpected_rows": False,
}

_RESULT_FORMAT_NAMES = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
_ENGINES = ("auto", "gx")


def validate_dataframe(
    df: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    dataset_name: str = "dataset",
    fail_on_error: bool = True,
    result_format: str | Mapping[str, Any] | None = None,
    engine: Engine = "auto",
) -> ValidationReport:
    """Validate a DataFrame against an expectation suite; GX is the engine of record.

    Expectations of the types :func:`suggest_expectations` writes (column set and order,
    type list, not-null, between, in-set) are computed in one vectorised scan per column
    and turned into results by GX's own expectation code; every other type, argument,
    dtype or result format runs through Great Expectations itself (an in-memory Data
    Context, one whole-DataFrame batch, ``batch.validate``). The results are the ones GX
    gives (a parity test runs GX live on both), and the report says which path each
    expectation took (``report.paths``). Nothing is written to disk.

    Args:
        df: The data to check.
        suite: The expectation suite, e.g. from :func:`load_suite`.
        dataset_name: Label of the data in the report and in messages.
        fail_on_error: Raise :class:`~mlops_tasks.errors.DataValidationError` when an
            expectation fails; when False, return the failing report instead.
        result_format: GX result format (``"BOOLEAN_ONLY"``, ``"BASIC"``, ``"SUMMARY"``,
            ``"COMPLETE"`` or a dict such as ``{"result_format": "COMPLETE",
            "unexpected_index_column_names": ["id"]}``); default ``SUMMARY`` with 10
            example values. ``COMPLETE`` and index-column options run through GX.
        engine: ``"auto"`` (fast path where it applies) or ``"gx"`` (everything through GX).

    Returns:
        The validation report; ``report.gx_result`` holds GX's
        ``ExpectationSuiteValidationResult``.

    Raises:
        DataValidationError: An expectation failed and ``fail_on_error`` is true. The
            message names the dataset, the suite, the number of failed expectations and
            the columns; ``exc.report`` holds the :class:`ValidationReport`.
        EmptyDatasetError: ``df`` has no rows or no columns.
        SchemaError: Column names are not unique strings.
        ConfigurationError: ``suite`` is not an ExpectationSuite, ``df`` is not a
            DataFrame, or ``result_format`` / ``engine`` is not one GX or this function knows.
        DataError: Great Expectations could not run the validation at all.

    Example:
        ```python
        suite = load_suite("suites/churn.json")
        try:
            report = validate_dataframe(df, suite, dataset_name="churn-2026-11")
        except DataValidationError as exc:
            print(exc.report.to_markdown())
            raise
        print([p.path for p in report.paths])  # "fast" or "gx" per expectation
        ```
    """
    if not isinstance(suite, ExpectationSuite):
        raise ConfigurationError(
            f"validate_dataframe() needs a great_expectations ExpectationSuite (see "
            f"load_suite), got {type(suite).__name__}."
        )
    dataset_name = str(dataset_name)
    fmt = _checked_result_format(result_format)
    if engine not in _ENGINES:
        raise ConfigurationError(f"engine must be one of {', '.join(map(repr, _ENGINES))}, got {engine!r}.")
    check_frame(df, what=f"dataset {dataset_name!r}")

    started = time.perf_counter()
    result = run_suite(df, suite, result_format=fmt, dataset_name=dataset_name, engine=engine)
    duration = time.perf_counter() - started

    report = report_from_result(result, suite=suite, dataset=dataset_name, df=df, duration=duration)
    if report.success:
        logger.info("Data validation passed in %.2fs: %s", duration, report.summary())
        return report
    logger.warning("Data validation failed in %.2fs: %s", duration, report.summary())
    if fail_on_error:
        raise DataValidationError(failure_message(report), report=report)
    return report


def _checked_result_format(result_format: str | Mapping[str, Any] | None) -> str | dict[str, Any]:
    """The result format to run with; a ConfigurationError for one GX would reject."""
    if result_format is None:
        return dict(DEFAULT_RESULT_FORMAT)
    name = result_format if isinstance(result_format, str) else None
    if isinstance(result_format, Mapping):
        name = result_format.get("result_format")
    if name not in _RESULT_FORMAT_NAMES:
        raise ConfigurationError(
            f"result_format must be one of {', '.join(_RESULT_FORMAT_NAMES)} or a dict with a "
            f"'result_format' key naming one, got {result_format!r}."
        )
    return result_format if isinstance(result_format, str) else dict(result_format)
