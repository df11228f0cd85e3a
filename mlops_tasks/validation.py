"""Data validation with Great Expectations 1.x.

The stage has three parts:

1. :func:`suggest_expectations` infers an :class:`~great_expectations.core.ExpectationSuite`
   from a reference DataFrame (columns, types, null rates, numeric ranges, category sets).
2. :func:`write_suite` / :func:`load_suite` keep that suite as a GX ExpectationSuite JSON
   file, which people review and edit like any other config file.
3. :func:`validate_dataframe` runs Great Expectations' own validation of a DataFrame
   against the suite and turns the result into a JSON-serialisable
   :class:`ValidationReport`; by default it raises
   :class:`~mlops_tasks.errors.DataValidationError` when an expectation fails.

Every call to :func:`validate_dataframe` builds a fresh in-memory (ephemeral) GX Data
Context with analytics and progress bars switched off, so nothing is written to disk
and nothing is sent over the network.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.exceptions as gx_exceptions
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.compatibility.pydantic import ValidationError as GxPydanticValidationError
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pydantic import BaseModel, ConfigDict, Field

from mlops_tasks.errors import (
    ConfigurationError,
    DataError,
    DataValidationError,
    EmptyDatasetError,
    SchemaError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FailedExpectation",
    "ValidationReport",
    "load_suite",
    "write_suite",
    "suggest_expectations",
    "validate_dataframe",
]

#: Value of ``meta["suggested_by"]`` on every expectation made by :func:`suggest_expectations`.
SUGGESTED_BY = "mlops_tasks.validation.suggest_expectations"

#: How many unexpected values a report keeps per failed expectation.
MAX_PARTIAL_UNEXPECTED = 10

# GX result format: counts, percentages and up to MAX_PARTIAL_UNEXPECTED example values,
# without copying unexpected rows into the result.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_PARTIAL_UNEXPECTED,
    "include_unexpected_rows": False,
}

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

# Type names understood by ExpectColumnValuesToBeInTypeList on pandas. For a column of a
# numpy or pandas extension dtype GX compares the dtype itself; for an ``object`` column it
# checks every non-null value with isinstance (so "int", "float", "str", "bool" are needed).
_INT_TYPES = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
    "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype",
    "int",
)  # fmt: skip
_FLOAT_TYPES = ("float16", "float32", "float64", "Float32Dtype", "Float64Dtype", "float")
_STRING_TYPES = ("str", "StringDtype")
_BOOL_TYPES = ("bool", "BooleanDtype")
_DATETIME_TYPES = ("datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]")
_TIMEDELTA_TYPES = ("timedelta64[ns]", "timedelta64[us]", "timedelta64[ms]", "timedelta64[s]")


# --- report models ----------------------------------------------------------------


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

    @property
    def raised(self) -> bool:
        """Whether GX raised an error for this expectation instead of evaluating it."""
        return "exception" in self.observed


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
            ``column_count`` and ``duration_seconds``.

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

    @property
    def failed_columns(self) -> list[str]:
        """Columns involved in failures, in first-seen order.

        Includes the columns of failed column expectations and the columns a failed
        ``expect_table_columns_to_match_set`` reports as missing or unexpected.
        """
        return _failed_columns(self.failed)

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
        """Render the report as Markdown, e.g. for a Prefect markdown artifact.

        Returns:
            A heading, the verdict with counts, and a table of failed expectations with
            the column, the expectation, what was expected and what was observed.

        Example:
            ```python
            from prefect.artifacts import create_markdown_artifact
            create_markdown_artifact(report.to_markdown(), key="data-validation")
            ```
        """
        lines = [
            f"## Data validation: `{_md_cell(self.dataset)}`",
            "",
            f"- **Suite:** `{_md_cell(self.suite_name)}`",
            f"- **Result:** {'PASSED' if self.success else 'FAILED'}",
            f"- **Expectations met:** {self.successful} of {self.evaluated}",
        ]
        for key in ("row_count", "column_count"):
            if key in self.statistics:
                lines.append(f"- **{key.replace('_', ' ').capitalize()}:** {self.statistics[key]}")
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
            column = f"`{_md_cell(failure.column)}`" if failure.column else "(table)"
            lines.append(
                f"| {column} | {_md_cell(failure.expectation_type)} "
                f"| {_md_cell(_describe_expected(failure.expected))} "
                f"| {_md_cell(_describe_observed(failure.observed))} |"
            )
        return "\n".join(lines) + "\n"


# --- suite files -------------------------------------------------------------------


def load_suite(path: str | os.PathLike[str]) -> ExpectationSuite:
    """Read an expectation suite from a GX ExpectationSuite JSON file.

    The file holds what ``ExpectationSuite.to_json_dict()`` produces (the format a GX
    file Data Context stores): ``name``, ``expectations`` (each with ``type``, ``kwargs``,
    ``meta``), ``meta``, and optionally ``id``, ``suite_parameters``, ``notes``.

    Every expectation is checked before the suite is built, because GX itself only logs
    and silently drops an expectation whose type it does not know.

    Args:
        path: Path of the JSON file.

    Returns:
        The suite, belonging to no Data Context.

    Raises:
        ConfigurationError: The file is missing or unreadable, is not valid JSON, is not a
            GX 1.x suite, or holds an expectation of unknown type or with invalid kwargs.
            The message names the file and what to change.

    Example:
        ```python
        suite = load_suite("suites/churn.json")
        report = validate_dataframe(df, suite, dataset_name="churn-2026-11")
        ```
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise ConfigurationError(
            f"Expectation suite path {path} is a folder; pass the suite's JSON file."
        )
    if not path.is_file():
        raise ConfigurationError(
            f"Expectation suite file {path} does not exist. Check the path, or create the "
            f"suite from reference data with suggest_expectations() and write_suite()."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"Cannot read expectation suite file {path}: {exc}. Check its permissions and "
            f"that it is a UTF-8 JSON file."
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"Expectation suite file {path} is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}). Fix the file, or regenerate it with suggest_expectations() "
            f"and write_suite()."
        ) from exc
    return _suite_from_dict(data, source=str(path))


def write_suite(suite: ExpectationSuite, path: str | os.PathLike[str]) -> Path:
    """Write an expectation suite as a GX ExpectationSuite JSON file.

    The file is ``suite.to_json_dict()`` with sorted keys and two-space indentation, the
    same layout a GX file Data Context uses. The write is atomic (temporary file, then
    rename) and missing parent folders are created.

    Args:
        suite: The suite to write.
        path: Destination file, usually ending in ``.json``.

    Returns:
        The absolute path written.

    Raises:
        ConfigurationError: ``suite`` is not an ExpectationSuite, or the file cannot be
            written (the message names the path).

    Example:
        ```python
        suite = suggest_expectations(reference_df, "churn")
        write_suite(suite, "suites/churn.json")
        assert load_suite("suites/churn.json") == suite
        ```
    """
    if not isinstance(suite, ExpectationSuite):
        raise ConfigurationError(
            f"write_suite() needs a great_expectations ExpectationSuite, got "
            f"{type(suite).__name__}."
        )
    target = Path(path).expanduser().resolve()
    text = json.dumps(suite.to_json_dict(), indent=2, sort_keys=True) + "\n"
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # os.open applies the process umask, like a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(
            f"Cannot write expectation suite {suite.name!r} to {target}: {exc}. Choose a "
            f"writable location."
        ) from exc
    logger.info(
        "Wrote expectation suite %s (%d expectations) to %s",
        suite.name,
        len(suite.expectations),
        target,
    )
    return target


def _suite_from_dict(data: Any, *, source: str) -> ExpectationSuite:
    """Build a suite from its JSON dict, refusing anything GX would drop or reject."""
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Expectation suite file {source} must hold a JSON object with 'name' and "
            f"'expectations', found a JSON {type(data).__name__}."
        )
    if "name" not in data and "expectation_suite_name" in data:
        raise ConfigurationError(
            f"Expectation suite file {source} is in the Great Expectations 0.x format "
            f"('expectation_suite_name'). Rename the key to 'name' and each expectation's "
            f"'expectation_type' to 'type', or regenerate the suite with suggest_expectations()."
        )
    expectations = data.get("expectations", [])
    if not isinstance(expectations, list):
        raise ConfigurationError(
            f"Expectation suite file {source}: 'expectations' must be a list, found "
            f"{type(expectations).__name__}."
        )
    for index, entry in enumerate(expectations):
        _check_expectation_entry(entry, index=index, source=source)
    try:
        suite = ExpectationSuite(**data)
    except TypeError as exc:
        allowed = "name, expectations, suite_parameters, meta, notes, id"
        raise ConfigurationError(
            f"Expectation suite file {source} has keys Great Expectations does not accept "
            f"({exc}); a suite may only have {allowed}."
        ) from exc
    except (ValueError, gx_exceptions.GreatExpectationsError) as exc:
        raise ConfigurationError(
            f"Expectation suite file {source} is not a valid expectation suite: {exc}"
        ) from exc
    if len(suite.expectations) != len(expectations):  # defensive: GX drops invalid entries
        raise ConfigurationError(
            f"Expectation suite file {source}: Great Expectations accepted only "
            f"{len(suite.expectations)} of {len(expectations)} expectations; fix the others."
        )
    return suite


def _check_expectation_entry(entry: Any, *, index: int, source: str) -> None:
    where = f"Expectation suite file {source}, expectations[{index}]"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a JSON object, found {type(entry).__name__}.")
    if "type" not in entry:
        hint = (
            " It uses the Great Expectations 0.x key 'expectation_type'; rename it to 'type'."
            if "expectation_type" in entry
            else ""
        )
        raise ConfigurationError(f"{where} has no 'type'.{hint}")
    kind = entry["type"]
    try:
        ExpectationConfiguration(**entry).to_domain_obj()
    except gx_exceptions.ExpectationNotFoundError as exc:
        raise ConfigurationError(
            f"{where} has unknown expectation type {kind!r}. Use a Great Expectations "
            f"{gx.__version__} core expectation type (such as "
            f"expect_column_values_to_be_between) or remove it."
        ) from exc
    except (
        gx_exceptions.GreatExpectationsError,
        GxPydanticValidationError,
        TypeError,
        ValueError,
    ) as exc:
        message = " ".join(str(exc).split())
        raise ConfigurationError(
            f"{where} ({kind!r}) is invalid: {message}. Fix its kwargs or remove it."
        ) from exc


# --- suggesting a suite ------------------------------------------------------------


def suggest_expectations(
    reference: pd.DataFrame,
    suite_name: str,
    *,
    exclude_columns: Iterable[str] = (),
    categorical_max_unique: int = 50,
    range_margin: float = 0.1,
    null_margin: float = 0.05,
) -> ExpectationSuite:
    """Infer an expectation suite from reference data.

    The suite holds:

    - ``expect_table_columns_to_match_set`` with every reference column and
      ``exact_match=True`` (excluded columns included: they must still be present).
    - Per column, ``expect_column_values_to_be_in_type_list`` with the dtypes of the
      column's family, chosen so that the same data read back from CSV still passes:
      integer columns accept every integer dtype (float only when the reference column
      holds nulls, since a CSV cannot hold a missing integer); float columns accept float
      and integer dtypes; string columns accept ``str`` values and ``StringDtype``; bool
      columns accept ``bool`` and ``BooleanDtype``; datetime columns accept
      ``datetime64`` dtypes (read CSVs with ``parse_dates``). Categorical, timezone-aware
      datetime, pyarrow-backed and mixed-type columns get no type expectation, because
      GX 1.x cannot name those dtypes; the suite's ``meta["untyped_columns"]`` lists them.
    - Per column, ``expect_column_values_to_not_be_null`` with ``mostly = 1.0`` when the
      reference has no nulls, else ``max(0, 1 - null_rate - null_margin)``.
    - Per numeric (non-bool) column, ``expect_column_values_to_be_between`` with the
      observed min and max widened by ``range_margin * (max - min)`` on each side.
    - Per object, string, category or bool column with at most ``categorical_max_unique``
      distinct non-null values, ``expect_column_values_to_be_in_set`` with those values.

    Each expectation's ``meta`` has ``suggested_by`` and the observed reference statistic.

    Args:
        reference: Data known to be good (e.g. the training set).
        suite_name: Name of the new suite.
        exclude_columns: Columns that get no column expectations (still part of the
            column set).
        categorical_max_unique: Largest number of distinct values for which a value set
            is suggested.
        range_margin: Fraction of the observed range added below the minimum and above
            the maximum.
        null_margin: Extra null rate tolerated above the observed one.

    Returns:
        A new suite belonging to no Data Context; save it with :func:`write_suite`.

    Raises:
        EmptyDatasetError: ``reference`` has no rows or no columns.
        SchemaError: Column names are not unique strings.
        ConfigurationError: ``reference`` is not a DataFrame, ``suite_name`` is empty, a
            setting is out of range, or ``exclude_columns`` names a column the reference
            does not have.

    Example:
        ```python
        reference = pd.read_csv("data/train.csv")
        suite = suggest_expectations(reference, "churn", exclude_columns=["customer_id"])
        write_suite(suite, "suites/churn.json")
        ```
    """
    _check_frame(reference, what="reference data")
    if not isinstance(suite_name, str) or not suite_name.strip():
        raise ConfigurationError("suite_name must be a non-empty string.")
    if isinstance(exclude_columns, str):
        exclude_columns = [exclude_columns]
    excluded = list(dict.fromkeys(exclude_columns))
    unknown = [c for c in excluded if c not in reference.columns]
    if unknown:
        raise ConfigurationError(
            f"exclude_columns names columns the reference data does not have: "
            f"{', '.join(map(repr, unknown))}. Reference columns: "
            f"{', '.join(map(str, reference.columns))}."
        )
    if isinstance(categorical_max_unique, bool) or not isinstance(categorical_max_unique, int):
        raise ConfigurationError("categorical_max_unique must be an integer.")
    if categorical_max_unique < 0:
        raise ConfigurationError("categorical_max_unique must be >= 0.")
    if not _is_finite_number(range_margin) or range_margin < 0:
        raise ConfigurationError("range_margin must be a finite number >= 0.")
    if not _is_finite_number(null_margin) or not 0 <= null_margin <= 1:
        raise ConfigurationError("null_margin must be a number between 0 and 1.")

    rows = len(reference)
    columns = [str(c) for c in reference.columns]
    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns,
            exact_match=True,
            meta=_suggested_meta(columns=len(columns), rows=rows),
        )
    ]
    untyped: dict[str, str] = {}
    for column in columns:
        if column in excluded:
            continue
        series = reference[column]
        family, type_list = _type_family(series)
        if type_list is None:
            untyped[column] = str(series.dtype)
            logger.info(
                "No type expectation for column %s: dtype %s (%s) cannot be named in a GX "
                "type list",
                column,
                series.dtype,
                family,
            )
        else:
            expectations.append(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=column,
                    type_list=list(type_list),
                    meta=_suggested_meta(dtype=str(series.dtype), family=family),
                )
            )

        null_rate = float(series.isna().mean())
        mostly = 1.0 if null_rate == 0 else max(0.0, 1.0 - null_rate - null_margin)
        expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=column,
                # Round down so the reference itself always meets its own threshold.
                mostly=math.floor(mostly * 1_000_000) / 1_000_000,
                meta=_suggested_meta(null_rate=round(null_rate, 6)),
            )
        )

        if family in {"integer", "float"} and pd.api.types.is_numeric_dtype(series.dtype):
            low, high = series.min(skipna=True), series.max(skipna=True)
            if pd.notna(low) and pd.notna(high) and math.isfinite(low) and math.isfinite(high):
                low, high = float(low), float(high)
                pad = range_margin * (high - low)
                expectations.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=column,
                        min_value=low - pad,
                        max_value=high + pad,
                        meta=_suggested_meta(observed_min=low, observed_max=high),
                    )
                )

        if _is_categorical_like(series.dtype):
            values = series.dropna().unique()
            if 0 < len(values) <= categorical_max_unique:
                value_set = _sorted_values(values)
                expectations.append(
                    gxe.ExpectColumnValuesToBeInSet(
                        column=column,
                        value_set=value_set,
                        meta=_suggested_meta(distinct_values=len(value_set)),
                    )
                )

    meta: dict[str, Any] = {
        "suggested_by": SUGGESTED_BY,
        "reference": {"rows": rows, "columns": len(columns)},
        "settings": {
            "exclude_columns": excluded,
            "categorical_max_unique": categorical_max_unique,
            "range_margin": range_margin,
            "null_margin": null_margin,
        },
    }
    if untyped:
        meta["untyped_columns"] = untyped
    suite = ExpectationSuite(name=suite_name, expectations=expectations, meta=meta)
    logger.info(
        "Suggested %d expectations for suite %s from %d reference rows x %d columns",
        len(suite.expectations),
        suite_name,
        rows,
        len(columns),
    )
    return suite


def _type_family(series: pd.Series) -> tuple[str, tuple[str, ...] | None]:
    """Name the column's type family and the GX type list that accepts it (None: untypeable)."""
    dtype = series.dtype
    has_nulls = bool(series.isna().any())
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", None
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", _BOOL_TYPES
    if pd.api.types.is_integer_dtype(dtype):
        # Only pandas' nullable Int dtypes hold missing integers; in a CSV round trip
        # such a column comes back as float64.
        return "integer", _INT_TYPES + (_FLOAT_TYPES if has_nulls else ())
    if pd.api.types.is_float_dtype(dtype):
        return "float", _FLOAT_TYPES + _INT_TYPES
    if isinstance(dtype, pd.StringDtype):
        if dtype.storage == "python" and getattr(dtype, "na_value", pd.NA) is pd.NA:
            return "string", _STRING_TYPES
        return "string", None  # pyarrow-backed or NaN-variant: GX compares to StringDtype()
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return "datetime", _DATETIME_TYPES
    if isinstance(dtype, np.dtype) and dtype.kind == "m":
        return "timedelta", _TIMEDELTA_TYPES
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "string":
            return "string", _STRING_TYPES
        if inferred == "boolean":
            return "boolean", _BOOL_TYPES
        if inferred == "integer":
            return "integer", _INT_TYPES + (_FLOAT_TYPES if has_nulls else ())
        if inferred in {"floating", "mixed-integer-float"}:
            return "float", _FLOAT_TYPES + _INT_TYPES
        return inferred, None
    return str(dtype), None


def _is_categorical_like(dtype: Any) -> bool:
    """object, category, bool and string columns get a value set when small enough."""
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype | pd.StringDtype)
    )


def _suggested_meta(**details: Any) -> dict[str, Any]:
    return {"suggested_by": SUGGESTED_BY, **details}


def _sorted_values(values: Iterable[Any]) -> list[Any]:
    plain = [v.item() if isinstance(v, np.generic) else v for v in values]
    try:
        return sorted(plain)
    except TypeError:
        return sorted(plain, key=lambda v: (type(v).__name__, str(v)))


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- validating --------------------------------------------------------------------


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
    _check_frame(df, what=f"dataset {dataset_name!r}")

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

    report = _report_from_result(
        result, suite=suite, dataset=dataset_name, df=df, duration=duration
    )
    if report.success:
        logger.info("Data validation passed in %.2fs: %s", duration, report.summary())
        return report
    logger.warning("Data validation failed in %.2fs: %s", duration, report.summary())
    if fail_on_error:
        raise DataValidationError(_failure_message(report), report=report)
    return report


def _ephemeral_context() -> Any:
    """A fresh in-memory Data Context: no files, no analytics, no progress bars."""
    # GX 1.24 sends no analytics, but older 1.x releases read this variable; the context
    # below also sets analytics_enabled=False explicitly.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _report_from_result(
    result: ExpectationSuiteValidationResult,
    *,
    suite: ExpectationSuite,
    dataset: str,
    df: pd.DataFrame,
    duration: float,
) -> ValidationReport:
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
    return ValidationReport(
        suite_name=suite.name,
        dataset=dataset,
        success=bool(result.success),
        evaluated=evaluated,
        successful=successful,
        failed=failed,
        statistics=statistics,
    )


def _failed_expectation(
    result: ExpectationValidationResult, columns: Sequence[str]
) -> FailedExpectation:
    config = result.expectation_config
    kwargs = _to_json(dict(config.kwargs)) if config is not None else {}
    expected = {
        key: value
        for key, value in kwargs.items()
        if key not in _NON_EXPECTED_KWARGS and value is not None
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
            observed["partial_unexpected_list"] = observed["partial_unexpected_list"][
                :MAX_PARTIAL_UNEXPECTED
            ]
    return FailedExpectation(
        expectation_type=config.type if config is not None else "unknown",
        column=column,
        expected=expected,
        observed=observed,
    )


def _implicit_defaults(
    config: ExpectationConfiguration, expected: Mapping[str, Any]
) -> dict[str, Any]:
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


def _failed_columns(failed: Sequence[FailedExpectation]) -> list[str]:
    columns: dict[str, None] = {}
    for failure in failed:
        if failure.column is not None:
            columns[failure.column] = None
        mismatched = (failure.observed.get("details") or {}).get("mismatched") or {}
        for key in ("missing", "unexpected"):
            for column in mismatched.get(key) or []:
                columns[str(column)] = None
    return list(columns)


def _failure_message(report: ValidationReport) -> str:
    parts = []
    columns = [f.column for f in report.failed if f.column is not None]
    if columns:
        parts.append(f"columns: {', '.join(dict.fromkeys(columns))}")
    for failure in report.failed:
        mismatched = (failure.observed.get("details") or {}).get("mismatched") or {}
        for key in ("missing", "unexpected"):
            if mismatched.get(key):
                parts.append(f"{key} columns: {', '.join(map(str, mismatched[key]))}")
    where = f" ({'; '.join(parts)})" if parts else ""
    return (
        f"Dataset {report.dataset!r} failed {len(report.failed)} of {report.evaluated} "
        f"expectations of suite {report.suite_name!r}{where}. Fix the data, or if the change "
        f"is intended, update the suite file (edit it, or regenerate it with "
        f"suggest_expectations() and write_suite())."
    )


def _check_frame(df: Any, *, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ConfigurationError(f"The {what} must be a pandas DataFrame, got {type(df).__name__}.")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise EmptyDatasetError(
            f"The {what} is empty ({df.shape[0]} rows x {df.shape[1]} columns); "
            f"check the source that produced it."
        )
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise SchemaError(
            f"The {what} has non-string column names {bad[:10]!r}; rename them "
            f"to strings (e.g. df.columns = df.columns.astype(str))."
        )
    duplicated = sorted(set(df.columns[df.columns.duplicated()]))
    if duplicated:
        raise SchemaError(
            f"The {what} has duplicate column names {duplicated!r}; make them unique."
        )
    # GX 1.x resolves a column name case-insensitively on pandas (first casefold match
    # wins), so with both "age" and "AGE" present it may silently check the wrong one.
    by_fold: dict[str, list[str]] = {}
    for column in df.columns:
        by_fold.setdefault(column.casefold(), []).append(column)
    clashes = [names for names in by_fold.values() if len(names) > 1]
    if clashes:
        raise SchemaError(
            f"The {what} has column names that differ only in case "
            f"{clashes!r}; Great Expectations matches column names case-insensitively and "
            f"could check the wrong column. Rename them."
        )


# --- markdown helpers ----------------------------------------------------------------


def _md_cell(value: Any) -> str:
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


def _describe_expected(expected: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in expected.items()) or "-"


def _describe_observed(observed: Mapping[str, Any]) -> str:
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
    for key in ("missing", "unexpected"):
        if mismatched.get(key):
            parts.append(f"{key}: {_short(mismatched[key])}")
    if not parts and "observed_value" in observed:
        parts.append(f"observed {_short(observed['observed_value'])}")
    return "; ".join(parts) or "-"
