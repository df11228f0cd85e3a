"""Tasks of the model-registry stage: register, promote, roll back the champion."""

from __future__ import annotations

from prefect import get_run_logger, task

from mlops_tasks import evaluation as _evaluation
from mlops_tasks import registry as _registry
from mlops_tasks import training as _training
from mlops_tasks.deploy.state import endpoints_serving
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = ["promote_model", "register_model", "rollback_model"]


@task(name="register-model", timeout_seconds=600, **IO_RETRIES)
@resolves_blocks
def register_model(
    trained: _training.TrainedModel,
    report: _evaluation.EvaluationReport,
    model_name: str,
    *,
    mlflow_config: MlflowConfig | None = None,
) -> _registry.RegisteredVersion:
    """Register a candidate with its verdict.

    Task form of :func:`mlops_tasks.registry.register_model`.

    Retried on transient failures.

    Example:
        ```python
        version = register_model(trained, report, "churn-classifier")
        ```
    """
    version = _registry.register_model(trained, report, model_name, mlflow_config=mlflow_config)
    get_run_logger().info(
        "%s %s version %s (gate %s)",
        "Registered" if version.created else "Already registered:",
        model_name,
        version.version,
        "passed" if version.gate_passed else "failed",
    )
    return version


@task(name="promote-model", timeout_seconds=300, **IO_RETRIES)
@resolves_blocks
def promote_model(
    model_name: str,
    version: int,
    *,
    force: bool = False,
    mlflow_config: MlflowConfig | None = None,
) -> _registry.PromotionResult:
    """Move alias ``champion`` to a version.

    Task form of :func:`mlops_tasks.registry.promote_model`.

    Retried on transient failures.

    Example:
        ```python
        promote_model("churn-classifier", 4)
        ```
    """
    result = _registry.promote_model(model_name, version, force=force, mlflow_config=mlflow_config)
    get_run_logger().info(
        "Champion of %s: %s -> %s%s",
        model_name,
        result.previous_version,
        result.version,
        "" if result.changed else " (unchanged)",
    )
    return result


@task(name="rollback-model", timeout_seconds=300, **IO_RETRIES)
@resolves_blocks
def rollback_model(
    model_name: str, *, mlflow_config: MlflowConfig | None = None
) -> _registry.PromotionResult:
    """Move ``champion`` back to the previous champion.

    Task form of :func:`mlops_tasks.registry.rollback_model`; refused while an endpoint of
    :mod:`mlops_tasks.deploy` serves the model.

    Retried on transient failures.

    Example:
        ```python
        rollback_model("churn-classifier")
        ```
    """
    result = _registry.rollback_model(
        model_name, mlflow_config=mlflow_config, serving_endpoints=endpoints_serving
    )
    get_run_logger().info(
        "Rolled back %s: champion %s -> %s", model_name, result.previous_version, result.version
    )
    return result
