"""Benchmark: ``validate_dataframe`` (fast path) vs Great Expectations' own run, 1M rows.

The frame has 21 columns: 6 floats (3 with nulls), 5 integers, 5 string categories,
3 booleans and 2 datetimes. ``suggest_expectations`` makes the suite (62 expectations).
Each of four runs is the first validation in a fresh process (modules imported, no
result cached): (a) GX as ``validate_dataframe`` ran it before the fast path (one
ephemeral context, one whole-frame batch, ``SUMMARY``; here ``engine="gx"``) and (b)
``validate_dataframe`` now, each on the clean frame and on a copy with failures injected
in 7 of the 21 columns (values out of range, nulls beyond the limit, fractional values
in an integer column, an unseen category, a renamed column, text in a boolean and in a
float column). Every expectation's success, counts (element, unexpected, missing),
observed value and raised/not raised must agree between (a) and (b).

Each run also samples its resident memory every 5 ms: the line before the last gives
the frame's own memory and the peak above it during the validation call.

Last line::

    validation: rows=<n> columns=<n> expectations=<n> ours_clean_s=<n> ours_failing_s=<n>
    gx_s=<n> speedup=<x> results_agree=<k>/<2 x expectations>

(one line, wrapped here).

``--more-types`` adds 23 expectations of the other built-in types the fast path covers
(row and column counts, unique, regex and regex lists, value lengths, not-in-set,
of-type, increasing, JSON parseability, z-scores, min/max/mean/median/sum/stdev, distinct
and most common values) to the suggested suite.

``gx_s`` is GX's clean + failing time; ``speedup`` is ``gx_s / (ours_clean_s +
ours_failing_s)``. With ``--skip-gx`` (for 10M rows) GX is not run and those fields are
``nan``.

Usage: ``nice -n 10 .venv/bin/python bench/validation.py [--rows 1000000] [--skip-gx] [--more-types]``
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 17
COPIES = ("clean", "failing")


def make_frame(rows: int) -> pd.DataFrame:
    """The benchmark frame, the same for a given row count in every process."""
    rng = np.random.default_rng(SEED)
    data: dict[str, Any] = {}
    for i in range(6):
        values = rng.normal(100.0 * i, 10.0 + i, rows)
        if i < 3:
            values[rng.random(rows) < 0.02 * (i + 1)] = np.nan
        data[f"num_{i:02d}"] = values
    for i in range(5):
        data[f"int_{i:02d}"] = rng.integers(0, 1000 * (i + 1), rows)
    for i in range(5):
        categories = np.array([f"c{i}_{k}" for k in range(4 + 3 * i)], dtype=object)
        data[f"cat_{i:02d}"] = categories[rng.integers(0, len(categories), rows)]
    for i in range(3):
        data[f"flag_{i:02d}"] = rng.random(rows) < 0.3
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    for i in range(2):
        data[f"ts_{i:02d}"] = start + rng.integers(0, 86_400 * 365, rows).astype("timedelta64[s]")
    return pd.DataFrame(data)


def more_types() -> list[Any]:
    """Expectations of the other covered built-in types, on the benchmark frame's columns."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=10**8),
        gxe.ExpectTableColumnCountToEqual(value=21),
        gxe.ExpectColumnToExist(column="cat_01"),
        gxe.ExpectColumnValuesToBeUnique(column="int_04", mostly=0.001),
        gxe.ExpectColumnValuesToMatchRegex(column="cat_00", regex=r"^c0_\d$"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="cat_02", regex="x"),
        gxe.ExpectColumnValuesToMatchRegexList(column="cat_04", regex_list=["^c4_1", "_2$"]),
        gxe.ExpectColumnValueLengthsToBeBetween(column="cat_03", min_value=4, max_value=5),
        gxe.ExpectColumnValuesToNotBeInSet(column="cat_04", value_set=["zzz"]),
        gxe.ExpectColumnValuesToBeOfType(column="cat_03", type_="str"),
        gxe.ExpectColumnValuesToBeIncreasing(column="ts_00", mostly=0.4),
        gxe.ExpectColumnValuesToBeJsonParseable(column="cat_02", mostly=0.0),
        gxe.ExpectColumnValueZScoresToBeLessThan(column="num_03", threshold=3, double_sided=True),
        gxe.ExpectColumnMinToBeBetween(column="num_00", min_value=-100),
        gxe.ExpectColumnMaxToBeBetween(column="int_01", max_value=2000),
        gxe.ExpectColumnMeanToBeBetween(column="num_01", min_value=90, max_value=110),
        gxe.ExpectColumnMedianToBeBetween(column="num_02", min_value=150),
        gxe.ExpectColumnSumToBeBetween(column="flag_01", min_value=1),
        gxe.ExpectColumnStdevToBeBetween(column="num_05", max_value=20),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="cat_04", max_value=16),
        gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(column="num_02", min_value=0.9),
        gxe.ExpectColumnDistinctValuesToBeInSet(column="cat_00", value_set=[f"c0_{k}" for k in range(4)]),
        gxe.ExpectColumnMostCommonValueToBeInSet(column="int_00", value_set=[1, 2, 3], ties_okay=True),
    ]


def inject_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Failures in 7 of the 21 columns (a third), each a bad-data kind the stage handles."""
    rng = np.random.default_rng(SEED + 1)
    rows = len(df)
    some = rng.random(rows) < 0.01
    df = df.copy()
    df.loc[some, "num_00"] = df.loc[some, "num_00"] * 100 + 1e6  # out of range
    df.loc[rng.random(rows) < 0.2, "num_03"] = np.nan  # nulls beyond the limit (mostly=1.0)
    df["int_00"] = df["int_00"].astype(float)
    df.loc[some, "int_00"] += 0.5  # fractional values in an integer column
    df.loc[rng.random(rows) < 0.005, "cat_00"] = "zzz"  # an unseen category
    df = df.rename(columns={"cat_01": "cat_01_renamed"})  # a renamed (so missing) column
    df["flag_00"] = np.where(df["flag_00"], "yes", "no").astype(object)  # text in a bool column
    num_04 = df["num_04"].astype(object)
    num_04[rng.random(rows) < 0.001] = "n/a"  # text in a float column
    df["num_04"] = num_04
    return df


class PeakMemory:
    """Samples this process's resident memory every 5 ms; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = self.baseline = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def _outcomes(result: Any) -> dict[str, Any]:
    """Per expectation: success, counts, observed value, raised (what must agree)."""
    outcomes = {}
    for evr in result.results:
        config = evr.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        key = json.dumps([config.type, kwargs], sort_keys=True, default=str)
        res = evr.result or {}
        outcomes[key] = {
            "success": bool(evr.success),
            "counts": [res.get(k) for k in ("element_count", "unexpected_count", "missing_count")],
            "observed": json.dumps(res.get("observed_value"), default=str),
            "raised": bool((evr.exception_info or {}).get("raised_exception"))
            or any(
                isinstance(v, dict) and v.get("raised_exception") for v in (evr.exception_info or {}).values()
            ),
        }
    return outcomes


def worker(engine: str, copy: str, rows: int, suite_path: str, out: str) -> None:
    """One timed validation in this (fresh) process; writes its figures to ``out``."""
    from mlops_tasks.validation import load_suite, validate_dataframe

    suite = load_suite(suite_path)
    df = make_frame(rows)
    if copy == "failing":
        df = inject_failures(df)
    frame_bytes = int(df.memory_usage(deep=True).sum())
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with PeakMemory() as memory:
        started = time.perf_counter()
        report = validate_dataframe(df, suite, fail_on_error=False, engine=engine)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
    Path(out).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "success": report.success,
                "outcomes": _outcomes(report.gx_result),
                "frame_bytes": frame_bytes,
                "peak_extra_bytes": memory.peak - memory.baseline,
                "fast": report.statistics.get("fast_path_expectations"),
                "gx": report.statistics.get("gx_expectations"),
            }
        )
    )


def _run_worker(engine: str, copy: str, rows: int, suite_path: Path, folder: Path) -> dict[str, Any]:
    out = folder / f"{engine}-{copy}.json"
    command = [sys.executable, __file__, "--worker", engine, "--copy", copy, "--rows", str(rows)]
    command += ["--suite", str(suite_path), "--out", str(out)]
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    print(
        f"{engine:>4} {copy:<8} {figures['seconds']:8.2f} s  success={figures['success']}  "
        f"fast={figures['fast']} gx={figures['gx']}  frame={figures['frame_bytes'] / 2**20:.0f} MB  "
        f"peak above frame={figures['peak_extra_bytes'] / 2**20:.0f} MB",
        flush=True,
    )
    return figures


def _agreement(ours: dict[str, Any], gx: dict[str, Any]) -> int:
    agree = 0
    for key, outcome in ours["outcomes"].items():
        if gx["outcomes"].get(key) == outcome:
            agree += 1
        else:
            print(f"DISAGREE {key}: ours={outcome} gx={gx['outcomes'].get(key)}", flush=True)
    return agree


def main() -> None:
    """Suggest the suite, run the four validations in fresh processes, print the last line."""
    from great_expectations.core import ExpectationSuite

    from mlops_tasks.validation import suggest_expectations, write_suite

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-gx", action="store_true", help="time only ours (10M rows)")
    parser.add_argument("--more-types", action="store_true", help="add the other covered types")
    args = parser.parse_args()

    reference = make_frame(args.rows)
    started = time.perf_counter()
    suite = suggest_expectations(reference, "bench")
    suggest_s = time.perf_counter() - started
    if args.more_types:
        suite = ExpectationSuite(name=suite.name, expectations=[*suite.expectations, *more_types()])
    columns, expectations = reference.shape[1], len(suite.expectations)
    del reference
    print(f"suggest_expectations: {args.rows} rows x {columns} columns in {suggest_s:.2f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        folder = Path(tmp)
        suite_path = write_suite(suite, folder / "suite.json")
        ours = {copy: _run_worker("auto", copy, args.rows, suite_path, folder) for copy in COPIES}
        gx = (
            {}
            if args.skip_gx
            else {copy: _run_worker("gx", copy, args.rows, suite_path, folder) for copy in COPIES}
        )

    ours_s = ours["clean"]["seconds"] + ours["failing"]["seconds"]
    if gx:
        gx_s = gx["clean"]["seconds"] + gx["failing"]["seconds"]
        agree = sum(_agreement(ours[copy], gx[copy]) for copy in COPIES)
        gx_text, speedup, agree_text = f"{gx_s:.2f}", f"{gx_s / ours_s:.1f}", str(agree)
    else:
        gx_text = speedup = agree_text = "nan"
    worst = max(COPIES, key=lambda c: ours[c]["peak_extra_bytes"] / ours[c]["frame_bytes"])
    peak, frame = ours[worst]["peak_extra_bytes"] / 2**20, ours[worst]["frame_bytes"] / 2**20
    print(
        f"memory ({worst}): frame_mb={frame:.0f} ours_peak_above_frame_mb={peak:.0f} ratio={peak / frame:.2f}"
    )
    print(
        f"validation: rows={args.rows} columns={columns} expectations={expectations} "
        f"ours_clean_s={ours['clean']['seconds']:.2f} ours_failing_s={ours['failing']['seconds']:.2f} "
        f"gx_s={gx_text} speedup={speedup} results_agree={agree_text}/{2 * expectations}"
    )


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_args = argparse.ArgumentParser()
        worker_args.add_argument("--worker", choices=["auto", "gx"], required=True)
        worker_args.add_argument("--copy", choices=COPIES, required=True)
        worker_args.add_argument("--rows", type=int, required=True)
        worker_args.add_argument("--suite", required=True)
        worker_args.add_argument("--out", required=True)
        parsed = worker_args.parse_args()
        worker(parsed.worker, parsed.copy, parsed.rows, parsed.suite, parsed.out)
    else:
        main()
