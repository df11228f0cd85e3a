"""End-to-end tests of the model server: a real process on a loopback port.

A small churn pipeline (numeric + categorical columns) and a pure-numeric one are
trained, logged and registered into a temporary MLflow SQLite store; the server is
started with ``python -m mlops_tasks.serving.cli`` and stopped by PID.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

CHURN_COLUMNS = ["tenure_months", "monthly_charges", "plan", "country"]


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    port: int, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if isinstance(body, str):
            body = body.encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def predict(port: int, doc: dict, headers: dict[str, str] | None = None):
    status, hdrs, body = call(port, "POST", "/invocations", json.dumps(doc), headers)
    return status, hdrs, json.loads(body)


class Server:
    """A model server subprocess."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        code: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        drop_env: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        cmd = [sys.executable]
        cmd += ["-c", code] if code else ["-m", "mlops_tasks.serving.cli"]
        cmd += ["--port", str(self.port), *args]
        self.proc = subprocess.Popen(
            cmd,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in drop_env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""

    def wait_healthy(self, timeout: float = 90.0) -> Server:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.output = self.proc.stdout.read()
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output}")
            try:
                status, _, _ = call(self.port, "GET", "/health")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.output += self.proc.stdout.read()
            self.proc.stdout.close()
        return self.proc.returncode


# -- fixtures -------------------------------------------------------------------------------


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 72, n),
            "monthly_charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "pro", "max"], n),
            "country": rng.choice(["DE", "FR", "US"], n),
        }
    )


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """An MLflow SQLite store holding `churn` (v1, @champion) and `numeric` (v1, @champion)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlops_tasks.tracking import sklearn_model_requirements

    root = tmp_path_factory.mktemp("mlflow")
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.create_experiment("serving-tests", artifact_location=(root / "art").as_uri())
    client = mlflow.MlflowClient()

    train = churn_frame(400, seed=1)
    y = ((train.monthly_charges > 70) ^ (train.tenure_months < 12)).astype(int)
    churn = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["tenure_months", "monthly_charges"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "country"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(train, y)
    rng = np.random.default_rng(2)
    xnum = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"x{i}" for i in range(6)])
    numeric = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(
        xnum, (xnum.sum(axis=1) > 0).astype(int)
    )
    for name, model, frame in (("churn", churn, train), ("numeric", numeric, xnum)):
        with mlflow.start_run(experiment_id=exp) as run:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(frame, model.predict(frame)),
                input_example=frame.head(3),
                registered_model_name=name,
                pip_requirements=sklearn_model_requirements(model),
            )
        client.set_registered_model_alias(name, "champion", info.registered_model_version)
        if name == "churn":
            churn_run = run.info.run_id
    yield {"root": root, "churn_run_id": churn_run, "numeric_frame": xnum}
    patch.undo()


@pytest.fixture(scope="session")
def pyfunc(store):
    import mlflow.pyfunc

    return {
        "churn": mlflow.pyfunc.load_model("models:/churn@champion"),
        "numeric": mlflow.pyfunc.load_model("models:/numeric/1"),
    }


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    sink = tmp_path_factory.mktemp("plog")
    cwd = tmp_path_factory.mktemp("cwd")
    # Only MLOPS_STATE_DIR says where the registry is (the tasks' store): no MLFLOW_* variable.
    srv = Server(
        [
            "--model-uri",
            "models:/churn@champion",
            "--instance-name",
            "blue",
            "--log-sink",
            str(sink),
            "--log-flush-interval",
            "0.2",
        ],
        env={"MLOPS_STATE_DIR": str(store["root"])},
        cwd=cwd,
        drop_env=("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"),
    )
    srv.wait_healthy()
    srv.sink = sink
    srv.cwd = cwd
    yield srv
    srv.stop()


def split_body(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


# -- endpoints ----------------------------------------------------------------------------


def test_ping_health_version_metrics(server, store):
    status, _, body = call(server.port, "GET", "/ping")
    assert status == 200 and json.loads(body)["status"] == "alive"
    status, _, body = call(server.port, "GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = call(server.port, "GET", "/version")
    doc = json.loads(body)
    assert status == 200
    assert doc["model_name"] == "churn" and doc["model_version"] == "1"
    assert doc["run_id"] == store["churn_run_id"]
    assert doc["served_by"] == "blue" and doc["server_version"]
    predict(server.port, split_body(churn_frame(3, seed=5)))
    status, hdrs, body = call(server.port, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    assert (
        'mlops_serve_requests_total{model_name="churn",model_version="1",'
        'endpoint="/invocations",status="200"}'
    ) in text
    assert (
        'mlops_serve_request_duration_seconds_bucket{model_name="churn",model_version="1",le="+Inf"}'
    ) in text
    rows = [line for line in text.splitlines() if line.startswith("mlops_serve_rows_predicted_total")]
    assert rows and float(rows[0].rsplit(" ", 1)[1]) >= 3
    assert "mlops_serve_prediction_log_rows_dropped_total" in text


def test_unknown_path_and_wrong_method(server):
    assert call(server.port, "GET", "/nope")[0] == 404
    assert call(server.port, "GET", "/invocations")[0] == 405


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"])
def test_predictions_identical_to_pyfunc(server, pyfunc, fmt):
    frame = churn_frame(60, seed=11)
    expected = pyfunc["churn"].predict(frame)
    records = json.loads(frame.to_json(orient="records"))
    if fmt == "csv":
        status, hdrs, body = call(
            server.port, "POST", "/invocations", frame.to_csv(index=False), {"Content-Type": "text/csv"}
        )
        doc = json.loads(body)
    else:
        payload = {
            "dataframe_split": split_body(frame)["dataframe_split"],
            "dataframe_records": records,
            "instances": records,
            "inputs": {c: frame[c].tolist() for c in frame.columns},
        }[fmt]
        status, hdrs, doc = predict(server.port, {fmt: payload})
    assert status == 200, doc
    assert list(doc) == ["predictions"]
    assert np.array_equal(np.asarray(doc["predictions"]), np.asarray(expected))
    assert hdrs["x-model-name"] == "churn" and hdrs["x-model-version"] == "1"
    assert hdrs["x-served-by"] == "blue" and len(hdrs["x-request-id"]) >= 16


def test_columns_in_other_order_and_request_id_echo(server, pyfunc):
    frame = churn_frame(5, seed=12)
    shuffled = frame[["country", "plan", "monthly_charges", "tenure_months"]]
    status, hdrs, doc = predict(server.port, split_body(shuffled), {"X-Request-Id": "req-42"})
    assert status == 200
    assert hdrs["x-request-id"] == "req-42"
    assert doc["predictions"] == pyfunc["churn"].predict(frame).tolist()


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server, pyfunc):
    frame = churn_frame(64, seed=13)
    expected = pyfunc["churn"].predict(frame).tolist()
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        _, _, doc = predict(server.port, split_body(frame.iloc[[i]]))
        results[i] = doc["predictions"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(frame))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i][0] for i in range(len(frame))] == expected


# -- bad input ------------------------------------------------------------------------------

GOOD = {"dataframe_records": [{"tenure_months": 3, "monthly_charges": 80.5, "plan": "pro", "country": "DE"}]}


def _record(**changes):
    rec = dict(GOOD["dataframe_records"][0])
    for key, value in changes.items():
        if value is ...:
            rec.pop(key)
        else:
            rec[key] = value
    return rec


BAD_INPUTS = {
    "malformed_json": ('{"dataframe_split": {', 400, "Malformed JSON", []),
    "json_array": ("[1, 2, 3]", 400, "JSON array", []),
    "unknown_format_key": ('{"dataframes": []}', 400, "Unknown input format", []),
    "missing_column": (
        json.dumps({"dataframe_records": [_record(plan=...)]}),
        422,
        "missing columns",
        ["plan"],
    ),
    "string_in_numeric": (
        json.dumps({"dataframe_records": [_record(monthly_charges="cheap", tenure_months="ten")]}),
        422,
        "expects",
        ["tenure_months", "monthly_charges"],
    ),
    "nan": (
        '{"dataframe_records": [{"tenure_months": 3, "monthly_charges": NaN, '
        '"plan": "pro", "country": "DE"}]}',
        422,
        "NaN",
        ["monthly_charges"],
    ),
    "infinity": (
        '{"dataframe_records": [{"tenure_months": 3, "monthly_charges": Infinity, '
        '"plan": "pro", "country": "DE"}]}',
        422,
        "infinite",
        ["monthly_charges"],
    ),
    "nan_in_integer": (
        '{"dataframe_records": [{"tenure_months": NaN, "monthly_charges": 1.0, '
        '"plan": "pro", "country": "DE"}]}',
        422,
        "integers",
        ["tenure_months"],
    ),
    "empty_batch": (
        json.dumps({"dataframe_split": {"columns": CHURN_COLUMNS, "data": []}}),
        422,
        "Empty batch",
        [],
    ),
    "ragged_rows": (
        json.dumps({"dataframe_split": {"columns": CHURN_COLUMNS, "data": [[1, 2.0, "pro"]]}}),
        400,
        "expected 4",
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_4xx_and_server_keeps_serving(server, case):
    body, status, text, columns = BAD_INPUTS[case]
    got, hdrs, raw = call(server.port, "POST", "/invocations", body)
    doc = json.loads(raw)
    assert got == status, doc
    assert text in doc["error"]
    assert doc.get("columns", []) == columns
    for col in columns:
        assert col in doc["error"]
    assert hdrs["x-request-id"] == doc["request_id"]
    ok, _, answer = predict(server.port, GOOD)
    assert ok == 200 and len(answer["predictions"]) == 1


def test_body_over_limit_gets_413_with_the_limit(server):
    """A 50 MB body is refused from its Content-Length, and the server keeps serving."""
    big = b'{"dataframe_split": {"columns": [], "data": [' + b"1," * (25 * 1024 * 1024) + b"1]}}"
    assert len(big) > 50 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: " + str(len(big)).encode() + b"\r\n\r\n"
        )
        try:  # the server may answer and close before taking the whole body
            sock.sendall(big)
        except OSError:
            pass
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert "10485760 bytes" in json.loads(body)["error"]
    ok, _, answer = predict(server.port, GOOD)
    assert ok == 200


def test_extra_column_is_ignored_by_default_like_mlflow(server, pyfunc):
    frame = churn_frame(4, seed=21)
    with_id = frame.assign(customer_id=[f"c{i}" for i in range(len(frame))])
    status, _, doc = predict(
        server.port, {"dataframe_records": json.loads(with_id.to_json(orient="records"))}
    )
    assert status == 200, doc
    assert doc["predictions"] == pyfunc["churn"].predict(frame).tolist()


def test_models_uri_resolves_in_the_state_folder_without_writing_to_cwd(server):
    """The module's server was given only MLOPS_STATE_DIR: it found the tasks' store and left
    no mlflow.db (MLflow's own default store) in its working directory."""
    assert predict(server.port, GOOD)[0] == 200
    assert list(server.cwd.iterdir()) == []


def test_unknown_registry_version_names_the_store_searched(store, tmp_path, monkeypatch):
    from mlops_tasks.errors import ModelLoadError
    from mlops_tasks.serving.model import load_model

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(store["root"]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=r"tracking URI sqlite:///.*mlflow\.db"):
        load_model("models:/churn/99")
    assert list(tmp_path.iterdir()) == []


def test_chunked_body_over_limit_gets_413(store, tmp_path):
    srv = Server(
        ["--model-uri", "models:/churn/1", "--max-body-bytes", "2000", "--no-prediction-log"]
    ).wait_healthy()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        chunks = (b"x" * 500 for _ in range(10))
        conn.request(
            "POST",
            "/invocations",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 413 and "2000 bytes" in json.loads(resp.read())["error"]
        conn.close()
        assert predict(srv.port, GOOD)[0] == 200
    finally:
        assert srv.stop() == 0


# -- startup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri,needle",
    [
        ("models:/no-such-model@champion", "no-such-model"),
        ("models:/churn/99", "churn"),
        ("/nonexistent/model/folder", "does not exist"),
    ],
)
def test_model_that_cannot_be_loaded_refuses_to_start(store, uri, needle):
    srv = Server(["--model-uri", uri, "--no-prediction-log"])
    try:
        code = srv.proc.wait(90)
    finally:
        srv.stop()
    assert code != 0
    assert "Cannot" in srv.output or "does not exist" in srv.output
    assert needle in srv.output


def test_health_is_503_while_loading(store, tmp_path):
    """Before the model is loaded /ping answers and /health says 503."""
    code = (
        "import time, sys\n"
        "import mlops_tasks.serving.app as app\n"
        "orig = app.load_model\n"
        "def slow(*a, **k):\n"
        "    time.sleep(4)\n"
        "    return orig(*a, **k)\n"
        "app.load_model = slow\n"
        "from mlops_tasks.serving.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    srv = Server(["--model-uri", "models:/churn@champion", "--no-prediction-log"], code=code)
    try:
        deadline = time.time() + 30
        while True:
            try:
                status, _, body = call(srv.port, "GET", "/ping")
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.1)
        assert status == 200
        status, _, body = call(srv.port, "GET", "/health")
        assert status == 503 and json.loads(body)["status"] == "loading"
        assert predict(srv.port, GOOD)[0] == 503
        srv.wait_healthy()
        assert predict(srv.port, GOOD)[0] == 200
    finally:
        assert srv.stop() == 0


# -- prediction log ---------------------------------------------------------------------------


def test_prediction_log_complete_after_graceful_stop(store, pyfunc, tmp_path):
    from mlops_tasks.serving import read_prediction_log

    sink = tmp_path / "plog"
    # A long flush interval: everything is written by the shutdown flush.
    srv = Server(
        [
            "--model-uri",
            "models:/churn@champion",
            "--instance-name",
            "green",
            "--log-sink",
            str(sink),
            "--log-flush-interval",
            "600",
        ]
    ).wait_healthy()
    frame = churn_frame(30, seed=21)
    sent = []
    for i in range(0, 30, 3):
        part = frame.iloc[i : i + 3]
        status, _, _ = predict(srv.port, split_body(part), {"X-Request-Id": f"r{i}"})
        assert status == 200
        sent += [f"r{i}"] * 3
    predict(srv.port, {"dataframe_records": []})  # refused requests are not logged
    assert srv.stop(signal.SIGTERM) == 0
    assert "prediction log closed: 30 rows written, 0 dropped" in srv.output
    log = read_prediction_log(str(sink))
    assert len(log) == 30
    assert log["request_id"].tolist() == sent
    assert set(log["model_name"]) == {"churn"} and set(log["model_version"]) == {"1"}
    assert set(log["served_by"]) == {"green"}
    assert str(log["timestamp"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(log[CHURN_COLUMNS].reset_index(drop=True), frame, check_dtype=False)
    assert log["prediction"].tolist() == pyfunc["churn"].predict(frame).tolist()
    files = list(sink.glob("date=*/hour=*/*.parquet"))
    assert files and all(not f.name.startswith(".") for f in files)


def test_sigint_also_stops_gracefully(store, tmp_path):
    from mlops_tasks.serving import read_prediction_log

    sink = tmp_path / "plog"
    srv = Server(
        [
            "--model-uri",
            "models:/churn/1",
            "--log-sink",
            str(sink),
            "--log-format",
            "jsonl",
            "--log-flush-interval",
            "600",
        ]
    ).wait_healthy()
    assert predict(srv.port, GOOD, {"X-Request-Id": "only"})[0] == 200
    assert srv.stop(signal.SIGINT) == 0
    log = read_prediction_log(str(sink))
    assert log["request_id"].tolist() == ["only"]
    assert list(sink.glob("date=*/hour=*/*.jsonl"))


def test_unwritable_log_sink_degrades_but_keeps_serving(store, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the sink folder should be")
    srv = Server(
        [
            "--model-uri",
            "models:/churn@champion",
            "--log-sink",
            str(blocker / "plog"),
            "--log-flush-interval",
            "0.1",
        ]
    ).wait_healthy()
    try:
        status, _, body = call(srv.port, "GET", "/health")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "degraded"
        assert "prediction log" in doc["detail"] and "not-a-folder" in doc["detail"]
        for _ in range(5):
            assert predict(srv.port, GOOD)[0] == 200
        deadline = time.time() + 20
        dropped = 0.0
        while time.time() < deadline:
            text = call(srv.port, "GET", "/metrics")[2].decode()
            line = [
                x for x in text.splitlines() if x.startswith("mlops_serve_prediction_log_rows_dropped_total")
            ][0]
            dropped = float(line.rsplit(" ", 1)[1])
            if dropped >= 5:
                break
            time.sleep(0.1)
        assert dropped == 5
        assert call(srv.port, "GET", "/health")[0] == 200
    finally:
        assert srv.stop() == 0


def test_s3_sink_with_moto(store, tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    from mlops_tasks.serving import read_prediction_log

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    patch = pytest.MonkeyPatch()
    for name, value in creds.items():
        patch.setenv(name, value)
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="plogs")
        srv = Server(
            [
                "--model-uri",
                "models:/churn@champion",
                "--log-sink",
                "s3://plogs/churn",
                "--s3-endpoint-url",
                endpoint,
                "--log-flush-interval",
                "0.2",
            ]
        ).wait_healthy()
        frame = churn_frame(8, seed=31)
        for i in range(8):
            status = predict(srv.port, split_body(frame.iloc[[i]]), {"X-Request-Id": f"s{i}"})[0]
            assert status == 200
        assert srv.stop() == 0
        log = read_prediction_log("s3://plogs/churn", s3_endpoint_url=endpoint)
        assert sorted(log["request_id"]) == [f"s{i}" for i in range(8)]
        keys = [
            o["Key"]
            for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="plogs")["Contents"]
        ]
        assert all(k.startswith("churn/date=") and "/hour=" in k for k in keys)
        later = read_prediction_log(
            "s3://plogs/churn",
            start=pd.Timestamp.now("UTC") + pd.Timedelta(hours=2),
            s3_endpoint_url=endpoint,
        )
        assert later.empty
    finally:
        moto.stop()
        patch.undo()


# -- numeric model, fast path, running without MLflow -----------------------------------------


def test_numeric_model_fast_path_identical_to_pyfunc(store, pyfunc):
    srv = Server(["--model-uri", "models:/numeric@champion", "--no-prediction-log"]).wait_healthy()
    try:
        assert json.loads(call(srv.port, "GET", "/version")[2])["fast_path"] is True
        frame = store["numeric_frame"].iloc[:200]
        expected = pyfunc["numeric"].predict(frame).tolist()
        _, _, doc = predict(srv.port, split_body(frame))
        assert doc["predictions"] == expected
        one = [predict(srv.port, split_body(frame.iloc[[i]]))[2]["predictions"][0] for i in range(20)]
        assert one == expected[:20]
        bad = split_body(frame.iloc[:2])
        bad["dataframe_split"]["data"][1][3] = "oops"
        status, _, err = predict(srv.port, bad)
        assert status == 422 and err["columns"] == ["x3"]
    finally:
        assert srv.stop() == 0


BLOCK_MLFLOW = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('mlflow', 'prefect', 'great_expectations', 'evidently'):\n"
    "            raise ImportError('blocked: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "from mlops_tasks.serving.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_serves_a_local_folder_without_mlflow(store, pyfunc, tmp_path):
    from mlops_tasks.serving import download_model

    folder = download_model("models:/churn@champion", tmp_path / "model")
    meta = json.loads((folder / "serving-model.json").read_text())
    assert meta["name"] == "churn" and meta["version"] == "1"
    srv = Server(
        ["--model-uri", str(folder), "--no-prediction-log", "--instance-name", "slot-a"], code=BLOCK_MLFLOW
    ).wait_healthy()
    try:
        doc = json.loads(call(srv.port, "GET", "/version")[2])
        assert (doc["model_name"], doc["model_version"]) == ("churn", "1")
        assert doc["run_id"] == store["churn_run_id"]
        frame = churn_frame(20, seed=41)
        status, hdrs, out = predict(srv.port, split_body(frame))
        assert status == 200 and out["predictions"] == pyfunc["churn"].predict(frame).tolist()
        assert hdrs["x-served-by"] == "slot-a"
    finally:
        assert srv.stop() == 0


def test_model_identity_from_environment(store, tmp_path):
    from mlops_tasks.serving import download_model

    folder = download_model("models:/churn/1", tmp_path / "model")
    (folder / "serving-model.json").unlink()
    srv = Server(
        ["--model-uri", str(folder), "--no-prediction-log"],
        env={"MLOPS_MODEL_NAME": "churn-img", "MLOPS_MODEL_VERSION": "7", "MLOPS_SERVE_INSTANCE": "green"},
    ).wait_healthy()
    try:
        status, hdrs, _ = predict(srv.port, GOOD)
        assert status == 200
        assert (hdrs["x-model-name"], hdrs["x-model-version"], hdrs["x-served-by"]) == (
            "churn-img",
            "7",
            "green",
        )
        doc = json.loads(call(srv.port, "GET", "/version")[2])
        assert doc["run_id"] == store["churn_run_id"]  # from MLmodel
    finally:
        assert srv.stop() == 0


def test_serving_package_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import mlops_tasks.serving.cli, mlops_tasks.serving.app, mlops_tasks.serving.model\n"
        "import mlops_tasks.serving.predlog, mlops_tasks.serving.inputs\n"
        "heavy = [m for m in ('prefect', 'great_expectations', 'evidently', 'mlflow', 'pydantic')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_nan_prediction_output_is_valid_json():
    """Predictions are serialized with orjson: NaN becomes null, not a bare NaN token."""
    from mlops_tasks.serving.app import _json, _jsonable

    text = b'{"predictions":' + _json(_jsonable(np.array([1.5, math.nan]))) + b"}"
    assert json.loads(text) == {"predictions": [1.5, None]}


# -- HTTP protocol details -------------------------------------------------------------------


def _raw(port: int, data: bytes, until: int, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until ``until`` answers (counted by status lines) arrived."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while out.count(b"HTTP/1.1 ") - out.count(b"HTTP/1.1 100") < until or not out.endswith((b"}", b"\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


def test_pipelined_requests_are_answered_in_order(server):
    body = json.dumps(GOOD).encode()
    post = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: first\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    out = _raw(server.port, post + ping + post.replace(b"first", b"third"), until=3)
    first, second, third = (
        out.index(b"x-request-id: first"),
        out.index(b'"alive"'),
        out.index(b"x-request-id: third"),
    )
    assert first < second < third
    assert out.count(b"HTTP/1.1 200 OK") == 3


def test_keep_alive_connection_serves_many_requests(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(50):
            conn.request(
                "POST",
                "/invocations",
                body=json.dumps(GOOD),
                headers={"Content-Type": "application/json", "X-Request-Id": f"k{i}"},
            )
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("X-Request-Id") == f"k{i}"
            resp.read()
    finally:
        conn.close()


def test_expect_100_continue_and_head(server):
    body = json.dumps(GOOD).encode()
    out = _raw(
        server.port,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        until=1,
    )
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    head = _raw(server.port, b"HEAD /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", until=1)
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")


def test_malformed_http_gets_400_and_server_keeps_serving(server):
    out = _raw(server.port, b"THIS IS NOT HTTP\r\n\r\n", until=1)
    assert out.startswith(b"HTTP/1.1 400")
    assert call(server.port, "GET", "/ping")[0] == 200


def test_uvicorn_front_end_serves_the_same_app(store, pyfunc, tmp_path):
    """``--http uvicorn`` runs the ASGI adapter of the same app."""
    from mlops_tasks.serving import read_prediction_log

    sink = tmp_path / "plog"
    srv = Server(
        [
            "--model-uri",
            "models:/churn@champion",
            "--http",
            "uvicorn",
            "--log-sink",
            str(sink),
            "--max-body-bytes",
            "5000",
        ]
    ).wait_healthy()
    frame = churn_frame(10, seed=51)
    status, hdrs, doc = predict(srv.port, split_body(frame), {"X-Request-Id": "uv"})
    assert status == 200 and doc["predictions"] == pyfunc["churn"].predict(frame).tolist()
    assert hdrs["x-request-id"] == "uv" and hdrs["x-model-version"] == "1"
    status, _, raw = call(srv.port, "POST", "/invocations", "[1]")
    assert status == 400
    status, _, raw = call(srv.port, "POST", "/invocations", b"x" * 6000)
    assert status == 413 and "5000 bytes" in json.loads(raw)["error"]
    assert json.loads(call(srv.port, "GET", "/health")[2])["status"] == "ok"
    assert srv.stop() == 0
    assert read_prediction_log(str(sink))["request_id"].tolist() == ["uv"] * 10


def test_idle_keep_alive_connections_are_closed(store):
    srv = Server(
        ["--model-uri", "models:/churn/1", "--no-prediction-log", "--keep-alive-timeout", "1"]
    ).wait_healthy()
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.time()
        assert sock.recv(65536) == b""  # closed by the server once idle
        assert time.time() - started < 10
        sock.close()
    finally:
        assert srv.stop() == 0
