"""The metrics GX 1.x resolves on pandas for each expectation type the fast path covers.

:func:`expectation_metrics` returns, for one expectation, the dict GX's validator hands
to the expectation's ``_validate`` once it has resolved its metric graph, keyed by
metric name: the table's row count, column list or column count; for a column map
expectation the null count and the unexpected count, first unexpected values and index
labels of its condition (:class:`.fast_scan.ColumnScan`; the conditions that answer per
value, such as a strftime format or z-scores, are GX's own condition functions); for a
column aggregate the same pandas call GX's metric makes (``column.min()``,
``column.nunique()``, ...) on the same series. Which expectations may come here (their
arguments and dtypes) is :func:`.fast_path.fallback_reason`'s rule.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.constants import MAX_DISTINCT_VALUES
from great_expectations.core.metric_function_types import MetricPartialFunctionTypeSuffixes
from great_expectations.expectations.metrics import (
    ColumnValuesDateutilParseable,
    ColumnValuesJsonParseable,
    ColumnValuesMatchRegexList,
    ColumnValuesMatchStrftimeFormat,
    ColumnValuesNotMatchRegexList,
    ColumnValuesZScore,
)
from great_expectations.expectations.metrics.column_aggregate_metrics.column_distinct_values import (
    _coerce_value_set_to_column_type,
)

from mlops_tasks.validation.fast_scan import ColumnScan, MapOutcome, comparison_types

__all__ = [
    "AGGREGATE_TYPES",
    "DISTINCT_SET_TYPES",
    "MAP_TYPES",
    "TABLE_TYPES",
    "expectation_metrics",
    "type_check_names",
]

#: Table-level types: their metrics come from the frame's shape and column names.
TABLE_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
    }
)

#: Column map types: GX's map metric name of each.
MAP_TYPES: dict[str, str] = {
    "expect_column_values_to_be_in_type_list": "column_values.in_type_list",
    "expect_column_values_to_not_be_null": "column_values.nonnull",
    "expect_column_values_to_be_null": "column_values.null",
    "expect_column_values_to_be_between": "column_values.between",
    "expect_column_values_to_be_in_set": "column_values.in_set",
    "expect_column_values_to_not_be_in_set": "column_values.not_in_set",
    "expect_column_values_to_be_of_type": "column_values.of_type",
    "expect_column_values_to_be_unique": "column_values.unique",
    "expect_column_values_to_be_increasing": "column_values.increasing",
    "expect_column_values_to_be_decreasing": "column_values.decreasing",
    "expect_column_values_to_match_regex": "column_values.match_regex",
    "expect_column_values_to_not_match_regex": "column_values.not_match_regex",
    "expect_column_value_lengths_to_be_between": "column_values.value_length.between",
    "expect_column_value_lengths_to_equal": "column_values.value_length.equals",
    "expect_column_values_to_match_regex_list": "column_values.match_regex_list",
    "expect_column_values_to_not_match_regex_list": "column_values.not_match_regex_list",
    "expect_column_values_to_match_strftime_format": "column_values.match_strftime_format",
    "expect_column_values_to_be_json_parseable": "column_values.json_parseable",
    "expect_column_values_to_be_dateutil_parseable": "column_values.dateutil_parseable",
    "expect_column_value_z_scores_to_be_less_than": "column_values.z_score.under_threshold",
}

# Types whose GX pandas condition answers for each value alone (per_value) or for each
# value's str() (text): GX's metric provider, whose own condition function is called, and
# the kwargs that function takes, with their defaults.
_PER_VALUE: dict[str, tuple[Any, dict[str, Any]]] = {
    "expect_column_values_to_match_strftime_format": (
        ColumnValuesMatchStrftimeFormat,
        {"strftime_format": None},
    ),
    "expect_column_values_to_be_json_parseable": (ColumnValuesJsonParseable, {}),
    "expect_column_values_to_be_dateutil_parseable": (ColumnValuesDateutilParseable, {}),
}
_PER_STRING: dict[str, tuple[Any, dict[str, Any]]] = {
    "expect_column_values_to_match_regex_list": (
        ColumnValuesMatchRegexList,
        {"regex_list": None, "match_on": "any"},
    ),
    "expect_column_values_to_not_match_regex_list": (ColumnValuesNotMatchRegexList, {"regex_list": None}),
}

# Column aggregates: the metric GX's expectation reads, and GX's pandas computation of it
# (on the whole column, as GX's column_aggregate_value passes it; the median drops nulls).
_AGGREGATES: dict[str, tuple[str, Callable[[ColumnScan], Any]]] = {
    "expect_column_min_to_be_between": ("column.min", lambda scan: scan.series.min()),
    "expect_column_max_to_be_between": ("column.max", lambda scan: scan.series.max()),
    "expect_column_mean_to_be_between": ("column.mean", lambda scan: scan.series.mean()),
    "expect_column_median_to_be_between": ("column.median", lambda scan: scan.domain.median()),
    "expect_column_sum_to_be_between": ("column.sum", lambda scan: scan.series.sum()),
    "expect_column_stdev_to_be_between": ("column.standard_deviation", lambda scan: scan.series.std()),
    "expect_column_unique_value_count_to_be_between": (
        "column.distinct_values.count",
        lambda scan: scan.series.nunique(),
    ),
    "expect_column_proportion_of_unique_values_to_be_between": (
        "column.unique_proportion",
        lambda scan: _unique_proportion(scan),
    ),
    "expect_column_proportion_of_non_null_values_to_be_between": (
        "column.non_null_proportion",
        lambda scan: _non_null_proportion(scan),
    ),
    "expect_column_most_common_value_to_be_in_set": (
        "column.most_common_value",
        lambda scan: list(scan.series.mode().values),
    ),
}

# Types whose GX _validate compares the dtype, or each value of an object column.
_TYPE_CHECKS = frozenset({"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"})
# type_ values for which ExpectColumnValuesToBeOfType compares the dtype even of object columns.
_OBJECT_TYPE_NAMES = ("object", "object_", "O", None)

#: Column aggregate types computed with one pandas call over the column.
AGGREGATE_TYPES = frozenset(_AGGREGATES)

#: Distinct-value set types: GX's set arithmetic over ``set(column.dropna().unique())``.
DISTINCT_SET_TYPES = frozenset(
    {
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
    }
)


def expectation_metrics(
    kind: str, kwargs: Mapping[str, Any], df: pd.DataFrame, scan: ColumnScan | None
) -> dict[str, Any]:
    """The metrics GX's ``_validate`` of this expectation type reads, computed without GX.

    Args:
        kind: The expectation type (one of the covered ones).
        kwargs: Its configuration's kwargs.
        df: The frame.
        scan: The scan of the column it names (None for table-level types).

    Returns:
        Metric name to value, as GX's validator would pass them.

    Example:
        ```python
        metrics = expectation_metrics("expect_table_row_count_to_equal", {"value": 3}, df, None)
        assert metrics["table.row_count"] == len(df)
        ```
    """
    if kind in TABLE_TYPES:
        return _table_metrics(kind, df)
    if scan is None:
        raise ValueError(f"{kind} needs the scan of its column")
    metrics: dict[str, Any] = {
        "table.row_count": int(df.shape[0]),
        "column_values.nonnull.unexpected_count": scan.null_count,
    }
    if kind in _AGGREGATES:
        name, compute = _AGGREGATES[kind]
        metrics[name] = compute(scan)
        return metrics
    if kind in DISTINCT_SET_TYPES:
        metrics.update(_distinct_set_metrics(scan, kwargs.get("value_set")))
        return metrics
    if kind in _TYPE_CHECKS:
        series = scan.series
        metrics["table.column_types"] = [{"name": kwargs["column"], "type": series.dtype}]
        names = type_check_names(kind, kwargs)
        if names is not None and series.dtype.type.__name__ == "object_":
            # GX checks each value of an object column; other dtypes are compared as a whole.
            _with_outcome(metrics, MAP_TYPES[kind], scan.in_types(comparison_types(names)))
        return metrics
    return _with_outcome(metrics, MAP_TYPES[kind], _map_outcome(kind, kwargs, scan))


def type_check_names(kind: str, kwargs: Mapping[str, Any]) -> list[str] | None:
    """The type names an in-type-list or of-type expectation checks ``object`` values against.

    Args:
        kind: ``expect_column_values_to_be_in_type_list`` or ``..._to_be_of_type``.
        kwargs: Its configuration's kwargs.

    Returns:
        The names, or None when GX checks no value one by one (no ``type_list``, or a
        ``type_`` of ``object``, which GX compares with the dtype).

    Example:
        ```python
        assert type_check_names("expect_column_values_to_be_of_type", {"type_": "str"}) == ["str"]
        ```
    """
    if kind == "expect_column_values_to_be_in_type_list":
        type_list = kwargs.get("type_list")
        return None if type_list is None else list(type_list)
    type_ = kwargs.get("type_")
    return None if type_ in _OBJECT_TYPE_NAMES else [str(type_)]


def _table_metrics(kind: str, df: pd.DataFrame) -> dict[str, Any]:
    columns = list(df.columns)
    if kind.startswith("expect_table_row_count"):
        return {"table.row_count": int(df.shape[0])}
    if kind.startswith("expect_table_column_count"):
        return {"table.column_count": len(columns)}
    return {"table.columns": columns}


def _map_outcome(kind: str, kwargs: Mapping[str, Any], scan: ColumnScan) -> MapOutcome:
    if kind == "expect_column_values_to_not_be_null":
        return scan.nulls()
    if kind == "expect_column_values_to_be_null":
        return scan.not_null()
    if kind == "expect_column_values_to_be_between":
        return scan.between(
            kwargs.get("min_value"),
            kwargs.get("max_value"),
            strict_min=bool(kwargs.get("strict_min", False)),
            strict_max=bool(kwargs.get("strict_max", False)),
        )
    if kind == "expect_column_values_to_be_in_set":
        return scan.in_set(kwargs.get("value_set"))
    if kind == "expect_column_values_to_not_be_in_set":
        return scan.not_in_set(kwargs.get("value_set"))
    if kind in _PER_VALUE or kind in _PER_STRING:
        provider, defaults = _PER_VALUE.get(kind) or _PER_STRING[kind]
        values = {key: kwargs.get(key, default) for key, default in defaults.items()}
        # GX's own condition function, without the decorator that fetches the column from its engine.
        meets = functools.partial(inspect.unwrap(provider._pandas), provider, **values)
        return scan.per_value(meets) if kind in _PER_VALUE else scan.text(meets)
    if kind == "expect_column_value_z_scores_to_be_less_than":
        return scan.condition(lambda column: _z_scores_under_threshold(scan, column, kwargs))
    if kind == "expect_column_values_to_be_unique":
        return scan.condition(lambda column: ~column.duplicated(keep=False))
    if kind in ("expect_column_values_to_be_increasing", "expect_column_values_to_be_decreasing"):
        return scan.condition(lambda column: _in_order(column, kind, strictly=bool(kwargs.get("strictly"))))
    regex = str(kwargs.get("regex"))  # a string: fallback_reason sends any other regex to GX
    if kind == "expect_column_values_to_match_regex":
        return scan.text(lambda strings: strings.str.contains(regex))
    if kind == "expect_column_values_to_not_match_regex":
        return scan.text(lambda strings: ~strings.str.contains(regex))
    if kind == "expect_column_value_lengths_to_equal":
        value = kwargs.get("value")
        return scan.text(lambda strings: strings.str.len() == value)
    # expect_column_value_lengths_to_be_between
    return scan.text(lambda strings: _length_between(strings.str.len(), kwargs))


def _z_scores_under_threshold(scan: ColumnScan, column: pd.Series, kwargs: Mapping[str, Any]) -> Any:
    """GX's own z-score function and condition, fed the column's mean and standard deviation.

    GX computes both on the whole column (``column.mean()``, ``column.std()``) and the
    z-scores on the non-null values.
    """
    provider: Any = ColumnValuesZScore
    stats = {"column.mean": scan.series.mean(), "column.standard_deviation": scan.series.std()}
    z_scores = inspect.unwrap(provider._pandas_function)(provider, column, _metrics=stats)
    key = f"column_values.z_score.{MetricPartialFunctionTypeSuffixes.MAP.value}"
    return inspect.unwrap(provider._pandas_condition)(
        provider,
        column,
        _metrics={key: (z_scores, None, None)},
        threshold=kwargs.get("threshold"),
        double_sided=kwargs.get("double_sided", True),
    )


def _in_order(column: pd.Series, kind: str, *, strictly: bool) -> Any:
    """GX's ``column_values.increasing``/``decreasing`` condition: each step from the previous value."""
    diff = column.diff()
    zero = pd.Timedelta(0) if pd.api.types.is_timedelta64_dtype(diff.dtype) else 0
    if kind == "expect_column_values_to_be_increasing":
        in_order = diff > zero if strictly else diff >= zero
    else:
        in_order = diff < zero if strictly else diff <= zero
    return in_order | diff.isnull()  # the first value has no previous one


def _length_between(lengths: pd.Series, kwargs: Mapping[str, Any]) -> Any:
    """GX's ``column_values.value_length.between`` condition on the lengths."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = bool(kwargs.get("strict_min")), bool(kwargs.get("strict_max"))
    if low is not None and high is not None:
        inclusive = {(True, True): "neither", (True, False): "right", (False, True): "left"}.get(
            (strict_min, strict_max), "both"
        )
        return lengths.between(low, high, inclusive=inclusive)  # type: ignore[arg-type]
    if high is not None:
        return lengths < high if strict_max else lengths <= high
    return lengths > low if strict_min else lengths >= low


def _distinct_set_metrics(scan: ColumnScan, value_set: Any) -> dict[str, Any]:
    """GX's pandas ``column.distinct_values.not_in_set`` and ``missing_from_column`` metrics."""
    column_set = set(scan.series.dropna().unique())
    expected = _coerce_value_set_to_column_type(column_set, value_set)
    not_in_set = list(column_set - expected)
    try:
        not_in_set = sorted(not_in_set)
    except TypeError:
        pass  # GX keeps mixed types unsorted too
    missing = list(expected - column_set)
    return {
        "column.distinct_values.not_in_set.count": len(not_in_set),
        "column.distinct_values.not_in_set": not_in_set[:MAX_DISTINCT_VALUES],
        "column.distinct_values.missing_from_column.count": len(missing),
        "column.distinct_values.missing_from_column": missing[:MAX_DISTINCT_VALUES],
    }


def _unique_proportion(scan: ColumnScan) -> Any:
    """GX's ``column.unique_proportion``: distinct non-null values over non-null values."""
    total = len(scan.series)
    if total > 0 and total != scan.null_count:
        return scan.series.nunique() / (total - scan.null_count)
    return 0


def _non_null_proportion(scan: ColumnScan) -> Any:
    """GX's ``column.non_null_proportion``: non-null values (a numpy count) over rows."""
    total = len(scan.series)
    if total > 0:
        return np.int64(total - scan.null_count) / total
    return 0


def _with_outcome(metrics: dict[str, Any], metric: str, outcome: MapOutcome) -> dict[str, Any]:
    metrics[f"{metric}.unexpected_count"] = outcome.unexpected_count
    metrics[f"{metric}.unexpected_values"] = outcome.values
    metrics[f"{metric}.unexpected_index_list"] = outcome.index
    return metrics
