"""Validation report models: the outcome of checking one dataset against one suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mlops_tasks.validation.markdown import describe_expected, describe_observed, md_cell

__all__ = [
    "MAX_PARTIAL_UNEXPECTED",
    "ExpectationPath",
    "FailedExpectation",
    "ValidationReport",
    "describe_paths",
    "failed_columns",
]

#: How many unexpected values a report keeps per failed expectation.
MAX_PARTIAL_UNEXPECTED = 10


class FailedExpectation(BaseModel):
    """One expectation of the suite that the data did not meet.

    Attributes:
        expectation_type: GX expectation type, e.g. ``expect_column_values_to_be_between``.
        column: The column the expectation is about, or ``None`` for table-level ones.
        expected: The kwargs that define the expectation (``min_value``, ``max_value``,
            ``value_set``, ``mostly``, ``type_list``, ``column_set``, ...).
        observed: A short JSON-able summary of what GX found: ``unexpected_count``,
            ``unexpected_percent``, ``partial_unexpected_list`` (at most 10 values),
            ``observed_value``, ``details``; or ``exception`` with GX's message when the
            expectation could not be evaluated (for example a missing column).

    Example:
        ```python
        failure = FailedExpectation(
            expectation_type="expect_column_values_to_be_between",
            column="age",
            expected={"min_value": 0, "max_value": 120},
            observed={"unexpected_count": 2, "partial_unexpected_list": [-1, 300]},
        )
        assert "age" in failure.model_dump_json()
        ```
    """

    model_config = ConfigDict(frozen=True)

    expectation_type: str = Field(description="GX expectation type.")
    column: str | None = Field(None, description="Column checked, None for table-level.")
    expected: dict[str, Any] = Field(default_factory=dict, description="Expectation kwargs.")
    observed: dict[str, Any] = Field(default_factory=dict, description="What GX observed.")
    path: str | None = Field(None, description="How the result was computed: 'fast' or 'gx'.")

    @property
    def raised(self) -> bool:
        """Whether GX raised an error for this expectation instead of evaluating it."""
        return "exception" in self.observed


class ExpectationPath(BaseModel):
    """How the result of one expectation was computed.

    Attributes:
        expectation_type: GX expectation type.
        column: The column, or ``None`` for table-level expectations.
        path: ``"fast"`` (vectorised metrics fed to GX's own result code) or ``"gx"``
            (Great Expectations' validator).
        reason: Why it went through GX (e.g. ``"expectation type ... has no fast path"``,
            ``"column 'x' is not in the data"``); ``None`` on the fast path.

    Example:
        ```python
        slow = [p for p in report.paths if p.path == "gx"]
        ```
    """

    model_config = ConfigDict(frozen=True)

    expectation_type: str
    column: str | None = None
    path: str
    reason: str | None = None


class ValidationReport(BaseModel):
    """Outcome of validating one dataset against one expectation suite.

    Attributes:
        suite_name: Name of the expectation suite.
        dataset: Label of the validated dataset (as passed to :func:`validate_dataframe`).
        success: True when every expectation was met.
        evaluated: Number of expectations evaluated.
        successful: Number of expectations met.
        failed: The expectations not met: table-level ones first, then by column.
        statistics: GX statistics (``evaluated_expectations``, ``successful_expectations``,
            ``unsuccessful_expectations``, ``success_percent``) plus ``row_count``,
            ``column_count``, ``duration_seconds``, ``fast_path_expectations`` and
            ``gx_expectations``.
        paths: How each expectation's result was computed, in GX's result order.

    Example:
        ```python
        report = validate_dataframe(df, suite, dataset_name="train.csv", fail_on_error=False)
        print(report.summary())
        Path("report.json").write_text(report.model_dump_json(indent=2))
        ```
    """

    model_config = ConfigDict(frozen=True)

    suite_name: str
    dataset: str
    success: bool
    evaluated: int = Field(ge=0)
    successful: int = Field(ge=0)
    failed: list[FailedExpectation] = Field(default_factory=list)
    statistics: dict[str, Any] = Field(default_factory=dict)
    paths: list[ExpectationPath] = Field(default_factory=list)
    _gx_result: Any = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Reports are equal when their JSON fields are (``gx_result`` is not compared)."""
        if not isinstance(other, ValidationReport):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside: never hashable

    @property
    def gx_result(self) -> Any:
        """GX's ``ExpectationSuiteValidationResult`` behind this report (not serialised).

        ``None`` for a report read back from JSON. Data Docs and other GX consumers read
        it unchanged, whichever path computed each result.
        """
        return self._gx_result

    def with_gx_result(self, result: Any) -> ValidationReport:
        """Attach GX's suite result object (kept out of the JSON form).

        Args:
            result: The ``ExpectationSuiteValidationResult`` the report was built from.

        Returns:
            This report.

        Example:
            ```python
            report = report_from_result(result, ...).with_gx_result(result)
            ```
        """
        self._gx_result = result
        return self

    @property
    def failed_columns(self) -> list[str]:
        """Columns involved in failures, in first-seen order.

        Includes the columns of failed column expectations and the columns a failed
        ``expect_table_columns_to_match_set`` reports as missing or unexpected.
        """
        return failed_columns(self.failed)

    def summary(self) -> str:
        """One line for logs: dataset, suite, verdict and failed columns.

        Returns:
            For example ``dataset 'train' vs suite 'churn': FAILED, 2 of 14 expectations
            failed (columns: age, plan)``.

        Example:
            ```python
            logger.info("%s", report.summary())
            ```
        """
        head = f"dataset {self.dataset!r} vs suite {self.suite_name!r}"
        if self.success:
            return f"{head}: PASSED, {self.successful} of {self.evaluated} expectations met"
        columns = self.failed_columns
        where = f" (columns: {', '.join(columns)})" if columns else ""
        return f"{head}: FAILED, {len(self.failed)} of {self.evaluated} expectations failed{where}"

    def to_markdown(self) -> str:
        """Render the report as Markdown (the task layer publishes it as a Prefect artifact).

        Returns:
            A heading, the verdict with counts, and a table of failed expectations with
            the column, the expectation, what was expected and what was observed.

        Example:
            ```python
            Path("validation.md").write_text(report.to_markdown())
            ```
        """
        lines = [
            f"## Data validation: `{md_cell(self.dataset)}`",
            "",
            f"- **Suite:** `{md_cell(self.suite_name)}`",
            f"- **Result:** {'PASSED' if self.success else 'FAILED'}",
            f"- **Expectations met:** {self.successful} of {self.evaluated}",
        ]
        for key in ("row_count", "column_count"):
            if key in self.statistics:
                lines.append(f"- **{key.replace('_', ' ').capitalize()}:** {self.statistics[key]}")
        if self.paths:
            lines.append(f"- **Computed by:** {describe_paths(self.paths)}")
        if not self.failed:
            lines += ["", "All expectations were met."]
            return "\n".join(lines) + "\n"
        lines += [
            f"- **Failed columns:** {', '.join(f'`{c}`' for c in self.failed_columns) or '-'}",
            "",
            "| Column | Expectation | Expected | Observed |",
            "| --- | --- | --- | --- |",
        ]
        for failure in self.failed:
            column = f"`{md_cell(failure.column)}`" if failure.column else "(table)"
            lines.append(
                f"| {column} | {md_cell(failure.expectation_type)} "
                f"| {md_cell(describe_expected(failure.expected))} "
                f"| {md_cell(describe_observed(failure.observed))} |"
            )
        return "\n".join(lines) + "\n"


def failed_columns(failed: Sequence[FailedExpectation]) -> list[str]:
    """Columns involved in a list of failures, in first-seen order.

    Args:
        failed: Failed expectations, e.g. ``ValidationReport.failed``.

    Returns:
        The columns of failed column expectations, then the columns a failed
        ``expect_table_columns_to_match_set`` reports as missing or unexpected.

    Example:
        ```python
        assert failed_columns(report.failed) == report.failed_columns
        ```
    """
    columns: dict[str, None] = {}
    for failure in failed:
        if failure.column is not None:
            columns[failure.column] = None
        mismatched = (failure.observed.get("details") or {}).get("mismatched") or {}
        if not isinstance(mismatched, dict):
            continue  # expect_table_columns_to_match_ordered_list lists positions instead
        for key in ("missing", "unexpected"):
            for column in mismatched.get(key) or []:
                columns[str(column)] = None
    return list(columns)


def describe_paths(paths: Sequence[ExpectationPath]) -> str:
    """One line saying how many results each path computed, and why some went through GX.

    Args:
        paths: ``ValidationReport.paths``.

    Returns:
        For example ``60 fast path, 2 Great Expectations (expect_column_values_to_match_regex
        on `code`: expectation type ... has no fast path)``.

    Example:
        ```python
        print(describe_paths(report.paths))
        ```
    """
    fast = sum(1 for p in paths if p.path == "fast")
    slow = [p for p in paths if p.path != "fast"]
    text = f"{fast} fast path, {len(slow)} Great Expectations"
    reasons = [
        f"{p.expectation_type}{f' on `{md_cell(p.column)}`' if p.column else ''}: {md_cell(p.reason or '')}"
        for p in slow[:5]
    ]
    if reasons:
        more = f"; {len(slow) - 5} more" if len(slow) > 5 else ""
        text += f" ({'; '.join(reasons)}{more})"
    return text
