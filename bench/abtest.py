"""Benchmark: the always-valid A/B verdict on simulated truths, then a live A/B test.

Simulation (fixed, so results compare across versions): a binary primary outcome with
control at 10 % and treatment at 11.5 % (A/A: both 10 %); 500 new subjects per variant per
day for 28 days, spread evenly over the hours; each subject sends 1-10 requests and has one
outcome (the subject is the unit, so the request count does not enter the analysis); and
a numeric outcome that is 0 for 90 % of subjects and lognormal(3, 1) otherwise (A/A only).
``--runs`` runs of each kind (default 2000). Every run is judged by the mixture SPRT of
:mod:`mlops_tasks.abtest.sequential` (vectorised over runs and looks; the same function
:func:`mlops_tasks.abtest.analyze` uses, and a few runs are also put through ``analyze``
row by row to show both agree) with daily looks and with hourly looks, and the same A/A
runs by a naive fixed-horizon two-proportion z-test at every daily look (p < 0.05).

* ``aa_false_positive_rate``: share of binary A/A runs that ever say A_better or B_better (daily looks)
* ``aa_fpr_hourly``: the same with hourly looks
* ``aa_fpr_numeric``: the same on the numeric outcome (daily looks)
* ``naive_daily_fpr``: share of binary A/A runs the naive daily z-test ever calls significant
* ``power``: share of A/B runs reaching B_better within 28 days (daily looks)
* ``median_samples``: median subjects per variant at the verdict of those A/B runs

The live part (skipped with ``--no-live``) runs an A/B test on a real endpoint with two
variants under keep-alive load until the evaluation promotes the winner (bench/_abtest_live.py).

Last line::

    abtest: aa_false_positive_rate=<x> aa_fpr_hourly=<x> aa_fpr_numeric=<x> naive_daily_fpr=<x>
    power=<x> median_samples=<n> live_verdict=<...> winner_live=<true|false> failed_requests=<n>

(one line; wrapped here.) Without the live part (``--no-live``) the live fields read
``live_verdict=not_run winner_live=false failed_requests=-1``.

Usage: ``nice -n 10 .venv/bin/python bench/abtest.py [--runs 2000] [--seed 14] [--no-live] [--docker]``
(``--docker``: the live part also runs on the docker target first; its figures are printed
on a ``live docker:`` line, the last line stays the local target's.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.abtest import AbSpec, analyze
from mlops_tasks.abtest.sequential import sequential_decisions

DAYS, HOURS, PER_DAY = 28, 24, 500
P_CONTROL, P_TREATMENT = 0.10, 0.115
#: The binary test's spec: the 1.5-point lift is the smallest effect that matters.
BINARY = AbSpec(primary_metric="outcome", min_effect=0.015, min_samples=100)
#: The numeric outcome (mean ~3.3, sd ~17): half a unit matters.
NUMERIC = AbSpec(primary_metric="outcome", min_effect=0.5, min_samples=100)
LOGNORMAL = (3.0, 1.0)

#: New subjects per variant in each hour of a day (20 or 21, 500 a day).
HOUR_COUNTS = np.diff(np.round(np.linspace(0, PER_DAY, HOURS + 1))).astype(int)


def hourly_binary(rng: np.random.Generator, runs: int, p: float) -> tuple[Any, Any, Any]:
    """Cumulative (n, sum, sum of squares) of one variant's binary outcome, per run and hour."""
    counts = np.tile(HOUR_COUNTS, DAYS)
    wins = rng.binomial(counts, p, size=(runs, counts.size))
    n = np.broadcast_to(np.cumsum(counts), wins.shape)
    total = np.cumsum(wins, axis=1)
    return n, total, total


def hourly_numeric(rng: np.random.Generator, runs: int) -> tuple[Any, Any, Any]:
    """Cumulative (n, sum, sum of squares) of the zero-inflated lognormal outcome."""
    counts = np.tile(HOUR_COUNTS, DAYS)
    nonzero = rng.binomial(counts, 0.1, size=(runs, counts.size)).ravel()
    values = rng.lognormal(*LOGNORMAL, size=int(nonzero.sum()))
    cell = np.repeat(np.arange(nonzero.size), nonzero)
    sums = np.bincount(cell, weights=values, minlength=nonzero.size).reshape(runs, -1)
    squares = np.bincount(cell, weights=values * values, minlength=nonzero.size).reshape(runs, -1)
    n = np.broadcast_to(np.cumsum(counts), sums.shape)
    return n, np.cumsum(sums, axis=1), np.cumsum(squares, axis=1)


def daily(stats: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """The hourly cumulative statistics at the end of each day."""
    return tuple(s[:, HOURS - 1 :: HOURS] for s in stats)  # type: ignore[return-value]


def judge(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any], spec: AbSpec) -> dict[str, Any]:
    """The mSPRT decision of every run (leading axis) over its looks (last axis)."""
    return sequential_decisions(
        a, b, tau2=spec.tau2, alpha=spec.alpha, margin=spec.margin,
        min_samples=spec.min_samples, higher_is_better=spec.better_high,
    )  # fmt: skip


def naive_daily_fpr(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> float:
    """Share of runs a two-proportion z-test at p < 0.05 ever calls significant (daily looks)."""
    (n_a, s_a, _), (n_b, s_b, _) = daily(a), daily(b)
    pooled = (s_a + s_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = np.abs(s_b / n_b - s_a / n_a) / np.where(se > 0, se, np.inf)
    return float((z > 1.959964).any(axis=1).mean())


def winner_share(out: dict[str, Any]) -> float:
    """Share of runs that said A_better or B_better."""
    return float(np.isin(out["code"], (1, 2)).mean())


def requests_frame(
    rng: np.random.Generator, a: tuple[Any, Any, Any], b: tuple[Any, Any, Any], run: int
) -> pd.DataFrame:
    """Rebuild one binary run as prediction-log rows (1-10 requests per subject, one outcome each)."""
    start = pd.Timestamp("2026-01-01", tz="UTC")
    parts = []
    for name, (n, total, _) in (("A", a), ("B", b)):
        wins = np.diff(total[run], prepend=0)
        counts = np.diff(n[run], prepend=0)
        hour = np.repeat(np.arange(counts.size), counts)
        outcome = np.concatenate(
            [np.r_[np.ones(w), np.zeros(c - w)] for w, c in zip(wins, counts, strict=True)]
        )
        subjects = np.char.add(f"{name}-{run}-", np.arange(hour.size).astype(str))
        per = rng.integers(1, 11, size=hour.size)
        parts.append(pd.DataFrame({
            "variant": name, "subject": np.repeat(subjects, per), "outcome": np.repeat(outcome, per),
            "timestamp": start + pd.to_timedelta(np.repeat(hour, per), unit="h")
            + pd.to_timedelta(rng.uniform(0, 3599, size=int(per.sum())), unit="s"),
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def cross_check(rng: np.random.Generator, a: Any, b: Any, out: dict[str, Any], runs: int) -> int:
    """Judge ``runs`` A/B runs row by row with :func:`analyze`; count those equal to the vectorised ones."""
    names = ("keep_running", "B_better", "A_better", "no_difference")
    spec = BINARY.model_copy(update={"look_every": "1D"})
    agree = 0
    for run in range(runs):
        frame = requests_frame(rng, a, b, run)
        first_day = frame.assign(day=frame["timestamp"].dt.floor("1D"))
        look = int(out["look"][run])
        if look >= 0:  # what the scheduled evaluation saw at the deciding look
            first_day = first_day[first_day["day"] <= first_day["day"].min() + pd.Timedelta(days=look)]
        verdict = analyze(first_day.drop(columns="day"), spec)
        agree += verdict.verdict == names[int(out["code"][run])]
    return agree


def simulate(runs: int, seed: int, checks: int) -> dict[str, Any]:
    """Every simulated figure of the last line."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    aa = hourly_binary(rng, runs, P_CONTROL), hourly_binary(rng, runs, P_CONTROL)
    ab = hourly_binary(rng, runs, P_CONTROL), hourly_binary(rng, runs, P_TREATMENT)
    num = hourly_numeric(rng, runs), hourly_numeric(rng, runs)
    aa_daily = judge(daily(aa[0]), daily(aa[1]), BINARY)
    aa_hourly = judge(aa[0], aa[1], BINARY)
    num_daily = judge(daily(num[0]), daily(num[1]), NUMERIC)
    num_hourly = judge(num[0], num[1], NUMERIC)
    ab_daily = judge(daily(ab[0]), daily(ab[1]), BINARY)
    ab_hourly = judge(ab[0], ab[1], BINARY)
    won = ab_daily["code"] == 1
    at = np.asarray(daily(ab[0])[0])[0][np.maximum(ab_daily["look"], 0)]
    figures = {
        "aa_false_positive_rate": winner_share(aa_daily),
        "aa_fpr_hourly": winner_share(aa_hourly),
        "aa_fpr_numeric": winner_share(num_daily),
        "aa_fpr_numeric_hourly": winner_share(num_hourly),
        "naive_daily_fpr": naive_daily_fpr(*aa),
        "power": float(won.mean()),
        "power_hourly": float((ab_hourly["code"] == 1).mean()),
        "median_samples": int(np.median(at[won])) if won.any() else -1,
        "ab_a_better": float((ab_daily["code"] == 2).mean()),
        "sim_s": time.perf_counter() - t0,
    }
    if checks:
        figures["analyze_agrees"] = f"{cross_check(rng, ab[0], ab[1], ab_daily, checks)}/{checks}"
    return figures


def _docker_live(run_live: Any) -> dict[str, Any]:
    """The live part on the docker target (images and containers labelled, removed after)."""
    import os
    import uuid

    from mlops_tasks.testing.docker import TEST_LABEL, docker_client, ensure_base_image, remove_labelled

    client = docker_client()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("MLOPS_DOCKER_ROUTER_IMAGE", ensure_base_image(client, "bookworm-haproxy"))
    os.environ.setdefault("MLOPS_DOCKER_BASE_IMAGE", ensure_base_image(client))
    os.environ["MLOPS_DOCKER_LABELS"] = f"{TEST_LABEL}={run_id}"
    os.environ["MLOPS_DOCKER_ALLOW_UNVERIFIED"] = "1"  # the bench measures the A/B test, not the image gate
    try:
        figures: dict[str, Any] = run_live("docker")
    finally:
        remove_labelled(client, TEST_LABEL, run_id)
        for name in ("MLOPS_DOCKER_LABELS", "MLOPS_DOCKER_ALLOW_UNVERIFIED"):
            os.environ.pop(name, None)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=2000, help="simulated runs of each kind (>= 500 for the record)"
    )
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--checks", type=int, default=5, help="A/B runs also judged row by row by analyze()")
    parser.add_argument("--no-live", action="store_true", help="skip the live endpoint part")
    parser.add_argument(
        "--docker", action="store_true", help="also run the live part on the docker target first"
    )
    args = parser.parse_args()
    sim = simulate(args.runs, args.seed, args.checks)
    print(
        "simulation:",
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sim.items()),
    )
    live = {"live_verdict": "not_run", "winner_live": "false", "failed_requests": "-1"}
    if not args.no_live:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bench._abtest_live import run_live

        if args.docker:
            print("live docker:", " ".join(f"{k}={v}" for k, v in _docker_live(run_live).items()))
        live = run_live()
        print("live:", " ".join(f"{k}={v}" for k, v in live.items()))
    rates = ("aa_false_positive_rate", "aa_fpr_hourly", "aa_fpr_numeric", "naive_daily_fpr", "power")
    fields = [f"{k}={sim[k]:.4f}" for k in rates] + [f"median_samples={sim['median_samples']}"]
    fields += [f"{k}={live[k]}" for k in ("live_verdict", "winner_live", "failed_requests")]
    print("abtest: " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
