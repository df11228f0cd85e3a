"""One Airflow operator per mlops-tasks stage, each running the stage in the mlops-tasks environment.

Every operator runs ``<python> -m mlops_tasks.cli <stage>`` (:mod:`mlops_tasks_airflow.runner`)
with ``stage_params`` (the stage's pydantic parameters as a dict, templated) merged with
``inputs`` (results of upstream tasks, usually ``XComArg``s such as ``train.output``), streams
the stage's log into the task log, and returns the stage's result JSON (the ``return_value``
XCom). How each outcome shows in Airflow:

- success (exit 0): the task succeeds; the result is its XCom.
- validation failed (3), gate failed (4), rollout rolled back (12): the task fails without retry
  (``on_check_failure="fail"``), or is skipped (``"skip"``: the tasks downstream skip too), or
  succeeds (``"continue"``); the report is the XCom ``report`` either way.
- bad parameters (2), no interpreter, no mlops-tasks in it: fails without retry, naming the
  field or the path.
- a server did not answer (5), another error (1), the process died or hung past
  ``stage_timeout_s``: fails, with the typed error's message; Airflow's ``retries`` apply.
- drift (10), not enough data (11): succeeds with the report; :class:`MlopsDriftCheckOperator`
  branches on it when given branches.

The interpreter: ``python=``, else ``[mlops_tasks] python`` in the Airflow configuration
(``AIRFLOW__MLOPS_TASKS__PYTHON``). MLflow and S3 settings: ``mlflow_conn_id`` and
``aws_conn_id`` (:mod:`mlops_tasks_airflow.connections`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, BranchMixIn
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from mlops_tasks_airflow.connections import connection_env
from mlops_tasks_airflow.exit_codes import ExitCode
from mlops_tasks_airflow.runner import InterpreterError, StageCrashedError, StageRun, run_stage

__all__ = [
    "MlopsBatchScoreOperator",
    "MlopsBuildImageOperator",
    "MlopsDeployOperator",
    "MlopsDriftCheckOperator",
    "MlopsEvaluateOperator",
    "MlopsRegisterOperator",
    "MlopsRollbackOperator",
    "MlopsStageOperator",
    "MlopsTrainOperator",
    "MlopsValidateOperator",
]

_ON_CHECK_FAILURE = ("fail", "skip", "continue")
_CHECK_FAILED = {
    ExitCode.VALIDATION_FAILED: "the data failed its expectation suite",
    ExitCode.GATE_FAILED: "the candidate failed its quality gate",
    ExitCode.ROLLED_BACK: "the rollout was stopped and the previous version serves",
}


class MlopsStageOperator(BaseOperator):
    """Run one mlops-tasks stage in the mlops-tasks environment (base of the stage operators).

    Args:
        stage_params: The stage's parameters (a dict, or a JSON object as text), as
            ``mlops-tasks <stage> --schema`` describes them; a list of those is merged left to
            right (e.g. the DAG params ``data``, ``training`` and ``gate``). Templated.
        inputs: Parameters from upstream tasks, merged over ``stage_params`` (e.g.
            ``{"trained": train.output}``). Templated (``XComArg``s are resolved).
        python: The mlops-tasks environment's interpreter; default ``[mlops_tasks] python``.
        mlflow_conn_id: Connection of the MLflow tracking server (an ``http`` connection).
        aws_conn_id: Connection of the S3 endpoint and credentials (an ``aws`` connection).
        env: More environment variables of the stage. Templated.
        on_check_failure: ``fail`` (default), ``skip`` or ``continue`` when validation or the
            gate failed or the rollout rolled back.
        stage_timeout_s: Kill the stage after this many seconds (``execution_timeout`` also works).
        **kwargs: Passed to ``BaseOperator``.
    """

    stage: ClassVar[str] = ""
    template_fields: Sequence[str] = ("stage_params", "inputs", "python", "env")
    template_fields_renderers: ClassVar[dict[str, str]] = {"stage_params": "json", "inputs": "json"}
    ui_color = "#dcecf8"

    def __init__(
        self,
        *,
        stage_params: dict[str, Any] | str | list[dict[str, Any] | str] | None = None,
        inputs: dict[str, Any] | None = None,
        python: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        env: dict[str, str] | None = None,
        on_check_failure: str = "fail",
        stage_timeout_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not self.stage:
            raise ValueError(f"{type(self).__name__} names no stage; use one of the stage operators.")
        if on_check_failure not in _ON_CHECK_FAILURE:
            raise ValueError(f"on_check_failure must be one of {_ON_CHECK_FAILURE}, not {on_check_failure!r}")
        if isinstance(stage_params, str) and "{{" not in stage_params:
            _as_object(stage_params, self.task_id)  # a typo fails when the DAG is parsed
        self.stage_params = stage_params
        self.inputs = inputs or {}
        self.python = python
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id
        self.env = env or {}
        self.on_check_failure = on_check_failure
        self.stage_timeout_s = stage_timeout_s

    def interpreter(self) -> str:
        """The mlops-tasks interpreter: ``python=``, else ``[mlops_tasks] python``."""
        if self.python:
            return self.python
        from airflow.sdk import conf

        configured = conf.get("mlops_tasks", "python", fallback=None)
        if not configured:
            raise AirflowFailException(
                f"{self.task_id}: no mlops-tasks interpreter configured; give python= or set "
                "[mlops_tasks] python (AIRFLOW__MLOPS_TASKS__PYTHON) to the python of the mlops-tasks "
                "environment."
            )
        return str(configured)

    def stage_parameters(self) -> dict[str, Any]:
        """``stage_params`` with ``inputs`` merged over it (after templating)."""
        params = _as_object(self.stage_params, self.task_id) if self.stage_params else {}
        params.update(self.inputs or {})
        return params

    def execute(self, context: Any) -> Any:
        """Run the stage; return its result (the ``return_value`` XCom)."""
        python = self.interpreter()
        params = self.stage_parameters()
        env = {**connection_env(self.mlflow_conn_id, self.aws_conn_id), **(self.env or {})}
        self.log.info("Running mlops-tasks %s in %s", self.stage, python)
        try:
            run = run_stage(
                python, self.stage, params, env=env, log=self._log_line, timeout_s=self.stage_timeout_s
            )
        except InterpreterError as exc:
            raise AirflowFailException(str(exc)) from exc
        except StageCrashedError as exc:
            raise AirflowException(str(exc)) from exc
        return self.handle_run(context, run)

    def _log_line(self, line: str) -> None:
        self.log.info("%s", line)

    def handle_run(self, context: Any, run: StageRun) -> Any:
        """Turn the stage's exit code into the task's outcome (see the module docstring)."""
        code = run.exit_code
        if code == ExitCode.OK:
            return run.result
        if code in _CHECK_FAILED:
            return self._check_failed(context, run, _CHECK_FAILED[ExitCode(code)])
        if code == ExitCode.USAGE:
            raise AirflowFailException(
                f"mlops-tasks {self.stage}: bad parameters, nothing was done: {run.message}"
            )
        if code == ExitCode.UNAVAILABLE:
            raise AirflowException(
                f"mlops-tasks {self.stage}: a server did not answer (retry may pass): {run.message}"
            )
        raise AirflowException(f"mlops-tasks {self.stage} failed (exit code {code}): {run.message}")

    def _check_failed(self, context: Any, run: StageRun, what: str) -> Any:
        if run.result is not None:
            context["ti"].xcom_push(key="report", value=run.result)
        message = f"mlops-tasks {self.stage}: {what}: {run.message}"
        if self.on_check_failure == "continue":
            self.log.warning("%s (continuing: on_check_failure='continue')", message)
            return run.result
        if self.on_check_failure == "skip":
            raise AirflowSkipException(message)
        raise AirflowFailException(message)


def _as_object(value: Any, task_id: str) -> dict[str, Any]:
    """A parameter object from a dict, a JSON object, or a list of those merged left to right."""
    if isinstance(value, (list, tuple)):
        merged: dict[str, Any] = {}
        for part in value:
            merged.update(_as_object(part, task_id) if part else {})
        return merged
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ValueError(f"{task_id}: stage_params must be a JSON object, got {type(value).__name__}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{task_id}: stage_params is not JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"{task_id}: stage_params must be a JSON object, got {type(parsed).__name__}")
    return parsed


class MlopsValidateOperator(MlopsStageOperator):
    """``mlops-tasks validate``: the dataset against its expectation suite (fails when it does not pass)."""

    stage = "validate"


class MlopsTrainOperator(MlopsStageOperator):
    """``mlops-tasks train``: split the dataset and train the candidate; the XCom is the ``TrainedModel``."""

    stage = "train"


class MlopsEvaluateOperator(MlopsStageOperator):
    """``mlops-tasks evaluate``: the candidate on the holdout against the gate.

    Args:
        trained: The train task's result (``train.output``).
        **kwargs: As :class:`MlopsStageOperator`; give the train task's ``stage_params``.
    """

    stage = "evaluate"

    def __init__(self, *, trained: Any = None, **kwargs: Any) -> None:
        inputs = dict(kwargs.pop("inputs", None) or {})
        if trained is not None:
            inputs["trained"] = trained
        super().__init__(inputs=inputs, **kwargs)


class MlopsRegisterOperator(MlopsStageOperator):
    """``mlops-tasks register``: the candidate with its verdict; the XCom is the ``RegisteredVersion``.

    Args:
        trained: The train task's result (``train.output``).
        report: The evaluate task's result (``evaluate.output``).
        **kwargs: As :class:`MlopsStageOperator`.
    """

    stage = "register"

    def __init__(self, *, trained: Any = None, report: Any = None, **kwargs: Any) -> None:
        inputs = dict(kwargs.pop("inputs", None) or {})
        if trained is not None:
            inputs["trained"] = trained
        if report is not None:
            inputs["report"] = report
        super().__init__(inputs=inputs, **kwargs)


class MlopsBuildImageOperator(MlopsStageOperator):
    """``mlops-tasks build-image``: the model-server image of a version; the XCom is the ``ImageRef``."""

    stage = "build-image"


class MlopsDeployOperator(MlopsStageOperator):
    """``mlops-tasks deploy``: blue-green behind HAProxy; a rolled-back rollout fails the task."""

    stage = "deploy"


class MlopsRollbackOperator(MlopsStageOperator):
    """``mlops-tasks rollback``: the previous version back at 100 %."""

    stage = "rollback"


class MlopsBatchScoreOperator(MlopsStageOperator):
    """``mlops-tasks batch-score``: predictions of a dataset in the prediction-log layout."""

    stage = "batch-score"


class MlopsDriftCheckOperator(MlopsStageOperator, BranchMixIn):
    """``mlops-tasks drift-check``, optionally branching on the verdict.

    Without branches the task succeeds with the ``DriftReport`` as its XCom whatever the
    verdict. With ``drift_branch`` (and ``no_drift_branch``) it is a branch operator: the tasks
    of the other branch are skipped. The XCom stays the report.

    Args:
        drift_branch: Task or task-group id(s) to run when drift is found (e.g. a retrain).
        no_drift_branch: Task id(s) to run otherwise (``ok`` or ``not_enough_data``).
        fail_on_drift: Fail the task on drift instead (an alert through Airflow's failure
            callbacks); not together with branches.
        **kwargs: As :class:`MlopsStageOperator`.
    """

    stage = "drift-check"
    inherits_from_skipmixin = True

    def __init__(
        self,
        *,
        drift_branch: str | Iterable[str] | None = None,
        no_drift_branch: str | Iterable[str] | None = None,
        fail_on_drift: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fail_on_drift and (drift_branch or no_drift_branch):
            raise ValueError(f"{self.task_id}: give either fail_on_drift or branches, not both")
        self.drift_branch = drift_branch
        self.no_drift_branch = no_drift_branch
        self.fail_on_drift = fail_on_drift

    def choose_branch(self, status: str | None) -> str | Iterable[str] | None:
        """The branch for a report's ``status``: ``drift_branch`` on drift, else ``no_drift_branch``."""
        return self.drift_branch if status == "drift" else self.no_drift_branch

    def handle_run(self, context: Any, run: StageRun) -> Any:
        """Succeed (or branch, or fail on drift) with the report; other codes as every stage."""
        if run.exit_code not in (ExitCode.OK, ExitCode.DRIFT, ExitCode.NOT_ENOUGH_DATA):
            return super().handle_run(context, run)
        report = run.result or {}
        status = report.get("status")
        self.log.info("Drift check: %s: %s", status, report.get("reason"))
        if status == "drift" and self.fail_on_drift:
            raise AirflowFailException(f"mlops-tasks drift-check: drift found: {report.get('reason')}")
        if self.drift_branch is not None or self.no_drift_branch is not None:
            # Skipping the other branch ends the task right there (Airflow raises to record the
            # skips), so the report is pushed as the task's return value first.
            context["ti"].xcom_push(key="return_value", value=report)
            self.do_branch(context, self.choose_branch(status))
        return report
