"""Exit codes of ``mlops-tasks <stage>``: a failed check or a verdict apart from an error.

| code | name | when | result written |
|---|---|---|---|
| 0 | ``OK`` | the stage ran; no drift | the stage's result |
| 1 | ``ERROR`` | the stage failed (any other error: a bad model file, a registry refusal...) | no |
| 2 | ``USAGE`` | bad arguments, parameters that do not parse or validate, a configuration error | no |
| 3 | ``VALIDATION_FAILED`` | validate: the data failed its expectation suite | the `ValidationReport` |
| 4 | ``GATE_FAILED`` | evaluate: the candidate failed its quality gate | the `EvaluationReport` |
| 5 | ``UNAVAILABLE`` | a server (MLflow, S3, Docker) did not answer; a retry may pass | no |
| 10 | ``DRIFT`` | drift-check: drift found | the `DriftReport` |
| 11 | ``NOT_ENOUGH_DATA`` | drift-check: too few rows in the window for a verdict | the `DriftReport` |
| 12 | ``ROLLED_BACK`` | deploy: rollout stopped, the previous version serves | the `DeploymentRecord` |

The Airflow provider (``providers/airflow``) keeps a copy of this table (it cannot import
mlops-tasks: the two live in separate environments); a test keeps both in step.
"""

from __future__ import annotations

from enum import IntEnum

from mlops_tasks.errors import (
    ConfigurationError,
    DataValidationError,
    EndpointDeployError,
    QualityGateError,
    TransientError,
)

__all__ = ["ExitCode", "exit_code_for_error", "exit_code_for_status"]


class ExitCode(IntEnum):
    """Exit codes of the command line (see the module docstring for the table)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    VALIDATION_FAILED = 3
    GATE_FAILED = 4
    UNAVAILABLE = 5
    DRIFT = 10
    NOT_ENOUGH_DATA = 11
    ROLLED_BACK = 12


def exit_code_for_error(exc: BaseException) -> ExitCode:
    """The exit code of a stage that raised ``exc``.

    Args:
        exc: The exception the stage raised.

    Returns:
        The code (``ERROR`` for anything not in the table).

    Example:
        ```python
        from mlops_tasks.errors import ConfigurationError
        assert exit_code_for_error(ConfigurationError("x")) == ExitCode.USAGE
        ```
    """
    if isinstance(exc, DataValidationError):
        return ExitCode.VALIDATION_FAILED
    if isinstance(exc, QualityGateError):
        return ExitCode.GATE_FAILED
    if isinstance(exc, EndpointDeployError):
        record = getattr(exc, "record", None)
        if getattr(record, "outcome", None) == "rolled_back":
            return ExitCode.ROLLED_BACK
    if isinstance(exc, TransientError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, ConfigurationError):
        return ExitCode.USAGE
    return ExitCode.ERROR


def exit_code_for_status(status: str | None) -> ExitCode:
    """The exit code of a drift report's ``status`` (``ok``, ``drift``, ``not_enough_data``).

    Example:
        ```python
        assert exit_code_for_status("drift") == ExitCode.DRIFT
        ```
    """
    return {"drift": ExitCode.DRIFT, "not_enough_data": ExitCode.NOT_ENOUGH_DATA}.get(
        status or "", ExitCode.OK
    )
