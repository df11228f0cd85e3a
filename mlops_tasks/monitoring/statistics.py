"""The drift statistics, vectorized over the full data, reproducing Evidently 0.7's.

Normed Wasserstein distance, Jensen-Shannon distance (on counts, or on Sturges bins
for many distinct values), chi-square and two-proportion z-test p-values, and the
Kolmogorov-Smirnov p-value; :func:`column_drift` picks and runs one for a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_tasks.errors import ConfigurationError
from mlops_tasks.monitoring.column_types import choose_stattest
from mlops_tasks.monitoring.models import (
    NUMERICAL_ONLY_TESTS,
    STAT_TESTS,
    ColumnDrift,
    SkippedColumn,
    StatTestName,
)

__all__ = ["column_drift", "compute_column_drift", "finite_values"]

_BINCOUNT_MAX_RANGE = 4_000_000  # integer columns spanning more values are sorted, not bin-counted


@dataclass
class _Counts:
    keys: np.ndarray  # sorted distinct values of both sides
    ref: np.ndarray  # counts per key
    cur: np.ndarray


@dataclass
class _Numeric:
    ref_values: np.ndarray  # finite values
    cur_values: np.ndarray
    ref_sorted: np.ndarray | None = None
    cur_sorted: np.ndarray | None = None
    counts: _Counts | None = None
    distinct: int = 0
    ref_distinct: int = 0


def _run_lengths(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    counts = np.diff(np.r_[starts, sorted_values.size])
    return sorted_values[starts], counts


def _align(keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray, counts_b: np.ndarray) -> _Counts:
    keys = np.union1d(keys_a, keys_b)
    ref = np.zeros(keys.size, dtype=np.int64)
    cur = np.zeros(keys.size, dtype=np.int64)
    ref[np.searchsorted(keys, keys_a)] = counts_a
    cur[np.searchsorted(keys, keys_b)] = counts_b
    return _Counts(keys, ref, cur)


def _numeric_profile(ref: np.ndarray, cur: np.ndarray) -> _Numeric:
    """Distinct values (and counts when there are few) of two finite numeric arrays."""
    prof = _Numeric(ref, cur)
    if np.issubdtype(ref.dtype, np.integer) and np.issubdtype(cur.dtype, np.integer):
        lo = int(min(ref.min(), cur.min()))
        hi = int(max(ref.max(), cur.max()))
        if hi - lo <= _BINCOUNT_MAX_RANGE:
            cr = np.bincount(ref - lo, minlength=hi - lo + 1)
            cc = np.bincount(cur - lo, minlength=hi - lo + 1)
            present = np.flatnonzero(cr + cc)
            prof.counts = _Counts((present + lo).astype(np.float64), cr[present], cc[present])
            prof.distinct = int(present.size)
            prof.ref_distinct = int(np.count_nonzero(cr))
            return prof
    rs = np.sort(ref.astype(np.float64, copy=False))
    cs = np.sort(cur.astype(np.float64, copy=False))
    prof.ref_sorted, prof.cur_sorted = rs, cs
    ref_distinct = int(np.count_nonzero(rs[1:] != rs[:-1])) + 1
    cur_distinct = int(np.count_nonzero(cs[1:] != cs[:-1])) + 1
    prof.ref_distinct = ref_distinct
    if ref_distinct + cur_distinct <= 200_000:  # discrete enough: work on counts
        ur, nr = _run_lengths(rs)
        uc, nc = _run_lengths(cs)
        prof.counts = _align(ur, nr, uc, nc)
        prof.distinct = int(prof.counts.keys.size)
    else:  # continuous: only "more than 5" matters for the test choice
        prof.distinct = max(ref_distinct, cur_distinct)
    return prof


def _wasserstein_norm(prof: _Numeric) -> float:
    """scipy.stats.wasserstein_distance / max(std(reference), 0.001), as Evidently computes it."""
    norm = max(float(np.std(prof.ref_values)), 0.001)
    if prof.counts is not None:
        c = prof.counts
        # F_ref - F_cur at each distinct value times the gap to the next one: the same
        # terms as scipy's _cdf_distance (its extra terms at tied values are zero).
        u_cdf = np.cumsum(c.ref)[:-1] / prof.ref_values.size
        v_cdf = np.cumsum(c.cur)[:-1] / prof.cur_values.size
        distance = float(np.dot(np.abs(u_cdf - v_cdf), np.diff(c.keys)))
    else:
        rs, cs = prof.ref_sorted, prof.cur_sorted
        assert rs is not None and cs is not None
        both = np.concatenate((rs, cs))
        order = np.argsort(both, kind="stable")  # merges two sorted runs: linear time
        merged = both[order]
        ref_seen = np.cumsum(order[:-1] < rs.size)
        seen = np.arange(1, merged.size, dtype=np.int64)
        u_cdf = ref_seen / rs.size
        v_cdf = (seen - ref_seen) / cs.size
        distance = float(np.dot(np.abs(u_cdf - v_cdf), np.diff(merged)))
    return distance / norm


def _js_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, n_ref: int, n_cur: int) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref_counts / n_ref, cur_counts / n_cur))


def _js_histogram(prof: _Numeric) -> float:
    """Jensen-Shannon on Sturges bins of both sides (Evidently's get_binned_data, > 20 values)."""
    combined = np.concatenate((prof.ref_values, prof.cur_values)).astype(np.float64, copy=False)
    bins = np.histogram_bin_edges(combined, bins="sturges")
    ref = np.histogram(prof.ref_values, bins)[0]
    cur = np.histogram(prof.cur_values, bins)[0]
    return _js_from_counts(ref, cur, prof.ref_values.size, prof.cur_values.size)


def _chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray, n_ref: int, n_cur: int) -> float:
    from scipy.stats import chisquare

    expected = ref_counts * (n_cur / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts.astype(np.float64), expected)[1])


def _z_test(
    keys_sorted_counts: tuple[np.ndarray, np.ndarray], n_ref: int, n_cur: int, same_single: bool
) -> float:
    """Evidently's two-proportion z-test on "is not the smallest value"."""
    from scipy.stats import norm

    if same_single:
        return 1.0
    ref_counts, cur_counts = keys_sorted_counts
    p1 = float(n_ref - ref_counts[0]) / n_ref
    p2 = float(n_cur - cur_counts[0]) / n_cur
    pooled = float(p1 * n_ref + p2 * n_cur) / (n_ref + n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _categorical_counts(vr: pd.Series, vc: pd.Series) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts of both sides aligned on the sorted union of the values they hold."""
    vr, vc = vr[vr > 0], vc[vc > 0]  # a pandas categorical counts its unused categories as 0
    keys = list(dict.fromkeys([*vr.index.tolist(), *vc.index.tolist()]))
    try:
        keys = sorted(keys)
    except TypeError:  # mixed types: Evidently sorts too, and would fail; keep a stable order
        keys = sorted(keys, key=str)
    ref_counts = vr.reindex(keys, fill_value=0).to_numpy(np.int64)
    return keys, ref_counts, vc.reindex(keys, fill_value=0).to_numpy(np.int64)


def finite_values(series: pd.Series) -> np.ndarray:
    """The numeric values of ``series`` without nulls and infinities (non-numbers become nulls)."""
    values = series.to_numpy()
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    if np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
    return values


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    column_type: Literal["numerical", "categorical"],
    *,
    test: StatTestName | None = None,
    threshold: float | None = None,
) -> ColumnDrift | SkippedColumn:
    """Drift statistic of one column over all its values, as Evidently 0.7 computes it.

    Nulls and infinities are dropped first; the test is Evidently's default for the
    type, size and number of distinct values unless ``test`` is given.

    Args:
        name: Column name.
        reference: Reference values.
        current: Current values.
        column_type: ``numerical`` or ``categorical``.
        test: Test to use instead of the default.
        threshold: Threshold instead of the test's default.

    Returns:
        The verdict, or a :class:`SkippedColumn` when one side has no value.

    Raises:
        ConfigurationError: ``test`` cannot be used on a column of this type.

    Example:
        ```python
        import pandas as pd
        from mlops_tasks.monitoring import column_drift
        drift = column_drift("x", pd.Series(range(5000)) * 1.0, pd.Series(range(100, 5100)) * 1.0,
                             "numerical")
        print(drift.stattest, drift.value, drift.drifted)
        ```
    """
    if test is not None and test in NUMERICAL_ONLY_TESTS and column_type != "numerical":
        raise ConfigurationError(
            f"Test {test!r} needs a numerical column but {name!r} is {column_type}; use "
            "jensenshannon, chisquare or z for it."
        )
    return compute_column_drift(name, reference, current, column_type, test, threshold)


def compute_column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    column_type: Literal["numerical", "categorical"],
    test: StatTestName | None,
    threshold: float | None,
    cur_counts: pd.Series | None = None,
) -> ColumnDrift | SkippedColumn:
    """:func:`column_drift` without checking that ``test`` fits the type (the column plan did).

    Args:
        name: Column name.
        reference: Reference values.
        current: Current values.
        column_type: ``numerical`` or ``categorical``.
        test: Test to use; ``None`` takes Evidently's default.
        threshold: Threshold; ``None`` takes the test's default.
        cur_counts: Counts of the current values when already computed (categorical columns).

    Returns:
        The verdict, or a :class:`SkippedColumn` when one side has no value.
    """
    if column_type == "numerical":
        r, c = finite_values(reference), finite_values(current)
        n_ref, n_cur = int(r.size), int(c.size)
    else:
        ref_counts_s = reference.value_counts(dropna=True, sort=False)
        cur_counts_s = current.value_counts(dropna=True, sort=False) if cur_counts is None else cur_counts
        n_ref, n_cur = int(ref_counts_s.sum()), int(cur_counts_s.sum())
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return SkippedColumn(column=name, reason=f"every value is null in the {side} data")

    if column_type == "numerical":
        chosen, value = _numerical_statistic(r, c, test)
    else:
        chosen, value = _categorical_statistic(ref_counts_s, cur_counts_s, test)
    limit = float(threshold if threshold is not None else STAT_TESTS[chosen]["threshold"])
    kind = STAT_TESTS[chosen]["kind"]
    return ColumnDrift(
        column=name,
        column_type=column_type,
        stattest=chosen,
        statistic=kind,
        value=float(value),
        threshold=limit,
        drifted=_drifted(chosen, value, limit),
        reference_rows=n_ref,
        current_rows=n_cur,
    )


def _numerical_statistic(
    r: np.ndarray, c: np.ndarray, test: StatTestName | None
) -> tuple[StatTestName, float]:
    """The test (given, or Evidently's choice) and its value on two finite numeric arrays."""
    n_ref, n_cur = int(r.size), int(c.size)
    prof = _numeric_profile(r, c)
    chosen = test or choose_stattest("numerical", n_ref, prof.distinct)
    if (
        chosen in ("chisquare", "z", "jensenshannon")
        and prof.counts is None
        and not (chosen == "jensenshannon" and prof.ref_distinct > 20)
    ):
        ref_sorted, cur_sorted = prof.ref_sorted, prof.cur_sorted
        assert ref_sorted is not None and cur_sorted is not None  # no counts: the sorted path ran
        ur, nr_ = _run_lengths(ref_sorted)
        uc, nc_ = _run_lengths(cur_sorted)
        prof.counts = _align(ur, nr_, uc, nc_)
    if chosen == "wasserstein":
        return chosen, _wasserstein_norm(prof)
    if chosen == "ks":
        from scipy.stats import ks_2samp

        return chosen, float(ks_2samp(r, c)[1])
    if chosen == "jensenshannon" and prof.ref_distinct > 20:
        return chosen, _js_histogram(prof)
    assert prof.counts is not None
    counts = prof.counts
    if chosen == "jensenshannon":
        return chosen, _js_from_counts(counts.ref, counts.cur, n_ref, n_cur)
    if chosen == "chisquare":
        return chosen, _chisquare(counts.ref, counts.cur, n_ref, n_cur)
    return chosen, _z_test((counts.ref, counts.cur), n_ref, n_cur, counts.keys.size == 1)


def _categorical_statistic(
    ref_counts_s: pd.Series, cur_counts_s: pd.Series, test: StatTestName | None
) -> tuple[StatTestName, float]:
    """The test (given, or Evidently's choice) and its value on the value counts of both sides."""
    n_ref, n_cur = int(ref_counts_s.sum()), int(cur_counts_s.sum())
    keys, ref_counts, cur_array = _categorical_counts(ref_counts_s, cur_counts_s)
    chosen = test or choose_stattest("categorical", n_ref, len(keys))
    if chosen == "jensenshannon":
        return chosen, _js_from_counts(ref_counts, cur_array, n_ref, n_cur)
    if chosen == "chisquare":
        return chosen, _chisquare(ref_counts, cur_array, n_ref, n_cur)
    return chosen, _z_test((ref_counts, cur_array), n_ref, n_cur, len(keys) == 1)


def _drifted(test: StatTestName, value: float, limit: float) -> bool:
    """Distances drift at or above the threshold, KS p-values at or below it, other p-values below."""
    if STAT_TESTS[test]["kind"] == "distance":
        return bool(value >= limit)
    if test == "ks":
        return bool(value <= limit)
    return bool(value < limit)
