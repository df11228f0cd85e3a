"""Deployments, schedules and automations against a real ``prefect server start``.

One Prefect server (own SQLite database and PREFECT_HOME in tmp, short scheduler
loops) and one ``python -m deployments.serve`` process serve every test of this file;
both are started here and killed by PID (the serve process with its process group, so
flow-run subprocesses go too) at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deployments.definitions import DEFAULT_WORK_POOL, DEPLOYMENTS, by_name
from tests.conftest import free_port
from tests.orchestration_support import (
    PROJECT,
    all_deployed,
    prefect_server,
    stop_process_group,
    wait_final,
    wait_for,
)
from tests.orchestration_support import client as _client

pytestmark = pytest.mark.timeout(600)

MODEL = "churn-classifier"
SCHEDULED_INTERVAL_S = 5


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on a free loopback port; the test process talks to it."""
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


@pytest.fixture(scope="module")
def orchestration_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State folder (MLflow store, expectations, notifications) of the served flow runs."""
    return tmp_path_factory.mktemp("served-state")


@pytest.fixture(scope="module")
def serving(prefect_api: str, orchestration_state: Path) -> Iterator[subprocess.Popen]:
    """``python -m deployments.serve --automations`` with the drift check every few seconds."""
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": prefect_api,
            "MLOPS_STATE_DIR": str(orchestration_state),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PYTHONPATH": str(PROJECT),
        }
    )
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    # Create the MLflow SQLite store once, before several flow runs would race to migrate it.
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import get_client

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(orchestration_state))
        get_client(resolve_mlflow_config()).search_experiments()
    log = orchestration_state / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            # at most 3 flow runs at once (each is a Python process of ~300 MB)
            [sys.executable, "-m", "deployments.serve", "--automations", "--limit", "3"],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        names = [spec.full_name for spec in DEPLOYMENTS]
        wait_for(lambda: all_deployed(names) or process.poll() is not None, 120, "deployments served")
        assert process.poll() is None, log.read_text()
        wait_for(
            lambda: (
                "created mlops-retrain-on-drift" in log.read_text()
                or "updated mlops-retrain-on-drift" in log.read_text()
            ),
            60,
            "automations applied",
        )
        yield process
    finally:
        stop_process_group(process)


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
    from deployments.serve import build_deployments

    [served] = build_deployments(only=["drift-check"], intervals={"daily": 30})
    assert [(s.schedule.interval.total_seconds(), s.active) for s in served.schedules] == [(30.0, True)]
    assert served.parameters == by_name("drift-check").parameters()
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
    run = wait_final(flow_run.id)
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}"
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    keys = {artifact.key for artifact in artifacts if artifact.key}
    assert {"validation-churn-demo", f"evaluation-{MODEL}", f"gate-{MODEL}"} <= keys, keys
    gate = next(a for a in artifacts if a.key == f"gate-{MODEL}")
    assert gate.description == "Quality gate passed"
    rows = json.loads(gate.data)
    assert all(row["result"] == "pass" for row in rows), gate.data
    assert all(row["observed"] is None or row["observed"] == round(row["observed"], 4) for row in rows)


def test_interval_schedule_produces_a_completed_run(
    prefect_api: str, serving: subprocess.Popen, orchestration_state: Path
) -> None:
    """An interval schedule added to the served drift check (as the UI's schedule editor does).

    The scheduler creates its runs; the serving process runs them; the first must
    complete: it follows the demo endpoint (deployed with version 1 of the model the Run
    button trained, as `make demo` leaves it) whose prediction log is empty yet, so its
    verdict is "not enough traffic", not a failure.
    """
    from datetime import timedelta

    from prefect.client.schemas.schedules import IntervalSchedule

    from deployments.definitions import DEMO_ENDPOINT
    from mlops_tasks.deploy.models import DeploymentRecord
    from mlops_tasks.deploy.state import append_record

    with pytest.MonkeyPatch.context() as patch:  # the endpoint's history as a finished deployment leaves it
        patch.setenv("MLOPS_STATE_DIR", str(orchestration_state))
        append_record(
            DeploymentRecord(
                id="demo-1",
                endpoint=DEMO_ENDPOINT,
                target="local",
                model_name=MODEL,
                version=1,
                strategy="canary",
                outcome="succeeded",
            )
        )
    full_name = by_name("drift-check").full_name
    with _client() as client:
        deployment = client.read_deployment_by_name(full_name)
        [added] = client.create_deployment_schedules(  # one scheduled run at a time, not three in parallel
            deployment.id,
            [(IntervalSchedule(interval=timedelta(seconds=SCHEDULED_INTERVAL_S)), True)],
            max_scheduled_runs=1,
        )
    try:
        # The first scheduled run the serving process picked up; then pause at once (which
        # deletes the runs still Scheduled), so runs slower than the interval cannot pile up.
        run = wait_for(
            lambda: next(
                (
                    r
                    for r in _deployment_runs(full_name)
                    if r.auto_scheduled and r.state and not r.state.is_scheduled()
                ),
                None,
            ),
            120,
            "the serving process to pick up a scheduled drift-check run",
            0.5,
        )
    finally:
        # Pause, drop the 5-second schedule and the runs it left Scheduled: whatever resumes the
        # deployment later (the module's other tests apply deployments again), no run every 5 s
        # follows; once, in CI, runs slower than the interval piled up (a Python process each)
        # until the machine ran out of memory.
        with _client() as client:
            client.pause_deployment(deployment.id)
            client.delete_deployment_schedule(deployment.id, added.id)
            for left in _deployment_runs(full_name):
                if left.auto_scheduled and left.state and left.state.is_scheduled():
                    client.delete_flow_run(left.id)
    run = wait_final(run.id, 180)
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}"
    assert (run.state.message or "").startswith("Not enough traffic"), run.state.message


def _fresh_dataset(folder: Path) -> str:
    from mlops_tasks.demo import make_churn_data

    path = folder / "fresh-labelled.csv"
    make_churn_data(400, seed=11).to_csv(path, index=False)
    return str(path)


def test_drift_event_starts_retrain_and_cooldown_skips_the_next(
    prefect_api: str, serving: subprocess.Popen, orchestration_state: Path
) -> None:
    """mlops.drift.detected -> the applied automation runs retrain for the event's model."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.events.clients import PrefectEventsClient
    from prefect.events.worker import EventsWorker

    from deployments import automations
    from mlops_tasks.drift_events import emit_drift_event
    from mlops_tasks.monitoring import DriftReport

    spec = by_name("retrain-pipeline")
    with _client() as client:
        deployment = client.read_deployment_by_name(spec.full_name)
        params = dict(deployment.parameters["params"])
        # What an operator sets on the deployment: where fresh labelled data is, no blue-green
        # deploy here (the deploy tests cover it), a model name only the event can override.
        params.update(
            model_name="set-by-the-event",
            dataset={"uri": _fresh_dataset(orchestration_state)},
            deploy=False,
            fail_on_gate=False,
        )
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={"params": params}))
    applied = automations.apply()  # serve --automations created them: update in place, same ids
    assert applied == automations.apply() and all(line.startswith("updated ") for line in applied)
    with _client() as client:
        [automation] = client.read_automations_by_name(automations.RETRAIN_ON_DRIFT)
    assert automation.actions[0].parameters["params"]["model_name"] == automations.MODEL_NAME_FROM_EVENT

    def emit() -> None:
        # Prefect keeps one events worker per process, bound to the API URL of its first use
        # (the session's test harness when other test files ran before): point it at this server.
        EventsWorker.set_client_override(PrefectEventsClient, api_url=prefect_api)
        try:
            report = DriftReport(status="drift", reason="test drift", model_name=MODEL, model_version="1")
            assert emit_drift_event(report) is not None
            EventsWorker.drain_all()
        finally:
            EventsWorker.set_client_override(None)

    emit()
    first = wait_for(lambda: next(iter(_deployment_runs(spec.full_name)), None), 60, "a retrain run")
    assert first.parameters["params"]["model_name"] == MODEL
    first = wait_final(first.id, 240)
    assert first.state.is_completed(), f"{first.state.name}: {first.state.message}"
    assert first.state.name in ("Completed", "GateFailed")

    emit()
    second = wait_for(
        lambda: next((r for r in _deployment_runs(spec.full_name) if r.id != first.id), None),
        60,
        "a second retrain run",
    )
    second = wait_final(second.id, 120)
    assert second.state.is_completed() and second.state.name == "Skipped", second.state
    assert "cool-down" in (second.state.message or "")
    assert second.parameters["params"]["model_name"] == MODEL


def test_failed_deployment_pipeline_sends_a_notification(
    prefect_api: str, serving: subprocess.Popen, orchestration_state: Path
) -> None:
    """A failing deployment-pipeline run -> the automation -> the log-only notification block."""
    spec = by_name("deployment-pipeline")
    params = spec.parameters()["params"]
    params["model_name"] = "no-such-model"
    with _client() as client:
        deployment = client.read_deployment_by_name(spec.full_name)
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={"params": params})
    run = wait_final(flow_run.id, 120)
    assert run.state.is_failed(), run.state
    notifications = orchestration_state / "notifications.jsonl"

    def notified():
        if not notifications.exists():
            return None
        return next((line for line in notifications.read_text().splitlines() if run.name in line), None)

    line = wait_for(notified, 60, f"a notification about {run.name} in {notifications}")
    assert "deployment-pipeline" in line and "Failed" in line and "no-such-model" in line


def test_prefect_server_down_is_a_clear_error(prefect_api: str, capsys: pytest.CaptureFixture) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments import automations, serve

    dead = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings({PREFECT_API_URL: dead}):
        assert automations.main(["apply"]) == 1
        assert serve.main(["--only", "training-pipeline"]) == 2
    err = capsys.readouterr().err
    assert err.count(f"The Prefect API at {dead} does not answer") == 2, err
    assert "PREFECT_API_URL" in err


def test_serve_refuses_a_limit_below_one_before_anything_starts(capsys: pytest.CaptureFixture) -> None:
    from deployments import serve

    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--limit", "0"])
    assert exit_info.value.code == 2
    assert "--limit must be at least 1 (got 0)" in capsys.readouterr().err


def _prefect_deploy(prefect_file: Path, api_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(prefect_file),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_unknown_work_pool_is_a_clear_error(prefect_api: str, tmp_path: Path) -> None:
    from deployments import prefect_yaml

    prefect_file = tmp_path / "prefect.yaml"
    prefect_yaml.main(["write", "--path", str(prefect_file), "--work-pool", "no-such-pool"])
    result = _prefect_deploy(prefect_file, prefect_api)
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "references work pool 'no-such-pool' which does not exist" in output, output[-2000:]


def test_unknown_notification_block_is_a_clear_error(prefect_api: str, serving: subprocess.Popen) -> None:
    from deployments import automations
    from mlops_tasks.errors import BlockNotFoundError

    with pytest.raises(BlockNotFoundError, match="prefect block create slack-webhook"):
        automations.apply(notify="slack-webhook/no-such-block")
    with pytest.raises(BlockNotFoundError, match="<block type slug>/<block name>"):
        automations.apply(notify="no-slash")


def test_automation_of_a_deleted_deployment_is_a_clear_error(
    prefect_api: str, serving: subprocess.Popen
) -> None:
    """Deleting the retrain deployment leaves the automation dangling: check and apply say what to do."""
    from deployments import automations
    from mlops_tasks.errors import PrefectDeploymentNotFoundError

    full_name = by_name("retrain-pipeline").full_name
    with _client() as client:
        client.delete_deployment(client.read_deployment_by_name(full_name).id)
    with pytest.raises(PrefectDeploymentNotFoundError, match="no longer exists") as checked:
        automations.check()
    assert automations.RETRAIN_ON_DRIFT in str(checked.value) and full_name in str(checked.value)
    with pytest.raises(PrefectDeploymentNotFoundError, match="does not exist") as applied:
        automations.apply()
    assert full_name in str(applied.value) and "prefect deploy --all" in str(applied.value)


def test_prefect_deploy_creates_the_table_on_the_process_pool(prefect_api: str, tmp_path: Path) -> None:
    """``prefect deploy --all`` with the committed prefect.yaml; then the automations apply again."""
    from prefect.client.schemas.actions import WorkPoolCreate

    from deployments import automations

    with _client() as client:
        client.create_work_pool(WorkPoolCreate(name=DEFAULT_WORK_POOL, type="process"), overwrite=True)
    result = _prefect_deploy(PROJECT / "prefect.yaml", prefect_api)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with _client() as client:
        for spec in DEPLOYMENTS:
            deployment = client.read_deployment_by_name(spec.full_name)
            assert deployment.work_pool_name == DEFAULT_WORK_POOL
            assert deployment.parameters == spec.parameters()
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}
            ]
    automations.apply()
    assert [line.split()[:2] for line in automations.check()] == [
        ["ok", automations.RETRAIN_ON_DRIFT],
        ["ok", automations.NOTIFY_DEPLOYMENT_FAILED],
    ]
