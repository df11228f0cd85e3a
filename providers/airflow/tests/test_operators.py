"""The operators' execute(), against the real mlops-tasks interpreter and a stand-in at the process boundary.

Real interpreter: a stage that passes, parameters that do not validate, a stage error, an
unreachable MLflow server, an interpreter without mlops-tasks, a missing interpreter. The
stand-in (``fake_cli.py``) gives the exit codes that are costly to reach for real (gate failed,
rolled back, drift) and the faults of the process itself (killed, hung).
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from conftest import free_port
from mlops_tasks_airflow import get_provider_info
from mlops_tasks_airflow.connections import aws_env, mlflow_env
from mlops_tasks_airflow.operators import (
    MlopsDeployOperator,
    MlopsDriftCheckOperator,
    MlopsEvaluateOperator,
    MlopsRegisterOperator,
    MlopsRollbackOperator,
    MlopsTrainOperator,
    MlopsValidateOperator,
)

DEMO = {"model_name": "airflow-unit", "demo": {"rows": 300}}


def test_validate_passes_and_returns_the_report(mlops_python: str, context: dict, capfd) -> None:
    op = MlopsValidateOperator(task_id="validate", stage_params=DEMO, python=mlops_python)
    report = op.execute(context)
    assert report["success"] is True and report["evaluated"] > 0
    assert "expectations met" in capfd.readouterr().out  # the stage's own log lines reach the task log


def test_parameters_that_do_not_validate_fail_before_anything_naming_the_field(
    mlops_python: str, context: dict
) -> None:
    op = MlopsValidateOperator(
        task_id="validate", stage_params={**DEMO, "demo": {"rows": 3}}, python=mlops_python
    )
    with pytest.raises(AirflowFailException, match=r"demo\.rows"):
        op.execute(context)
    op = MlopsTrainOperator(task_id="train", stage_params={**DEMO, "holdout": 0.3}, python=mlops_python)
    with pytest.raises(AirflowFailException, match="unknown parameter.*holdout"):
        op.execute(context)
    with pytest.raises(ValueError, match="not JSON"):
        MlopsTrainOperator(task_id="bad", stage_params="{model_name: x}", python=mlops_python)


def test_a_stage_error_reaches_the_log_and_fails_the_task(mlops_python: str, context: dict, capfd) -> None:
    op = MlopsRollbackOperator(
        task_id="rollback", stage_params={"endpoint_name": "never-deployed"}, python=mlops_python
    )
    with pytest.raises(AirflowException, match="RollbackError") as info:
        op.execute(context)
    assert not isinstance(info.value, AirflowFailException)  # Airflow's retries apply
    assert "never-deployed" in str(info.value) and "RollbackError" in capfd.readouterr().out


def test_unreachable_mlflow_server_from_a_connection(
    mlops_python: str, context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DOWN", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port})
    )
    op = MlopsTrainOperator(
        task_id="train",
        stage_params={**DEMO, "mlflow": {"request_timeout_s": 1}},
        python=mlops_python,
        mlflow_conn_id="mlflow_down",
    )
    with pytest.raises(AirflowException, match=rf"did not answer.*127\.0\.0\.1:{port}"):
        op.execute(context)


def test_interpreter_missing_or_without_mlops_tasks(context: dict, tmp_path) -> None:
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    op = MlopsValidateOperator(task_id="validate", stage_params=DEMO, python=missing)
    with pytest.raises(AirflowFailException, match=f"interpreter '{missing}' does not exist"):
        op.execute(context)
    # the Airflow environment's own python has no mlops-tasks
    op = MlopsValidateOperator(task_id="validate", stage_params=DEMO, python=sys.executable)
    with pytest.raises(AirflowFailException, match=f"not installed for interpreter {sys.executable}"):
        op.execute(context)


def test_no_interpreter_configured(context: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__MLOPS_TASKS__PYTHON", raising=False)
    op = MlopsValidateOperator(task_id="validate", stage_params=DEMO)
    with pytest.raises(AirflowFailException, match=r"\[mlops_tasks\] python"):
        op.execute(context)
    monkeypatch.setenv("AIRFLOW__MLOPS_TASKS__PYTHON", "/nowhere/python")
    with pytest.raises(AirflowFailException, match="/nowhere/python"):
        op.execute(context)


def _fake(monkeypatch: pytest.MonkeyPatch, **env: Any) -> None:
    for key in ("FAKE_EXIT", "FAKE_RESULT", "FAKE_ERROR", "FAKE_SLEEP", "FAKE_KILL", "FAKE_ECHO"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(f"FAKE_{key.upper()}", value if isinstance(value, str) else json.dumps(value))


def test_inputs_merge_over_params_and_connections_become_the_environment(
    fake_python: str, context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(monkeypatch, echo="1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_PROD",
        json.dumps(
            {
                "conn_type": "http",
                "host": "mlflow.internal",
                "port": 5000,
                "schema": "https",
                "login": "ml",
                "password": "pw",
                "extra": {"experiment_name": "churn"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_MINIO",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIA",
                "password": "secret",
                "extra": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
            }
        ),
    )
    op = MlopsRegisterOperator(
        task_id="register",
        stage_params=[{"model_name": "x"}, '{"model_name": "m", "trained": {"old": 1}}'],
        trained={"run_id": "r1"},
        report={"run_id": "r1", "passed": True},
        python=fake_python,
        mlflow_conn_id="mlflow_prod",
        aws_conn_id="s3_minio",
    )
    seen = op.execute(context)
    assert seen["argv"][:2] == ["-m", "mlops_tasks.cli"] and seen["argv"][2] == "register"
    assert seen["params"] == {
        "model_name": "m",
        "trained": {"run_id": "r1"},
        "report": {"run_id": "r1", "passed": True},
    }
    assert seen["env"]["MLFLOW_TRACKING_URI"] == "https://mlflow.internal:5000"
    assert (
        seen["env"]["MLFLOW_TRACKING_USERNAME"] == "ml" and seen["env"]["MLFLOW_EXPERIMENT_NAME"] == "churn"
    )
    assert (
        seen["env"]["AWS_ACCESS_KEY_ID"] == "AKIA"
        and seen["env"]["MLOPS_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    )
    assert seen["env"]["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "secret" not in json.dumps(seen["argv"] + [seen["params"]])  # secrets only in the environment


@pytest.mark.parametrize(
    ("on_check_failure", "raises"),
    [("fail", AirflowFailException), ("skip", AirflowSkipException), ("continue", None)],
)
def test_gate_failure_fails_skips_or_continues_with_the_report(
    fake_python: str, context: dict, monkeypatch: pytest.MonkeyPatch, on_check_failure: str, raises: Any
) -> None:
    report = {"run_id": "r1", "passed": False, "failed_reasons": ["accuracy 0.61 < 0.7"]}
    error = {
        "exit_code": 4,
        "error": "QualityGateError",
        "message": "failed its quality gate: accuracy",
        "errors": [],
    }
    _fake(monkeypatch, exit="4", result=report, error=error)
    op = MlopsEvaluateOperator(
        task_id="evaluate", trained={"run_id": "r1"}, python=fake_python, on_check_failure=on_check_failure
    )
    if raises is None:
        assert op.execute(context) == report
    else:
        with pytest.raises(raises, match="quality gate"):
            op.execute(context)
    assert context["ti"].pushed["report"] == report


def test_rolled_back_rollout_fails_with_the_record(fake_python: str, context: dict, monkeypatch) -> None:
    record = {"outcome": "rolled_back", "version": 2, "failed_step": "bake"}
    error = {"exit_code": 12, "error": "GuardBreachError", "message": "5xx share 0.4 > 0.05", "errors": []}
    _fake(monkeypatch, exit="12", result=record, error=error)
    op = MlopsDeployOperator(task_id="deploy", stage_params={"model_name": "m"}, python=fake_python)
    with pytest.raises(AirflowFailException, match="previous version serves.*GuardBreachError"):
        op.execute(context)
    assert context["ti"].pushed["report"]["outcome"] == "rolled_back"


@pytest.mark.parametrize(("exit_code", "status"), [("10", "drift"), ("11", "not_enough_data"), ("0", "ok")])
def test_drift_check_returns_the_report_and_chooses_a_branch(
    fake_python: str, context: dict, monkeypatch, exit_code: str, status: str
) -> None:
    _fake(monkeypatch, exit=exit_code, result={"status": status, "reason": "why"})
    op = MlopsDriftCheckOperator(task_id="drift", stage_params={"model_name": "m"}, python=fake_python)
    assert op.execute(context)["status"] == status  # no branches: always succeeds with the report
    branching = MlopsDriftCheckOperator(
        task_id="drift2", python=fake_python, drift_branch="retrain", no_drift_branch="all_good"
    )
    assert branching.choose_branch(status) == ("retrain" if status == "drift" else "all_good")
    failing = MlopsDriftCheckOperator(task_id="drift3", python=fake_python, fail_on_drift=True)
    if status == "drift":
        with pytest.raises(AirflowFailException, match="drift found"):
            failing.execute(context)
    else:
        assert failing.execute(context)["status"] == status


def test_a_killed_stage_fails_the_task_saying_so(fake_python: str, context: dict, monkeypatch) -> None:
    _fake(monkeypatch, kill=str(int(signal.SIGKILL)))
    op = MlopsValidateOperator(task_id="validate", python=fake_python)
    with pytest.raises(AirflowException, match="killed by signal 9 without a result"):
        op.execute(context)


def test_a_hung_stage_is_killed_at_its_timeout(fake_python: str, context: dict, monkeypatch) -> None:
    _fake(monkeypatch, sleep="60")
    op = MlopsValidateOperator(task_id="validate", python=fake_python, stage_timeout_s=1)
    with pytest.raises(AirflowException, match="killed by signal 9"):
        op.execute(context)


def test_usage_and_unavailable_codes_from_the_stand_in(fake_python: str, context: dict, monkeypatch) -> None:
    _fake(
        monkeypatch, exit="5", error={"exit_code": 5, "error": "ServiceUnavailableError", "message": "down"}
    )
    op = MlopsTrainOperator(task_id="train", python=fake_python)
    with pytest.raises(AirflowException, match="did not answer.*ServiceUnavailableError: down") as info:
        op.execute(context)
    assert not isinstance(info.value, AirflowFailException)


def test_connection_helpers() -> None:
    class Conn:
        conn_id = "c"
        host = "sqlite:////data/mlflow.db"
        schema = port = login = password = None
        extra_dejson: dict = {}

    assert mlflow_env(Conn()) == {"MLFLOW_TRACKING_URI": "sqlite:////data/mlflow.db"}
    assert aws_env(Conn()) == {}
    Conn.host = ""
    with pytest.raises(ValueError, match="no host"):
        mlflow_env(Conn())


def test_provider_info_and_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("mlops_tasks_airflow")
    ]
    info = entry.load()()
    assert info == get_provider_info() and info["package-name"] == "mlops-tasks-airflow"
    from airflow.providers_manager import ProvidersManager

    assert "mlops-tasks-airflow" in ProvidersManager().providers
    with pytest.raises(ValueError, match="on_check_failure"):
        MlopsValidateOperator(task_id="v", on_check_failure="ignore")
