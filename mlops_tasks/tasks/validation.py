"""Tasks of the validation stage: suggest a suite file, validate data and publish the report."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from mlops_tasks import validation as _validation
from mlops_tasks.errors import DataValidationError
from mlops_tasks.tasks._prefect import artifact_key, resolves_blocks

__all__ = ["publish_validation", "suggest_expectations", "validate_data"]


@task(name="suggest-expectations")
@resolves_blocks
def suggest_expectations(
    reference: pd.DataFrame,
    suite_path: str | os.PathLike[str],
    *,
    suite_name: str | None = None,
    exclude_columns: Iterable[str] = (),
    categorical_max_unique: int = 50,
    range_margin: float = 0.1,
    null_margin: float = 0.05,
) -> Path:
    """Infer an expectation suite from reference data and write it as a JSON file.

    Composes :func:`mlops_tasks.validation.suggest_expectations` and
    :func:`~mlops_tasks.validation.write_suite` (to ``suite_path``); ``suite_name``
    defaults to the file's stem. Returns the path written.

    Example:
        ```python
        suggest_expectations(reference_frame, "expectations/churn.json")
        ```
    """
    path = Path(suite_path)
    suite = _validation.suggest_expectations(
        reference,
        suite_name or path.stem,
        exclude_columns=() if exclude_columns is None else exclude_columns,
        categorical_max_unique=categorical_max_unique,
        range_margin=range_margin,
        null_margin=null_margin,
    )
    written = _validation.write_suite(suite, path)
    get_run_logger().info(
        "Wrote suite %s with %d expectations to %s", suite.name, len(suite.expectations), written
    )
    return written


@task(name="validate-data", timeout_seconds=3600)
@resolves_blocks
def validate_data(
    frame: pd.DataFrame,
    suite_path: str | os.PathLike[str],
    *,
    dataset_name: str = "dataset",
    fail_on_error: bool = True,
    result_format: str | dict[str, Any] | None = None,
    engine: Literal["auto", "gx"] = "auto",
    location: str | os.PathLike[str] | None = None,
) -> _validation.ValidationReport:
    """Validate a frame against a Great Expectations suite file (fast path, GX as fallback).

    Composes :func:`~mlops_tasks.validation.load_suite` (of ``suite_path``),
    :func:`mlops_tasks.validation.validate_dataframe` (of ``frame``) and
    :func:`~mlops_tasks.validation.save_validation_report` (``report.json`` and GX's Data Docs
    page, into ``location``). The report is published as a Prefect markdown artifact linking
    the Data Docs page, whether or not the data passed (:func:`publish_validation`).

    Example:
        ```python
        report = validate_data(frame, "expectations/churn.json", dataset_name="churn")
        ```
    """
    suite = _validation.load_suite(suite_path)
    try:
        report = _validation.validate_dataframe(
            frame,
            suite,
            dataset_name=dataset_name,
            fail_on_error=fail_on_error,
            result_format=result_format,
            engine=engine,
        )
    except DataValidationError as exc:
        publish_validation(
            exc.report, dataset_name, _validation.save_validation_report(exc.report, location=location)
        )
        raise
    publish_validation(report, dataset_name, _validation.save_validation_report(report, location=location))
    return report


def publish_validation(
    report: _validation.ValidationReport,
    dataset_name: str,
    saved: _validation.SavedValidation | None = None,
) -> None:
    """Publish a validation report as a Prefect markdown artifact and log its summary.

    Args:
        report: The report, passed or failed.
        dataset_name: Names the artifact key (``validation-<dataset>``).
        saved: Where the report and its GX Data Docs page were written (linked from the
            artifact, and a link artifact ``data-docs-<dataset>`` to the page).

    Example:
        ```python
        publish_validation(report, "churn", save_validation_report(report))
        ```
    """
    markdown = report.to_markdown()
    if saved is not None:
        markdown += f"\n- **Report:** `{saved.report_path}`\n"
        if saved.data_docs_path:
            link = Path(saved.data_docs_path).as_uri()
            markdown += f"- **Great Expectations Data Docs:** [{saved.data_docs_path}]({link})\n"
            create_link_artifact(
                link=link,
                link_text="Great Expectations Data Docs",
                key=artifact_key("data-docs", dataset_name),
                description=f"GX Data Docs page of {report.summary()}",
            )
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("validation", dataset_name),
        description=report.summary(),
    )
    get_run_logger().info("%s", report.summary())
