"""Tasks of the rollout stage: deploy blue-green, roll back, describe, stop; publish the record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from mlops_tasks.deploy import models as _deploy_models
from mlops_tasks.deploy import monitored as _monitored
from mlops_tasks.deploy import strategy as _deploy
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.errors import EndpointDeployError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks import access as _access  # noqa: F401  (registers Prefect Secret blocks)
from mlops_tasks.tasks._prefect import artifact_key, resolves_blocks

__all__ = [
    "deploy_blue_green",
    "describe_deployment",
    "endpoint_source",
    "publish_deployment",
    "rollback_deployment",
    "stop_endpoint",
]


@task(name="deploy-blue-green", timeout_seconds=3600)
@resolves_blocks
def deploy_blue_green(
    model_name: str,
    version: int,
    *,
    endpoint: _deploy_models.EndpointSpec | None = None,
    rollout: _deploy_models.RolloutSpec | None = None,
    target: str | DeployTarget = "local",
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    force: bool = False,
    lock_timeout_s: float = 0.0,
    registry: RegistryAccess | None = None,
) -> _deploy_models.DeploymentRecord:
    """Deploy a registered version blue-green.

    Task form of :func:`mlops_tasks.deploy.strategy.deploy_blue_green`.

    Each rollout step goes to the run logger; the deployment record is published as a
    Prefect artifact, also when the rollout fails or rolls back
    (:func:`publish_deployment`). Not retried: a failed rollout is never repeated blindly.

    Example:
        ```python
        from mlops_tasks.deploy import EndpointSpec, RolloutSpec
        deploy_blue_green("churn-classifier", 4, endpoint=EndpointSpec(name="churn"),
                          rollout=RolloutSpec(strategy="canary", bake_seconds=60))
        ```
    """
    logger = get_run_logger()
    record = _publishing(
        lambda: _deploy.deploy_blue_green(
            model_name,
            version,
            endpoint=endpoint,
            rollout=rollout,
            target=target,
            smoke_rows=smoke_rows,
            mlflow_config=mlflow_config,
            force=force,
            lock_timeout_s=lock_timeout_s,
            listener=_step_logger(logger),
            registry=registry,
        )
    )
    logger.info("%s version %s on %s: %s", model_name, version, record.endpoint, record.outcome)
    return record


@task(name="rollback-deployment", timeout_seconds=1800)
@resolves_blocks
def rollback_deployment(
    endpoint_name: str = "default",
    *,
    rollout: _deploy_models.RolloutSpec | None = None,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    lock_timeout_s: float = 0.0,
    registry: RegistryAccess | None = None,
) -> _deploy_models.DeploymentRecord:
    """Put the previous version back at 100 %.

    Task form of :func:`mlops_tasks.deploy.strategy.rollback_deployment`.

    Steps go to the run logger; the record is published as a Prefect artifact
    (:func:`publish_deployment`).

    Example:
        ```python
        rollback_deployment("churn")
        ```
    """
    logger = get_run_logger()
    record = _publishing(
        lambda: _deploy.rollback_deployment(
            endpoint_name,
            rollout=rollout,
            smoke_rows=smoke_rows,
            mlflow_config=mlflow_config,
            lock_timeout_s=lock_timeout_s,
            listener=_step_logger(logger),
            registry=registry,
        )
    )
    logger.info("Endpoint %s rolled back to version %s", endpoint_name, record.version)
    return record


@task(name="describe-deployment")
@resolves_blocks
def describe_deployment(endpoint_name: str = "default") -> _deploy_models.EndpointDescription:
    """What serves where right now.

    Task form of :func:`mlops_tasks.deploy.strategy.describe_deployment`.

    Example:
        ```python
        print(describe_deployment("churn").live_version)
        ```
    """
    info = _deploy.describe_deployment(endpoint_name)
    get_run_logger().info(
        "%s: %s version %s live in slot %s", info.url, info.model_name, info.live_version, info.live_color
    )
    return info


@task(name="endpoint-source")
def endpoint_source(name: str) -> _monitored.EndpointSource:
    """The model, live version and prediction log of an endpoint (what its drift check reads).

    Task form of :func:`mlops_tasks.deploy.monitored.endpoint_source`.

    Example:
        ```python
        source = endpoint_source("churn")
        print(source.model_name, source.version, source.prediction_log)
        ```
    """
    source = _monitored.endpoint_source(name)
    get_run_logger().info(
        "Endpoint %s serves %s version %s (from its %s); prediction log %s",
        name,
        source.model_name,
        source.version,
        source.version_from,
        source.prediction_log,
    )
    return source


@task(name="stop-endpoint", timeout_seconds=300)
@resolves_blocks
def stop_endpoint(endpoint_name: str = "default", *, lock_timeout_s: float = 10.0) -> bool:
    """Stop the endpoint's router and slots.

    Task form of :func:`mlops_tasks.deploy.strategy.stop_endpoint`.

    Example:
        ```python
        stop_endpoint("churn")
        ```
    """
    stopped = _deploy.stop_endpoint(endpoint_name, lock_timeout_s=lock_timeout_s)
    get_run_logger().info("Endpoint %s %s", endpoint_name, "stopped" if stopped else "was not running")
    return stopped


def publish_deployment(record: _deploy_models.DeploymentRecord) -> None:
    """Publish a deployment record and its timeline as a Prefect markdown artifact.

    Args:
        record: The record of a deploy or rollback, whatever its outcome.

    Example:
        ```python
        publish_deployment(record)
        ```
    """
    rows = "\n".join(f"| {e.at} | {e.step} | {e.detail.replace('|', '/')} |" for e in record.timeline)
    text = (
        f"## {record.kind.capitalize()} of {record.model_name} version {record.version} "
        f"on endpoint `{record.endpoint}`: **{record.outcome}**\n\n"
        f"- target: {record.target}, strategy: {record.strategy}, by {record.who}\n"
        f"- previous version: {record.previous_version}, live slot: {record.live_color}\n"
        f"- switch: {'' if record.switch_ms is None else f'{record.switch_ms:.0f} ms'}\n"
        + (f"- error: {record.error}\n" if record.error else "")
        + (f"- guard: {record.guard}\n" if record.guard else "")
        + (f"- shadow: {record.shadow}\n" if record.shadow else "")
        + "\n| at | step | detail |\n|---|---|---|\n"
        + rows
        + "\n"
    )
    create_markdown_artifact(
        markdown=text,
        key=artifact_key("deployment", record.endpoint),
        description=f"{record.kind} {record.model_name} v{record.version}: {record.outcome}",
    )


def _step_logger(logger: Any) -> Callable[[_deploy_models.DeploymentRecord], None]:
    """A rollout listener logging each step added to the timeline.

    The strategy may call it from another thread, so the run logger is taken in the
    task's thread and passed in.
    """

    def log_last_step(record: _deploy_models.DeploymentRecord) -> None:
        step = record.timeline[-1]
        logger.info("%s %s", step.step, step.detail)

    return log_last_step


def _publishing(
    call: Callable[[], _deploy_models.DeploymentRecord],
) -> _deploy_models.DeploymentRecord:
    """Run a rollout and publish its record, also when it raises with a record."""
    try:
        record = call()
    except EndpointDeployError as exc:
        if exc.record is not None:
            publish_deployment(exc.record)
        raise
    publish_deployment(record)
    return record
