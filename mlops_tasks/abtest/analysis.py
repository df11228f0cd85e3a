"""``analyze(observations, spec) -> AbVerdict``: the always-valid A/B verdict.

``observations`` has one row per assignment (a request, or a subject's first request)
with the columns ``variant`` (``A``/``B``), ``subject`` (sticky tests), ``timestamp`` and
the outcome columns; ``prediction`` and ``label`` give the model metrics, ``status`` and
``latency_ms`` the guardrails. The order of the checks:

1. **Sample ratio**: units per variant against the weights (chi-square); ``p < srm_p``
   is ``invalid_sample_ratio`` and nothing else counts.
2. **Guardrails** (reported in ``guardrail_breaches``; the caller ends the test for A).
3. **Primary metric**: the mixture SPRT of :mod:`mlops_tasks.abtest.sequential` at every
   look (``look_every`` bins of the units' assignment time); the first look that is
   significant decides the winner, an interval inside the equivalence margin decides
   ``no_difference``; otherwise ``keep_running`` (also when no outcome arrived yet).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.abtest.models import (
    DERIVED_METRICS,
    VARIANTS,
    AbSpec,
    AbVerdict,
    EffectPoint,
    VariantSummary,
)
from mlops_tasks.abtest.sequential import DECISIONS, chi_square_p, sequential_decisions
from mlops_tasks.errors import SchemaError

__all__ = ["analyze", "metric_values", "subject_units"]

logger = logging.getLogger(__name__)


def _require(frame: pd.DataFrame, columns: list[str], why: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"A/B observations lack column(s) {missing} needed for {why}; found {list(frame.columns)}. "
            "Join the outcomes with the prediction log first (mlops_tasks.abtest.join_outcomes)."
        )


def _validate(observations: pd.DataFrame, spec: AbSpec) -> None:
    needed = ["variant", "timestamp"] + (["subject"] if spec.unit == "subject" else [])
    _require(observations, needed, f"a {spec.unit}-level test")
    if spec.primary_metric in DERIVED_METRICS:
        _require(observations, ["prediction", "label"], f"the primary metric {spec.primary_metric!r}")
    else:
        _require(observations, [spec.primary_metric], "the primary metric")
    unknown = sorted(set(observations["variant"].dropna().astype(str)) - set(VARIANTS))
    if unknown:
        raise SchemaError(
            f"A/B observations name variant(s) {unknown}; expected only 'A' and 'B'. Filter the "
            "prediction log to the test's rows (its variant column)."
        )


def metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The per-row value of ``metric`` (NaN where unknown yet).

    Example:
        ```python
        metric_values(pd.DataFrame({"prediction": [1, 0], "label": [1, 1]}), "accuracy")  # 1.0, 0.0
        ```
    """
    if metric not in DERIVED_METRICS:
        return pd.to_numeric(frame[metric], errors="coerce").astype(float)
    known = frame["label"].notna() & frame["prediction"].notna()
    if metric == "accuracy":
        same = frame["prediction"].astype(str) == frame["label"].astype(str)
        return same.astype(float).where(known)
    err = pd.to_numeric(frame["prediction"], errors="coerce") - pd.to_numeric(frame["label"], errors="coerce")
    out = err.abs() if metric == "abs_error" else err * err
    return out.astype(float).where(known)


def subject_units(frame: pd.DataFrame, value: pd.Series) -> pd.DataFrame:
    """One row per subject: its first variant and assignment time, the mean of its values.

    Rows without a subject are left out (they were not in the experiment).

    Example:
        ```python
        units = subject_units(rows, metric_values(rows, "rated_4plus"))
        ```
    """
    rows = frame.assign(_value=value.to_numpy())
    rows = rows[rows["subject"].notna()].sort_values("timestamp", kind="stable")
    grouped = rows.groupby("subject", sort=False)
    units = grouped.agg(
        variant=("variant", "first"), timestamp=("timestamp", "first"), value=("_value", "mean")
    )
    crossed = int((grouped["variant"].nunique() > 1).sum())
    if crossed:
        logger.warning("%d subject(s) were served by both variants; each counts for its first", crossed)
    return units.reset_index()


def _units(observations: pd.DataFrame, spec: AbSpec) -> pd.DataFrame:
    frame = observations.copy()
    frame["variant"] = frame["variant"].astype(str)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    value = metric_values(frame, spec.primary_metric)
    if spec.unit == "subject":
        return subject_units(frame, value)
    return pd.DataFrame(
        {"variant": frame["variant"], "timestamp": frame["timestamp"], "value": value.to_numpy()}
    )


def _summaries(observations: pd.DataFrame, units: pd.DataFrame, spec: AbSpec) -> dict[str, VariantSummary]:
    out: dict[str, VariantSummary] = {}
    for name in VARIANTS:
        rows = observations[observations["variant"].astype(str) == name]
        mine = units[units["variant"] == name]
        metrics = _model_metrics(rows)
        if mine["value"].notna().any():
            metrics[spec.primary_metric] = float(mine["value"].mean())
        metrics.update(_reported(observations, spec, name))
        out[name] = VariantSummary(
            units=len(mine), with_outcome=int(mine["value"].notna().sum()), metrics=metrics, **_faults(rows)
        )
    return out


def _reported(observations: pd.DataFrame, spec: AbSpec, variant: str) -> dict[str, float]:
    """Mean per unit of each ``spec.report_metrics`` column present (reported, never deciding)."""
    out = {}
    for column in spec.report_metrics:
        if column == spec.primary_metric or column not in observations.columns:
            continue
        units = _units(observations, spec.model_copy(update={"primary_metric": column}))
        values = units.loc[units["variant"] == variant, "value"]
        if values.notna().any():
            out[column] = float(values.mean())
    return out


def _model_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """Accuracy and macro F1 (class labels) or MAE and RMSE (numeric labels) where labels arrived."""
    if not {"prediction", "label"} <= set(rows.columns):
        return {}
    known = rows[rows["label"].notna() & rows["prediction"].notna()]
    if known.empty:
        return {}
    if _numeric_label(known):
        err = pd.to_numeric(known["prediction"], errors="coerce") - pd.to_numeric(
            known["label"], errors="coerce"
        )
        return {"mae": float(err.abs().mean()), "rmse": float(np.sqrt((err * err).mean()))}
    from sklearn.metrics import f1_score

    truth, predicted = known["label"].astype(str), known["prediction"].astype(str)
    return {
        "accuracy": float((truth == predicted).mean()),
        "f1": float(f1_score(truth, predicted, average="macro")),
    }


def _numeric_label(rows: pd.DataFrame) -> bool:
    if "label" not in rows.columns:
        return False
    labels = rows["label"].dropna()
    return pd.api.types.is_float_dtype(labels) and labels.nunique() > 10


def _faults(rows: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "status" in rows.columns and len(rows):
        status = pd.to_numeric(rows["status"], errors="coerce")
        out["share_5xx"] = float((status >= 500).mean())
        out["share_4xx"] = float(((status >= 400) & (status < 500)).mean())
    if "latency_ms" in rows.columns and rows["latency_ms"].notna().any():
        out["p95_latency_ms"] = float(rows["latency_ms"].quantile(0.95))
    return out


def _guardrails(
    observations: pd.DataFrame, summaries: dict[str, VariantSummary], spec: AbSpec, requests: dict[str, int]
) -> list[str]:
    g = spec.guardrails
    counts = requests or observations["variant"].astype(str).value_counts().to_dict()
    if min(counts.get("A", 0), counts.get("B", 0)) < g.min_requests:
        return []
    a, b = summaries["A"], summaries["B"]
    breaches = []
    if a.share_5xx is not None and b.share_5xx is not None and b.share_5xx > a.share_5xx + g.max_5xx_increase:
        breaches.append(f"5xx share of B {b.share_5xx:.3f} > A's {a.share_5xx:.3f} + {g.max_5xx_increase}")
    if a.share_4xx is not None and b.share_4xx is not None and b.share_4xx > a.share_4xx + g.max_4xx_increase:
        breaches.append(f"4xx share of B {b.share_4xx:.3f} > A's {a.share_4xx:.3f} + {g.max_4xx_increase}")
    if (
        a.p95_latency_ms
        and b.p95_latency_ms
        and b.p95_latency_ms > a.p95_latency_ms * g.max_p95_latency_ratio
    ):
        breaches.append(
            f"p95 latency of B {b.p95_latency_ms:.1f} ms > {g.max_p95_latency_ratio} x "
            f"A's {a.p95_latency_ms:.1f} ms"
        )
    return breaches


def _looks(units: pd.DataFrame, spec: AbSpec) -> tuple[list[str], dict[str, tuple[Any, Any, Any]]]:
    known = units[units["value"].notna()]
    bins = known["timestamp"].dt.floor(spec.look_every)
    edges = sorted(bins.unique())
    cumulative: dict[str, tuple[Any, Any, Any]] = {}
    for name in VARIANTS:
        mine = known["variant"] == name
        grouped = known[mine].groupby(bins[mine])["value"]
        squares = (known.loc[mine, "value"] ** 2).groupby(bins[mine]).sum()
        frame = pd.DataFrame({"n": grouped.count(), "s": grouped.sum(), "q": squares})
        frame = frame.reindex(edges, fill_value=0).cumsum()
        cumulative[name] = (frame["n"].to_numpy(), frame["s"].to_numpy(), frame["q"].to_numpy())
    return [pd.Timestamp(e).isoformat() for e in edges], cumulative


def analyze(
    observations: pd.DataFrame, spec: AbSpec, *, server_faults: dict[str, dict[str, float]] | None = None
) -> AbVerdict:
    """Judge an A/B test on everything observed so far; valid however often it is called.

    Args:
        observations: One row per assignment: ``variant``, ``timestamp``, ``subject`` (for
            ``spec.unit="subject"``), the primary metric's column (or ``prediction`` and
            ``label``), optionally ``status`` / ``latency_ms`` and other outcome columns.
        spec: The test's metric, minimum effect, weights, alpha and guardrails.
        server_faults: Per variant, the servers' own counts (``requests``, ``share_5xx``,
            ``p95_latency_ms``, as the bake guard reads them from ``/metrics``); they
            replace what ``status`` / ``latency_ms`` columns would say.

    Returns:
        The verdict with the current effect, its always-valid interval, samples per
        variant, per-variant metrics, the sample-ratio p-value, guardrail breaches and the
        effect's history (one point per look).

    Raises:
        SchemaError: A needed column is missing, or a variant other than A/B appears.

    Example:
        ```python
        from mlops_tasks.abtest import AbSpec, analyze
        verdict = analyze(rows, AbSpec(primary_metric="rated_4plus", min_effect=0.01))
        print(verdict.verdict, verdict.interval)
        ```
    """
    _validate(observations, spec)
    units = _units(observations, spec)
    summaries = _summaries(observations, units, spec)
    requests: dict[str, int] = {}
    for name, faults in (server_faults or {}).items():
        summaries[name] = summaries[name].model_copy(
            update={k: v for k, v in faults.items() if k in ("share_5xx", "p95_latency_ms")}
        )
        requests[name] = int(faults.get("requests", 0))
    assigned = [summaries[v].units for v in VARIANTS]
    srm = chi_square_p(assigned, [float(spec.weights[v]) for v in VARIANTS])
    common: dict[str, Any] = {
        "primary_metric": spec.primary_metric,
        "variants": summaries,
        "srm_p": srm,
        "samples": {v: summaries[v].with_outcome for v in VARIANTS},
        "guardrail_breaches": _guardrails(observations, summaries, spec, requests),
    }
    if srm < spec.srm_p:
        reason = (
            f"units per variant {dict(zip(VARIANTS, assigned, strict=True))} do not match weights "
            f"{spec.weights} (chi-square p={srm:.2g} < {spec.srm_p})"
        )
        return AbVerdict(verdict="invalid_sample_ratio", reason=reason, **common)
    edges, cum = _looks(units, spec)
    if not edges:
        return AbVerdict(verdict="keep_running", reason="no outcome has arrived yet", **common)
    out = sequential_decisions(
        cum["A"],
        cum["B"],
        tau2=spec.tau2,
        alpha=spec.alpha,
        margin=spec.margin,
        min_samples=spec.min_samples,
        higher_is_better=spec.better_high,
    )
    history = [
        EffectPoint(
            at=edges[i],
            samples=int(min(cum["A"][0][i], cum["B"][0][i])),
            effect=float(out["effect"][i]),
            low=float(out["low"][i]),
            high=float(out["high"][i]),
            p_value=float(out["p"][i]),
        )
        for i in range(len(edges))
        if out["ready"][i]
    ]
    verdict = DECISIONS[int(out["code"])]
    last = len(edges) - 1
    interval = (float(out["low"][last]), float(out["high"][last])) if out["ready"][last] else None
    decided = edges[int(out["look"])] if int(out["look"]) >= 0 else None
    reason = _reason(verdict, spec, common["samples"], decided)
    logger.info("A/B verdict %s on %s: %s", verdict, spec.primary_metric, reason)
    return AbVerdict(
        verdict=verdict,
        reason=reason,
        effect=float(out["effect"][last]),
        interval=interval,
        p_value=float(out["p"][last]),
        history=history,
        decided_at=decided,
        **common,
    )


def _reason(verdict: str, spec: AbSpec, samples: dict[str, int], decided: str | None) -> str:
    if verdict == "keep_running":
        if min(samples.values()) < spec.min_samples:
            return f"{samples} units with an outcome; {spec.min_samples} per variant needed before a verdict"
        return f"the always-valid interval still includes 0 and effects beyond +-{spec.margin:g}"
    if verdict == "no_difference":
        return f"the always-valid interval lies inside +-{spec.margin:g} (look {decided})"
    return f"always-valid p <= {spec.alpha:g} at look {decided}"
