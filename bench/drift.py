"""Benchmark: one ``check_drift`` call on 1M reference / 600k current rows vs Evidently on the full data.

The frames have 30 columns (16 float and 4 integer numerical, one numerical with 4
distinct values, 9 categorical); 10 columns are shifted (a third) and several have a
drift statistic within ±20 % of Evidently's threshold. The script times ``check_drift`` from the raw
frames, HTML report included, then Evidently's ``DataDriftPreset`` on the full
frames; it checks that every per-column statistic matches Evidently's (relative
difference <= 1e-6) and that the verdicts agree. Last line::

    drift: rows=1000000 ours_s=<n> evidently_full_s=<n> speedup=<x> verdicts_agree=<k>/<30>

Usage: ``.venv/bin/python bench/drift.py [--rows 1000000] [--current-rows 600000] [--skip-evidently]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

from mlops_tasks.monitoring import DriftSettings, check_drift

# (name, kind, shift): numerical shifts are in reference standard deviations (the normed
# Wasserstein distance of a shifted normal is about the shift); categorical shifts move
# probability mass from the first categories to the last ones.
NUMERICAL = [
    ("num_00", 0.0),
    ("num_01", 0.0),
    ("num_02", 0.0),
    ("num_03", 0.085),
    ("num_04", 0.092),
    ("num_05", 0.108),
    ("num_06", 0.115),
    ("num_07", 0.30),
    ("num_08", 0.0),
    ("num_09", 0.0),
    ("num_10", 0.5),
    ("num_11", 0.0),
    ("num_12", 0.0),
    ("num_13", 0.0),
    ("num_14", 0.0),
    ("num_15", 0.0),
]
INTEGER = [("int_00", 0.0), ("int_01", 0.35), ("int_02", 0.095), ("int_03", 0.0)]
CATEGORICAL = [
    ("cat_00", 0.0),
    ("cat_01", 0.0),
    ("cat_02", 0.0),
    ("cat_03", 0.30),
    ("cat_04", 0.0),
    ("cat_05", 0.0),
    ("cat_06", 0.0),
    ("cat_07", 0.25),
    ("cat_08", 0.0),
]


def make_frames(rows: int, current_rows: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames with known shifts."""
    rng = np.random.default_rng(seed)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for name, shift in NUMERICAL:
        scale = 1.0 + rng.random() * 10
        ref[name] = rng.normal(0, scale, rows)
        cur[name] = rng.normal(shift * scale, scale, current_rows)
    for name, shift in INTEGER:
        lam = 40.0
        ref[name] = rng.poisson(lam, rows).astype(np.int64)
        cur[name] = rng.poisson(lam + shift * np.sqrt(lam), current_rows).astype(np.int64)
    # A numerical column with 4 distinct values (Evidently picks Jensen-Shannon for it).
    levels = np.array([0.0, 0.5, 1.0, 1.5])
    ref["num_levels"] = rng.choice(levels, rows, p=[0.4, 0.3, 0.2, 0.1])
    cur["num_levels"] = rng.choice(levels, current_rows, p=[0.4, 0.3, 0.2, 0.1])
    for i, (name, shift) in enumerate(CATEGORICAL):
        k = 4 + i % 6
        cats = np.array([f"{name}_v{j}" for j in range(k)], dtype=object)
        p = np.linspace(2, 1, k)
        p = p / p.sum()
        q = p.copy()
        q[: k // 2] -= shift * p[: k // 2]
        q[k // 2 :] += shift * p[: k // 2].sum() / (k - k // 2)
        ref[name] = rng.choice(cats, rows, p=p)
        cur[name] = rng.choice(cats, current_rows, p=q / q.sum())
    reference, current = pd.DataFrame(ref), pd.DataFrame(cur)
    # Some missing values, as in real data.
    for name in ("num_01", "num_05", "cat_02"):
        reference.loc[rng.random(rows) < 0.02, name] = np.nan if name.startswith("num") else None
        current.loc[rng.random(current_rows) < 0.03, name] = np.nan if name.startswith("num") else None
    return reference, current


def evidently_full(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    """Evidently's DataDriftPreset on all rows: column -> (method, value, drifted)."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current), Dataset.from_pandas(reference)
    )
    data = snapshot.dict()
    values = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            values[config["column"]] = (config["method"], float(metric["value"]))
    verdicts = {}
    for test in data["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            verdicts[params["column"]] = test["status"] == "FAIL"
    return {c: (m, v, verdicts[c]) for c, (m, v) in values.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--current-rows", type=int, default=600_000)
    parser.add_argument("--skip-evidently", action="store_true", help="time check_drift only")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    reference, current = make_frames(args.rows, args.current_rows)
    print(f"frames: reference {reference.shape}, current {current.shape}", flush=True)
    # Warm the imports (scipy, Evidently) so the timing is the check, not Python's import system.
    check_drift(
        reference.head(2000),
        current.head(2000),
        report_location=tempfile.mkdtemp(),
        settings=DriftSettings(html_sample_rows=200),
    )

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = check_drift(reference, current, report_location=tmp)
        ours_s = time.perf_counter() - start
    print(
        f"check_drift: {ours_s:.2f} s, status {report.status}, {report.drifted_columns}/"
        f"{len(report.columns)} drifted, html sample {report.html_sample_rows} rows, "
        f"warnings {report.warnings}",
        flush=True,
    )
    near = [c for c in report.columns if abs(c.value - c.threshold) <= 0.2 * c.threshold]
    print(
        f"columns within ±20% of their threshold: {len(near)} "
        f"({', '.join(f'{c.column}={c.value:.4f}' for c in near)})",
        flush=True,
    )

    if args.skip_evidently:
        print(
            f"drift: rows={args.rows} ours_s={ours_s:.2f} evidently_full_s=nan speedup=nan "
            f"verdicts_agree=nan/{len(report.columns)}"
        )
        return 0

    start = time.perf_counter()
    theirs = evidently_full(reference, current)
    evidently_s = time.perf_counter() - start
    agree = 0
    worst = 0.0
    for column in report.columns:
        method, value, drifted = theirs[column.column]
        rel = abs(value - column.value) / max(abs(value), 1e-12)
        worst = max(worst, rel)
        same = drifted == column.drifted and method == column.test_display_name and rel <= 1e-6
        agree += same
        flag = "" if same else "   <-- DIFFERS"
        print(
            f"  {column.column:11s} {column.stattest:13s} ours={column.value:.10g} "
            f"evidently={value:.10g} ({method}) drift ours={column.drifted} evidently={drifted}{flag}"
        )
    missing = sorted(set(theirs) - {c.column for c in report.columns})
    if missing:
        print(f"  columns Evidently checked that we did not: {missing}")
    print(f"largest relative difference of a statistic: {worst:.2e}")
    total = len(theirs)
    print(
        f"drift: rows={args.rows} ours_s={ours_s:.2f} evidently_full_s={evidently_s:.2f} "
        f"speedup={evidently_s / ours_s:.1f} verdicts_agree={agree}/{total}"
    )
    return 0 if agree == total and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
