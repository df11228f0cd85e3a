"""docs/operations.md's "Move to shared servers", run for real: Prefect and MLflow servers on PostgreSQL.

A throwaway PostgreSQL (Debian's package, run as an unprivileged user on a temporary data
folder) holds two databases: ``prefect`` (with the ``pg_trgm`` extension the Prefect server
needs) and ``mlflow``. A real Prefect server runs on the first (``postgresql+asyncpg://``), a
real ``mlflow server`` on the second (``postgresql+psycopg2://``) with its artifacts in the S3
API server the suite already uses. Against them, unchanged: the training pipeline, a blue-green
rollout on the local target, a Prefect deployment run (the drift check, served by a separate
process) over the traffic the rollout's servers logged. Then PostgreSQL down and a wrong
password: typed errors that name the service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import boto3
import pytest
from conftest import free_port, start_mlflow_server

from mlops_tasks.errors import DatabaseAuthError, DatabaseUnavailableError
from mlops_tasks.settings import MlflowConfig
from tests.orchestration_support import PROJECT, SERVER_SETTINGS, stop_process_group, wait_final, wait_for
from tests.postgres_support import postgres_server

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def services(s3_server, tmp_path_factory):
    """PostgreSQL, a Prefect server and an MLflow server on it, artifacts in S3; the test talks to both."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_server import start_server

    bucket = f"mlflow-pg-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    server_env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with postgres_server() as pg:
        pg.execute("postgres", "CREATE DATABASE prefect", "CREATE DATABASE mlflow")
        pg.execute("prefect", "CREATE EXTENSION IF NOT EXISTS pg_trgm")
        with start_mlflow_server(
            tmp_path_factory.mktemp("mlflow-pg"),
            artifacts_destination=f"s3://{bucket}/mlartifacts",
            env=server_env,
            backend_store_uri=pg.url("mlflow"),
        ) as mlflow_url:
            prefect_env = {
                **SERVER_SETTINGS,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg.url("prefect", "asyncpg"),
            }
            api = start_server(
                tmp_path_factory.mktemp("prefect-pg"),
                "127.0.0.1",
                free_port(),
                extra_env=prefect_env,
                ui=False,
            )
            try:
                with temporary_settings({PREFECT_API_URL: api.url}):
                    yield {
                        "pg": pg,
                        "mlflow": mlflow_url,
                        "prefect": api.url,
                        "bucket": bucket,
                        "s3": s3_server,
                    }
            finally:
                api.stop()


def rows(pg, database: str, sql: str) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(
        host="127.0.0.1", port=pg.port, user="postgres", password=pg.password, dbname=database
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def served_drift_check(services, state) -> subprocess.Popen:
    """``python -m deployments.serve --only drift-check/daily`` against the PostgreSQL-backed server."""
    env = {
        **os.environ,
        "PREFECT_API_URL": services["prefect"],
        "MLOPS_STATE_DIR": str(state),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PYTHONPATH": str(PROJECT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--only", "drift-check/daily"],
        cwd=PROJECT,
        env=env,
        stdout=open(state / "serve.log", "wb"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_training_rollout_and_a_deployment_run_of_the_drift_check_on_postgres(services, tmp_path):
    from prefect.deployments import run_deployment

    from flows.deployment import DeploymentPipelineParams, deployment_pipeline, stop_endpoint_flow
    from flows.training import DemoData, TrainingPipelineParams, training_pipeline
    from mlops_tasks.demo import make_churn_data
    from mlops_tasks.deploy import EndpointSpec, RolloutSpec
    from mlops_tasks.deploy.targets.base import http_post_json
    from mlops_tasks.evaluation import MetricThreshold, QualityGate
    from mlops_tasks.settings import state_dir
    from tests.orchestration_support import all_deployed

    mlflow = MlflowConfig(tracking_uri=services["mlflow"], experiment_name="on-postgres")
    name = f"pg-{uuid.uuid4().hex[:6]}"
    trained = training_pipeline(
        TrainingPipelineParams(
            model_name=name,
            demo=DemoData(rows=1000, seed=4),
            expectation_suite=str(tmp_path / "suite.json"),
            gate=QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)]),
            mlflow=mlflow,
        )
    )
    assert trained.version == 1 and trained.gate_passed
    # the registry lives in PostgreSQL, the model's files in the bucket
    assert rows(services["pg"], "mlflow", "SELECT name FROM registered_models") == [(name,)]
    stored = boto3.client("s3", endpoint_url=services["s3"]).list_objects_v2(Bucket=services["bucket"])
    assert any(obj["Key"].endswith("MLmodel") for obj in stored.get("Contents", []))

    endpoint = EndpointSpec(name=f"pg{uuid.uuid4().hex[:6]}", port=free_port(), preview_port=free_port())
    try:
        rollout = deployment_pipeline(
            DeploymentPipelineParams(
                model_name=name,
                endpoint=endpoint,
                rollout=RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
                mlflow=mlflow,
            )
        )
        assert rollout.outcome == "succeeded" and rollout.version == 1
        drifted = make_churn_data(300, seed=9, drift=0.9).drop(columns=["churned"])
        for start in range(0, 300, 100):
            body = {
                "dataframe_split": json.loads(
                    drifted.iloc[start : start + 100].to_json(orient="split", index=False)
                )
            }
            status, doc = http_post_json(f"127.0.0.1:{endpoint.port}", "/invocations", body)
            assert status == 200, doc
    finally:
        assert stop_endpoint_flow(endpoint.name) is True  # also flushes the servers' prediction log
    sink = state_dir() / "endpoints" / endpoint.name / "prediction-log"

    serving = served_drift_check(services, tmp_path)
    try:
        wait_for(lambda: all_deployed(["drift-check/daily"]), 180, "the drift-check deployment")
        run = run_deployment(
            "drift-check/daily",
            parameters={
                "params": {
                    "model_name": name,
                    "prediction_log": str(sink),
                    "last_hours": 1,
                    "settings": {"min_rows": 100, "html_sample_rows": 300},
                    "emit_event": False,
                    "mlflow": mlflow.model_dump(mode="json", exclude_none=True),
                }
            },
            timeout=0,
        )
        final = wait_final(run.id, timeout=300)
        assert final.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        # every run of this test is in the Prefect server's PostgreSQL database
        flows = {row[0] for row in rows(services["pg"], "prefect", "SELECT name FROM flow")}
        assert {"training-pipeline", "deployment-pipeline", "drift-check"} <= flows
        states = rows(services["pg"], "prefect", f"SELECT state_type FROM flow_run WHERE id = '{final.id}'")
        assert states == [("COMPLETED",)]
    finally:
        stop_process_group(serving)
    # and the drift check's monitoring run in MLflow's
    assert rows(services["pg"], "mlflow", "SELECT count(*) FROM runs")[0][0] >= 2


def test_postgres_down_or_a_wrong_password_names_the_service(services, tmp_path):
    from deployments.local_server import start_server
    from mlops_tasks.tracking import resolve_and_check

    pg = services["pg"]
    with pytest.raises(DatabaseAuthError, match="MLflow tracking store.*refused user 'postgres'") as auth:
        resolve_and_check(MlflowConfig(tracking_uri=pg.url("mlflow", password="wrong")))
    assert "wrong" not in str(auth.value)  # the password is never printed
    down = pg.url("mlflow").replace(f":{pg.port}/", f":{free_port()}/")
    with pytest.raises(DatabaseUnavailableError, match="MLflow tracking store.*did not answer"):
        resolve_and_check(MlflowConfig(tracking_uri=down))
    for url, error in (
        (pg.url("prefect", "asyncpg", password="wrong"), DatabaseAuthError),
        (pg.url("prefect", "asyncpg").replace(f":{pg.port}/", f":{free_port()}/"), DatabaseUnavailableError),
    ):
        with pytest.raises(error, match="Prefect server database"):
            start_server(
                tmp_path / "prefect",
                "127.0.0.1",
                free_port(),
                extra_env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": url},
            )
