"""Remote services: the same flows against a real `mlflow server` whose artifacts live in S3, with
data, prediction logs and reports in S3 (moto's server mode on loopback), by configuration alone.

The configuration is two saved blocks named in the flows' parameters: an ``MlflowServer`` block
(the server's URL) and a prefect-aws ``AwsCredentials`` block (keys and endpoint of the S3 API).
"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from conftest import free_port, s3_auth_enforced, start_mlflow_server
from test_serving import Server, call, split_body

from flows.monitoring import DriftCheckParams, drift_check
from flows.training import TrainingPipelineParams, training_pipeline
from mlops_tasks.blocks import MlflowServer, resolve_mlflow_block, resolve_s3_block
from mlops_tasks.data import DatasetSpec, write_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import ServiceUnavailableError, StorageError
from mlops_tasks.monitoring import DriftSettings
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.tracking import resolve_and_check


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture(scope="module")
def remote(s3_server, tmp_path_factory, prefect_harness):
    """A bucket for MLflow's artifacts, one for data and logs, a real mlflow server, and the blocks."""
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    run = uuid.uuid4().hex[:8]
    artifacts, data = f"mlflow-{run}", f"data-{run}"
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket=artifacts)
    s3.create_bucket(Bucket=data)
    root = tmp_path_factory.mktemp("mlflow-s3")
    # the server, not the client, writes the artifacts: its environment holds the store's settings
    server_env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with start_mlflow_server(
        root, artifacts_destination=f"s3://{artifacts}/mlartifacts", env=server_env
    ) as url:
        MlflowServer(tracking_uri=url, experiment_name=f"remote-{run}").save(f"mlflow-{run}")
        AwsCredentials(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=s3_server),
        ).save(f"s3-{run}")
        yield {
            "url": url,
            "endpoint": s3_server,
            "artifacts": artifacts,
            "data": data,
            "mlflow": MlflowConfig(block=f"mlflow-{run}"),
            "s3": S3Config(block=f"s3-{run}"),
            "s3_block": f"s3-{run}",
        }


@pytest.fixture(scope="module")
def trained(remote, tmp_path_factory):
    """The training pipeline on data read from s3://, tracked by the remote server; champion on pass."""
    uri = write_dataset(
        make_churn_data(1500, seed=5),
        f"s3://{remote['data']}/churn/2026-11.parquet",
        s3=resolve_s3_block(remote["s3"]),  # core I/O: the block is resolved here, as the tasks do
    )
    model_name = f"remote-{uuid.uuid4().hex[:6]}"
    suite = tmp_path_factory.mktemp("suite") / "suite.json"
    result = training_pipeline(
        TrainingPipelineParams(
            model_name=model_name,
            dataset=DatasetSpec(uri=uri, s3=remote["s3"]),
            expectation_suite=str(suite),
            promote_on_pass=True,
            mlflow=remote["mlflow"],
        )
    )
    return result


def test_training_on_s3_data_stores_the_model_in_the_bucket(remote, trained):
    assert trained.version == 1 and trained.gate_passed and trained.promoted
    assert trained.tracking_uri == remote["url"]
    stored = keys(remote["endpoint"], remote["artifacts"], "mlartifacts/")
    names = {key.rsplit("/", 1)[-1] for key in stored}
    assert {"MLmodel", "train.parquet", "report.json"} <= names, sorted(names)
    # the run's artifacts are under the run's own folder in the bucket
    assert any(trained.run_id in key for key in stored)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=remote["url"], registry_uri=remote["url"])
    assert int(client.get_model_version_by_alias(trained.model_name, "champion").version) == 1
    assert client.get_run(trained.run_id).data.tags["mlops.data_uri"].startswith("s3://")


def test_served_predictions_logged_to_s3_feed_the_drift_check(remote, trained):
    sink = f"s3://{remote['data']}/prediction-log/churn"
    # the real model server loads the champion from the remote registry and logs to the bucket
    server = Server(
        [
            "--model-uri",
            f"models:/{trained.model_name}@champion",
            "--instance-name",
            "blue",
            "--log-sink",
            sink,
            "--s3-endpoint-url",
            remote["endpoint"],
            "--log-flush-interval",
            "0.2",
        ],
        env={"MLFLOW_TRACKING_URI": remote["url"]},
    )
    try:
        server.wait_healthy()
        drifted = make_churn_data(400, seed=8, drift=0.9).drop(columns=["churned"])
        for start in range(0, len(drifted), 100):
            status, _, body = call(
                server.port, "POST", "/invocations", json.dumps(split_body(drifted.iloc[start : start + 100]))
            )
            assert status == 200, body
    finally:
        assert server.stop() == 0, server.output
    assert keys(remote["endpoint"], remote["data"], "prediction-log/churn/date=")

    report = drift_check(
        DriftCheckParams(
            model_name=trained.model_name,
            prediction_log=sink,
            last_hours=1,
            s3=remote["s3"],
            report_location=f"s3://{remote['data']}/reports",
            mlflow=remote["mlflow"],
            settings=DriftSettings(min_rows=100, html_sample_rows=400),
            emit_event=False,
        )
    )
    assert report.status == "drift" and report.current_rows == 400 and report.served_versions == ["1"]
    assert report.html_uri.startswith(f"s3://{remote['data']}/reports/")
    assert report.html_uri.split("/", 3)[-1] in keys(remote["endpoint"], remote["data"], "reports/")
    # the monitoring run's artifacts went to the MLflow server's bucket too
    stored = keys(remote["endpoint"], remote["artifacts"])
    assert any(report.mlflow_run_id in key and key.endswith("drift/report.json") for key in stored)


def test_wrong_s3_credentials_name_what_to_fix(remote, tmp_path):
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    bad = f"bad-{uuid.uuid4().hex[:6]}"
    AwsCredentials(
        aws_access_key_id="AKIAOLDROTATEDKEY00",
        aws_secret_access_key="old",
        aws_client_parameters=AwsClientParameters(endpoint_url=remote["endpoint"]),
    ).save(bad)
    uri = f"s3://{remote['data']}/churn/2026-11.parquet"
    params = TrainingPipelineParams(
        model_name="never-trained",
        dataset=DatasetSpec(uri=uri, s3=S3Config(block=bad)),
        expectation_suite=str(tmp_path / "suite.json"),
        mlflow=remote["mlflow"],
    )
    reference = write_dataset(make_churn_data(200, seed=1), str(tmp_path / "reference.csv"))
    with s3_auth_enforced(remote["endpoint"]):
        with pytest.raises(StorageError) as data_error:
            training_pipeline(params)
        with pytest.raises(StorageError) as log_error:
            drift_check(
                DriftCheckParams(
                    model_name="never-trained",
                    reference=DatasetSpec(uri=reference),
                    last_hours=1,
                    prediction_log=f"s3://{remote['data']}/prediction-log/churn",
                    s3=S3Config(block=bad),
                    mlflow=remote["mlflow"],
                    log_to_mlflow=False,
                    emit_event=False,
                )
            )
    message = str(data_error.value)
    assert "InvalidAccessKeyId" in message and f"AwsCredentials block {bad!r}" in message and uri in message
    assert "check the S3 endpoint and credentials" in str(log_error.value)
    assert f"AwsCredentials block {bad!r}" in str(log_error.value)


def test_mlflow_server_down_is_a_clear_transient_error(prefect_harness):
    name = f"down-{uuid.uuid4().hex[:6]}"
    url = f"http://127.0.0.1:{free_port()}"
    MlflowServer(tracking_uri=url, request_timeout_s=2).save(name)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=rf"MLflow tracking server {url} did not answer"):
        resolve_and_check(resolve_mlflow_block(MlflowConfig(block=name)))
    assert time.monotonic() - started < 10
