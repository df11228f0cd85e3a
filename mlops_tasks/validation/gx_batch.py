"""Running Great Expectations itself on a DataFrame, in a fresh in-memory Data Context."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import great_expectations as gx
import great_expectations.exceptions as gx_exceptions
import pandas as pd
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from mlops_tasks.errors import DataError

__all__ = ["gx_validate"]


def gx_validate(
    df: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    result_format: str | Mapping[str, Any],
    dataset_name: str,
) -> ExpectationSuiteValidationResult:
    """Validate a frame with GX's own validator: one ephemeral context, one whole-frame batch.

    An in-memory (ephemeral) Data Context with analytics and progress bars off, a pandas
    data source, a DataFrame asset, a whole-DataFrame batch definition and
    ``batch.validate(suite, result_format=...)``. Nothing is written to disk. Note that
    ``gx.get_context`` also makes this context GX's process-wide current context.

    Args:
        df: The data.
        suite: The suite (or the part of it that runs through GX).
        result_format: GX result format.
        dataset_name: Label of the data in messages.

    Returns:
        GX's suite validation result.

    Raises:
        DataError: Great Expectations could not run the validation at all.

    Example:
        ```python
        result = gx_validate(df, suite, result_format="SUMMARY", dataset_name="train")
        ```
    """
    try:
        context = _ephemeral_context()
        name = f"mlops-tasks-{uuid.uuid4().hex[:12]}"
        batch_definition = (
            context.data_sources.add_pandas(name=name)
            .add_dataframe_asset(name=name)
            .add_batch_definition_whole_dataframe(name=name)
        )
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        fmt = result_format if isinstance(result_format, str) else dict(result_format)
        result: ExpectationSuiteValidationResult = batch.validate(suite, result_format=fmt)
    except gx_exceptions.GreatExpectationsError as exc:
        raise DataError(
            f"Great Expectations could not validate dataset {dataset_name!r} against suite "
            f"{suite.name!r}: {exc}"
        ) from exc
    return result


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
