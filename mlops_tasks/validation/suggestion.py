"""Suggesting an expectation suite from reference data."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.core import ExpectationSuite

from mlops_tasks.errors import ConfigurationError
from mlops_tasks.validation.frames import check_frame

logger = logging.getLogger(__name__)

__all__ = ["SUGGESTED_BY", "suggest_expectations"]

#: Value of ``meta["suggested_by"]`` on every expectation made by :func:`suggest_expectations`.
SUGGESTED_BY = "mlops_tasks.validation.suggest_expectations"

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
# What infer_dtype(skipna=False) says of an object column holding no null at all.
_NEVER_NULL_KINDS = frozenset({"string", "boolean", "integer"})
# Rows looked at before hashing a whole column for its distinct values.
_UNIQUE_PREFIX = 10_000
_TIMEDELTA_TYPES = ("timedelta64[ns]", "timedelta64[us]", "timedelta64[ms]", "timedelta64[s]")


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
    excluded = _checked_settings(
        reference, suite_name, exclude_columns, categorical_max_unique, range_margin, null_margin
    )
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
        null_rate, non_null, kind = _column_profile(series)
        family, type_list = _type_family(series, has_nulls=null_rate > 0, kind=kind)
        if type_list is None:
            untyped[column] = str(series.dtype)
            logger.info(
                "No type expectation for column %s: dtype %s (%s) cannot be named in a GX type list",
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
        expectations.append(_null_expectation(null_rate, column, null_margin))
        if family in {"integer", "float"} and pd.api.types.is_numeric_dtype(series.dtype):
            expectations.extend(_range_expectation(series, column, range_margin))
        if _is_categorical_like(series.dtype):
            expectations.extend(_value_set_expectation(non_null, column, categorical_max_unique))

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


def _checked_settings(
    reference: pd.DataFrame,
    suite_name: str,
    exclude_columns: Iterable[str],
    categorical_max_unique: int,
    range_margin: float,
    null_margin: float,
) -> list[str]:
    """Check the arguments of :func:`suggest_expectations`; return the excluded columns."""
    check_frame(reference, what="reference data")
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
    return excluded


def _column_profile(series: pd.Series) -> tuple[float, pd.Series, str | None]:
    """One pass for the null share: (null rate, the non-null values, object columns' inferred kind).

    An ``object`` column that pandas' C-level type inference finds to hold only ``str``,
    ``bool`` or ``int`` values has no nulls, so ``isna()`` (several times slower on
    object columns) is skipped for it.
    """
    kind = pd.api.types.infer_dtype(series, skipna=False) if series.dtype == object else None
    if kind in _NEVER_NULL_KINDS or len(series) == 0:
        return 0.0, series, kind
    nulls = np.asarray(series.isna(), dtype=bool)
    count = int(np.count_nonzero(nulls))
    return count / len(series), (series[~nulls] if count else series), kind


def _null_expectation(null_rate: float, column: str, null_margin: float) -> Any:
    mostly = 1.0 if null_rate == 0 else max(0.0, 1.0 - null_rate - null_margin)
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column,
        # Round down so the reference itself always meets its own threshold.
        mostly=math.floor(mostly * 1_000_000) / 1_000_000,
        meta=_suggested_meta(null_rate=round(null_rate, 6)),
    )


def _range_expectation(series: pd.Series, column: str, range_margin: float) -> list[Any]:
    """The observed range widened by ``range_margin``; none when min or max is not finite."""
    low, high = series.min(skipna=True), series.max(skipna=True)
    if not (pd.notna(low) and pd.notna(high) and math.isfinite(low) and math.isfinite(high)):
        return []
    low, high = float(low), float(high)
    pad = range_margin * (high - low)
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=low - pad,
            max_value=high + pad,
            meta=_suggested_meta(observed_min=low, observed_max=high),
        )
    ]


def _value_set_expectation(non_null: pd.Series, column: str, max_unique: int) -> list[Any]:
    """The column's distinct (non-null) values when there are 1 to ``max_unique`` of them."""
    # A prefix with more distinct values than allowed settles it without hashing the rest
    # (e.g. an id column of a million rows).
    prefix = non_null.iloc[:_UNIQUE_PREFIX]
    if len(non_null) > _UNIQUE_PREFIX and len(prefix.unique()) > max_unique:
        return []
    values = non_null.unique()
    if not 0 < len(values) <= max_unique:
        return []
    value_set = _sorted_values(values)
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=column,
            value_set=value_set,
            meta=_suggested_meta(distinct_values=len(value_set)),
        )
    ]


def _type_family(
    series: pd.Series, *, has_nulls: bool, kind: str | None
) -> tuple[str, tuple[str, ...] | None]:
    """Name the column's type family and the GX type list that accepts it (None: untypeable).

    ``kind`` is ``infer_dtype(series, skipna=False)`` for an object column, which for a
    column without nulls is also what ``skipna=True`` gives.
    """
    dtype = series.dtype
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
        inferred = kind if kind in _NEVER_NULL_KINDS else pd.api.types.infer_dtype(series, skipna=True)
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
