"""The endpoint stages without Prefect: build a model image, deploy blue-green, roll back.

What ``mlops-tasks build-image|deploy|rollback`` run. The Prefect flows
(:mod:`flows.deployment`) do the same steps through their tasks and pick the version and the
smoke rows with the same helpers (:mod:`mlops_tasks.stages.inputs`). Prefect blocks are not
read here: a ``target_block`` or an MLflow ``block`` is refused with a
:class:`~mlops_tasks.errors.ConfigurationError` (give the target, endpoint and MLflow settings
themselves).
"""

from __future__ import annotations

import logging

import pandas as pd

from mlops_tasks.containerize import DockerEngine, ImageRef, build_model_image, image_verified
from mlops_tasks.containerize import verify_model_image as verify_image
from mlops_tasks.data import load_dataset
from mlops_tasks.deploy.endpoint_ops import rollback_deployment
from mlops_tasks.deploy.models import DeploymentRecord, EndpointSpec
from mlops_tasks.deploy.rollout import deploy_blue_green
from mlops_tasks.errors import ConfigurationError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.stages.inputs import demo_dataset, label_column, pick_version, smoke_rows_of
from mlops_tasks.stages.params import DemoData, DeploymentPipelineParams, RollbackParams, require_model_name
from mlops_tasks.stages.stage_params import BuildImageParams

__all__ = ["log_step", "run_build_image", "run_deploy", "run_rollback"]

logger = logging.getLogger(__name__)


def log_step(record: DeploymentRecord) -> None:
    """A rollout listener that logs each step added to the deployment's timeline.

    Args:
        record: The record as the rollout has it now (its last step is the new one).
    """
    step = record.timeline[-1]
    logger.info("%s %s", step.step, step.detail)


def run_build_image(params: BuildImageParams) -> ImageRef:
    """Build (or reuse) the model-server image of a registered version.

    Args:
        params: Model, version (default: challenger, else champion), image spec, engine.

    Returns:
        The image (reference, digest, size; ``reused`` when an identical one existed).

    Raises:
        DockerUnavailableError: No Docker engine answers.
        ImageBuildError: The build failed (the message has the failing step).
        ModelNotFoundError: No such model or version.

    Example:
        ```python
        from mlops_tasks.stages.endpoint import run_build_image
        from mlops_tasks.stages.stage_params import BuildImageParams
        ref = run_build_image(BuildImageParams(model_name="churn-classifier", version=3))
        ```
    """
    model_name = require_model_name(params.model_name, "build-image")
    version = pick_version(model_name, params.version, params.mlflow)
    return build_model_image(
        model_name,
        version,
        spec=params.image,
        engine=DockerEngine(base_url=params.docker_host),
        mlflow_config=params.mlflow,
        force_rebuild=params.force_rebuild,
        log=logger.info,
    )


def _smoke_rows(params: DeploymentPipelineParams, model_name: str, version: int) -> pd.DataFrame:
    spec = params.smoke_dataset or demo_dataset(DemoData())
    target = label_column(
        model_name,
        version,
        target_column=params.target_column,
        smoke_dataset=params.smoke_dataset,
        mlflow_config=params.mlflow,
    )
    return smoke_rows_of(load_dataset(spec).frame, target, params.smoke_rows)


def _build_and_verify(
    model_name: str, version: int, endpoint: EndpointSpec, rows: pd.DataFrame, mlflow: MlflowConfig | None
) -> None:
    """Docker target: build (or reuse) the version's image and verify it unless it already was."""
    from mlops_tasks.deploy.targets.docker import DockerTarget

    target = DockerTarget(endpoint)
    engine = DockerEngine(base_url=target.options.engine_url)
    ref = build_model_image(
        model_name, version, spec=target.image_spec(), engine=engine, mlflow_config=mlflow, log=logger.info
    )
    if not image_verified(ref, model_name, version, mlflow_config=mlflow):
        verify_image(ref, rows, engine=engine, mlflow_config=mlflow, log=logger.info)


def run_deploy(params: DeploymentPipelineParams) -> DeploymentRecord:
    """Deploy a registered version blue-green behind the endpoint's HAProxy router.

    Args:
        params: The deployment pipeline's parameters (``target_block`` is not read here).

    Returns:
        The deployment record (``succeeded`` or ``noop``); champion then matches what serves.

    Raises:
        EndpointDeployError: The new version did not make it; the previous one kept, or got
            back, all traffic (``exc.record`` says which step failed).
        ConfigurationError: No model name, or a Prefect block named in the parameters.

    Example:
        ```python
        from mlops_tasks.stages.endpoint import run_deploy
        from mlops_tasks.stages.params import DeploymentPipelineParams
        record = run_deploy(DeploymentPipelineParams(model_name="churn-classifier"))
        ```
    """
    model_name = require_model_name(params.model_name, "deploy")
    if params.target_block:
        raise ConfigurationError(
            f"deploy: target_block {params.target_block!r} names a Prefect block, which the command line "
            "does not read; give target and endpoint instead."
        )
    version = pick_version(model_name, params.version, params.mlflow)
    logger.info(
        "Deploying %s version %s to endpoint %s (%s, %s)",
        model_name,
        version,
        params.endpoint.name,
        params.target,
        params.rollout.strategy,
    )
    rows = _smoke_rows(params, model_name, version)
    if params.target == "docker":
        _build_and_verify(model_name, version, params.endpoint, rows, params.mlflow)
    record = deploy_blue_green(
        model_name,
        version,
        endpoint=params.endpoint,
        rollout=params.rollout,
        target=params.target,
        smoke_rows=rows,
        mlflow_config=params.mlflow,
        force=params.force,
        listener=log_step,
    )
    logger.info("%s version %s on %s: %s", model_name, version, record.endpoint, record.outcome)
    return record


def run_rollback(params: RollbackParams) -> DeploymentRecord:
    """Put the previous version back at 100 % and move ``champion`` back with it.

    Args:
        params: Endpoint, rollout when the previous slot is not warm, MLflow settings.

    Returns:
        The rollback's record.

    Raises:
        RollbackError: Nothing deployed, or no previous version recorded.

    Example:
        ```python
        from mlops_tasks.stages.endpoint import run_rollback
        from mlops_tasks.stages.params import RollbackParams
        record = run_rollback(RollbackParams(endpoint_name="churn"))
        ```
    """
    record = rollback_deployment(
        params.endpoint_name, rollout=params.rollout, mlflow_config=params.mlflow, listener=log_step
    )
    logger.info("Endpoint %s rolled back to version %s", params.endpoint_name, record.version)
    return record
