"""Shared fixtures: an isolated state folder, a real MLflow store, a Prefect test harness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

# No usage telemetry from the tools under test (the machine may be offline), set
# before any of them is imported by a test module.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect servers the tests start tell a caller denied a global-concurrency slot (the retrain's
# claim lock) to retry after at most 1 s instead of 30 s: the claims tested are held for moments.
os.environ.setdefault("PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
# The `mlflow server`s the tests start run no MLflow jobs (GenAI evaluation, trace rollups): without
# this each starts 5 huey consumer processes (~250 MB and a Python start-up each) next to uvicorn.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

# `make test` runs the suite in xdist workers with `--dist loadgroup`, one group at a time per
# worker: a module, or a module's tests on one deploy target (`target_kind`), so module-scoped
# servers and endpoints start once per group. Groups are handed out longest first (from
# `--durations`), so that no worker is left with a long group at the end; the rest follow in
# file order.
LONGEST_GROUPS_FIRST = (
    "test_deploy_contract-docker",
    "test_deploy_contract-local",
    "test_containerize",
    "test_airflow_provider",
    "test_rollout_faults-docker",
    "test_rollout_faults-local",
    "test_deploy_supervision",
    "test_orchestration",
    "test_orchestration_docker",
    "test_endpoint_security",
    "test_abtest_e2e",
    "test_postgres_services",
    "test_scoring_dask",
)


def xdist_group_of(item: pytest.Item) -> str:
    """The module's name, with the deploy target for tests parametrized by ``target_kind``."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target_kind") if callspec is not None else None
    return f"{item.path.stem}-{target}" if target else item.path.stem


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its xdist group and put the longest groups first (a stable sort)."""
    rank = {name: position for position, name in enumerate(LONGEST_GROUPS_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))
    items.sort(key=lambda item: rank.get(xdist_group_of(item), len(rank)))


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under ``--dist loadgroup``, stop unless the xdist groups reached the collected nodeids.

    pytest-xdist tells its controller a test's group by appending ``@group`` to the nodeid a worker
    reports; on a pytest where that no longer sticks (9.x builds nodeids from a structured id),
    every test silently becomes a group of its own: module-scoped servers start once per worker,
    and tests that build on one another land on different workers.
    """
    ungrouped = [nodeid for nodeid in ids if "@" not in nodeid]
    if node.config.getvalue("dist") == "loadgroup" and ungrouped:
        raise pytest.UsageError(
            f"--dist loadgroup: {len(ungrouped)} collected tests carry no xdist group in their nodeid "
            f"(first: {ungrouped[0]}); pytest-xdist's grouping does not work with this pytest "
            "(9.x builds nodeids differently): install the locked versions (`make install`)"
        )


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


@contextlib.contextmanager
def start_mlflow_server(
    root: Path,
    *,
    artifacts_destination: str,
    env: dict[str, str] | None = None,
    backend_store_uri: str | None = None,
) -> Iterator[str]:
    """A real ``mlflow server`` on a loopback port (SQLite store in ``root``); yields its URL.

    Args:
        root: Folder for the server's database and log (``server.log``).
        artifacts_destination: Where the server stores artifacts it proxies (a folder or ``s3://...``).
        env: Extra environment of the server (``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*`` for an S3 store).
        backend_store_uri: Another store than the SQLite file (``postgresql+psycopg2://...``).
    """
    port = free_port()
    # `python -m mlflow`: the server runs on this interpreter (and its drivers, e.g. psycopg2),
    # whatever interpreter the `mlflow` script's shebang names
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend_store_uri or f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination",
                artifacts_destination,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"mlflow server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        try:
            yield url
        finally:
            # uvicorn's graceful stop waits for idle keep-alive clients; the store is SQLite
            # (committed per request), so a short grace is enough before SIGKILL.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """An S3 API server (moto's server mode) on a loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            patch.setenv(name, value)
        yield f"http://{host}:{port}"
    server.stop()


@contextlib.contextmanager
def s3_auth_enforced(endpoint: str) -> Iterator[None]:
    """Make the loopback S3 server check credentials for a block (moto accepts any by default).

    Credentials unknown to the server are then refused with ``InvalidAccessKeyId``, as AWS does.
    """
    import urllib.request

    def reset_auth(count: str) -> None:
        url = f"{endpoint}/moto-api/reset-auth"
        request = urllib.request.Request(
            url, data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


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
