"""Always-valid inference on a difference of means (mixture SPRT, confidence sequences).

The mixture sequential probability ratio test of Johari, Pekelis and Walsh ("Always Valid
Inference: Bringing Sequential Analysis to A/B Testing", 2015/2022) compares the
likelihood of the observed difference of means ``d`` (variance ``v``, the sum of both
variants' ``s^2/n``) under "no difference" with its likelihood averaged over a normal
mixture of effects ``N(0, tau^2)``:

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2)))

``1 / max Lambda`` over all looks so far is an always-valid p-value: the chance that a
"no difference" world ever pushes it below ``alpha`` is at most ``alpha``, however often
one looks (every day, every hour, after every row). Inverting the test gives a
confidence sequence: ``d +- radius`` covers the true effect at every look at once with
probability ``1 - alpha``.

Every function takes numpy arrays (or floats) and works element-wise, so
:func:`mlops_tasks.abtest.analyze` and the vectorised simulation in ``bench/abtest.py``
use the very same formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "always_valid_p",
    "chi_square_p",
    "confidence_radius",
    "DECISIONS",
    "mixture_log_lr",
    "sequential_decisions",
]


def mixture_log_lr(diff: Any, var: Any, tau2: float) -> Any:
    """Log of the mixture likelihood ratio of ``diff`` (variance ``var``) against no effect.

    Args:
        diff: Difference of means (treatment - control), float or array.
        var: Its variance (``s_a^2/n_a + s_b^2/n_b``), > 0, same shape.
        tau2: Variance of the normal mixture of effects (``min_effect ** 2`` by default).

    Returns:
        ``log Lambda`` element-wise (0 where ``var`` is not positive: no evidence).

    Example:
        ```python
        mixture_log_lr(0.015, 1.4e-5, 0.015**2)  # ~ 5.9: Lambda ~ 370
        ```
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(var, dtype=float)
    ok = v > 0
    v_safe = np.where(ok, v, 1.0)
    out = 0.5 * np.log(v_safe / (v_safe + tau2)) + tau2 * d * d / (2.0 * v_safe * (v_safe + tau2))
    return np.where(ok, out, 0.0)


def always_valid_p(diff: Any, var: Any, tau2: float) -> Any:
    """``min(1, 1 / Lambda)`` at one look (take the running minimum over looks).

    Example:
        ```python
        always_valid_p(0.0, 1e-4, 1e-4)  # 1.0
        ```
    """
    return np.minimum(1.0, np.exp(-mixture_log_lr(diff, var, tau2)))


def confidence_radius(var: Any, tau2: float, alpha: float) -> Any:
    """Half-width of the always-valid ``1 - alpha`` confidence sequence around ``diff``.

    ``theta`` is inside when the test of "effect = theta" does not reject:
    ``(d - theta)^2 <= 2 v (v + tau^2) / tau^2 * log(sqrt((v + tau^2) / v) / alpha)``.
    Infinite where ``var`` is not positive.

    Example:
        ```python
        confidence_radius(1.4e-5, 0.015**2, 0.05)  # ~ 0.0115
        ```
    """
    v = np.asarray(var, dtype=float)
    ok = v > 0
    v_safe = np.where(ok, v, 1.0)
    inner = 2.0 * v_safe * (v_safe + tau2) / tau2 * (0.5 * np.log((v_safe + tau2) / v_safe) - math.log(alpha))
    return np.where(ok, np.sqrt(inner), np.inf)


def chi_square_p(counts: list[int], weights: list[float]) -> float:
    """P-value of Pearson's chi-square test of ``counts`` against shares ``weights``.

    Used for the sample-ratio check (subjects per variant against the configured split).

    Example:
        ```python
        chi_square_p([5000, 5200], [50, 50])  # ~ 0.048
        ```
    """
    from scipy.stats import chi2

    total = float(sum(counts))
    if total <= 0:
        return 1.0
    share = np.asarray(weights, dtype=float) / float(sum(weights))
    expected = share * total
    stat = float(np.sum((np.asarray(counts, dtype=float) - expected) ** 2 / expected))
    return float(chi2.sf(stat, len(counts) - 1))


#: Codes :func:`sequential_decisions` returns (index = code).
DECISIONS = ("keep_running", "B_better", "A_better", "no_difference")


def _running_stats(n: Any, total: Any, squares: Any) -> tuple[Any, Any]:
    n = np.asarray(n, dtype=float)
    n_safe = np.where(n > 1, n, 2.0)
    mean = np.asarray(total, dtype=float) / np.where(n > 0, n, 1.0)
    var = (np.asarray(squares, dtype=float) - n * mean * mean) / (n_safe - 1.0)
    return mean, np.maximum(var, 0.0)


def sequential_decisions(
    a: tuple[Any, Any, Any],
    b: tuple[Any, Any, Any],
    *,
    tau2: float,
    alpha: float,
    margin: float,
    min_samples: int,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """The mSPRT decision at every look, for one test or many (leading axes) at once.

    ``a`` and ``b`` hold cumulative ``(count, sum, sum of squares)`` of each variant's
    metric at each look (last axis = looks, in time order). A look is judged once both
    variants have ``min_samples``. The verdict is reached at the first look where the
    always-valid p-value falls to ``alpha`` (winner by the sign of the effect) or where the
    running intersection of the confidence sequence lies inside ``+-margin``
    (``no_difference``); a significant look wins a tie.

    Returns:
        ``code`` (index into :data:`DECISIONS`) and ``look`` (index of the deciding look,
        -1 when none) with the leading shape; ``effect``, ``p``, ``low``, ``high``, per look.

    Example:
        ```python
        out = sequential_decisions((nA, sA, qA), (nB, sB, qB), tau2=1e-4, alpha=0.05,
                                   margin=0.01, min_samples=100)
        ```
    """
    mean_a, var_a = _running_stats(*a)
    mean_b, var_b = _running_stats(*b)
    n_a = np.asarray(a[0], dtype=float)
    n_b = np.asarray(b[0], dtype=float)
    ready = (n_a >= min_samples) & (n_b >= min_samples)
    v = np.where(ready, var_a / np.where(n_a > 0, n_a, 1.0) + var_b / np.where(n_b > 0, n_b, 1.0), 0.0)
    effect = mean_b - mean_a
    log_lr = np.where(ready, mixture_log_lr(effect, v, tau2), 0.0)
    p = np.exp(-np.maximum.accumulate(log_lr, axis=-1))
    radius = np.where(ready & (v > 0), confidence_radius(v, tau2, alpha), np.inf)
    low = np.maximum.accumulate(effect - radius, axis=-1)
    high = np.minimum.accumulate(effect + radius, axis=-1)
    significant = ready & (p <= alpha)
    equivalent = ready & (low >= -margin) & (high <= margin)
    looks = effect.shape[-1]
    first_sig = np.where(significant.any(axis=-1), significant.argmax(axis=-1), looks)
    first_eq = np.where(equivalent.any(axis=-1), equivalent.argmax(axis=-1), looks)
    look = np.minimum(first_sig, first_eq)
    idx = np.minimum(first_sig, looks - 1)[..., None]
    sig_effect = np.take_along_axis(effect, idx, axis=-1)[..., 0]
    b_wins = (sig_effect > 0) == higher_is_better
    code = np.where(
        first_sig < looks,
        np.where(first_sig <= first_eq, np.where(b_wins, 1, 2), 3),
        np.where(first_eq < looks, 3, 0),
    )
    return {
        "code": code,
        "look": np.where(look < looks, look, -1),
        "effect": effect,
        "p": p,
        "low": low,
        "high": high,
        "ready": ready,
    }
