"""Fixtures of the provider's tests (run in the Airflow environment, not in mlops-tasks' own).

``MLOPS_TASKS_PYTHON`` must name the mlops-tasks environment's interpreter (the main test
suite's ``tests/test_airflow_provider.py`` sets it, and ``MLOPS_STATE_DIR`` to a fresh folder).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_tasks_airflow.demo import airflow_env

HERE = Path(__file__).resolve().parent

# Airflow reads its settings when first imported: its home and SQLite metadata database go to a
# folder of this run before any test module imports it.
if not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
    _home = tempfile.mkdtemp(prefix="airflow-home-")
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
    os.environ.update(airflow_env(Path(_home)))


@pytest.fixture(scope="session")
def mlops_python() -> str:
    """The mlops-tasks interpreter the operators run stages in."""
    python = os.environ.get("MLOPS_TASKS_PYTHON")
    if not python or not Path(python).exists():
        pytest.fail(
            "MLOPS_TASKS_PYTHON must name the python of the mlops-tasks environment "
            "(e.g. .venv/bin/python); tests/test_airflow_provider.py sets it."
        )
    return python


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state folder of the session's own (MLflow store, data, suites) unless one is given."""
    if os.environ.get("MLOPS_STATE_DIR"):
        yield Path(os.environ["MLOPS_STATE_DIR"])
        return
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(state))
        yield state


@pytest.fixture
def fake_python(tmp_path: Path) -> str:
    """An interpreter that answers like ``mlops-tasks`` as ``FAKE_*`` variables tell it (see fake_cli.py)."""
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_cli.py"} "$@"\n')
    script.chmod(0o755)
    return str(script)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeTaskInstance:
    """What the operators use of ``context["ti"]``: it records ``xcom_push`` calls."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance()}
