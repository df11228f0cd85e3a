"""The fast path: GX's own expectation code fed with vectorised metrics.

For every expectation of a covered type, argument set and dtype, the metrics GX would
resolve (row count, null count, unexpected count, the first unexpected values and index
labels, the table's columns or column dtypes, a column aggregate) are computed by
:mod:`.fast_metrics` from one :mod:`.fast_scan` scan per column; then the expectation's
own GX ``_validate`` turns them into the result dict and GX's ``_build_evr`` into an
``ExpectationValidationResult``, exactly as GX's validator does after resolving its
metric graph. Success rules, ``mostly``, percentages,
``partial_unexpected_counts`` and the result format's trimming are therefore GX's code,
not a copy of it.

:func:`fallback_reason` says why an expectation cannot take this path (its type,
arguments, column dtype, the result format, a missing column, a named index); those
expectations run through GX itself (:mod:`.engine`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.constants import MAX_RESULT_RECORDS
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnAggregateExpectation, ColumnMapExpectation
from great_expectations.expectations.expectation_configuration import (
    ExpectationConfiguration,
    parse_result_format,
)

from mlops_tasks.validation.fast_metrics import (
    AGGREGATE_TYPES,
    DISTINCT_SET_TYPES,
    MAP_TYPES,
    TABLE_TYPES,
    expectation_metrics,
    type_check_names,
)
from mlops_tasks.validation.fast_scan import (
    ColumnScan,
    NotCoveredError,
    comparison_types,
    is_vectorised_numeric,
)

__all__ = [
    "FAST_EXPECTATION_TYPES",
    "FastValidator",
    "NotCoveredError",
    "certain_raise_rows",
    "fallback_reason",
    "fast_result_format",
    "is_column_domain",
]

_BOUNDS = frozenset({"min_value", "max_value", "strict_min", "strict_max"})
_COLUMN_BOUNDS = frozenset({"column"}) | _BOUNDS
# Arguments each covered type may hold (anything else, e.g. row_condition, goes to GX).
_ALLOWED_KWARGS: dict[str, frozenset[str]] = {
    "expect_table_columns_to_match_set": frozenset({"column_set", "exact_match"}),
    "expect_table_columns_to_match_ordered_list": frozenset({"column_list"}),
    "expect_table_row_count_to_be_between": _BOUNDS,
    "expect_table_row_count_to_equal": frozenset({"value"}),
    "expect_table_column_count_to_equal": frozenset({"value"}),
    "expect_table_column_count_to_be_between": frozenset({"min_value", "max_value"}),
    "expect_column_to_exist": frozenset({"column", "column_index"}),
    "expect_column_values_to_be_in_type_list": frozenset({"column", "type_list", "mostly"}),
    "expect_column_values_to_not_be_null": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_null": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_between": _COLUMN_BOUNDS | {"mostly"},
    "expect_column_values_to_be_in_set": frozenset({"column", "value_set", "mostly"}),
    "expect_column_values_to_not_be_in_set": frozenset({"column", "value_set", "mostly"}),
    "expect_column_values_to_be_of_type": frozenset({"column", "type_", "mostly"}),
    "expect_column_values_to_be_unique": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_increasing": frozenset({"column", "strictly", "mostly"}),
    "expect_column_values_to_be_decreasing": frozenset({"column", "strictly", "mostly"}),
    "expect_column_values_to_match_regex": frozenset({"column", "regex", "mostly"}),
    "expect_column_values_to_not_match_regex": frozenset({"column", "regex", "mostly"}),
    "expect_column_value_lengths_to_be_between": _COLUMN_BOUNDS | {"mostly"},
    "expect_column_value_lengths_to_equal": frozenset({"column", "value", "mostly"}),
    "expect_column_values_to_match_regex_list": frozenset({"column", "regex_list", "match_on", "mostly"}),
    "expect_column_values_to_not_match_regex_list": frozenset({"column", "regex_list", "mostly"}),
    "expect_column_values_to_match_strftime_format": frozenset({"column", "strftime_format", "mostly"}),
    "expect_column_values_to_be_json_parseable": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_dateutil_parseable": frozenset({"column", "mostly"}),
    "expect_column_value_z_scores_to_be_less_than": frozenset(
        {"column", "threshold", "double_sided", "mostly"}
    ),
    **dict.fromkeys(AGGREGATE_TYPES, _COLUMN_BOUNDS),
    **dict.fromkeys(DISTINCT_SET_TYPES, frozenset({"column", "value_set"})),
    "expect_column_most_common_value_to_be_in_set": frozenset({"column", "value_set", "ties_okay"}),
}

# Aggregates whose GX metric first converts decimal.Decimal values of the column in place.
_DECIMAL_TYPES = frozenset(
    {
        "expect_column_mean_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_value_z_scores_to_be_less_than",
    }
)

# Rows scanned at a time when looking for the first string in an object column.
_CHUNK = 65_536

#: Expectation types the fast path computes (with GX as the fallback for their other cases).
FAST_EXPECTATION_TYPES = frozenset(_ALLOWED_KWARGS)

# Kwargs that may be present as long as they hold GX's default (no filtering, default batch).
_NEUTRAL_KWARGS = {"row_condition": None, "condition_parser": None, "batch_id": None}

_RESULT_FORMATS = frozenset({"BOOLEAN_ONLY", "BASIC", "SUMMARY"})
# Result-format keys the fast path honours, with the values it can honour.
_RESULT_FORMAT_KEYS: dict[str, Callable[[Any], bool]] = {
    "result_format": lambda value: value in _RESULT_FORMATS,
    "partial_unexpected_count": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "include_unexpected_rows": lambda value: value is False,
    "map_expectation_unexpected_rows_as_dict": lambda value: value is False,
    "exclude_unexpected_values": lambda value: isinstance(value, bool),
    "return_unexpected_index_query": lambda value: value is False or value is None,
}


def fast_result_format(result_format: str | Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """GX's parsed form of a result format, and why the fast path cannot honour it (or None).

    Args:
        result_format: A GX result format name or dict.

    Returns:
        The parsed dict (``parse_result_format`` of a copy) and None, or a reason such as
        ``"result_format COMPLETE"``.

    Example:
        ```python
        parsed, reason = fast_result_format("SUMMARY")
        assert reason is None
        ```
    """
    parsed = parse_result_format(
        copy.deepcopy(result_format if isinstance(result_format, str) else dict(result_format))
    )
    for key, value in parsed.items():
        check = _RESULT_FORMAT_KEYS.get(key)
        if check is None:
            return parsed, f"result_format option {key!r}"
        if not check(value):
            shown = value if key == "result_format" else f"{key}={value!r}"
            return parsed, f"result_format {shown}"
    return parsed, None


def fallback_reason(config: ExpectationConfiguration, df: pd.DataFrame) -> str | None:
    """Why an expectation must run through GX rather than the fast path (None: it need not).

    Args:
        config: The expectation's configuration.
        df: The frame to validate.

    Returns:
        A short reason (``"expectation type ... has no fast path"``, ``"column 'x' is not
        in the data"``, ``"dtype object is compared value by value"``, ...) or None.

    Example:
        ```python
        reasons = {c.type: fallback_reason(c, df) for c in suite.expectation_configurations}
        ```
    """
    kind = config.type
    allowed = _ALLOWED_KWARGS.get(kind)
    if allowed is None:
        return f"expectation type {kind} has no fast path"
    kwargs = dict(config.kwargs)
    for key, value in kwargs.items():
        if key in _NEUTRAL_KWARGS and value == _NEUTRAL_KWARGS[key]:
            continue
        if key not in allowed:
            return f"argument {key}={value!r}"
        if isinstance(value, dict):
            return f"argument {key} is a suite parameter"
    reason = _argument_reason(kind, kwargs)
    if reason is not None or kind in TABLE_TYPES:
        return reason
    column = kwargs.get("column")
    if not isinstance(column, str) or column not in df.columns:
        return f"column {column!r} is not in the data"
    if kind in MAP_TYPES and (df.index.nlevels > 1 or df.index.name is not None):
        return "the frame has a named index (GX reports unexpected rows by its names)"
    return _dtype_reason(kind, kwargs, df[column])


def is_column_domain(config: ExpectationConfiguration) -> bool:
    """Whether the expectation looks at one column only (a column map or column aggregate).

    Args:
        config: The expectation's configuration.

    Returns:
        True when GX evaluates it on the ``column`` it names alone, so a frame holding
        only that column gives GX's result for the whole frame.

    Example:
        ```python
        assert is_column_domain(gxe.ExpectColumnMeanToBeBetween(column="a", min_value=0).configuration)
        ```
    """
    try:
        expectation = config.to_domain_obj()
    except Exception:  # noqa: BLE001 - an unknown or broken expectation: GX gets everything
        return False
    return isinstance(expectation, ColumnMapExpectation | ColumnAggregateExpectation)


def certain_raise_rows(config: ExpectationConfiguration, df: pd.DataFrame) -> int | None:
    """How many leading rows GX needs to raise on this expectation, when it certainly raises.

    Two cases, for the covered column types: the column is not in the data (no name
    matches even case-insensitively, GX's rule: no row needed), and a ``between`` with
    numeric bounds on an ``object`` column that holds a ``str`` value. GX compares such a
    column value by value, in order, and raises ``TypeError`` at the first string (or
    earlier, at a value that cannot be compared), so the rows up to that string give the
    same exception as the whole frame.

    Args:
        config: The expectation's configuration.
        df: The frame.

    Returns:
        The number of rows, or None when GX may not raise (then it needs every row).

    Example:
        ```python
        rows = certain_raise_rows(config, df)
        ```
    """
    column = config.kwargs.get("column")
    if config.type not in FAST_EXPECTATION_TYPES or config.type in TABLE_TYPES or not isinstance(column, str):
        return None
    if column not in df.columns:
        folded = column.casefold()
        return None if any(str(c).casefold() == folded for c in df.columns) else 0
    series = df[column]
    if config.type != "expect_column_values_to_be_between" or not _is_object(series):
        return None
    bounds = [config.kwargs.get(key) for key in ("min_value", "max_value")]
    if not any(type(b) in (int, float) for b in bounds) or any(isinstance(b, str | dict) for b in bounds):
        return None
    values = series.to_numpy(dtype=object)
    # Look for the first string a chunk at a time: in bad data it is usually near the top.
    for start in range(0, len(values), _CHUNK):
        kinds = np.frompyfunc(type, 1, 1)(values[start : start + _CHUNK])
        codes, distinct = pd.factorize(kinds)
        text = [code for code, kind in enumerate(distinct) if issubclass(kind, str)]
        hits = np.flatnonzero(np.isin(codes, text))
        if len(hits):
            return start + int(hits[0]) + 1
    return None


def _dtype_reason(kind: str, kwargs: Mapping[str, Any], series: pd.Series) -> str | None:
    if kind == "expect_column_values_to_be_between":
        dtype = series.dtype
        if not (
            is_vectorised_numeric(dtype) or (pd.api.types.is_integer_dtype(dtype) and not _is_object(series))
        ):
            return f"dtype {dtype} is compared value by value"
        for key in ("min_value", "max_value"):
            bound = kwargs.get(key)
            if bound is not None and type(bound) not in (int, float):
                return f"{key} {bound!r} is not a number"
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is None and high is None:
            return "min_value and max_value are both None"
        if low is not None and high is not None and low > high:
            return "min_value is greater than max_value"
    if kind in ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"):
        names = type_check_names(kind, kwargs)
        if names is not None and _is_object(series) and not comparison_types(names):
            return f"no type in {names!r} is known to numpy, pandas or Python"
    if kind in _DECIMAL_TYPES and _is_object(series):
        return f"dtype object: GX converts decimal.Decimal values for {kind} first"
    if kind == "expect_column_values_to_not_be_in_set" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        return f"dtype {series.dtype}: GX parses the value set for datetime columns"
    return None


def _argument_reason(kind: str, kwargs: Mapping[str, Any]) -> str | None:
    """Why an argument value of a covered type is left to GX (None: every value is covered)."""
    if "value_set" in _ALLOWED_KWARGS[kind] and not isinstance(kwargs.get("value_set"), list | None):
        return "value_set is not a list"
    for key in ("regex", "type_", "strftime_format"):
        if key in _ALLOWED_KWARGS[kind] and not isinstance(kwargs.get(key), str):
            return f"{key} is not a string"
    regex_list = kwargs.get("regex_list", [])
    if not (isinstance(regex_list, list) and all(isinstance(r, str) for r in regex_list)):
        return "regex_list is not a list of strings"
    if kind.startswith(
        ("expect_table_row_count", "expect_table_column_count", "expect_column_value_lengths")
    ):
        for key in ("value", "min_value", "max_value"):
            value = kwargs.get(key)
            if value is not None and type(value) not in (int, float):
                return f"{key} {value!r} is not a number"
    if kind == "expect_column_to_exist" and type(kwargs.get("column_index")) not in (int, type(None)):
        return "column_index is not an integer"
    return None


def _is_object(series: pd.Series) -> bool:
    # GX's own test: the dtype's scalar type is named "object_".
    return bool(series.dtype.type.__name__ == "object_")


class FastValidator:
    """Validates covered expectations of one frame with vectorised metrics and GX's own code.

    Args:
        df: The frame.
        result_format: GX's parsed result format (see :func:`fast_result_format`).

    Example:
        ```python
        parsed, _ = fast_result_format("SUMMARY")
        validator = FastValidator(df, parsed)
        results = [validator.validate(c) for c in configs if fallback_reason(c, df) is None]
        ```
    """

    def __init__(self, df: pd.DataFrame, result_format: dict[str, Any]) -> None:
        self.df = df
        self.result_format = result_format
        partial = int(result_format.get("partial_unexpected_count", 20))
        self._value_limit = min(partial, MAX_RESULT_RECORDS)
        self._index_limit = partial
        self._scans: dict[str, ColumnScan] = {}
        # Only type checks of the dtype-comparison branch look at the engine's type.
        self._engine = PandasExecutionEngine()

    def release(self, column: str) -> None:
        """Forget a column's scan (its null mask and filtered copy) once its expectations are done."""
        self._scans.pop(column, None)

    def validate(self, config: ExpectationConfiguration) -> ExpectationValidationResult:
        """Validate one covered expectation (one :func:`fallback_reason` returned None for).

        Args:
            config: The expectation's configuration.

        Returns:
            GX's result object for it.
        """
        expectation = config.to_domain_obj()
        metrics = self._metrics(config)
        runtime_configuration = {"result_format": copy.deepcopy(self.result_format)}
        raw = expectation._validate(  # noqa: SLF001 - GX's own result logic, fed our metrics
            metrics=metrics,
            runtime_configuration=runtime_configuration,
            execution_engine=self._engine,
        )
        if self.result_format["result_format"] == "BOOLEAN_ONLY":
            # What GX's metrics_validate does for BOOLEAN_ONLY (no index query requested).
            raw["result"] = {}
        return expectation._build_evr(raw_response=raw)  # noqa: SLF001

    def _metrics(self, config: ExpectationConfiguration) -> dict[str, Any]:
        kind = config.type
        scan = None if kind in TABLE_TYPES else self._scan(config.kwargs["column"])
        return expectation_metrics(kind, config.kwargs, self.df, scan)

    def _scan(self, column: str) -> ColumnScan:
        scan = self._scans.get(column)
        if scan is None:
            scan = ColumnScan(self.df[column], value_limit=self._value_limit, index_limit=self._index_limit)
            self._scans[column] = scan
        return scan
