"""The always-valid A/B analysis against simulated truths (small and fast)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_tasks.abtest import AbGuardrails, AbSpec, analyze
from mlops_tasks.abtest.models import check_weights
from mlops_tasks.abtest.sequential import (
    always_valid_p,
    chi_square_p,
    confidence_radius,
    mixture_log_lr,
    sequential_decisions,
)
from mlops_tasks.errors import ConfigurationError, SchemaError

START = pd.Timestamp("2026-01-01", tz="UTC")


def simulate(
    p_a: float, p_b: float, n: int, seed: int = 0, requests: int = 1, hours: int = 48
) -> pd.DataFrame:
    """``n`` subjects per variant over ``hours``, binary outcome, ``requests`` rows per subject."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, p in (("A", p_a), ("B", p_b)):
        outcome = (rng.random(n) < p).astype(float)
        ts = START + pd.to_timedelta(rng.uniform(0, hours * 3600, n), unit="s")
        parts.append(
            pd.DataFrame(
                {
                    "variant": name,
                    "subject": [f"{name}{i}" for i in range(n)],
                    "timestamp": ts,
                    "outcome": outcome,
                }
            ).loc[lambda f: f.index.repeat(requests)]
        )
    return pd.concat(parts, ignore_index=True)


SPEC = AbSpec(primary_metric="outcome", min_effect=0.05)


def test_b_better_is_found_and_the_interval_covers_the_truth() -> None:
    verdict = analyze(simulate(0.10, 0.20, 3000, requests=3), SPEC)
    assert verdict.verdict == "B_better"
    assert verdict.winner == "B" and verdict.concluded
    low, high = verdict.interval or (0, 0)
    assert 0 < low <= 0.10 <= high
    assert verdict.samples == {"A": 3000, "B": 3000}  # subjects, not requests
    assert verdict.p_value is not None and verdict.p_value <= 0.05
    assert verdict.decided_at is not None and verdict.history


def test_reported_outcome_columns_do_not_decide() -> None:
    rows = simulate(0.10, 0.10, 3000, requests=2)
    rows["revenue"] = np.where(rows["variant"] == "B", 12.0, 10.0)
    spec = SPEC.model_copy(update={"report_metrics": ["revenue", "missing"]})
    verdict = analyze(rows, spec)
    assert (
        verdict.variants["A"].metrics["revenue"] == 10.0 and verdict.variants["B"].metrics["revenue"] == 12.0
    )
    assert verdict.verdict in ("no_difference", "keep_running")  # revenue differs, the primary does not


def test_a_better_when_the_challenger_is_worse() -> None:
    assert analyze(simulate(0.20, 0.10, 3000, seed=1), SPEC).verdict == "A_better"


def test_lower_is_better_metric_flips_the_winner() -> None:
    spec = AbSpec(primary_metric="outcome", min_effect=0.05, higher_is_better=False)
    assert analyze(simulate(0.10, 0.20, 3000, seed=2), spec).verdict == "A_better"


def test_aa_ends_in_no_difference_or_keeps_running() -> None:
    spec = AbSpec(primary_metric="outcome", min_effect=0.05)
    verdict = analyze(simulate(0.10, 0.10, 20000, seed=3), spec)
    assert verdict.verdict == "no_difference"
    low, high = verdict.interval or (1, 1)
    assert -0.05 <= low <= high <= 0.05
    small = analyze(simulate(0.10, 0.10, 300, seed=3), spec)
    assert small.verdict == "keep_running"


def test_no_outcome_yet_keeps_running() -> None:
    rows = simulate(0.1, 0.1, 200).assign(outcome=np.nan)
    verdict = analyze(rows, SPEC)
    assert verdict.verdict == "keep_running"
    assert verdict.samples == {"A": 0, "B": 0}
    assert "no outcome" in verdict.reason


def test_too_few_outcomes_keep_running() -> None:
    verdict = analyze(simulate(0.0, 1.0, 50), SPEC)  # a huge effect, but 50 < min_samples
    assert verdict.verdict == "keep_running"
    assert "needed" in verdict.reason


def test_sample_ratio_mismatch_is_invalid_whatever_the_outcome() -> None:
    rows = simulate(0.1, 0.3, 3000)
    rows = rows[~((rows["variant"] == "B") & (rows.index % 5 == 0))]  # lose 20 % of B's subjects
    verdict = analyze(rows, SPEC)
    assert verdict.verdict == "invalid_sample_ratio"
    assert verdict.srm_p is not None and verdict.srm_p < 0.001
    assert verdict.winner is None


def test_weights_enter_the_sample_ratio_check() -> None:
    rows = simulate(0.1, 0.1, 3000)
    rows = rows[(rows["variant"] == "A") | (rows.index % 9 == 0)]  # B keeps 1/9 of its subjects
    assert analyze(rows, SPEC).verdict == "invalid_sample_ratio"
    spec90 = SPEC.model_copy(update={"weights": {"A": 90, "B": 10}})
    assert analyze(rows, spec90).verdict != "invalid_sample_ratio"


def test_subject_without_id_is_left_out_and_first_variant_counts() -> None:
    rows = simulate(0.1, 0.2, 500)
    extra = rows.iloc[:3].assign(subject=None)
    crossed = rows.iloc[:1].assign(variant="B", timestamp=START + pd.Timedelta(days=30))
    verdict = analyze(pd.concat([rows, extra, crossed], ignore_index=True), SPEC)
    assert verdict.variants["A"].units == 500 and verdict.variants["B"].units == 500


def test_request_unit_counts_rows() -> None:
    spec = SPEC.model_copy(update={"unit": "request"})
    verdict = analyze(simulate(0.1, 0.1, 300, requests=2).drop(columns="subject"), spec)
    assert verdict.samples == {"A": 600, "B": 600}


def test_model_metric_from_prediction_and_label() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    label = rng.integers(0, 2, 2 * n)
    correct = np.r_[rng.random(n) < 0.70, rng.random(n) < 0.80]
    rows = pd.DataFrame(
        {
            "variant": ["A"] * n + ["B"] * n,
            "subject": [f"s{i}" for i in range(2 * n)],
            "timestamp": START + pd.to_timedelta(np.arange(2 * n), unit="s"),
            "label": label,
            "prediction": np.where(correct, label, 1 - label),
        }
    )
    verdict = analyze(rows, AbSpec(primary_metric="accuracy", min_effect=0.03))
    assert verdict.verdict == "B_better"
    assert verdict.variants["B"].metrics["accuracy"] == pytest.approx(0.8, abs=0.02)
    assert 0.7 < verdict.variants["B"].metrics["f1"] < 0.9
    regression = rows.assign(label=np.linspace(0, 50, 2 * n), prediction=np.linspace(0, 50, 2 * n) + 1.0)
    metrics = analyze(regression, AbSpec(primary_metric="abs_error", min_effect=0.5)).variants["A"].metrics
    assert metrics["mae"] == pytest.approx(1.0) and metrics["rmse"] == pytest.approx(1.0)
    err = analyze(rows.assign(label=rows["label"] * 1.0), AbSpec(primary_metric="abs_error", min_effect=0.03))
    assert err.verdict == "B_better"  # lower error is better by default


def test_guardrail_breach_on_5xx_and_latency() -> None:
    rows = simulate(0.1, 0.1, 400)
    rows["status"] = np.where((rows["variant"] == "B") & (rows.index % 10 == 0), 503, 200)
    rows["latency_ms"] = np.where(rows["variant"] == "B", 90.0, 10.0)
    verdict = analyze(rows, SPEC)
    assert len(verdict.guardrail_breaches) == 2
    assert verdict.concluded
    assert verdict.variants["B"].share_5xx == pytest.approx(0.1, abs=0.01)
    calm = analyze(rows.assign(status=200, latency_ms=10.0), SPEC)
    assert calm.guardrail_breaches == []
    strict = SPEC.model_copy(update={"guardrails": AbGuardrails(min_requests=10_000)})
    assert analyze(rows, strict).guardrail_breaches == []  # too few requests to judge


@pytest.mark.parametrize(
    ("columns", "missing"),
    [(["subject", "timestamp", "outcome"], "variant"), (["variant", "timestamp", "outcome"], "subject"),
     (["variant", "subject", "timestamp"], "outcome")],
)  # fmt: skip
def test_missing_columns_are_a_schema_error(columns: list[str], missing: str) -> None:
    rows = simulate(0.1, 0.1, 10)[columns]
    with pytest.raises(SchemaError, match=missing):
        analyze(rows, SPEC)


def test_unknown_variant_is_a_schema_error() -> None:
    rows = simulate(0.1, 0.1, 10).assign(variant="C")
    with pytest.raises(SchemaError, match="'C'"):
        analyze(rows, SPEC)


@pytest.mark.parametrize("weights", [{"A": 50, "B": 40}, {"A": 100, "B": 0}, {"A": 50, "C": 50}])
def test_bad_weights_are_refused(weights: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match="weights"):
        check_weights(weights)
    with pytest.raises(ValidationError, match="weights"):
        AbSpec(primary_metric="outcome", min_effect=0.1, weights=weights)


def test_confidence_radius_inverts_the_test() -> None:
    v, tau2, alpha = 1.4e-5, 0.015**2, 0.05
    r = float(confidence_radius(v, tau2, alpha))
    assert float(always_valid_p(r, v, tau2)) == pytest.approx(alpha)
    assert float(mixture_log_lr(0.0, v, tau2)) < 0
    assert math.isinf(float(confidence_radius(0.0, tau2, alpha)))


def test_chi_square_matches_scipy() -> None:
    from scipy.stats import chisquare

    assert chi_square_p([5000, 5200], [50, 50]) == pytest.approx(chisquare([5000, 5200]).pvalue)
    assert chi_square_p([0, 0], [50, 50]) == 1.0


def test_aa_false_positive_rate_under_hourly_looks_is_bounded() -> None:
    """200 A/A runs x 336 hourly looks: always-valid keeps FPR near alpha; the naive test does not."""
    rng = np.random.default_rng(14)
    runs, looks, per = 200, 336, 20
    n = np.broadcast_to(np.arange(1, looks + 1) * per, (runs, looks))
    a = np.cumsum(rng.binomial(per, 0.1, (runs, looks)), axis=1)
    b = np.cumsum(rng.binomial(per, 0.1, (runs, looks)), axis=1)
    out = sequential_decisions((n, a, a), (n, b, b), tau2=0.015**2, alpha=0.05, margin=0.015, min_samples=100)
    assert np.isin(out["code"], (1, 2)).mean() <= 0.06
    pooled = (a + b)[:, 4:] / (2 * n[:, 4:])
    z = np.abs(b - a)[:, 4:] / n[:, 4:] / np.sqrt(pooled * (1 - pooled) * 2 / n[:, 4:])
    assert (z > 1.96).any(axis=1).mean() > 0.2  # peeking with a fixed-horizon test
    # the interval only narrows over looks (from the first judged look, n >= 100)
    low, high = out["low"][:, 4:], out["high"][:, 4:]
    assert np.isfinite(low).all() and np.all(np.diff(low, axis=1) >= 0) and np.all(np.diff(high, axis=1) <= 0)
