"""Bounds on the Wasserstein distance and the K-S statistic from a histogram of the current data.

The reference (the training data) fits in memory, so its empirical CDF ``F_r`` is known
exactly. The current window may not: it is summarised by exact, mergeable counts per bin of
fixed edges ``e_0 < ... < e_k`` (``counts[i]`` = values in ``(e_{i-1}, e_i]``, ``counts[0]`` =
values ``<= e_0``), summed over partitions. Inside a bin the current CDF ``F_c`` is only known
to lie between its values at the bin's edges, so on every stretch where ``F_r`` is constant the
integrand ``|F_r - F_c|`` of the Wasserstein distance lies between its distance to that
interval and its farthest point; integrating both gives a lower and an upper bound that
contain the exact value. The same stretches bound the K-S statistic ``sup |F_r - F_c|`` (the
edges themselves, where ``F_c`` is exact, tighten the lower bound), and the K-S p-value, a
decreasing function of it, follows.

The bound's width shrinks with the current mass per bin: edges at the reference's quantiles
put about ``1/k`` of an undrifted window in each bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StatisticBounds", "histogram_edges", "ks_bounds", "wasserstein_bounds"]


@dataclass(frozen=True)
class StatisticBounds:
    """An interval known to contain the exact statistic; ``value`` is its midpoint."""

    low: float
    high: float

    @property
    def value(self) -> float:
        """The estimate: the interval's midpoint."""
        return (self.low + self.high) / 2

    @property
    def error_bound(self) -> float:
        """Largest possible distance between :attr:`value` and the exact statistic."""
        return (self.high - self.low) / 2

    def contains(self, threshold: float) -> bool:
        """Whether the threshold lies inside the interval (the verdict is then not certain)."""
        return self.low <= threshold <= self.high


def histogram_edges(reference_sorted: np.ndarray, low: float, high: float, bins: int = 4096) -> np.ndarray:
    """Edges at the reference's quantiles, widened to ``[low, high]`` (the global range of both sides).

    Example:
        ```python
        edges = histogram_edges(np.sort(ref), min(ref.min(), cur_min), max(ref.max(), cur_max))
        ```
    """
    quantiles = np.quantile(reference_sorted, np.linspace(0.0, 1.0, bins + 1))
    return np.unique(np.concatenate(([low], quantiles, [high])).astype(np.float64))


def _stretches(
    reference_sorted: np.ndarray, edges: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Widths, ``F_r``, and the lower/upper ``F_c`` of every stretch between grid points."""
    n_ref, n_cur = reference_sorted.size, int(counts.sum())
    cdf_at_edges = np.cumsum(counts) / n_cur  # F_c(e_i), exact
    grid = np.union1d(
        edges, reference_sorted[(reference_sorted >= edges[0]) & (reference_sorted <= edges[-1])]
    )
    starts, widths = grid[:-1], np.diff(grid)
    f_ref = np.searchsorted(reference_sorted, starts, side="right") / n_ref
    # stretch [p, q) lies in [e_{i-1}, e_i): F_c between F_c(e_{i-1}) and F_c(e_i)
    upper_edge = np.searchsorted(edges, starts, side="right")
    lower = cdf_at_edges[upper_edge - 1]
    upper = cdf_at_edges[np.minimum(upper_edge, edges.size - 1)]
    return widths, f_ref, lower, upper


def wasserstein_bounds(
    reference_sorted: np.ndarray, edges: np.ndarray, counts: np.ndarray, norm: float
) -> StatisticBounds:
    """Bounds of ``W1(reference, current) / norm`` (Evidently's normed Wasserstein distance).

    Args:
        reference_sorted: The reference's finite values, sorted.
        edges: Histogram edges covering both sides' values.
        counts: Current values per bin (``len(edges)`` bins, see the module doc).
        norm: ``max(std(reference), 0.001)``.

    Returns:
        An interval that contains the exact normed distance.

    Example:
        ```python
        bounds = wasserstein_bounds(np.sort(ref), edges, counts, max(ref.std(), 0.001))
        ```
    """
    widths, f_ref, lower, upper = _stretches(reference_sorted, edges, counts)
    nearest = np.maximum(0.0, np.maximum(lower - f_ref, f_ref - upper))
    farthest = np.maximum(np.abs(f_ref - lower), np.abs(f_ref - upper))
    return StatisticBounds(float(np.dot(nearest, widths)) / norm, float(np.dot(farthest, widths)) / norm)


def ks_bounds(reference_sorted: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> StatisticBounds:
    """Bounds of the two-sample K-S statistic ``sup |F_r - F_c|``.

    Example:
        ```python
        d = ks_bounds(np.sort(ref), edges, counts)
        ```
    """
    widths, f_ref, lower, upper = _stretches(reference_sorted, edges, counts)
    del widths
    nearest = np.maximum(0.0, np.maximum(lower - f_ref, f_ref - upper))
    farthest = np.maximum(np.abs(f_ref - lower), np.abs(f_ref - upper))
    at_edges = np.abs(
        np.searchsorted(reference_sorted, edges, side="right") / reference_sorted.size
        - np.cumsum(counts) / counts.sum()
    )
    return StatisticBounds(float(max(nearest.max(), at_edges.max())), float(farthest.max()))
