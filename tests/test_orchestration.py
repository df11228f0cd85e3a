"""Deployments, schedules and automations against a real ``prefect server start``.

One Prefect server (own SQLite database and PREFECT_HOME in tmp, short scheduler
loops) and one ``python -m deployments.serve`` process serve every test of this file;
both are started here and killed by PID (the serve process with its process group, so
flow-run subprocesses go too) at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from deployments.definitions import DEFAULT_WORK_POOL, DEPLOYMENTS, by_name
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(600)

PROJECT = Path(__file__).resolve().parent.parent
MODEL = "churn-classifier"
SCHEDULED_INTERVAL_S = 15
SERVER_SETTINGS = {
    # The scheduler and the "recent deployments" pass every second instead of every 60 s / 5 s.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on a free loopback port; the test process talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_server import start_server

    api = start_server(tmp_path_factory.mktemp("prefect-home"), "127.0.0.1", free_port(),
                       extra_env=SERVER_SETTINGS, ui=False)
    try:
        with temporary_settings({PREFECT_API_URL: api.url}):
            yield api.url
    finally:
        api.stop()


@pytest.fixture(scope="module")
def orchestration_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State folder (MLflow store, expectations, notifications) of the served flow runs."""
    return tmp_path_factory.mktemp("served-state")


@pytest.fixture(scope="module")
def serving(prefect_api: str, orchestration_state: Path) -> Iterator[subprocess.Popen]:
    """``python -m deployments.serve --automations`` with the drift check every few seconds."""
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": prefect_api,
        "MLOPS_STATE_DIR": str(orchestration_state),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PYTHONPATH": str(PROJECT),
    })
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    log = orchestration_state / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve", "--automations",
             "--interval", f"drift-check={SCHEDULED_INTERVAL_S}"],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for(lambda: _all_deployed() or process.poll() is not None, 120, "deployments served")
        assert process.poll() is None, log.read_text()
        _wait_for(lambda: "created mlops-retrain-on-drift" in log.read_text()
                  or "updated mlops-retrain-on-drift" in log.read_text(), 60, "automations applied")
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        try:  # flow-run subprocesses left behind in the group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _all_deployed() -> bool:
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            for spec in DEPLOYMENTS:
                client.read_deployment_by_name(spec.full_name)
        except ObjectNotFound:
            return False
    return True


def _wait_final(flow_run_id: UUID, timeout: float = 180):
    def final():
        with _client() as client:
            run = client.read_flow_run(flow_run_id)
        return run if run.state is not None and run.state.is_final() else None

    return _wait_for(final, timeout, f"flow run {flow_run_id} to finish", interval=1.0)


def _deployment_runs(full_name: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with _client() as client:
        deployment = client.read_deployment_by_name(full_name)
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            sort=FlowRunSort.START_TIME_ASC,
        )


def test_prefect_yaml_matches_the_table(tmp_path: Path) -> None:
    from deployments import prefect_yaml

    assert prefect_yaml.main(["check"]) == 0, "stale: python -m deployments.prefect_yaml write"
    document = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    entries = {entry["name"]: entry for entry in document["deployments"]}
    assert set(entries) == {spec.name for spec in DEPLOYMENTS}
    for spec in DEPLOYMENTS:
        assert entries[spec.name]["parameters"] == spec.parameters()
        assert entries[spec.name]["work_pool"]["name"] == DEFAULT_WORK_POOL
    assert entries["daily"]["schedules"] == [{"cron": "0 6 * * *", "timezone": "UTC", "active": True}]
    assert entries["retrain"]["schedules"][0]["active"] is False
    stale = tmp_path / "prefect.yaml"
    stale.write_text("deployments: []\n")
    assert prefect_yaml.main(["check", "--path", str(stale)]) == 1


def test_served_deployments_carry_the_table(prefect_api: str, serving: subprocess.Popen) -> None:
    with _client() as client:
        for spec in DEPLOYMENTS:
            deployment = client.read_deployment_by_name(spec.full_name)
            assert deployment.description == spec.description
            assert set(spec.tags) <= set(deployment.tags)
            assert deployment.parameters == spec.parameters()
            assert deployment.parameter_openapi_schema["properties"], spec.full_name
        retrain = client.read_deployment_by_name(by_name("retrain-pipeline").full_name)
        assert [s.active for s in retrain.schedules] == [False]


def test_run_button_runs_training_and_leaves_artifacts(prefect_api: str, serving: subprocess.Popen) -> None:
    """What the UI's Run button does: a flow run from the deployment with the form's parameters."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    spec = by_name("training-pipeline")
    params = spec.parameters()["params"]
    params.update(model_name=MODEL, demo={"rows": 2000, "seed": 3, "drift": 0.0}, promote_on_pass=True)
    with _client() as client:
        deployment = client.read_deployment_by_name(spec.full_name)
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={"params": params})
    run = _wait_final(flow_run.id)
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}"
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    keys = {artifact.key for artifact in artifacts if artifact.key}
    assert {"validation-churn-demo", f"evaluation-{MODEL}", f"gate-{MODEL}"} <= keys, keys
    gate = next(a for a in artifacts if a.key == f"gate-{MODEL}")
    assert "PASSED" in (gate.description or "") + str(gate.data)


def test_interval_schedule_produces_a_completed_run(prefect_api: str, serving: subprocess.Popen) -> None:
    """The scheduler creates drift-check runs every few seconds; the served process runs them.

    The first ones may fail while the training test has not registered a champion yet;
    one scheduled after it must complete (status not_enough_data: the log is empty).
    """
    def completed_scheduled_run():
        runs = _deployment_runs(by_name("drift-check").full_name)
        return next((r for r in runs if r.auto_scheduled and r.state and r.state.is_completed()), None)

    try:
        run = _wait_for(completed_scheduled_run, 120, "a scheduled drift-check run to complete", 1.0)
        assert run.auto_scheduled
    finally:
        with _client() as client:  # no more scheduled runs for the rest of the file
            client.pause_deployment(client.read_deployment_by_name(by_name("drift-check").full_name).id)
