"""The retrain pipeline under a real Prefect API, a real MLflow store and the local deploy target.

The end-to-end test is the issue's check: a served model sees undrifted then drifted
traffic, the drift check says no drift then drift (one event, read back from the
Prefect API), and the retrain on the drifted, labelled window registers a new version
and deploys it blue-green; a retrain whose gate cannot pass leaves champion and router
alone. The others cover the cool-down (sequential and concurrent starts), approval
that times out or is rejected, and bad inputs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest
from conftest import client_for, free_port
from test_flows_monitoring import read_artifacts, wait_for_events

from flows.retrain import ApprovalInput, RetrainParams, retrain_pipeline
from flows.training import DemoData, TrainingPipelineParams, training_pipeline
from mlops_tasks.data import DatasetSpec, write_dataset
from mlops_tasks.demo import TARGET, make_churn_data
from mlops_tasks.errors import ConfigurationError, DataError, ModelNotFoundError, ReferenceDataNotFoundError
from mlops_tasks.evaluation import MetricThreshold, QualityGate
from mlops_tasks.retrain import TAG_RETRAIN_STARTED_AT, claim_retrain
from mlops_tasks.tasks.retrain import prefect_claim_lock
from mlops_tasks.tracking import sklearn_model_requirements

LENIENT_GATE = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
IMPOSSIBLE_GATE = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.999)])


def champion_model(mlflow_config, rows: int = 1500) -> str:
    """A model trained by the training pipeline (so it records its training split), promoted champion."""
    name = f"retrain-{uuid.uuid4().hex[:8]}"
    result = training_pipeline(
        TrainingPipelineParams(
            model_name=name,
            demo=DemoData(rows=rows, seed=11),
            promote_on_pass=True,
            mlflow=mlflow_config,
        )
    )
    assert result.gate_passed and result.champion_version == 1
    return name


def fresh_csv(tmp_path, rows: int = 400, seed: int = 77, drift: float = 0.3) -> DatasetSpec:
    path = tmp_path / f"fresh-{seed}.csv"
    write_dataset(make_churn_data(rows, seed=seed, drift=drift), str(path))
    return DatasetSpec(uri=str(path))


def champion_of(mlflow_config, name: str) -> int:
    return int(client_for(mlflow_config).get_model_version_by_alias(name, "champion").version)


@pytest.fixture
def live_model(prefect_harness, mlflow_config) -> str:
    return champion_model(mlflow_config)


@pytest.fixture(scope="module")
def shared_model(prefect_harness, mlflow_config) -> str:
    """A champion for tests that run with the cool-down off and leave the champion where it is."""
    return champion_model(mlflow_config)


# -- the end-to-end check ------------------------------------------------------------------


def post(port: int, frame: pd.DataFrame, request_id: str) -> dict:
    from test_serving import call, split_body

    status, headers, body = call(
        port, "POST", "/invocations", json.dumps(split_body(frame)), headers={"X-Request-ID": request_id}
    )
    assert status == 200, body
    return headers


def send_window(port: int, frame: pd.DataFrame, prefix: str, batch: int = 50) -> pd.DataFrame:
    """POST ``frame`` (without its target) in batches; return the labels keyed like the log."""
    labels = []
    for i, start in enumerate(range(0, len(frame), batch)):
        chunk = frame.iloc[start : start + batch]
        rid = f"{prefix}-{i}"
        post(port, chunk.drop(columns=[TARGET]), rid)
        labels.append(
            pd.DataFrame({"request_id": rid, "row": range(len(chunk)), "label": chunk[TARGET].to_numpy()})
        )
    return pd.concat(labels, ignore_index=True)


def test_drift_then_retrain_deploys_new_version_and_failed_gate_leaves_production(
    prefect_harness, mlflow_config, tmp_path
):
    from flows.deployment import DeploymentPipelineParams, deployment_pipeline
    from flows.monitoring import DriftCheckParams, drift_check
    from mlops_tasks.deploy import EndpointSpec, RolloutSpec, describe_deployment, stop_endpoint
    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.monitoring import DriftSettings

    name = champion_model(mlflow_config, rows=2000)
    endpoint = EndpointSpec(name=f"rt{uuid.uuid4().hex[:6]}", port=free_port(), preview_port=free_port())
    rollout = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0)
    smoke = fresh_csv(tmp_path, rows=200, seed=5, drift=0.0)
    try:
        first = deployment_pipeline(
            DeploymentPipelineParams(
                model_name=name,
                version=1,
                endpoint=endpoint,
                rollout=rollout,
                smoke_dataset=smoke,
                mlflow=mlflow_config,
            )
        )
        assert first.outcome == "succeeded" and champion_of(mlflow_config, name) == 1

        t0 = datetime.now(UTC)
        calm_labels = send_window(endpoint.port, make_churn_data(600, seed=41), "calm")
        time.sleep(0.6)
        t1 = datetime.now(UTC)
        drift_labels = send_window(endpoint.port, make_churn_data(600, seed=42, drift=0.9), "drift")
        time.sleep(0.6)
        t2 = datetime.now(UTC)
        time.sleep(1.2)  # the servers flush their log every 0.5 s

        log = str(endpoint_dir(endpoint.name) / "prediction-log")
        common = {
            "model_name": name,
            "prediction_log": log,
            "mlflow": mlflow_config,
            "settings": DriftSettings(min_rows=200, html_sample_rows=1000),
            "report_location": str(tmp_path / "reports"),
        }
        calm = drift_check(DriftCheckParams(start=t0, end=t1, **common))
        assert calm.status == "ok" and calm.current_rows == 600, calm.reason
        assert wait_for_events(name, 0, timeout=3) == []
        moved = drift_check(DriftCheckParams(start=t1, end=t2, **common))
        assert moved.status == "drift" and moved.current_rows == 600, moved.reason
        events = wait_for_events(name, 1)
        assert len(events) == 1 and events[0].resource["mlops.model.name"] == name
        assert events[0].resource["mlops.model.version"] == "1"

        # The automation passes the model name; the deployment's defaults say where labels are.
        labels = tmp_path / "drift-labels.csv"
        drift_labels.to_csv(labels, index=False)
        params = RetrainParams(
            model_name=events[0].resource["mlops.model.name"],
            labels=DatasetSpec(uri=str(labels)),
            prediction_log=log,
            start=t1,
            end=t2,
            endpoint=endpoint,
            rollout=rollout,
            cooldown_minutes=0,
            mlflow=mlflow_config,
        )
        state = retrain_pipeline(params, return_state=True)
        assert state.is_completed() and state.name == "Completed", state.message
        result = state.result()
        assert result.outcome == "deployed" and result.deployed and result.version == 2
        assert result.data.fresh_rows == 600 and result.data.reference_rows == 1600
        assert result.previous_champion == 1 and result.champion_version == 2
        assert champion_of(mlflow_config, name) == 2
        info = describe_deployment(endpoint.name)
        assert info.live_version == 2 and info.model_name == name
        headers = post(endpoint.port, make_churn_data(3, seed=1).drop(columns=[TARGET]), "after")
        assert headers.get("x-model-version") == "2", headers

        # A gate nothing can pass: version 3 is registered without alias, production stays on 2.
        calm_file = tmp_path / "calm-labels.csv"
        calm_labels.to_csv(calm_file, index=False)
        failed = retrain_pipeline(
            params.model_copy(
                update={
                    "labels": DatasetSpec(uri=str(calm_file)),
                    "start": t0,
                    "end": t1,
                    "gate": IMPOSSIBLE_GATE,
                }
            ),
            return_state=True,
        )
        assert failed.is_failed() and "failed its quality gate" in failed.message
        assert "accuracy" in failed.message and "production untouched" in failed.message
        verdict = failed.result(raise_on_failure=False)
        assert verdict.outcome == "gate_failed" and verdict.version == 3 and not verdict.deployed
        assert champion_of(mlflow_config, name) == 2 and describe_deployment(endpoint.name).live_version == 2
        assert client_for(mlflow_config).get_model_version(name, "3").aliases == []
        assert read_artifacts(f"retrain-{name}".lower())  # the decision, as markdown
    finally:
        stop_endpoint(endpoint.name)


# -- cool-down ---------------------------------------------------------------------------------------


def test_concurrent_starts_train_once_and_later_runs_are_skipped(live_model, mlflow_config, tmp_path):
    params = RetrainParams(
        model_name=live_model,
        dataset=fresh_csv(tmp_path),
        deploy=False,
        cooldown_minutes=60,
        mlflow=mlflow_config,
    )
    states: list = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        states[i] = retrain_pipeline(params, return_state=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    names = sorted(s.name for s in states)
    assert names == ["Completed", "Skipped"], [(s.name, s.message) for s in states]
    trained = next(s for s in states if s.name == "Completed").result()
    assert trained.outcome == "trained" and trained.version == 2
    skipped = next(s for s in states if s.name == "Skipped")
    assert skipped.is_completed() and "cool-down" in skipped.message and "no retrain until" in skipped.message
    assert skipped.result().outcome == "skipped" and skipped.result().version is None

    started = time.monotonic()
    again = retrain_pipeline(params, return_state=True)
    assert again.name == "Skipped" and "cool-down" in again.message
    assert time.monotonic() - started < 15  # nothing loaded or trained
    until = again.result().cooldown_until
    assert until is not None and until.isoformat(timespec="seconds") in again.message
    versions = client_for(mlflow_config).search_model_versions(f"name = '{live_model}'")
    assert len(versions) == 2

    # cooldown_minutes=0 turns the check off.
    forced = retrain_pipeline(params.model_copy(update={"cooldown_minutes": 0}), return_state=True)
    assert forced.name == "Completed" and forced.result().outcome == "trained"


def test_claim_is_atomic_across_processes(prefect_harness, mlflow_config):
    """Four processes claim the same model at once: exactly one wins."""
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from mlops_tasks.registry import check_model_name
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import get_client

    name = check_model_name(f"claim-{uuid.uuid4().hex[:8]}")
    get_client(resolve_mlflow_config(mlflow_config)).create_registered_model(name)
    code = (
        "import json, sys\n"
        "from mlops_tasks.retrain import claim_retrain\n"
        "from mlops_tasks.settings import MlflowConfig\n"
        "from mlops_tasks.tasks.retrain import prefect_claim_lock\n"
        "cfg = MlflowConfig.model_validate_json(sys.argv[2])\n"
        "c = claim_retrain(sys.argv[1], cooldown_minutes=30, claimant=sys.argv[3], mlflow_config=cfg,\n"
        "                  lock=prefect_claim_lock)\n"
        "print(json.dumps({'claimed': c.claimed}))\n"
    )
    import os

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, name, mlflow_config.model_dump_json(), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    claimed = [json.loads(out.strip().splitlines()[-1])["claimed"] for out, _ in outs]
    assert claimed.count(True) == 1, claimed
    later = claim_retrain(
        name, cooldown_minutes=30, claimant="late", mlflow_config=mlflow_config, lock=prefect_claim_lock
    )
    assert not later.claimed and "cool-down" in later.reason
    winner = f"p{claimed.index(True)}"  # a retry of the winner keeps its claim
    assert claim_retrain(
        name, cooldown_minutes=30, claimant=winner, mlflow_config=mlflow_config, lock=prefect_claim_lock
    ).claimed


# -- approval ------------------------------------------------------------------------------------------


def test_approval_timeout_and_rejection_do_not_deploy(shared_model, mlflow_config, tmp_path):
    live_model = shared_model
    from prefect.flow_runs import resume_flow_run

    params = RetrainParams(
        model_name=live_model,
        dataset=fresh_csv(tmp_path),
        require_approval=True,
        approval_timeout_s=2,
        cooldown_minutes=0,
        endpoint={"name": "never-started", "port": free_port()},
        mlflow=mlflow_config,
        gate=LENIENT_GATE,  # the approval is under test here, not the gate
    )
    state = retrain_pipeline(params, return_state=True)
    assert state.is_completed() and state.name == "ApprovalTimedOut", state.message
    assert "not approved within 2s" in state.message and "not deployed" in state.message
    result = state.result()
    assert result.outcome == "approval_timed_out" and not result.deployed and result.gate_passed
    assert champion_of(mlflow_config, live_model) == 1

    # A reviewer answers through the run's input form (what the UI sends).
    from prefect.client.orchestration import get_client

    answered: dict = {}

    def reviewer() -> None:
        deadline = time.time() + 120
        with get_client(sync_client=True) as client:
            while time.time() < deadline:
                runs = client.read_flow_runs()
                paused = [
                    r
                    for r in runs
                    if r.state
                    and r.state.is_paused()
                    and r.parameters.get("params", {}).get("model_name") == live_model
                ]
                if paused:
                    answered["id"] = paused[0].id
                    resume_flow_run(paused[0].id, run_input={"approve": False, "reason": "too risky"})
                    return
                time.sleep(0.3)

    thread = threading.Thread(target=reviewer)
    thread.start()
    rejected = retrain_pipeline(
        params.model_copy(
            update={
                "approval_timeout_s": 60,
                "dataset": fresh_csv(tmp_path, seed=78),
            }
        ),
        return_state=True,
    )
    thread.join(timeout=10)
    assert answered, "the reviewer never saw the paused run"
    assert rejected.name == "Rejected" and "too risky" in rejected.message, rejected.message
    assert rejected.result().approval == {"approve": False, "reason": "too risky"}
    assert champion_of(mlflow_config, live_model) == 1
    assert ApprovalInput.model_fields["approve"].default is False


# -- bad inputs ------------------------------------------------------------------------------------------


def test_bad_inputs_fail_with_typed_errors_and_release_the_claim(live_model, mlflow_config, tmp_path):
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from mlops_tasks.settings import resolve_mlflow_config
    from tests.mlflow_support import fluent_mlflow

    fresh = fresh_csv(tmp_path)
    unknown = retrain_pipeline(
        RetrainParams(model_name=f"nobody-{uuid.uuid4().hex[:6]}", dataset=fresh, mlflow=mlflow_config),
        return_state=True,
    )
    assert unknown.is_failed()
    with pytest.raises(ModelNotFoundError, match="no version with alias 'champion'"):
        unknown.result()

    foreign = f"foreign-{uuid.uuid4().hex[:8]}"
    frame = make_churn_data(300, seed=3)[["age", "tenure_months"]]
    with fluent_mlflow(resolve_mlflow_config(mlflow_config)) as client:
        with mlflow.start_run():
            foreign_model = LogisticRegression().fit(frame, frame["age"] > 40)
            info = mlflow.sklearn.log_model(
                foreign_model,
                name="model",
                registered_model_name=foreign,
                serialization_format="cloudpickle",
                pip_requirements=sklearn_model_requirements(foreign_model),
            )
        client.set_registered_model_alias(foreign, "champion", info.registered_model_version)
    no_ref = retrain_pipeline(
        RetrainParams(model_name=foreign, dataset=fresh, mlflow=mlflow_config), return_state=True
    )
    assert no_ref.is_failed()
    with pytest.raises(ReferenceDataNotFoundError, match="no recorded training data"):
        no_ref.result()

    with pytest.raises(ConfigurationError, match="no fresh data"):
        retrain_pipeline(RetrainParams(model_name=live_model, mlflow=mlflow_config))

    # Labels that join no logged request: nothing new to learn, and the cool-down is given back.
    log = tmp_path / "empty-log"
    log.mkdir()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["x"], "label": [1]}).to_csv(labels, index=False)
    nothing = retrain_pipeline(
        RetrainParams(
            model_name=live_model,
            prediction_log=str(log),
            labels=DatasetSpec(uri=str(labels)),
            last_hours=1,
            mlflow=mlflow_config,
        ),
        return_state=True,
    )
    assert nothing.is_failed()
    with pytest.raises(DataError, match="fresh labelled rows"):
        nothing.result()
    model = client_for(mlflow_config).get_registered_model(live_model)
    assert TAG_RETRAIN_STARTED_AT not in model.tags  # released: a fixed run may start at once
    with pytest.raises(ValueError, match="needs labels"):
        RetrainParams(prediction_log=str(log))


def test_failed_deployment_fails_the_run_and_keeps_the_champion(shared_model, mlflow_config, tmp_path):
    live_model = shared_model
    import socket

    from mlops_tasks.deploy import stop_endpoint
    from mlops_tasks.errors import EndpointDeployError

    endpoint = f"busy{uuid.uuid4().hex[:6]}"
    with socket.socket() as squatter:  # another program holds the endpoint's port
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        try:
            state = retrain_pipeline(
                RetrainParams(
                    model_name=live_model,
                    dataset=fresh_csv(tmp_path),
                    gate=LENIENT_GATE,
                    cooldown_minutes=0,
                    endpoint={"name": endpoint, "port": squatter.getsockname()[1]},
                    rollout={"strategy": "all_at_once", "bake_seconds": 0, "termination_wait_s": 0},
                    mlflow=mlflow_config,
                ),
                return_state=True,
            )
        finally:
            stop_endpoint(endpoint)
    assert state.is_failed()
    with pytest.raises(EndpointDeployError):
        state.result()
    assert champion_of(mlflow_config, live_model) == 1
    notes = [a.data or "" for a in read_artifacts(f"retrain-{live_model}".lower())]
    assert any("deploy_failed" in note and "keeps serving" in note for note in notes), notes


# -- core functions on small frames ------------------------------------------------------------------------


def test_label_prediction_log_joins_rows_of_a_request_in_order():
    from mlops_tasks.retrain import combine_training_data, label_prediction_log

    log = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "c"],
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
            "model_name": "m",
            "model_version": "1",
            "served_by": "blue",
            "age": [30, 40, 50, 60],
            "plan": ["basic", "premium", "basic", "standard"],
            "prediction": [0, 1, 0, 1],
        }
    )
    labels = pd.DataFrame({"request_id": ["a", "a", "b", "zzz"], "label": [1, 0, 1, 0]})
    rows = label_prediction_log(log, labels, label_column="label", target="churned")
    assert rows.to_dict("list") == {
        "age": [30, 40, 50],
        "plan": ["basic", "premium", "basic"],
        "churned": [1, 0, 1],
    }
    assert label_prediction_log(log.iloc[:0], labels, label_column="label", target="churned").empty

    reference = pd.DataFrame({"age": [20], "plan": ["basic"], "extra": [1.0], "churned": [0]})
    combined = combine_training_data([("reference", reference), ("log", rows)], target="churned")
    assert list(combined.columns) == ["age", "plan", "churned"] and len(combined) == 4
    with pytest.raises(DataError, match="min_fresh_rows=5"):
        from mlops_tasks.retrain import prepare_training_data

        prepare_training_data(
            [("reference", reference), ("log", rows)],
            target="churned",
            location="/nonexistent/never-written.parquet",
            min_fresh_rows=5,
        )


def test_suite_without_ranges_keeps_every_other_expectation(tmp_path):
    from mlops_tasks.retrain import RANGE_EXPECTATIONS, suite_without_ranges
    from mlops_tasks.validation import load_suite, suggest_expectations, validate_dataframe, write_suite

    reference = make_churn_data(500, seed=1)
    source = write_suite(suggest_expectations(reference, "churn", range_margin=0.0), tmp_path / "churn.json")
    copy = suite_without_ranges(str(source), str(tmp_path / "retrain" / "suite.json"))
    before, after = load_suite(source).expectations, load_suite(copy).expectations
    dropped = [e for e in before if e.expectation_type in RANGE_EXPECTATIONS]
    assert dropped and len(after) == len(before) - len(dropped)
    drifted = make_churn_data(500, seed=2, drift=1.0)
    assert not validate_dataframe(drifted, load_suite(source), fail_on_error=False).success
    assert validate_dataframe(drifted, load_suite(copy), fail_on_error=False).success
    broken = drifted.assign(plan="enterprise")  # a category never seen is still refused
    assert not validate_dataframe(broken, load_suite(copy), fail_on_error=False).success
    assert suite_without_ranges(str(tmp_path / "missing.json"), str(tmp_path / "x.json")) is None
