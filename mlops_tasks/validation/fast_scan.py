"""Vectorised column scans that compute the metrics Great Expectations computes on pandas.

Each scan reads one column once: the null mask is computed a single time and shared by
every expectation on that column. The conditions are the ones GX 1.x's pandas metrics
use (``~column.isnull()``, ``(min <= column) & (column <= max)``,
``column.isin(value_set)``, ``isinstance`` per value, ``~column.duplicated(keep=False)``,
``column.astype(str).str.contains(regex)``, ``column.astype(str).str.len()``), applied
to the same null-filtered series, so the counts, the first unexpected values and their
index labels are the ones GX's metrics return. Only the first few
unexpected values and index labels are materialised (GX's ``SUMMARY`` format keeps no
more), which is what keeps the memory of a 10-million-row run small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.expectations.type_comparison import native_type_type_map
from pandas.core.dtypes import dtypes as pandas_dtypes

__all__ = [
    "ColumnScan",
    "MapOutcome",
    "NotCoveredError",
    "comparison_types",
    "is_vectorised_numeric",
]

_INT64 = np.dtype("int64")
_FLOAT64 = np.dtype("float64")
# What infer_dtype(skipna=False) says of an object column holding no null at all.
_NEVER_NULL_KINDS = frozenset({"string", "boolean", "integer"})
# Integers up to 2**53 convert to float64 exactly.
_EXACT_FLOAT_INT = 2**53


class NotCoveredError(Exception):
    """The data turned out to need GX's own path (the message says why)."""


@dataclass(frozen=True)
class MapOutcome:
    """What GX's map metrics report for one condition on one column.

    Attributes:
        unexpected_count: Rows of the domain that do not meet the condition.
        values: The first unexpected values, in row order (GX's ``unexpected_values``).
        index: Index labels of the first unexpected rows (GX's ``unexpected_index_list``).
    """

    unexpected_count: int
    values: list[Any]
    index: list[Any]


def is_vectorised_numeric(dtype: Any) -> bool:
    """Whether GX compares a column of this dtype vectorised (``column.dtype in [int, float]``).

    Args:
        dtype: A pandas or numpy dtype.

    Returns:
        True for ``int64`` and ``float64`` numpy dtypes, the two GX 1.x compares with
        vectorised operators; every other dtype goes through its per-value Python path.

    Example:
        ```python
        assert is_vectorised_numeric(np.dtype("float64"))
        ```
    """
    return isinstance(dtype, np.dtype) and dtype in (_INT64, _FLOAT64)


def comparison_types(type_list: Sequence[str]) -> tuple[type, ...]:
    """The Python types GX's pandas ``column_values.in_type_list`` metric checks values against.

    For each name: numpy's scalar type when numpy knows the name, else the pandas class
    of that name (``pd.<name>`` or ``pd.core.dtypes.dtypes.<name>``), plus the native
    Python types GX maps the name to (``"str"`` -> ``str``, ``"int"`` -> ``int``, ...).

    Args:
        type_list: The expectation's ``type_list``.

    Returns:
        The types; empty when none of the names is known (GX then raises).

    Example:
        ```python
        assert str in comparison_types(["str"])
        ```
    """
    found: list[type] = []
    for name in type_list:
        try:
            found.append(np.dtype(name).type)
        except TypeError:
            for namespace in (pd, pandas_dtypes):
                candidate = getattr(namespace, name, None)
                if isinstance(candidate, type):
                    found.append(candidate)
        native = native_type_type_map(name)
        if native is not None:
            found.extend(native)
    return tuple(found)


class ColumnScan:
    """One column of a frame, scanned once for every expectation about it.

    Args:
        series: The column.
        value_limit: How many unexpected values to keep (GX: ``min(partial_unexpected_count,
            MAX_RESULT_RECORDS)``).
        index_limit: How many unexpected index labels to keep (GX: ``partial_unexpected_count``).

    Example:
        ```python
        scan = ColumnScan(df["age"], value_limit=10, index_limit=10)
        outcome = scan.between(0, 120, strict_min=False, strict_max=False)
        ```
    """

    def __init__(self, series: pd.Series, *, value_limit: int, index_limit: int) -> None:
        self.series = series
        self.value_limit = max(0, int(value_limit))
        self.index_limit = max(0, int(index_limit))
        self._null_mask: np.ndarray | None = None
        self._domain: pd.Series | None = None
        self._kind: str | None = None
        self._null_count: int | None = None

    @property
    def null_mask(self) -> np.ndarray:
        """True where the value is null (``column.isnull()``), computed once.

        An ``object`` column that pandas' type inference finds to hold only ``str`` (or
        only ``bool``, or only ``int``) values has no nulls, which that C-level pass
        tells several times faster than ``isnull()`` looks at every value.
        """
        if self._null_mask is None:
            if self._object_kind() in _NEVER_NULL_KINDS:
                self._null_mask = np.zeros(len(self.series), dtype=bool)
            else:
                self._null_mask = np.asarray(self.series.isnull(), dtype=bool)
        return self._null_mask

    def _object_kind(self) -> str | None:
        """``infer_dtype(skipna=False)`` of an ``object`` column (None for other dtypes)."""
        if self._kind is None and self.series.dtype == object:
            self._kind = pd.api.types.infer_dtype(self.series, skipna=False)
        return self._kind

    @property
    def null_count(self) -> int:
        """Null values in the column (GX's ``column_values.nonnull.unexpected_count``)."""
        if self._null_count is None:
            self._null_count = int(np.count_nonzero(self.null_mask))
        return self._null_count

    @property
    def domain(self) -> pd.Series:
        """The non-null values, as GX filters them (``df[df[column].notnull()][column]``)."""
        if self._domain is None:
            mask = self.null_mask
            self._domain = self.series[~mask] if mask.any() else self.series
        return self._domain

    def nulls(self) -> MapOutcome:
        """GX's ``column_values.nonnull`` condition over the whole column."""
        return self._outcome(self.series, self.null_mask)

    def between(self, min_value: Any, max_value: Any, *, strict_min: bool, strict_max: bool) -> MapOutcome:
        """GX's ``column_values.between`` condition over the non-null values.

        ``int64`` and ``float64`` columns are compared as GX compares them (vectorised).
        For other integer dtypes (``int32``, nullable ``Int64``, ...) GX compares value by
        value: a numpy integer scalar against the bounds, which numpy does in float64; the
        scan compares the column converted to float64, which is the same comparison while
        every value and bound is an integer float64 holds exactly (checked, else
        :class:`NotCoveredError`).

        Raises:
            NotCoveredError: An integer column or bound is beyond 2**53 in magnitude.
        """
        column = self.domain
        if not is_vectorised_numeric(column.dtype):
            return self._outcome(
                column, ~self._float_between(column, min_value, max_value, strict_min, strict_max)
            )
        if min_value is None:
            meets = column < max_value if strict_max else column <= max_value
        elif max_value is None:
            meets = min_value < column if strict_min else min_value <= column
        else:
            low = min_value < column if strict_min else min_value <= column
            high = column < max_value if strict_max else column <= max_value
            meets = low & high
        return self._outcome(column, ~np.asarray(meets, dtype=bool))

    @staticmethod
    def _float_between(
        column: pd.Series, min_value: Any, max_value: Any, strict_min: bool, strict_max: bool
    ) -> np.ndarray:
        bounds = [b for b in (min_value, max_value) if b is not None]
        if any(isinstance(b, int) and abs(b) > _EXACT_FLOAT_INT for b in bounds):
            raise NotCoveredError("a bound is an integer beyond 2**53")
        values = column.to_numpy(dtype=np.float64)
        if len(values) and max(abs(values.min()), abs(values.max())) > _EXACT_FLOAT_INT:
            raise NotCoveredError("the column holds integers beyond 2**53")
        meets = np.ones(len(values), dtype=bool)
        if min_value is not None:
            meets &= values > min_value if strict_min else values >= min_value
        if max_value is not None:
            meets &= values < max_value if strict_max else values <= max_value
        return meets

    def in_set(self, value_set: Sequence[Any] | None) -> MapOutcome:
        """GX's ``column_values.in_set`` condition (``column.isin(value_set)``) over the non-null values."""
        column = self.domain
        if value_set is None:
            return self._outcome(column, np.zeros(len(column), dtype=bool))
        return self._outcome(column, ~self._members(value_set))

    def not_in_set(self, value_set: Sequence[Any] | None) -> MapOutcome:
        """GX's ``column_values.not_in_set`` condition (``~column.isin(value_set)``) over the non-null values.

        GX parses the value set first on a datetime column; the caller sends those to GX.
        """
        column = self.domain
        if value_set is None:
            return self._outcome(column, np.zeros(len(column), dtype=bool))
        return self._outcome(column, self._members(value_set))

    def _members(self, value_set: Sequence[Any]) -> np.ndarray:
        """``column.isin(value_set)`` over the non-null values, as a bool array."""
        column = self.domain
        if column.dtype == np.bool_:
            # pandas answers isin on a long bool column with numpy's sort-based isin; asking
            # the same question of the two possible values and looking each row up is the
            # same answer at a fraction of the cost.
            member = np.asarray(pd.Series([False, True]).isin(value_set), dtype=bool)
            return member[column.to_numpy().astype(np.intp)]
        return np.asarray(column.isin(value_set), dtype=bool)

    def not_null(self) -> MapOutcome:
        """GX's ``column_values.null`` condition (``column.isnull()``) over the whole column."""
        return self._outcome(self.series, ~self.null_mask)

    def condition(self, meets: Callable[[pd.Series], Any]) -> MapOutcome:
        """A GX condition computed by GX's own pandas expression over the non-null values.

        ``meets`` is the expression of GX's metric (e.g. ``lambda c: ~c.duplicated(keep=False)``
        for ``column_values.unique``); GX counts the rows where ``~meets`` is true.

        Raises:
            NotCoveredError: The expression gave something other than a numpy bool
                series (``~`` of an ``object`` series is not a negation; GX then counts
                and lists rows differently).
        """
        column = self.domain
        return self._outcome(column, ~_bools(meets(column)))

    def per_value(self, meets: Callable[[pd.Series], Any]) -> MapOutcome:
        """A GX condition that answers for each value alone (``column.map(f)``), over the non-null values.

        On an ``object`` column of strings the condition is asked once per distinct string
        and the answer spread back over the rows (equal strings get equal answers); on any
        other column it is asked of the column itself, as GX asks it.

        Raises:
            NotCoveredError: The condition gave something other than numpy bools.
        """
        column = self.domain
        if column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string":
            codes, distinct = pd.factorize(column.to_numpy(dtype=object))
            answers = _bools(meets(pd.Series(distinct, dtype=object)))
            return self._outcome(column, ~answers[codes])
        return self._outcome(column, ~_bools(meets(column)))

    def text(self, meets: Callable[[pd.Series], Any]) -> MapOutcome:
        """A GX condition on ``column.astype(str)`` over the non-null values (regex, value length).

        ``meets`` is GX's condition on the strings (e.g. ``lambda s: s.str.contains(regex)``).
        pandas' string methods call Python once per value; the condition is asked once per
        distinct string instead and the answer spread back over the rows, which is the same
        answer, since it depends on the string alone.

        Raises:
            NotCoveredError: The condition gave something other than numpy bools.
        """
        column = self.domain
        strings = column.astype(str)
        if strings.dtype != object:
            return self._outcome(column, ~_bools(meets(strings)))
        codes, distinct = pd.factorize(strings.to_numpy(dtype=object))
        answers = _bools(meets(pd.Series(distinct, dtype=object)))
        return self._outcome(column, ~answers[codes])

    def in_types(self, types: tuple[type, ...]) -> MapOutcome:
        """GX's ``column_values.in_type_list`` condition (``isinstance`` per value) over the non-null values.

        ``isinstance(x, T)`` is ``issubclass(type(x), T)`` for ordinary classes, so each
        distinct type is checked once: the common all-``str`` (or all-``bool``) column is
        recognised by pandas' C-level type inference without a per-value Python call.
        """
        column = self.domain
        values = column.to_numpy(dtype=object)
        inferred = self._object_kind() if column is self.series else None
        if inferred is None:
            inferred = pd.api.types.infer_dtype(values, skipna=False)
        for kind, pair in (("string", (str, np.str_)), ("boolean", (bool, np.bool_))):
            if inferred != kind:
                continue
            # Every value is of one of the pair; when the pair agrees, so do all values.
            accepted = {issubclass(t, types) for t in pair}
            if len(accepted) == 1:
                fill = np.zeros if accepted.pop() else np.ones
                return self._outcome(column, fill(len(values), dtype=bool))
        kinds = np.frompyfunc(type, 1, 1)(values) if len(values) else np.empty(0, dtype=object)
        codes, distinct = pd.factorize(kinds)
        rejected = [code for code, kind in enumerate(distinct) if not issubclass(kind, types)]
        return self._outcome(column, np.isin(codes, rejected))

    def _outcome(self, column: pd.Series, unexpected: np.ndarray) -> MapOutcome:
        count = int(np.count_nonzero(unexpected))
        if count == 0:
            return MapOutcome(0, [], [])
        first = np.flatnonzero(unexpected)[: max(self.value_limit, self.index_limit)]
        values = list(column.iloc[first[: self.value_limit]])
        index = list(column.index[first[: self.index_limit]])
        return MapOutcome(count, values, index)


def _bools(meets: Any) -> np.ndarray:
    """A GX condition's result as a numpy bool array; anything else is left to GX."""
    values = np.asarray(meets)
    if values.size == 0:
        return np.zeros(0, dtype=bool)  # GX's count and lists of an empty condition are empty too
    if values.dtype != np.bool_:
        raise NotCoveredError(f"the condition gave {getattr(meets, 'dtype', type(meets))} values, not bool")
    return values
