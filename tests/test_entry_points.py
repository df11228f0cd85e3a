"""What every command does before its work: telemetry off, and the Prefect API found or explained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

from mlops_tasks.telemetry import TELEMETRY_OFF, quiet_telemetry

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF and not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile naming a server
    return env


def test_quiet_telemetry_sets_defaults_and_keeps_what_the_user_set(monkeypatch):
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")  # the user opted in
    quiet_telemetry()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1" and os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


@pytest.mark.parametrize("package", ["flows", "mlops_tasks.flows", "deployments"])
def test_entry_point_packages_turn_telemetry_off_outside_make(package, tmp_path):
    code = f"import {package}, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'], os.environ['DO_NOT_TRACK'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(tmp_path), cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["true", "1"]


def test_model_server_command_turns_mlflow_telemetry_off(monkeypatch):
    from mlops_tasks.serving.cli import main

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_command_without_a_server_says_a_temporary_one_starts_and_how_to_skip_it(tmp_path):
    code = "from flows.entry import prepare_prefect_api; print(prepare_prefect_api('python -m flows.x'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(tmp_path), cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
    assert "no Prefect server configured (PREFECT_API_URL)" in out.stderr
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in out.stderr
    assert "ERROR" not in out.stderr


def test_configured_server_that_does_not_answer_ends_the_command(tmp_path):
    env = {**_clean_env(tmp_path), "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    code = "from flows.entry import prepare_command; prepare_command('python -m flows.monitoring')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "no Prefect server answers there" in out.stderr and "make serve" in out.stderr
    assert "Traceback" not in out.stderr


def test_version_from_metadata_and_without_it(tmp_path):
    import shutil
    from importlib.metadata import version

    import mlops_tasks

    assert mlops_tasks.__version__ == version("mlops-tasks")
    copy = tmp_path / "image"
    shutil.copytree(ROOT / "mlops_tasks", copy / "mlops_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import sys; sys.path.insert(0, '.'); import mlops_tasks; print(mlops_tasks.__version__)"
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=copy, capture_output=True, text=True, env={}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0+unknown"
