"""The example DAGs end to end with ``dag.test()`` on SQLite: real stages, MLflow, HAProxy, model server.

``mlops_training`` trains, gates, registers and deploys version 1 (zero bake) and the endpoint
answers; ``mlops_drift_check`` on a drifted dataset branches to ``retrain``, which registers and
deploys version 2 while ``no_drift`` is skipped.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from mlops_tasks_airflow.demo import (
    drift_conf,
    migrate_database,
    task_states,
    write_drifted_data,
    xcom_result,
)


@pytest.fixture(scope="module")
def dags(mlops_python: str, monkeypatch_module: pytest.MonkeyPatch) -> Any:
    monkeypatch_module.setenv("MLOPS_TASKS_PYTHON", mlops_python)
    migrate_database()
    from mlops_tasks_airflow.example_dags import mlops_pipeline

    return mlops_pipeline


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _mlops(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


ROW = {
    "columns": [
        "age",
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "data_usage_gb",
        "num_products",
        "plan",
        "contract",
        "payment_method",
        "country",
    ],
    "data": [[42, 12, 70.5, 1, 3.2, 2, "basic", "month-to-month", "card", "US"]],
}


def _predict(port: int) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps({"dataframe_split": ROW}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_training_then_drift_check_with_retrain(dags: Any, mlops_python: str, tmp_path: Path) -> None:
    model, endpoint = f"af-{uuid.uuid4().hex[:6]}", f"af{uuid.uuid4().hex[:6]}"
    port = free_port()
    common = {
        "endpoint": {"name": endpoint, "port": port},
        "rollout": {"strategy": "all_at_once", "bake_seconds": 0, "termination_wait_s": 0},
    }
    try:
        run = dags.training_dag.test(
            run_conf={"data": {"model_name": model, "demo": {"rows": 1000}}, **common}
        )
        states = task_states(run)
        assert str(run.state) == "success", states
        registered = xcom_result(run, "register")
        assert registered["version"] == 1 and "challenger" in registered["aliases"]
        assert xcom_result(run, "evaluate")["passed"] is True
        deployed = xcom_result(run, "deploy_blue_green")
        assert (deployed["outcome"], deployed["version"]) == ("succeeded", 1)
        assert "predictions" in _predict(port)  # served through HAProxy by the real model server

        drifted = write_drifted_data(mlops_python, tmp_path / "drifted.csv", rows=1000, drift=0.5)
        conf = drift_conf(model, drifted, **common)
        conf["drift_check"]["log_to_mlflow"] = False
        check = dags.drift_dag.test(run_conf=conf)
        states = task_states(check)
        assert str(check.state) == "success", states
        assert xcom_result(check, "drift_check")["status"] == "drift"
        assert states["no_drift"] == "skipped" and states["retrain.deploy_blue_green"] == "success", states
        assert xcom_result(check, "retrain.register")["version"] == 2
        assert xcom_result(check, "retrain.deploy_blue_green")["version"] == 2
        assert "predictions" in _predict(port)
    finally:
        _mlops(mlops_python, f"from mlops_tasks.deploy import stop_endpoint; stop_endpoint({endpoint!r})")
