"""Benchmark: batch scoring of a partitioned Parquet dataset, single process vs a Dask LocalCluster.

Writes ``--rows`` rows x 10 features (7 numeric, 3 categorical) as ``--partitions`` Parquet
files (never the whole dataset in memory), trains the demo pipeline's estimator (logistic
regression behind the project's preprocessing) on a 50,000-row sample, registers it, then
scores the files twice, each path in its own subprocess:

- ``pandas``: what main did before this change: read every file with pandas, concatenate,
  ``score_batch`` (default threads), write one prediction-log file;
- ``dask``: ``score_partitions`` on a ``LocalCluster`` of ``--workers`` worker *processes*
  (1 thread each), one task per file.

Wall time runs from the files to the written predictions. Peak memory is the high-water mark
(``VmHWM``) of every process involved: the client (the LocalCluster's scheduler runs in it),
each nanny and each worker. The two outputs are compared row for row (rows come out in the
files' order on both paths). Optionally (``--drift``) the drift check runs over the dask
path's output on the same cluster and its verdicts are compared with the in-memory check on
the first ``--drift-subset`` rows. Last line (one line)::

    batch: rows=<n> workers=<n> worker_processes=true dask_s=<n> pandas_s=<n> speedup=<x>
        peak_rss_mb=<n> client_peak_rss_mb=<n> pandas_peak_rss_mb=<n> predictions_equal=<true|false>

Usage: ``nice -n 10 .venv/bin/python bench/batch.py [--rows 20000000] [--partitions 40] [--workers 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = [f"num_{i}" for i in range(7)]
CATEGORICAL = {"cat_0": ["a", "b", "c", "d"], "cat_1": ["x", "y", "z"], "cat_2": [f"k{i}" for i in range(12)]}


def make_rows(rows: int, seed: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(i, 1 + i / 3, rows) for i, name in enumerate(NUMERIC)})
    for name, values in CATEGORICAL.items():
        frame[name] = rng.choice(values, rows)
    score = frame["num_0"] - 0.5 * frame["num_3"] + (frame["cat_0"] == "a") * 1.2
    frame["label"] = (score + rng.normal(0, 1, rows) > 0).astype(np.int64)
    frame.insert(0, "row_id", np.arange(start, start + rows, dtype=np.int64))
    return frame


def write_dataset(folder: Path, rows: int, partitions: int) -> None:
    folder.mkdir(parents=True)
    per = -(-rows // partitions)
    for i in range(partitions):
        n = min(per, rows - i * per)
        make_rows(n, seed=1000 + i, start=i * per).drop(columns=["label"]).to_parquet(
            folder / f"part-{i:05d}.parquet", index=False
        )


def register_model(name: str) -> str:
    from mlops_tasks.data import DatasetInfo, fingerprint_frame
    from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
    from mlops_tasks.registry import promote_model
    from mlops_tasks.registry import register_model as register
    from mlops_tasks.training import TrainingSpec, train_model

    frame = make_rows(50_000, seed=1)
    train, holdout = frame.iloc[:40_000], frame.iloc[40_000:]
    info = DatasetInfo(
        uri="file:///bench/train.parquet",
        name="bench",
        format="parquet",
        rows=len(frame),
        columns=list(frame.columns),
        fingerprint=fingerprint_frame(frame),
    )
    spec = TrainingSpec(target="label", exclude_features=["row_id"], params={"max_iter": 500})
    trained = train_model(train, spec, data=info)
    gate = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
    report = evaluate_model(trained, holdout, gate, model_name=name, compare_to_champion=False)
    version = register(trained, report, name)
    promote_model(name, version.version)
    return str(version.version)


def _hwm_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_pandas(data: Path, out: Path, name: str) -> dict[str, float]:
    from mlops_tasks.scoring import score_batch

    started = time.perf_counter()
    frame = pd.concat([pd.read_parquet(p) for p in sorted(data.glob("*.parquet"))], ignore_index=True)
    result = score_batch(frame, name, output=str(out / "pandas.parquet"), id_column="row_id")
    return {"seconds": time.perf_counter() - started, "rows": result.rows, "peak_mb": _hwm_mb()}


def run_dask(data: Path, out: Path, name: str, workers: int) -> dict[str, float]:
    from mlops_tasks.cluster import DaskClusterSpec, open_dask_client
    from mlops_tasks.scoring import score_partitions

    started = time.perf_counter()
    spec = DaskClusterSpec(n_workers=workers, threads_per_worker=1, memory_limit=None)
    with open_dask_client(spec) as client:
        result = score_partitions(
            str(data), name, output=str(out / "dask"), id_column="row_id", client=client
        )
        seconds = time.perf_counter() - started
        worker_mb = list(client.run(_hwm_mb).values())
        nanny_mb = list(client.run(_hwm_mb, nanny=True).values())
    return {
        "seconds": seconds,
        "rows": result.rows,
        "peak_mb": max([_hwm_mb(), *worker_mb, *nanny_mb]),
        "client_mb": _hwm_mb(),
        "workers_mb": max(worker_mb),
        "nannies_mb": max(nanny_mb),
    }


def run_drift(data: Path, out: Path, workers: int, subset: int) -> dict[str, object]:
    from mlops_tasks.cluster import DaskClusterSpec, open_dask_client
    from mlops_tasks.monitoring import DriftSettings, check_drift
    from mlops_tasks.monitoring.distributed import check_drift_on_cluster

    reference = make_rows(50_000, seed=1).drop(columns=["row_id"])
    settings = DriftSettings(min_rows=100, exclude_columns=["row_id"])
    started = time.perf_counter()
    with open_dask_client(DaskClusterSpec(n_workers=workers, memory_limit=None)) as client:
        report = check_drift_on_cluster(
            reference, str(out / "dask"), target="label", settings=settings, client=client
        )
        seconds = time.perf_counter() - started
        peak = max([_hwm_mb(), *client.run(_hwm_mb).values(), *client.run(_hwm_mb, nanny=True).values()])
        files = sorted((out / "dask").rglob("*.parquet"))
        subset_frame, rows = [], 0
        for path in files:
            if rows >= subset:
                break
            subset_frame.append(pd.read_parquet(path))
            rows += len(subset_frame[-1])
        small_dir = out / "drift-subset"
        small_dir.mkdir()
        for i, frame in enumerate(subset_frame):
            frame.to_parquet(small_dir / f"part-{i:05d}.parquet", index=False)
        merged = check_drift_on_cluster(
            reference, str(small_dir), target="label", settings=settings, client=client
        )
    exact = check_drift(
        reference, pd.concat(subset_frame, ignore_index=True), target="label", settings=settings
    )
    agree = [a.drifted == b.drifted for a, b in zip(merged.columns, exact.columns, strict=True)]
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "rows": report.current_rows,
        "status": report.status,
        "subset_rows": rows,
        "verdicts_agree": f"{sum(agree)}/{len(agree)}",
    }


def child(argv: list[str]) -> None:
    mode, data, out, name, workers, subset = (
        argv[0],
        Path(argv[1]),
        Path(argv[2]),
        argv[3],
        int(argv[4]),
        int(argv[5]),
    )
    if mode == "pandas":
        result: dict[str, object] = dict(run_pandas(data, out, name))
    elif mode == "dask":
        result = dict(run_dask(data, out, name, workers))
    else:
        result = run_drift(data, out, workers, subset)
    print("RESULT " + json.dumps(result), flush=True)


def in_subprocess(mode: str, data: Path, out: Path, name: str, workers: int, subset: int = 0) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(data), str(out), name, str(workers), str(subset)],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} path failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def predictions_equal(out: Path) -> bool:
    import pyarrow.parquet as pq

    single = pq.read_table(out / "pandas.parquet", columns=["prediction"]).column(0).to_numpy()
    parts = sorted((out / "dask").rglob("*.parquet"), key=lambda p: p.name)
    merged = np.concatenate([pq.read_table(p, columns=["prediction"]).column(0).to_numpy() for p in parts])
    return bool(single.shape == merged.shape and np.array_equal(single, merged))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--partitions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drift", action="store_true", help="Also run the drift check on the output.")
    parser.add_argument("--drift-subset", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        os.environ["MLOPS_STATE_DIR"] = str(root / "state")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        data, out = root / "data", root / "out"
        out.mkdir()
        write_dataset(data, args.rows, args.partitions)
        name = "bench-batch"
        register_model(name)
        pandas_run = in_subprocess("pandas", data, out, name, args.workers)
        dask_run = in_subprocess("dask", data, out, name, args.workers)
        assert pandas_run["rows"] == dask_run["rows"] == args.rows, (pandas_run, dask_run)
        equal = predictions_equal(out)
        print(f"pandas: {json.dumps(pandas_run)}", flush=True)
        print(f"dask: {json.dumps(dask_run)}", flush=True)
        if args.drift:
            drift = in_subprocess("drift", data, out, name, args.workers, args.drift_subset)
            print(f"drift: {json.dumps(drift)}", flush=True)
    print(
        f"batch: rows={args.rows} workers={args.workers} worker_processes=true "
        f"dask_s={dask_run['seconds']:.1f} pandas_s={pandas_run['seconds']:.1f} "
        f"speedup={pandas_run['seconds'] / dask_run['seconds']:.2f} "
        f"peak_rss_mb={dask_run['peak_mb']:.0f} client_peak_rss_mb={dask_run['client_mb']:.0f} "
        f"pandas_peak_rss_mb={pandas_run['peak_mb']:.0f} predictions_equal={'true' if equal else 'false'}"
    )


if __name__ == "__main__":
    main()
