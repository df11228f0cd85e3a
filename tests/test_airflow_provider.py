"""The Airflow provider (providers/airflow), tested in its own environment against this one.

``make test`` builds the Airflow virtualenv (``make airflow-venv``, pinned by
providers/airflow/constraints.txt) in the background while the checks and the other tests run;
the fixture here waits for it on the same lock (or builds it when nothing did). Then the
provider's suite runs in that environment with this environment's interpreter as the
mlops-tasks interpreter: the operators' ``execute()`` tests and the example DAGs end to end with
``dag.test()`` on SQLite (real MLflow store, HAProxy and model server).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_tasks.cli import ExitCode

ROOT = Path(__file__).resolve().parents[1]
PROVIDER = ROOT / "providers" / "airflow"
AF_VENV = ROOT / os.environ.get("AF_VENV", ".airflow-venv")


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """The Airflow environment's interpreter, once ``make airflow-venv`` is done."""
    with open(f"{AF_VENV}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # make test's background build holds it until it is done
        done = subprocess.run(
            ["make", "--no-print-directory", "airflow-venv", f"AF_VENV={AF_VENV.name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    log = Path(f"{AF_VENV}.log")
    background = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert done.returncode == 0, (
        f"make airflow-venv failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}\n{background}"
    )
    return AF_VENV / "bin" / "python"


def test_provider_exit_codes_are_the_command_lines() -> None:
    spec = importlib.util.spec_from_file_location(
        "provider_exit_codes", PROVIDER / "src" / "mlops_tasks_airflow" / "exit_codes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {e.name: e.value for e in module.ExitCode} == {e.name: e.value for e in ExitCode}


def test_provider_suite_in_the_airflow_environment(airflow_python: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MLOPS_TASKS_PYTHON=sys.executable, MLOPS_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run(
        [str(airflow_python), "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--durations=15"],
        cwd=PROVIDER,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    summary = "\n".join(line for line in done.stdout.splitlines() if "passed" in line or "failed" in line)
    print(done.stdout[-4000:])
    assert done.returncode == 0, (
        f"provider tests failed ({summary}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
    )
