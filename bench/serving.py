"""Benchmark: our model server vs ``mlflow models serve`` vs MLServer 1.7.

Trains and registers its own model (StandardScaler + LogisticRegression on 30
numeric features) in a temporary MLflow SQLite store, then drives each server in
turn, alone on the machine after a warm-up, with ``wrk``: 8 keep-alive connections,
a fixed duration, byte-identical single-row bodies cycling through 1,000 distinct
holdout rows (``dataframe_split`` for ours and MLflow, the V2 protocol for MLServer).

Our server runs its default configuration (prediction log and metrics on) as one
process. The bench fails if the rows in our prediction log differ from the requests
it answered, or if the servers' predictions differ on those rows.

``wrk`` is installed through apt when missing; MLServer goes into its own virtualenv
(``~/.cache/mlops-tasks/mlserver-1.7``, it wants pandas 3). If MLServer cannot be
installed the line still prints, with ``mlserver_rps=nan``, and the reason goes to
stderr. The last line printed is::

    serving: ours_rps=<n> mlflow_rps=<n> mlserver_rps=<n> throughput_ratio=<ours/mlflow> \
p99_ours_ms=<n> p99_mlflow_ms=<n> p99_mlserver_ms=<n>

Usage: ``python bench/serving.py [--duration 20] [--warmup 5] [--skip-mlserver]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

N_FEATURES = 30
N_ROWS = 1000
CONNECTIONS = 8
MODEL_NAME = "bench-serving"
MLSERVER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / ("mlops-tasks/mlserver-1.7")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk not found: installing it with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk could not be installed")
    return path


def train_and_register(root: Path) -> tuple[str, Path, pd.DataFrame]:
    """Train the bench model, register it; return (models:/ URI, model folder, holdout)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(42)
    n = 20_000 + N_ROWS
    X = rng.normal(size=(n, N_FEATURES))
    weights = rng.normal(size=N_FEATURES)
    y = (X @ weights + rng.normal(scale=2.0, size=n) > 0).astype(int)
    columns = [f"f{i:02d}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    train, holdout = frame.iloc[:-N_ROWS], frame.iloc[-N_ROWS:].reset_index(drop=True)
    model = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=500))])
    model.fit(train, y[:-N_ROWS])
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    exp = mlflow.create_experiment("bench", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(train.head(50), model.predict(train.head(50))),
            input_example=train.head(3),
            registered_model_name=MODEL_NAME,
            # pickle so MLServer's sklearn runtime can load the very same file
            serialization_format="pickle",
        )
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, "bench", info.registered_model_version)
    folder = Path(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}@bench", dst_path=str(root / "model"))
    )
    return f"models:/{MODEL_NAME}@bench", folder, holdout


def write_wrk_script(path: Path, bodies: list[str], headers: dict[str, str], ids: bool) -> None:
    """A wrk Lua script cycling through pre-formatted requests, reporting JSON at the end.

    The requests are formatted when the script loads, before wrk sets its default
    ``Host`` header, so ``headers`` must carry ``Host`` (MLServer refuses requests
    without it).
    """
    lines = ["local reqs = {}", "local n = 0"]
    for i, body in enumerate(bodies):
        hdrs = dict(headers)
        if ids:
            hdrs["X-Request-Id"] = f"bench-{i}"
        lua_headers = ", ".join(f'["{k}"] = "{v}"' for k, v in hdrs.items())
        lua_body = body.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'reqs[{i + 1}] = wrk.format("POST", nil, {{{lua_headers}}}, "{lua_body}")')
    lines += [
        f"local total = {len(bodies)}",
        "local counter = 0",
        "request = function()",
        "  counter = counter + 1",
        "  return reqs[((counter - 1) % total) + 1]",
        "end",
        "done = function(summary, latency, requests)",
        '  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, '
        '\\"p50_us\\": %d, \\"p99_us\\": %d, \\"errors_status\\": %d, '
        '\\"errors_connect\\": %d, \\"errors_read\\": %d, \\"errors_write\\": %d, '
        '\\"errors_timeout\\": %d}\\n", summary.requests, summary.duration, '
        "latency:percentile(50), latency:percentile(99), summary.errors.status, "
        "summary.errors.connect, summary.errors.read, summary.errors.write, "
        "summary.errors.timeout))",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")


def json_headers(port: int) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}


def busy_cpus(seconds: float = 1.0) -> float:
    """How many CPUs other processes kept busy over ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return sum(values), values[3] + values[4]

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return math.nan
    share = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    return share * (os.cpu_count() or 1)


def run_wrk(wrk: str, url: str, script: Path, seconds: float) -> dict:
    cmd = [
        wrk,
        "-t",
        "1",
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON ") :])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no summary: {out.stdout}\n{out.stderr}")


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:g}s")


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def post_json(url: str, doc: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def measure(name: str, wrk: str, url: str, script: Path, warmup: float, duration: float) -> dict:
    busy = busy_cpus()
    if busy > 0.3:
        log(
            f"WARNING: {busy:.1f} CPUs busy with other work before measuring {name}; "
            "the numbers will be low and noisy"
        )
    log(f"{name}: warm-up {warmup:g}s")
    warm = run_wrk(wrk, url, script, warmup)
    time.sleep(1.0)
    log(f"{name}: measuring {duration:g}s with {CONNECTIONS} connections")
    result = run_wrk(wrk, url, script, duration)
    log(
        f"{name}: {result['rps']:.0f} req/s, p50 {result['p50_us'] / 1000:.2f} ms, "
        f"p99 {result['p99_us'] / 1000:.2f} ms, requests {result['requests']}"
    )
    errors = sum(v for r in (warm, result) for k, v in r.items() if k.startswith("errors_"))
    if errors:
        raise SystemExit(f"{name}: wrk saw errors: warm-up {warm}, run {result}")
    result["warm_requests"] = warm["requests"]
    return result


UVLOOP_CHECK = (
    "import sys, uvloop; "
    "sys.exit(0 if tuple(int(x) for x in uvloop.__version__.split('.')[:2]) < (0, 22) else 1)"
)


def ensure_mlserver() -> Path:
    """MLServer 1.7 in its own virtualenv (created on first use)."""
    python = MLSERVER_VENV / "bin" / "python"
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if not mlserver.exists():
        import sklearn

        log(f"installing MLServer 1.7 into {MLSERVER_VENV}")
        MLSERVER_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "mlserver==1.7.*",
                "mlserver-sklearn==1.7.*",
                f"scikit-learn=={sklearn.__version__}",
                "uvloop<0.22",
            ],
            check=True,
        )
    if subprocess.run([str(python), "-c", UVLOOP_CHECK], capture_output=True).returncode:
        # MLServer 1.7's inference workers call asyncio.get_event_loop() with no loop set,
        # which uvloop >= 0.22 turns into an error: every worker dies at start.
        log("pinning uvloop<0.22 in the MLServer virtualenv (MLServer 1.7 workers need it)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "uvloop<0.22"], check=True)
    return mlserver


def check_log(sink: Path, holdout: pd.DataFrame, reference: np.ndarray, answered: int, served: int) -> None:
    """Our log must hold exactly the requests answered, with the right rows and predictions."""
    from mlops_tasks.serving import read_prediction_log

    df = read_prediction_log(str(sink))
    bench = df[df["request_id"].str.startswith("bench-")]
    if len(bench) != served or served < answered:
        raise SystemExit(
            f"prediction log holds {len(bench)} bench rows; wrk got {answered} answers and "
            f"the server answered {served} requests"
        )
    idx = bench["request_id"].str[len("bench-") :].astype(int).to_numpy()
    logged = bench[list(holdout.columns)].to_numpy()
    if not np.array_equal(logged, holdout.to_numpy()[idx]):
        raise SystemExit("prediction log rows differ from the request bodies sent")
    if not np.array_equal(bench["prediction"].to_numpy(), reference[idx]):
        raise SystemExit("logged predictions differ from the in-process MLflow model")
    log(f"prediction log OK: {len(bench)} rows match the requests ({answered} counted by wrk)")


def served_requests(metrics_text: str) -> int:
    total = 0
    for line in metrics_text.splitlines():
        if line.startswith("mlops_serve_requests_total") and 'endpoint="/invocations"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--skip-mlserver", action="store_true")
    args = parser.parse_args()

    wrk = ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-serving-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    # `mlflow models serve` execs `uvicorn` from PATH: put this interpreter's bin first
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    procs: list[subprocess.Popen] = []
    try:
        uri, folder, holdout = train_and_register(root)
        import mlflow.pyfunc

        reference = np.asarray(mlflow.pyfunc.load_model(uri).predict(holdout))
        columns = list(holdout.columns)
        rows = holdout.to_numpy().tolist()
        split_bodies = [json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}) for row in rows]
        results: dict[str, dict] = {}

        # -- ours ----------------------------------------------------------------------
        port = free_port()
        ours_script = root / "ours.lua"
        write_wrk_script(ours_script, split_bodies, json_headers(port), ids=True)
        sink = root / "prediction-log"
        cmd = [
            sys.executable,
            "-m",
            "mlops_tasks.serving.cli",
            "--model-uri",
            uri,
            "--port",
            str(port),
            "--log-sink",
            str(sink),
            "--log-level",
            "warning",
        ]
        proc = subprocess.Popen(cmd, start_new_session=True)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/health", proc)
        results["ours"] = measure("ours", wrk, f"{base}/invocations", ours_script, args.warmup, args.duration)
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            served = served_requests(resp.read().decode())
        ours_all = np.asarray(
            post_json(f"{base}/invocations", {"dataframe_split": {"columns": columns, "data": rows}})[
                "predictions"
            ]
        )
        code = stop(proc)
        if code != 0:
            raise SystemExit(f"our server exited with {code} on SIGTERM")
        # the warm-up run logs with bench- ids too: count both runs
        answered = results["ours"]["requests"] + results["ours"]["warm_requests"]
        check_log(sink, holdout, reference, answered=answered, served=served)

        # -- mlflow ----------------------------------------------------------------------
        port = free_port()
        mlflow_bin = str(Path(sys.executable).parent / "mlflow")
        cmd = [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ]
        proc = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/health", proc)
        mlflow_script = root / "mlflow.lua"
        write_wrk_script(mlflow_script, split_bodies, json_headers(port), ids=True)
        results["mlflow"] = measure(
            "mlflow", wrk, f"{base}/invocations", mlflow_script, args.warmup, args.duration
        )
        mlflow_all = np.asarray(
            post_json(f"{base}/invocations", {"dataframe_split": {"columns": columns, "data": rows}})[
                "predictions"
            ]
        )
        stop(proc)
        if not (np.array_equal(ours_all, mlflow_all) and np.array_equal(ours_all, reference)):
            raise SystemExit("our predictions differ from MLflow's on the holdout rows")
        log("predictions identical: ours == mlflow models serve == mlflow.pyfunc")

        # -- mlserver ----------------------------------------------------------------------
        results["mlserver"] = {"rps": math.nan, "p99_us": math.nan}
        if args.skip_mlserver:
            log("MLServer skipped (--skip-mlserver)")
        else:
            try:
                mlserver = ensure_mlserver()
            except Exception as exc:  # no network, no wheel for this platform, ...
                log(f"MLServer not measured: it could not be installed: {exc}")
                mlserver = None
            if mlserver is not None:
                try:
                    results["mlserver"] = run_mlserver(
                        mlserver, wrk, root, folder, holdout, reference, args, procs
                    )
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    log(f"MLServer not measured: it did not serve the model: {exc}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop(proc)
        shutil.rmtree(root, ignore_errors=True)

    ours, ml, ms = results["ours"], results["mlflow"], results["mlserver"]
    ratio = ours["rps"] / ml["rps"]
    print(
        f"serving: ours_rps={ours['rps']:.0f} mlflow_rps={ml['rps']:.0f} "
        f"mlserver_rps={ms['rps']:.0f} throughput_ratio={ratio:.1f} "
        f"p99_ours_ms={ours['p99_us'] / 1000:.2f} p99_mlflow_ms={ml['p99_us'] / 1000:.2f} "
        f"p99_mlserver_ms={ms['p99_us'] / 1000:.2f}"
    )
    return 0


def run_mlserver(
    mlserver: Path,
    wrk: str,
    root: Path,
    folder: Path,
    holdout: pd.DataFrame,
    reference: np.ndarray,
    args: argparse.Namespace,
    procs: list[subprocess.Popen],
) -> dict:
    model_dir = root / "mlserver" / "bench"
    model_dir.mkdir(parents=True)
    shutil.copy(folder / "model.pkl", model_dir / "model.pkl")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.pkl"},
            }
        )
    )
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (root / "mlserver" / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "host": "127.0.0.1",
                "parallel_workers": 1,
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    proc = subprocess.Popen(
        [str(mlserver), "start", str(root / "mlserver")],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(root / "mlserver"),
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/v2/models/bench/ready", proc)
    rows = holdout.to_numpy().tolist()
    bodies = [
        json.dumps(
            {"inputs": [{"name": "predict", "shape": [1, N_FEATURES], "datatype": "FP64", "data": row}]}
        )
        for row in rows
    ]
    script = root / "mlserver.lua"
    write_wrk_script(script, bodies, json_headers(port), ids=False)
    result = measure("mlserver", wrk, f"{base}/v2/models/bench/infer", script, args.warmup, args.duration)
    answer = post_json(
        f"{base}/v2/models/bench/infer",
        {
            "inputs": [
                {
                    "name": "predict",
                    "shape": [len(rows), N_FEATURES],
                    "datatype": "FP64",
                    "data": [v for row in rows for v in row],
                }
            ]
        },
    )
    stop(proc)
    theirs = np.asarray(answer["outputs"][0]["data"])
    if not np.array_equal(theirs, reference):
        raise SystemExit("MLServer's predictions differ from MLflow's on the holdout rows")
    log("MLServer predictions identical to MLflow's")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
