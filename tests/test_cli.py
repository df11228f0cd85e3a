"""``mlops-tasks <stage>``: each stage's happy path on the real local store, and the bad inputs.

The stages run in-process through :func:`mlops_tasks.cli.main` (one module-wide pipeline:
validate → train → evaluate → register, twice, then deploy on the local target, rollback,
drift-check, batch-score); one run goes through the console script in a child process to
show that no Prefect module is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlops_tasks.cli import ExitCode, main
from mlops_tasks.demo import make_churn_data
from tests.conftest import free_port

ROWS = 1000


def run(stage: str, params: dict[str, Any] | str, tmp: Path, *extra: str) -> tuple[int, Any, dict | None]:
    """Run one stage; return its exit code, its result JSON (or None) and its error JSON (or None)."""
    out, err = tmp / f"{uuid.uuid4().hex}.json", tmp / f"{uuid.uuid4().hex}.err.json"
    text = params if isinstance(params, str) else json.dumps(params)
    code = main([stage, "--params", text, "--output", str(out), "--error-output", str(err), *extra])
    result = json.loads(out.read_text()) if out.exists() else None
    error = json.loads(err.read_text()) if err.exists() else None
    return code, result, error


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def mlflow_json(mlflow_config) -> dict[str, Any]:
    return json.loads(mlflow_config.model_dump_json(exclude_none=True))


@pytest.fixture(scope="module")
def pipeline(work: Path, mlflow_json: dict[str, Any]) -> dict[str, Any]:
    """validate → train → evaluate → register, for two candidates (versions 1 and 2)."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    data = {"model_name": name, "demo": {"rows": ROWS}, "mlflow": mlflow_json}
    out: dict[str, Any] = {"name": name, "data": data}
    out["validate"] = run("validate", data, work)
    for label, c in (("v1", 1.0), ("v2", 0.3)):
        train = {**data, "training": {"target": "churned", "params": {"max_iter": 1000, "C": c}}}
        code, trained, _ = run("train", train, work)
        assert code == 0, "train failed"
        evaluate = {**train, "trained": trained, "compare_to_champion": False}
        code, report, _ = run("evaluate", evaluate, work)
        assert code == 0, "evaluate failed"
        out[label] = {"train": train, "trained": trained, "report": report}
        out[label]["register"] = run(
            "register",
            {"model_name": name, "trained": trained, "report": report, "mlflow": mlflow_json},
            work,
        )
    return out


def test_validate_writes_the_report(pipeline: dict[str, Any]) -> None:
    code, report, error = pipeline["validate"]
    assert (code, error) == (0, None)
    assert report["success"] is True and report["evaluated"] > 0


def test_train_evaluate_register(pipeline: dict[str, Any]) -> None:
    v1 = pipeline["v1"]
    assert v1["trained"]["target"] == "churned" and v1["trained"]["run_id"]
    assert v1["report"]["passed"] is True and v1["report"]["run_id"] == v1["trained"]["run_id"]
    code, version, _ = v1["register"]
    assert code == 0
    assert version["version"] == 1 and version["created"] and "challenger" in version["aliases"]
    assert pipeline["v2"]["register"][1]["version"] == 2


def test_validation_failure_exits_3_with_the_report(
    pipeline: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    bad = make_churn_data(300, seed=1)
    bad["age"] = -1000  # far outside the suggested range
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    code, report, error = run("validate", {**pipeline["data"], "dataset": {"uri": str(path)}}, work)
    assert code == ExitCode.VALIDATION_FAILED == 3
    assert report["success"] is False and "age" in json.dumps(report["failed"])
    assert error["error"] == "DataValidationError" and "age" in error["message"]


def test_gate_failure_exits_4_with_the_report(pipeline: dict[str, Any], work: Path) -> None:
    v1 = pipeline["v1"]
    gate = {"thresholds": [{"metric": "accuracy", "min_value": 0.999}]}
    params = {**v1["train"], "trained": v1["trained"], "gate": gate, "compare_to_champion": False}
    code, report, error = run("evaluate", params, work)
    assert code == ExitCode.GATE_FAILED == 4
    assert report["passed"] is False
    assert error["error"] == "QualityGateError" and "accuracy" in error["message"]


def test_deploy_rollback_drift_check_and_batch_score(
    pipeline: dict[str, Any], work: Path, mlflow_json: dict[str, Any], tmp_path: Path
) -> None:
    name, endpoint = pipeline["name"], f"cli{uuid.uuid4().hex[:6]}"
    deploy = {
        "model_name": name,
        "endpoint": {"name": endpoint, "port": free_port()},
        "rollout": {"strategy": "all_at_once", "bake_seconds": 0, "termination_wait_s": 0},
        "mlflow": mlflow_json,
    }
    try:
        code, record, _ = run("deploy", {**deploy, "version": 1}, work)
        assert (code, record["outcome"], record["version"]) == (0, "succeeded", 1)
        code, record, _ = run("deploy", deploy, work)  # the challenger: version 2
        assert (code, record["outcome"], record["version"]) == (0, "succeeded", 2)
        code, record, _ = run("rollback", {"endpoint_name": endpoint, "mlflow": mlflow_json}, work)
        assert (code, record["kind"], record["version"]) == (0, "rollback", 1)
    finally:
        from mlops_tasks.deploy import stop_endpoint

        stop_endpoint(endpoint)

    same = tmp_path / "same.csv"
    make_churn_data(ROWS, seed=7).to_csv(same, index=False)
    drifted = tmp_path / "drifted.csv"
    make_churn_data(ROWS, seed=7, drift=1.0).to_csv(drifted, index=False)
    check = {"model_name": name, "version": 1, "mlflow": mlflow_json, "log_to_mlflow": False}
    code, report, _ = run("drift-check", {**check, "current": {"uri": str(same)}}, work)
    assert (code, report["status"]) == (0, "ok")
    code, report, _ = run("drift-check", {**check, "current": {"uri": str(drifted)}}, work)
    assert (code, report["status"]) == (ExitCode.DRIFT, "drift") and code == 10
    few = {**check, "current": {"uri": str(same)}, "settings": {"min_rows": ROWS * 2}}
    code, report, _ = run("drift-check", few, work)
    assert (code, report["status"]) == (ExitCode.NOT_ENOUGH_DATA, "not_enough_data") and code == 11

    output = tmp_path / "scored.parquet"
    score = {"model_name": name, "version": 1, "dataset": {"uri": str(same)}, "output": str(output)}
    code, scored, _ = run("batch-score", {**score, "mlflow": mlflow_json}, work)
    assert (code, scored["rows"], scored["model_version"]) == (0, ROWS, "1")
    assert output.exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("{not json", None),
        ("[1, 2]", None),
        ({"model_name": "m", "demo": {"rows": 5}}, "demo.rows"),
        ({"model_name": "m", "modelname": "typo"}, "modelname"),
        ({"model_name": "m", "dataset": {"format": "csv"}}, "dataset.uri"),
    ],
)
def test_parameters_that_do_not_validate_exit_2_naming_the_field(
    params: Any, field: str | None, work: Path
) -> None:
    code, result, error = run("validate", params, work)
    assert code == ExitCode.USAGE == 2 and result is None
    if field:
        assert field in [e["field"] for e in error["errors"]] and field in error["message"]


def test_missing_model_name_and_blocks_are_configuration_errors(work: Path) -> None:
    code, _, error = run("train", {"demo": {"rows": 200}}, work)
    assert code == 2 and "model_name" in error["message"]
    code, _, error = run("deploy", {"model_name": "m", "target_block": "prod"}, work)
    assert code == 2 and "target_block" in error["message"]
    code, _, error = run("train", {"model_name": "m", "mlflow": {"block": "prod"}}, work)
    assert code == 2 and "block" in error["message"]


def test_evaluate_and_register_refuse_results_of_another_run(
    pipeline: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    v1, v2 = pipeline["v1"], pipeline["v2"]
    other = tmp_path / "other.csv"
    make_churn_data(ROWS, seed=99).to_csv(other, index=False)
    params = {**v1["train"], "trained": v1["trained"], "dataset": {"uri": str(other)}}
    code, _, error = run("evaluate", params, work)
    assert code == 2 and "fingerprint" in error["message"]
    mismatched = {"model_name": pipeline["name"], "trained": v1["trained"], "report": v2["report"]}
    code, _, error = run("register", {**mismatched, "mlflow": v1["train"]["mlflow"]}, work)
    assert code == 2 and v2["report"]["run_id"] in error["message"]


def test_unreachable_mlflow_server_exits_5(work: Path) -> None:
    mlflow = {"tracking_uri": f"http://127.0.0.1:{free_port()}", "request_timeout_s": 1}
    code, _, error = run("train", {"model_name": "m", "demo": {"rows": 200}, "mlflow": mlflow}, work)
    assert code == ExitCode.UNAVAILABLE == 5
    assert "127.0.0.1" in error["message"]


def test_rollback_with_nothing_before_is_an_error(work: Path) -> None:
    code, _, error = run("rollback", {"endpoint_name": f"none{uuid.uuid4().hex[:6]}"}, work)
    assert code == ExitCode.ERROR == 1 and error["error"] == "RollbackError"


def test_usage_schema_and_check(capsys: pytest.CaptureFixture[str], work: Path) -> None:
    assert main([]) == 2
    assert main(["nosuchstage"]) == 2
    assert main(["drift-check", "--schema"]) == 0
    assert "last_hours" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["rollback", "--check", "--params", '{"endpoint_name": "e"}']) == 0
    assert json.loads(capsys.readouterr().out)["endpoint_name"] == "e"
    assert main(["rollback", "--params-file", str(work / "missing.json")]) == 2


def test_console_script_runs_a_stage_without_importing_prefect(
    pipeline: dict[str, Any], tmp_path: Path
) -> None:
    """A child process through the installed ``mlops-tasks`` entry point, params on standard input."""
    source = tmp_path / "rows.csv"
    make_churn_data(200, seed=5).to_csv(source, index=False)
    params = {
        "model_name": pipeline["name"],
        "version": 1,
        "dataset": {"uri": str(source)},
        "mlflow": pipeline["data"]["mlflow"],
    }
    probe = (
        "import sys; from mlops_tasks.cli import main; code = main(sys.argv[1:]); "
        "sys.stderr.write('PREFECT_LOADED=%s\\n' % any(m.split('.')[0] == 'prefect' for m in sys.modules)); "
        "raise SystemExit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "batch-score", "--params-file", "-"],
        input=json.dumps(params),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == 200
    assert "PREFECT_LOADED=False" in done.stderr
    script = Path(sys.executable).with_name("mlops-tasks")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip()
    # run() hands the stage's exit code to the process (it freezes the heap before teardown)
    bad = subprocess.run(
        [str(script), "register", "--params", '{"bogus": 1}'], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == int(ExitCode.USAGE) and "bogus" in bad.stderr, bad.stderr


def test_smoke_rows_of_a_regression_label_are_not_stratified() -> None:
    """A regression label (every value once) cannot be stratified on: the smoke rows still come."""
    import pandas as pd

    from mlops_tasks.stages.inputs import smoke_rows_of

    frame = pd.DataFrame({"x": range(100), "price": [1000.0 + i for i in range(100)]})
    rows = smoke_rows_of(frame, "price", 10)
    assert list(rows.columns) == ["x"] and len(rows) == 10
    labels = pd.DataFrame({"x": range(100), "y": [0, 1] * 50})
    assert len(smoke_rows_of(labels, "y", 10)) == 10
