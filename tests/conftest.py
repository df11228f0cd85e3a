"""Shared fixtures: an isolated state folder, a real MLflow store, a Prefect test harness."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

# No usage telemetry from the tools under test (the machine may be offline), set
# before any of them is imported by a test module.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs with its own state folder and no MLflow/S3 settings from outside."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(state))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        yield state


@pytest.fixture(scope="session")
def mlflow_config(tmp_path_factory: pytest.TempPathFactory):
    """A real MLflow SQLite store shared by the session (tests use unique model names)."""
    from mlops_tasks.settings import MlflowConfig

    root = tmp_path_factory.mktemp("mlflow")
    return MlflowConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        experiment_name="tests",
    )


@pytest.fixture
def model_name() -> str:
    """A registered-model name no other test uses."""
    return f"model-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def churn() -> pd.DataFrame:
    """Reference demo data (2,000 rows)."""
    from mlops_tasks.demo import make_churn_data

    return make_churn_data(2000, seed=3)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API (SQLite) for all tests that run tasks or flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """An S3 API server (moto's server mode) on a loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            patch.setenv(name, value)
        yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str):
    """A fresh bucket on the loopback S3 server; yields ``(S3Config, bucket name)``."""
    import boto3

    from mlops_tasks.settings import S3Config

    config = S3Config(endpoint_url=s3_server)
    bucket = f"bucket-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", **config.client_kwargs()).create_bucket(Bucket=bucket)
    return config, bucket


def client_for(config):
    """An MlflowClient bound to both the tracking store and the registry of ``config``."""
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import get_client

    return get_client(resolve_mlflow_config(config))
