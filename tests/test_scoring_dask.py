"""Batch scoring and the hyper-parameter search on a real Dask LocalCluster of worker processes.

One cluster (2 worker processes, 1 thread each, loopback, no dashboard) is shared by the module.
Bad inputs: an address nobody answers, a worker killed mid-job, a partition with another
schema, an empty folder, a model the workers cannot load or whose scikit-learn differs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pandas as pd
import pytest
import yaml
from dask_support import log_variant, pause, write_partitions
from test_training import SPEC, info_for

from mlops_tasks.cluster import DaskClusterSpec, open_dask_client
from mlops_tasks.data import split_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import (
    ClusterUnavailableError,
    ConfigurationError,
    EmptyDatasetError,
    ModelLoadError,
    SchemaError,
    WorkerEnvironmentError,
)
from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
from mlops_tasks.registry import promote_model, register_model
from mlops_tasks.scoring import score_batch, score_partitions
from mlops_tasks.serving.predlog import read_prediction_log
from mlops_tasks.settings import resolve_mlflow_config
from mlops_tasks.training import SearchSpec, build_pipeline, fit_pipeline, resolve_features, train_model

GATE = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])


@pytest.fixture(scope="module")
def dask_client():
    """The module's LocalCluster: 2 worker processes (not threads), 1 thread each, on 127.0.0.1."""
    with open_dask_client(DaskClusterSpec(n_workers=2, threads_per_worker=1)) as client:
        yield client


@pytest.fixture(scope="module")
def address(dask_client) -> str:
    return str(dask_client.scheduler.address)


@pytest.fixture(scope="module")
def champion(mlflow_config):
    name = f"dask-{uuid.uuid4().hex[:8]}"
    frame = make_churn_data(1500, seed=41)
    train, holdout = split_dataset(frame, target="churned")
    trained = train_model(train, SPEC, data=info_for(frame), mlflow_config=mlflow_config)
    report = evaluate_model(
        trained, holdout, GATE, model_name=name, compare_to_champion=False, mlflow_config=mlflow_config
    )
    version = register_model(trained, report, name, mlflow_config=mlflow_config)
    promote_model(name, version.version, mlflow_config=mlflow_config)
    return name


def features(rows: int, seed: int) -> pd.DataFrame:
    frame = make_churn_data(rows, seed=seed).drop(columns=["churned"])
    frame.insert(0, "customer_id", [f"c{seed}-{i}" for i in range(rows)])
    return frame


def test_partitions_are_scored_where_read_and_equal_the_in_memory_scores(
    dask_client, champion, mlflow_config, tmp_path
):
    frames = [features(400, seed) for seed in (1, 2, 3)]
    write_partitions(tmp_path / "data", frames)
    out = score_partitions(
        str(tmp_path / "data"),
        champion,
        output=str(tmp_path / "scored"),
        id_column="customer_id",
        mlflow_config=mlflow_config,
        client=dask_client,
    )
    assert (out.rows, out.partitions, out.model_version) == (1200, 3, "1")
    log = read_prediction_log(out.sink).set_index("request_id").sort_index()
    whole = pd.concat(frames, ignore_index=True)
    local = score_batch(
        whole,
        champion,
        output=str(tmp_path / "local.parquet"),
        id_column="customer_id",
        mlflow_config=mlflow_config,
    )
    expected = pd.read_parquet(local.output_uri).set_index("request_id").sort_index()
    assert log.index.is_unique and len(log) == 1200
    pd.testing.assert_series_equal(log["prediction"], expected["prediction"])
    assert set(log["model_version"]) == {"1"} and set(log["served_by"]) == {"batch"}
    files = sorted(p.name for p in (tmp_path / "scored").rglob("*.parquet"))
    # the same job again overwrites its own files: no duplicates
    again = score_partitions(
        str(tmp_path / "data"),
        champion,
        output=str(tmp_path / "scored"),
        id_column="customer_id",
        mlflow_config=mlflow_config,
        client=dask_client,
    )
    assert again.rows == 1200
    assert sorted(p.name for p in (tmp_path / "scored").rglob("*.parquet")) == files
    assert len(read_prediction_log(out.sink)) == 1200


def test_a_scheduler_that_does_not_answer_fails_in_seconds(champion, mlflow_config, tmp_path):
    write_partitions(tmp_path / "data", [features(10, 1)])
    started = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match="tcp://127.0.0.1:9"):
        score_partitions(
            str(tmp_path / "data"),
            champion,
            output=str(tmp_path / "out"),
            mlflow_config=mlflow_config,
            cluster=DaskClusterSpec(address="tcp://127.0.0.1:9", connect_timeout_s=2),
        )
    assert time.monotonic() - started < 30


def test_a_remote_cluster_needs_an_s3_output_before_any_io(tmp_path):
    with pytest.raises(ConfigurationError, match="s3:// output"):
        score_partitions(
            str(tmp_path / "nowhere"),
            "m",
            output=str(tmp_path / "out"),
            cluster=DaskClusterSpec(address="tls://dask.example.internal:8786"),
        )
    with pytest.raises(ValueError, match="tcp://host:port"):
        DaskClusterSpec(address="http://127.0.0.1:8786")


def test_a_partition_with_another_schema_stops_the_job_naming_the_file(
    dask_client, champion, mlflow_config, tmp_path
):
    good = features(50, 1)
    bad = good.rename(columns={"monthly_charges": "monthly_charge"})
    write_partitions(tmp_path / "data", [good, good, bad])
    with pytest.raises(SchemaError, match="part-00002.parquet") as info:
        score_partitions(
            str(tmp_path / "data"),
            champion,
            output=str(tmp_path / "out"),
            mlflow_config=mlflow_config,
            client=dask_client,
        )
    assert "monthly_charge" in str(info.value)
    assert not list((tmp_path / "out").rglob("*.parquet"))  # stopped before scoring anything


def test_an_empty_folder_is_refused(dask_client, champion, mlflow_config, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("no partitions here")
    with pytest.raises(EmptyDatasetError, match="empty"):
        score_partitions(
            str(tmp_path / "empty"),
            champion,
            output=str(tmp_path / "out"),
            mlflow_config=mlflow_config,
            client=dask_client,
        )


def _estimator(mlflow_config, champion):
    from mlops_tasks.tracking import load_sklearn_model

    return load_sklearn_model(resolve_mlflow_config(mlflow_config), f"models:/{champion}@champion")


def test_a_model_the_workers_cannot_load_fails_typed(dask_client, champion, mlflow_config, tmp_path):
    example = features(20, 5).drop(columns=["customer_id"])
    name, _, folder = log_variant(mlflow_config, _estimator(mlflow_config, champion), example)
    (folder / "model.pkl").write_bytes(b"not a pickle at all")
    write_partitions(tmp_path / "data", [features(30, 1)])
    with pytest.raises(ModelLoadError, match=rf"worker tcp://127\.0\.0\.1:\d+ cannot load {name} v1"):
        score_partitions(
            str(tmp_path / "data"),
            name,
            output=str(tmp_path / "out"),
            version=1,
            mlflow_config=mlflow_config,
            client=dask_client,
        )


def test_a_worker_with_another_scikit_learn_refuses_the_model(dask_client, champion, mlflow_config, tmp_path):
    example = features(20, 5).drop(columns=["customer_id"])
    name, _, folder = log_variant(mlflow_config, _estimator(mlflow_config, champion), example)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["sklearn_version"] = "1.0.2"  # saved by an older scikit-learn
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    write_partitions(tmp_path / "data", [features(30, 1)])
    with pytest.raises(WorkerEnvironmentError, match=r"scikit-learn 1\.0\.2 .*install scikit-learn==1\.0\.2"):
        score_partitions(
            str(tmp_path / "data"),
            name,
            output=str(tmp_path / "out"),
            version=1,
            mlflow_config=mlflow_config,
            client=dask_client,
        )


def test_search_on_the_cluster_finds_the_same_model_and_scores(address):
    frame = make_churn_data(400, seed=12)
    for kind in ("grid", "random"):
        spec = SPEC.model_copy(
            update={
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 5},
                "search": SearchSpec(
                    kind=kind, param_grid={"max_depth": [2, 4, 6], "min_samples_leaf": [1, 5]}, cv=2, n_iter=3
                ),
            }
        )
        numeric, categorical = resolve_features(frame, spec)
        x, y = frame[numeric + categorical], frame[spec.target]
        fitted = {
            where: fit_pipeline(build_pipeline(spec, numeric, categorical), spec, x, y, cluster)
            for where, cluster in (("local", None), ("dask", DaskClusterSpec(address=address)))
        }
        (local, local_metrics, local_best), (dask, dask_metrics, dask_best) = fitted["local"], fitted["dask"]
        assert local_best == dask_best and local_metrics == dask_metrics
        assert (local.predict_proba(x) == dask.predict_proba(x)).all()


def test_a_worker_killed_mid_job_leaves_no_duplicate_or_missing_rows(
    dask_client, champion, mlflow_config, tmp_path
):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    slow = Pipeline([("pause", FunctionTransformer(pause)), ("model", _estimator(mlflow_config, champion))])
    example = features(20, 5).drop(columns=["customer_id"])
    name, _, _ = log_variant(mlflow_config, slow, example)
    frames = [features(40, seed) for seed in range(24)]
    write_partitions(tmp_path / "data", frames)
    pids = dask_client.run(os.getpid)
    output = tmp_path / "scored"
    killed: list[int] = []

    def kill_one_when_scoring_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(output.rglob("*.parquet")):
            time.sleep(0.02)
        pid = next(iter(pids.values()))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_one_when_scoring_started, daemon=True)
    killer.start()
    out = score_partitions(
        str(tmp_path / "data"),
        name,
        output=str(output),
        version=1,
        id_column="customer_id",
        mlflow_config=mlflow_config,
        client=dask_client,
    )
    killer.join(timeout=60)
    assert killed, "no worker was killed"
    written = sorted(output.rglob("*.parquet"))
    assert out.rows == 24 * 40 and len(written) == 24
    assert len(list(output.rglob(".*"))) == 0  # no half-written temporary file left visible
    log = read_prediction_log(str(output))
    assert len(log) == 24 * 40 and log["request_id"].is_unique
    assert set(log["request_id"]) == set(pd.concat(frames)["customer_id"])
    remaining = dask_client.run(os.getpid)
    assert killed[0] not in remaining.values()  # the nanny started a new worker process


def test_batch_predict_under_prefect_dask_task_runner_reads_and_writes_s3(
    prefect_harness, dask_client, address, champion, mlflow_config, s3_bucket, tmp_path
):
    import boto3

    from flows.batch import BatchPredictParams, batch_predict, dask_task_runner
    from mlops_tasks.data import DatasetSpec
    from mlops_tasks.settings import S3Config

    endpoint, bucket = s3_bucket[0].endpoint_url, s3_bucket[1]
    # explicit keys: the scoring task runs on a Dask worker, whose environment holds none
    s3 = S3Config(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    client = boto3.client("s3", **s3.client_kwargs())
    frames = [features(100, seed) for seed in (7, 8)]
    for i, frame in enumerate(frames):
        path = tmp_path / f"part-{i}.parquet"
        frame.to_parquet(path, index=False)
        client.upload_file(str(path), bucket, f"in/2026-11/part-{i}.parquet")
    params = BatchPredictParams(
        model_name=champion,
        dataset=DatasetSpec(uri=f"s3://{bucket}/in/2026-11/", s3=s3),
        id_column="customer_id",
        mlflow=mlflow_config,
    )
    runner = dask_task_runner(DaskClusterSpec(address=address))
    out = batch_predict.with_options(task_runner=runner)(params)
    assert (out.rows, out.partitions) == (200, 2)
    assert out.sink == f"s3://{bucket}/in/2026-11-predictions"
    log = read_prediction_log(out.sink, s3_client_kwargs=s3.client_kwargs())
    assert sorted(log["request_id"]) == sorted(pd.concat(frames)["customer_id"])
    assert set(log["served_by"]) == {"batch:2026-11"}


@pytest.mark.parametrize("drift", [0.0, 0.6])
def test_drift_statistics_merged_from_partitions_give_the_in_memory_verdicts(dask_client, tmp_path, drift):
    from mlops_tasks.monitoring import DriftSettings, check_drift
    from mlops_tasks.monitoring.distributed import check_drift_on_cluster

    reference = make_churn_data(3000, seed=1)
    parts = [make_churn_data(1500, seed=20 + i, drift=drift).drop(columns=["churned"]) for i in range(4)]
    write_partitions(tmp_path / "window", parts)
    settings = DriftSettings(min_rows=100)
    exact = check_drift(reference, pd.concat(parts, ignore_index=True), target="churned", settings=settings)
    # few counts kept: the continuous columns go through the bounded (histogram) path
    merged = check_drift_on_cluster(
        reference,
        str(tmp_path / "window"),
        target="churned",
        settings=settings,
        client=dask_client,
        discrete_values=50,
    )
    assert merged.current_rows == 6000 and merged.status == exact.status
    assert [c.column for c in merged.columns] == [c.column for c in exact.columns]
    bounded = 0
    for ours, theirs in zip(merged.columns, exact.columns, strict=True):
        assert (ours.stattest, ours.drifted) == (theirs.stattest, theirs.drifted), ours.column
        if ours.error_bound is None:
            assert ours.value == pytest.approx(theirs.value, rel=1e-9, abs=1e-12), ours.column
        else:
            bounded += 1
            assert abs(ours.value - theirs.value) <= ours.error_bound + 1e-12, ours.column
    assert bounded >= 2  # the continuous numeric columns
    # a threshold inside a column's bounds: that column is computed exactly
    column = next(c for c in merged.columns if c.error_bound is not None)
    truth = next(c for c in exact.columns if c.column == column.column)
    near = settings.model_copy(update={"column_thresholds": {column.column: truth.value}})
    again = check_drift_on_cluster(
        reference,
        str(tmp_path / "window"),
        target="churned",
        settings=near,
        client=dask_client,
        discrete_values=50,
    )
    recomputed = next(c for c in again.columns if c.column == column.column)
    assert recomputed.error_bound is None and recomputed.value == pytest.approx(truth.value, rel=1e-9)


def _write_log(sink, frame: pd.DataFrame, model_name: str, start) -> None:
    """Rows of ``frame`` logged by ``model_name`` one per minute from ``start``, in hour partitions."""
    from datetime import timedelta

    rows = frame.assign(
        request_id=[f"{model_name}-{start:%H}-{i}" for i in range(len(frame))],
        timestamp=[start + timedelta(minutes=i % 60, seconds=i // 60) for i in range(len(frame))],
        model_name=model_name,
        model_version="1",
        served_by="test",
        prediction=0,
    )
    folder = sink / f"date={start:%Y-%m-%d}" / f"hour={start:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / f"{start:%Y%m%dT%H%M%S}Z-{model_name}.parquet", index=False)


def test_drift_over_a_log_window_on_the_cluster_equals_the_in_memory_check(dask_client, tmp_path):
    """Only the window's rows of the model count; the HTML comes from a sample drawn on the workers."""
    from datetime import UTC, datetime, timedelta

    from mlops_tasks.monitoring import DriftSettings, DriftWindow, check_drift, load_current
    from mlops_tasks.monitoring.distributed import check_log_drift_on_cluster

    reference = make_churn_data(3000, seed=1)
    sink = tmp_path / "log"
    hour = datetime(2026, 11, 30, 8, tzinfo=UTC)
    for h in range(4):  # the model's traffic drifts from 10:00; another model shares the log
        frame = make_churn_data(800, seed=60 + h, drift=0.6 if h >= 2 else 0.0).drop(columns=["churned"])
        _write_log(sink, frame, "churn", hour + timedelta(hours=h))
        _write_log(sink, frame.sample(frac=1.0, random_state=h), "other", hour + timedelta(hours=h))
    window = DriftWindow(start=hour + timedelta(hours=1, minutes=30), end=hour + timedelta(hours=3))
    settings = DriftSettings(min_rows=100, html_sample_rows=500)
    current = load_current(str(sink), window, model_name="churn")
    exact = check_drift(reference, current, target="churned", settings=settings)
    ours = check_log_drift_on_cluster(
        reference,
        str(sink),
        window,
        model_name="churn",
        target="churned",
        settings=settings,
        client=dask_client,
        report_location=str(tmp_path / "reports"),
    )
    assert ours.current_rows == len(current) == exact.current_rows
    assert ours.status == exact.status == "drift" and ours.window == window
    assert [(c.column, c.drifted) for c in ours.columns] == [(c.column, c.drifted) for c in exact.columns]
    assert ours.html_uri and "evidently" in open(ours.html_uri, encoding="utf-8").read().lower()
    assert ours.html_sample_rows == 500
    # a window before any traffic: not enough data, nothing read
    before = DriftWindow(start=hour - timedelta(hours=5), end=hour - timedelta(hours=4))
    empty = check_log_drift_on_cluster(reference, str(sink), before, model_name="churn", client=dask_client)
    assert empty.status == "not_enough_data" and empty.current_rows == 0


def test_a_json_lines_log_window_on_the_cluster_is_refused_by_name(dask_client, tmp_path):
    from mlops_tasks.errors import DatasetNotFoundError, PredictionLogError
    from mlops_tasks.monitoring.distributed import check_log_drift_on_cluster

    folder = tmp_path / "log" / "date=2026-11-30" / "hour=08"
    folder.mkdir(parents=True)
    (folder / "20261130T080000Z-abc.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(PredictionLogError, match=r"JSON-lines .*20261130T080000Z-abc\.jsonl.*Parquet"):
        check_log_drift_on_cluster(
            make_churn_data(200, seed=1), str(tmp_path / "log"), model_name="churn", client=dask_client
        )
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        check_log_drift_on_cluster(
            make_churn_data(200, seed=1), str(tmp_path / "nowhere"), model_name="churn", client=dask_client
        )
