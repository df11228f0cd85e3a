"""Running Great Expectations on a DataFrame in a fresh in-memory Data Context."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import great_expectations as gx
import great_expectations.exceptions as gx_exceptions
import pandas as pd
from great_expectations.core import ExpectationSuite
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from mlops_tasks.errors import ConfigurationError, DataError, DataValidationError
from mlops_tasks.validation.frames import check_frame
from mlops_tasks.validation.gx_results import failure_message, report_from_result
from mlops_tasks.validation.report import MAX_PARTIAL_UNEXPECTED, ValidationReport

logger = logging.getLogger(__name__)

__all__ = ["validate_dataframe"]

# GX result format: counts, percentages and up to MAX_PARTIAL_UNEXPECTED example values,
# without copying unexpected rows into the result.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_PARTIAL_UNEXPECTED,
    "include_unexpected_rows": False,
}


def validate_dataframe(
    df: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    dataset_name: str = "dataset",
    fail_on_error: bool = True,
) -> ValidationReport:
    """Validate a DataFrame against an expectation suite with Great Expectations.

    Runs GX's own validation: an in-memory (ephemeral) Data Context with analytics and
    progress bars off, a pandas data source, a DataFrame asset, a whole-DataFrame batch
    definition, and ``batch.validate(suite)`` with the ``SUMMARY`` result format (counts,
    percentages and up to 10 unexpected values). Nothing is written to disk. Note that
    ``gx.get_context`` also makes this context GX's process-wide current context.

    Args:
        df: The data to check.
        suite: The expectation suite, e.g. from :func:`load_suite`.
        dataset_name: Label of the data in the report and in messages.
        fail_on_error: Raise :class:`~mlops_tasks.errors.DataValidationError` when an
            expectation fails; when False, return the failing report instead.

    Returns:
        The validation report.

    Raises:
        DataValidationError: An expectation failed and ``fail_on_error`` is true. The
            message names the dataset, the suite, the number of failed expectations and
            the columns; ``exc.report`` holds the :class:`ValidationReport`.
        EmptyDatasetError: ``df`` has no rows or no columns.
        SchemaError: Column names are not unique strings.
        ConfigurationError: ``suite`` is not an ExpectationSuite or ``df`` is not a
            DataFrame.
        DataError: Great Expectations could not run the validation at all.

    Example:
        ```python
        suite = load_suite("suites/churn.json")
        try:
            report = validate_dataframe(df, suite, dataset_name="churn-2026-11")
        except DataValidationError as exc:
            print(exc.report.to_markdown())
            raise
        ```
    """
    if not isinstance(suite, ExpectationSuite):
        raise ConfigurationError(
            f"validate_dataframe() needs a great_expectations ExpectationSuite (see "
            f"load_suite), got {type(suite).__name__}."
        )
    dataset_name = str(dataset_name)
    check_frame(df, what=f"dataset {dataset_name!r}")

    started = time.perf_counter()
    try:
        context = _ephemeral_context()
        name = f"mlops-tasks-{uuid.uuid4().hex[:12]}"
        batch_definition = (
            context.data_sources.add_pandas(name=name)
            .add_dataframe_asset(name=name)
            .add_batch_definition_whole_dataframe(name=name)
        )
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format=_RESULT_FORMAT)
    except gx_exceptions.GreatExpectationsError as exc:
        raise DataError(
            f"Great Expectations could not validate dataset {dataset_name!r} against suite "
            f"{suite.name!r}: {exc}"
        ) from exc
    duration = time.perf_counter() - started

    report = report_from_result(result, suite=suite, dataset=dataset_name, df=df, duration=duration)
    if report.success:
        logger.info("Data validation passed in %.2fs: %s", duration, report.summary())
        return report
    logger.warning("Data validation failed in %.2fs: %s", duration, report.summary())
    if fail_on_error:
        raise DataValidationError(failure_message(report), report=report)
    return report


def _ephemeral_context() -> Any:
    """A fresh in-memory Data Context: no files, no analytics, no progress bars."""
    # analytics_enabled=False is GX's documented per-context switch (GX_ANALYTICS_ENABLED is
    # read only when it is None), so no process-wide variable is written.
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)
