"""Run one mlops-tasks stage in the mlops-tasks environment and read back its result.

No Airflow here: :func:`run_stage` starts ``<python> -m mlops_tasks.cli <stage>`` (like
Airflow's ``ExternalPythonOperator`` runs a callable in another interpreter), sends the
parameters as JSON on standard input, streams the stage's log lines to ``log`` as they come, and
returns the exit code with the result and error JSON the command line wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_tasks_airflow.exit_codes import ExitCode

__all__ = [
    "InterpreterError",
    "StageCrashedError",
    "StageRun",
    "resolve_interpreter",
    "run_stage",
]

#: Variables of the Airflow environment that must not reach the mlops-tasks interpreter.
_ISOLATED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class InterpreterError(RuntimeError):
    """The configured mlops-tasks interpreter is missing, not executable, or lacks mlops-tasks."""


class StageCrashedError(RuntimeError):
    """The stage's process ended without the command line's own answer (killed, out of memory...)."""


@dataclass
class StageRun:
    """What one ``mlops-tasks <stage>`` run ended with.

    Attributes:
        stage: The stage.
        exit_code: The process's exit code.
        result: The result JSON (also written for a failed check: validation, gate, drift).
        error: ``{"exit_code", "error", "message", "errors"}`` of a failure, else ``None``.
        tail: The last log lines, for messages.
    """

    stage: str
    exit_code: int
    result: Any = None
    error: dict[str, Any] | None = None
    tail: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The failure's message (``<ErrorType>: <message>``), or the last log line."""
        if self.error:
            return f"{self.error.get('error')}: {self.error.get('message')}"
        return self.tail[-1] if self.tail else f"exit code {self.exit_code}"


def resolve_interpreter(python: str) -> str:
    """The absolute path of the mlops-tasks interpreter, checked to exist and be executable.

    Args:
        python: A path, or a command name found on ``PATH``.

    Returns:
        The path.

    Raises:
        InterpreterError: Nothing executable there; the message names the path and the fix.
    """
    found = python if os.sep in python else shutil.which(python)
    if not found or not Path(found).is_file():
        raise InterpreterError(
            f"mlops-tasks interpreter {python!r} does not exist; set the operator's python= (or "
            "[mlops_tasks] python in airflow.cfg, AIRFLOW__MLOPS_TASKS__PYTHON) to the python of the "
            "environment where mlops-tasks is installed, e.g. /opt/mlops-tasks/.venv/bin/python."
        )
    if not os.access(found, os.X_OK):
        raise InterpreterError(f"mlops-tasks interpreter {found} is not executable (check its permissions).")
    return found


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if k not in _ISOLATED}
    child.update(env or {})
    child.setdefault("PYTHONUNBUFFERED", "1")
    return child


def run_stage(
    python: str,
    stage: str,
    params: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
    timeout_s: float | None = None,
    cwd: str | None = None,
) -> StageRun:
    """Run ``python -m mlops_tasks.cli <stage>`` with ``params`` and read back what it wrote.

    Args:
        python: The mlops-tasks environment's interpreter.
        stage: The stage (``validate``, ``train``, ... ``batch-score``).
        params: The stage's parameters (JSON-serialisable).
        env: Extra environment of the stage (MLflow and S3 settings from Airflow connections).
        log: Called with each log line of the stage as it comes.
        timeout_s: Kill the stage (its whole process group) after this many seconds.
        cwd: Working directory of the stage.

    Returns:
        The exit code, the result and the error the command line wrote.

    Raises:
        InterpreterError: The interpreter is missing, not executable, or has no mlops-tasks.
        StageCrashedError: The process ended (or was killed) without the command line's answer.
    """
    interpreter = resolve_interpreter(python)
    with tempfile.TemporaryDirectory(prefix=f"mlops-{stage}-") as tmp:
        out, err = Path(tmp, "result.json"), Path(tmp, "error.json")
        argv = [interpreter, "-m", "mlops_tasks.cli", stage, "--params-file", "-"]
        argv += ["--output", str(out), "--error-output", str(err)]
        tail: deque[str] = deque(maxlen=40)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=_child_env(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise InterpreterError(f"mlops-tasks interpreter {interpreter} cannot be started: {exc}") from exc
        code = _communicate(proc, json.dumps(params), log, tail, timeout_s)
        result = json.loads(out.read_text()) if out.exists() else None
        error = json.loads(err.read_text()) if err.exists() else None
    run = StageRun(stage=stage, exit_code=code, result=result, error=error, tail=list(tail))
    _check_answered(run, interpreter)
    return run


def _communicate(
    proc: subprocess.Popen[str],
    params: str,
    log: Callable[[str], None],
    tail: deque[str],
    timeout_s: float | None,
) -> int:
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(params)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the process ended before reading; its exit code and output say why
    timer = None
    if timeout_s is not None:
        import threading

        timer = threading.Timer(timeout_s, _kill_group, args=(proc,))
        timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log(line)
        return proc.wait()
    except BaseException:
        _kill_group(proc)  # the task itself was stopped (timeout, kill): take the stage with it
        raise
    finally:
        if timer is not None:
            timer.cancel()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _check_answered(run: StageRun, interpreter: str) -> None:
    if (
        run.exit_code == 0
        or run.error is not None
        or run.exit_code in (ExitCode.DRIFT, ExitCode.NOT_ENOUGH_DATA)
    ):
        return
    text = "\n".join(run.tail)
    if "No module named mlops_tasks" in text or "No module named 'mlops_tasks'" in text:
        raise InterpreterError(
            f"mlops-tasks is not installed for interpreter {interpreter} (No module named mlops_tasks); "
            "install it there (pip install mlops-tasks) or point python= at the mlops-tasks environment."
        )
    how = (
        f"was killed by signal {-run.exit_code}"
        if run.exit_code < 0
        else f"ended with exit code {run.exit_code}"
    )
    last = "\n".join(run.tail[-10:])
    raise StageCrashedError(
        f"mlops-tasks {run.stage} ({interpreter}) {how} without a result; last output:\n{last}"
    )
