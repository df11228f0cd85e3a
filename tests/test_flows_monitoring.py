"""drift_check and batch_predict under Prefect's test harness, against a real MLflow store.

The main test serves the champion with the real model server, sends undrifted then
drifted traffic, and runs the drift check on each window: no drift then drift, with the
event emitted only for the second, read back from the Prefect API.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import client_for
from test_serving import Server, call, split_body
from test_training import SPEC, info_for

from flows.batch import BatchPredictParams, batch_predict, default_output
from flows.monitoring import DriftCheckParams, drift_check
from mlops_tasks.data import DatasetSpec, split_dataset, write_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import ReferenceDataNotFoundError
from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
from mlops_tasks.monitoring import EVENT_DRIFT_DETECTED, DriftSettings
from mlops_tasks.registry import promote_model, register_model
from mlops_tasks.settings import resolve_mlflow_config
from mlops_tasks.tracking import sklearn_model_requirements
from mlops_tasks.training import train_model
from tests.orchestration_support import read_artifacts
from tests.orchestration_support import wait_for_events as wait_for_prefect_events

GATE = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
SETTINGS = DriftSettings(min_rows=200, html_sample_rows=1000)


@pytest.fixture(scope="module")
def champion(mlflow_config):
    """A model trained by the library (so its run records the reference), promoted champion."""
    name = f"drift-{uuid.uuid4().hex[:8]}"
    frame = make_churn_data(2500, seed=31)
    train, holdout = split_dataset(frame, target="churned")
    trained = train_model(
        train, SPEC, data=info_for(frame), segment_column="country", mlflow_config=mlflow_config
    )
    report = evaluate_model(
        trained, holdout, GATE, model_name=name, compare_to_champion=False, mlflow_config=mlflow_config
    )
    version = register_model(trained, report, name, mlflow_config=mlflow_config)
    promote_model(name, version.version, mlflow_config=mlflow_config)
    return name


def features(rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    return make_churn_data(rows, seed=seed, drift=drift).drop(columns=["churned"])


def wait_for_events(model_name: str, count: int, timeout: float = 30.0) -> list:
    return wait_for_prefect_events(EVENT_DRIFT_DETECTED, f"mlops.model.{model_name}", count, timeout)


def send(port: int, frame: pd.DataFrame, batch: int = 100) -> None:
    for start in range(0, len(frame), batch):
        status, _, body = call(
            port, "POST", "/invocations", json.dumps(split_body(frame.iloc[start : start + batch]))
        )
        assert status == 200, body


def test_served_traffic_no_drift_then_drift_emits_one_event(
    prefect_harness, champion, mlflow_config, tmp_path
):
    cfg = resolve_mlflow_config(mlflow_config)
    sink = tmp_path / "predictions"
    server = Server(
        [
            "--model-uri",
            f"models:/{champion}@champion",
            "--instance-name",
            "blue",
            "--log-sink",
            str(sink),
            "--log-flush-interval",
            "0.2",
        ],
        env={"MLFLOW_TRACKING_URI": cfg.tracking_uri, "MLFLOW_REGISTRY_URI": cfg.registry_uri},
    )
    try:
        server.wait_healthy()
        # The log's timestamp is when the answer was computed, a moment after the client
        # may see it: pauses keep each phase inside its window.
        t0 = datetime.now(UTC)
        send(server.port, features(600, seed=41))
        time.sleep(0.5)
        t1 = datetime.now(UTC)
        send(server.port, features(600, seed=42, drift=0.9))
        time.sleep(0.5)
        t2 = datetime.now(UTC)
    finally:
        assert server.stop() == 0, server.output

    common = {
        "model_name": champion,
        "prediction_log": str(sink),
        "settings": SETTINGS,
        "mlflow": mlflow_config,
        "report_location": str(tmp_path / "reports"),
    }
    calm = drift_check(DriftCheckParams(start=t0, end=t1, **common))
    assert calm.status == "ok", calm.reason
    assert calm.current_rows == 600 and calm.model_version == "1" and calm.served_versions == ["1"]
    assert calm.prediction is not None and not calm.prediction.drifted
    assert wait_for_events(champion, 0, timeout=3) == []

    moved_state = drift_check(DriftCheckParams(start=t1, end=t2, **common), return_state=True)
    assert moved_state.is_completed() and moved_state.message.startswith("Drift detected")
    moved = moved_state.result()
    assert moved.status == "drift" and moved.dataset_drift and moved.current_rows == 600
    assert Path(moved.html_uri).is_file() and moved.html_uri.startswith(str(tmp_path / "reports"))

    events = wait_for_events(champion, 1)
    assert len(events) == 1, events
    event = events[0]
    assert event.resource.id == f"mlops.model.{champion}"
    assert event.resource["mlops.model.version"] == "1"
    assert event.payload["status"] == "drift" and event.payload["mlflow_run_id"] == moved.mlflow_run_id
    assert event.payload["drifted_columns"] == moved.drifted

    client = client_for(mlflow_config)
    experiment = client.get_experiment_by_name(f"{cfg.experiment_name}-monitoring")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlops.model_name` = '{champion}'"
    )
    assert {r.data.tags["mlops.drift.status"] for r in runs} == {"ok", "drift"}
    drift_run = client.get_run(moved.mlflow_run_id)
    assert drift_run.data.tags["mlops.model_version"] == "1"
    assert drift_run.data.metrics["drift_share"] == pytest.approx(moved.drifted_share)
    artifacts = {a.path for a in client.list_artifacts(moved.mlflow_run_id, "drift")}
    assert {"drift/report.json", "drift/drift-report.html"} <= artifacts

    key = f"drift-{champion}".lower()
    assert read_artifacts(key) and read_artifacts(f"drift-html-{champion}".lower())


def test_empty_window_completes_with_not_enough_data(prefect_harness, champion, mlflow_config, tmp_path):
    (tmp_path / "log").mkdir()
    state = drift_check(
        DriftCheckParams(
            model_name=champion,
            prediction_log=str(tmp_path / "log"),
            start="2026-01-01T00:00",
            end="2026-01-01T01:00",
            mlflow=mlflow_config,
            settings=SETTINGS,
        ),
        return_state=True,
    )
    assert state.is_completed() and "Not enough traffic: no current rows" in state.message
    report = state.result()
    assert report.status == "not_enough_data" and report.mlflow_run_id is None


def test_model_without_reference_data_fails_with_a_typed_error(prefect_harness, mlflow_config, tmp_path):
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from tests.mlflow_support import fluent_mlflow

    name = f"foreign-{uuid.uuid4().hex[:8]}"
    frame = features(300, seed=3)[["age", "tenure_months"]]
    model = LogisticRegression().fit(frame, (frame["age"] > 40).astype(int))
    with fluent_mlflow(resolve_mlflow_config(mlflow_config)) as client:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                serialization_format="cloudpickle",
                pip_requirements=sklearn_model_requirements(model),
            )
        client.set_registered_model_alias(name, "champion", info.registered_model_version)
    write_dataset(frame, str(tmp_path / "current.csv"))
    params = DriftCheckParams(
        model_name=name, current=DatasetSpec(uri=str(tmp_path / "current.csv")), mlflow=mlflow_config
    )
    state = drift_check(params, return_state=True)
    assert state.is_failed()
    with pytest.raises(ReferenceDataNotFoundError, match="has no recorded reference data.*Pass a reference"):
        state.result()
    assert read_artifacts(f"drift-{name}".lower())


def test_batch_predict_on_s3_then_drift_check_with_s3_report(
    prefect_harness, champion, mlflow_config, s3_bucket
):
    import boto3

    s3, bucket = s3_bucket
    uri = f"s3://{bucket}/data/new.csv"
    write_dataset(
        features(400, seed=51).assign(customer_id=lambda f: [f"c{i}" for i in range(len(f))]), uri, s3=s3
    )
    out = batch_predict(
        BatchPredictParams(
            model_name=champion,
            dataset=DatasetSpec(uri=uri, s3=s3),
            id_column="customer_id",
            mlflow=mlflow_config,
        )
    )
    assert out.sink == default_output(uri) == f"s3://{bucket}/data/new-predictions"
    assert out.rows == 400 and out.model_version == "1"

    report = drift_check(
        DriftCheckParams(
            model_name=champion,
            prediction_log=out.sink,
            last_hours=1,
            settings=SETTINGS,
            mlflow=mlflow_config,
            s3=s3,
            report_location=f"s3://{bucket}/reports",
            emit_event=False,
        )
    )
    assert report.current_rows == 400 and report.status in {"ok", "drift"}
    assert len(report.columns) == 10 and report.html_uri.startswith(f"s3://{bucket}/reports/")
    key = report.html_uri[len(f"s3://{bucket}/") :]
    body = boto3.client("s3", **s3.client_kwargs()).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert b"Verdicts below are computed on the full data" in body


def test_drift_check_on_a_dask_cluster_reads_the_s3_log_window_and_agrees_with_memory(
    prefect_harness, champion, mlflow_config, s3_bucket, tmp_path
):
    """The flow and the command-line stage on a cluster: same verdicts as in memory, HTML from a sample."""
    from mlops_tasks.cluster import DaskClusterSpec, open_dask_client
    from mlops_tasks.stages.monitoring import run_drift_check

    s3, bucket = s3_bucket
    uri = f"s3://{bucket}/cluster/new.csv"
    write_dataset(features(1200, seed=71, drift=0.6), uri, s3=s3)
    sink = batch_predict(
        BatchPredictParams(model_name=champion, dataset=DatasetSpec(uri=uri, s3=s3), mlflow=mlflow_config)
    ).sink
    params = DriftCheckParams(
        model_name=champion,
        prediction_log=sink,
        last_hours=1,
        settings=SETTINGS,
        mlflow=mlflow_config,
        s3=s3,
        report_location=str(tmp_path / "reports"),
        emit_event=False,
    )
    in_memory = drift_check(params)
    with open_dask_client(DaskClusterSpec(n_workers=2, threads_per_worker=1)) as client:
        on_cluster = params.model_copy(update={"cluster": DaskClusterSpec(address=client.scheduler.address)})
        report = drift_check(on_cluster)
        stage = run_drift_check(on_cluster)  # what `mlops-tasks drift-check` runs
    for ours in (report, stage):
        assert ours.current_rows == in_memory.current_rows == 1200
        assert ours.status == in_memory.status == "drift"
        assert ours.window is not None and ours.window.end - ours.window.start == timedelta(hours=1)
        verdicts = [(c.column, c.drifted) for c in ours.columns]
        assert verdicts == [(c.column, c.drifted) for c in in_memory.columns]
        assert ours.mlflow_run_id and ours.html_uri and ours.html_sample_rows == 1000
        assert "Verdicts below are computed on the full data" in Path(ours.html_uri).read_text()
    # the labelled (performance) check joins rows in memory: refused before anything is read
    with pytest.raises(ValueError, match="cluster or labels"):
        DriftCheckParams(
            model_name=champion,
            labels=DatasetSpec(uri=uri),
            cluster=DaskClusterSpec(address="tcp://127.0.0.1:1"),
        )


def test_batch_predict_writes_the_prediction_log_columns(prefect_harness, champion, mlflow_config, tmp_path):
    from mlops_tasks.monitoring import load_current

    path = tmp_path / "batch.csv"
    write_dataset(features(300, seed=61), str(path))
    out = batch_predict(
        BatchPredictParams(model_name=champion, dataset=DatasetSpec(uri=str(path)), mlflow=mlflow_config)
    )
    frame = load_current(out.sink, model_name=champion)
    assert list(frame.columns[:5]) == ["request_id", "timestamp", "model_name", "model_version", "served_by"]
    assert frame.columns[-1] == "prediction" and len(frame) == 300
    assert set(frame["prediction"].unique()) <= {0, 1} and frame["request_id"].is_unique
    file_out = batch_predict(
        BatchPredictParams(
            model_name=champion,
            dataset=DatasetSpec(uri=str(path)),
            output=str(tmp_path / "scored.parquet"),
            mlflow=mlflow_config,
        )
    )
    assert file_out.sink is None and len(pd.read_parquet(file_out.output_uri)) == 300


# -- monitoring follows an endpoint ------------------------------------------------------------


def _deployed(endpoint: str, model_name: str, version: int) -> None:
    """The endpoint's history as a finished deployment leaves it (no router running now)."""
    from mlops_tasks.deploy.models import DeploymentRecord
    from mlops_tasks.deploy.state import append_record

    append_record(
        DeploymentRecord(
            id=uuid.uuid4().hex,
            endpoint=endpoint,
            target="local",
            model_name=model_name,
            version=version,
            strategy="canary",
            outcome="succeeded",
        )
    )


def test_endpoint_without_traffic_completes_with_not_enough_traffic(prefect_harness, champion, mlflow_config):
    endpoint = f"ep-{uuid.uuid4().hex[:6]}"
    _deployed(endpoint, champion, 1)
    state = drift_check(
        DriftCheckParams(endpoint=endpoint, mlflow=mlflow_config, settings=SETTINGS), return_state=True
    )
    assert state.is_completed() and state.message.startswith("Not enough traffic: no current rows")
    report = state.result()
    assert report.status == "not_enough_data" and report.model_name == champion
    assert report.model_version == "1" and report.current_source.endswith(f"{endpoint}/prediction-log")


def test_endpoint_log_is_the_one_read(prefect_harness, champion, mlflow_config):
    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.serving.predlog import PredictionLogWriter

    endpoint = f"ep-{uuid.uuid4().hex[:6]}"
    _deployed(endpoint, champion, 1)
    rows = features(30, seed=71)
    writer = PredictionLogWriter(
        str(endpoint_dir(endpoint) / "prediction-log"), list(rows.columns), champion, "1", "blue"
    )
    writer.start()
    now = time.time()
    writer.append(
        [f"r{i}" for i in range(len(rows))],
        [now] * len(rows),
        {c: rows[c].to_numpy() for c in rows.columns},
        pd.Series([0] * len(rows)).to_numpy(),
    )
    writer.close()
    report = drift_check(DriftCheckParams(endpoint=endpoint, mlflow=mlflow_config, settings=SETTINGS))
    assert report.status == "not_enough_data" and report.current_rows == 30
    assert report.reason.startswith("Not enough traffic: only 30 current rows")


def test_unknown_endpoint_or_other_model_fails_with_typed_errors(prefect_harness, champion, mlflow_config):
    from mlops_tasks.errors import ConfigurationError, EndpointNotFoundError

    state = drift_check(DriftCheckParams(endpoint="never-deployed", mlflow=mlflow_config), return_state=True)
    assert state.is_failed()
    with pytest.raises(EndpointNotFoundError, match="never deployed.*flows.deployment --endpoint"):
        state.result()
    endpoint = f"ep-{uuid.uuid4().hex[:6]}"
    _deployed(endpoint, champion, 1)
    params = DriftCheckParams(endpoint=endpoint, model_name="someone-else", mlflow=mlflow_config)
    with pytest.raises(ConfigurationError, match=f"serves model '{champion}', not 'someone-else'"):
        drift_check(params)


def test_command_line_picks_version_or_alias(
    prefect_harness, champion, mlflow_config, tmp_path, monkeypatch, capsys
):
    from flows.monitoring import main

    cfg = resolve_mlflow_config(mlflow_config)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking_uri)
    write_dataset(features(40, seed=81), str(tmp_path / "current.csv"))
    common = ["--model-name", champion, "--current", str(tmp_path / "current.csv")]
    assert main([*common, "--model-version", "1"]) == 0
    assert "not_enough_data" in capsys.readouterr().out
    assert main([*common, "--model-alias", "no-such-alias"]) == 1
    assert "no-such-alias" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--model-version", "1", "--model-alias", "champion"])
