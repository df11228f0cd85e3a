"""Tasks of the image stage: build, push and verify the model-server image; publish what was done."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mlops_tasks import containerize as _containerize
from mlops_tasks.errors import ImageVerificationError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, artifact_key, resolves_blocks

__all__ = [
    "build_model_image",
    "publish_image",
    "publish_verification",
    "push_model_image",
    "verify_model_image",
]


@task(name="build-model-image", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def build_model_image(
    model_name: str,
    version: int | str,
    *,
    spec: _containerize.ImageSpec | None = None,
    engine: _containerize.DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
    force_rebuild: bool = False,
) -> _containerize.ImageRef:
    """Build (or reuse) the model-server image of a version.

    Task form of :func:`mlops_tasks.containerize.build_model_image`.

    The build log goes to the run logger, a table artifact describes the image
    (:func:`publish_image`). Retried on transient failures (no Docker engine answering).

    Example:
        ```python
        ref = build_model_image("churn-classifier", 4)
        ```
    """
    image = _containerize.build_model_image(
        model_name,
        version,
        spec=spec,
        engine=engine,
        mlflow_config=mlflow_config,
        force_rebuild=force_rebuild,
        log=get_run_logger().info,
    )
    publish_image(image, "Reused" if image.reused else "Built")
    return image


@task(name="push-model-image", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def push_model_image(
    image: _containerize.ImageRef,
    registry: str,
    *,
    credentials: _containerize.RegistryCredentials | Any | str | None = None,
    repository: str | None = None,
    engine: _containerize.DockerEngine | Any | None = None,
    ecr_endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
) -> _containerize.ImageRef:
    """Push a model image to a container registry.

    Task form of :func:`mlops_tasks.containerize.push_model_image`.

    The push log goes to the run logger, a table artifact describes the pushed image
    (:func:`publish_image`). Retried on transient failures (registry unreachable).

    Example:
        ```python
        pushed = push_model_image(ref, "123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        ```
    """
    if isinstance(credentials, str):  # a saved block "<block-type-slug>/<name>", loaded here at the edge
        from prefect.blocks.core import Block

        credentials = Block.load(credentials)
    pushed = _containerize.push_model_image(
        image,
        registry,
        credentials=credentials,
        repository=repository,
        engine=engine,
        ecr_endpoint_url=ecr_endpoint_url,
        connect_timeout_s=connect_timeout_s,
        log=get_run_logger().info,
    )
    publish_image(pushed, "Pushed")
    return pushed


@task(name="verify-model-image", timeout_seconds=1800)
@resolves_blocks
def verify_model_image(
    image: _containerize.ImageRef | str,
    holdout: pd.DataFrame,
    *,
    model_name: str | None = None,
    version: int | None = None,
    target: str | None = None,
    max_rows: int = 200,
    load_timeout_s: float = 120.0,
    tries: int = 60,
    rtol: float = 1e-6,
    record: bool = True,
    engine: _containerize.DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
) -> _containerize.VerificationReport:
    """Run the image, probe it and compare its predictions.

    Task form of :func:`mlops_tasks.containerize.verify_model_image`.

    A markdown artifact holds the verdict whether or not it passed
    (:func:`publish_verification`).

    Example:
        ```python
        report = verify_model_image(ref, holdout, target="churned")
        ```
    """
    name = image.reference if isinstance(image, _containerize.ImageRef) else image
    try:
        report = _containerize.verify_model_image(
            image,
            holdout,
            model_name=model_name,
            version=version,
            target=target,
            max_rows=max_rows,
            load_timeout_s=load_timeout_s,
            tries=tries,
            rtol=rtol,
            record=record,
            engine=engine,
            mlflow_config=mlflow_config,
            log=get_run_logger().info,
        )
    except ImageVerificationError as exc:
        if exc.report is not None:
            publish_verification(exc.report, name)
        raise
    publish_verification(report, name)
    return report


def publish_image(image: _containerize.ImageRef, action: str) -> None:
    """Publish an image as a Prefect table artifact (reference, id, tags, size, model, digest).

    Args:
        image: The built or pushed image.
        action: What was done, e.g. ``"Built"``, ``"Reused"``, ``"Pushed"``.

    Example:
        ```python
        publish_image(ref, "Built")
        ```
    """
    rows = [
        {"field": "image", "value": image.reference},
        {"field": "image id", "value": image.image_id},
        {"field": "tags", "value": ", ".join(image.tags)},
        {"field": "size (MB)", "value": f"{image.size_bytes / 1e6:.1f}"},
        {"field": "model", "value": f"{image.model_name} v{image.model_version}"},
        {"field": "reused", "value": str(image.reused)},
        {"field": "repo digest", "value": image.repo_digest or ""},
        {"field": "pushed", "value": ", ".join(image.pushed)},
        {"field": "build context", "value": str(image.build_context or "")},
    ]
    create_table_artifact(
        table=rows,
        key=artifact_key("image", image.model_name, f"v{image.model_version}"),
        description=f"{action} {image.reference}",
    )


def publish_verification(report: _containerize.VerificationReport, name: str) -> None:
    """Publish an image verification as a Prefect markdown artifact.

    Args:
        report: The verification, passed or failed.
        name: The image reference shown.

    Example:
        ```python
        publish_verification(report, ref.reference)
        ```
    """
    verdict = "passed" if report.passed else "FAILED"
    markdown = (
        f"# Image verification {verdict}\n\n| | |\n|---|---|\n| image | `{name}` |\n"
        f"| image id | `{report.image_id}` |\n| model | {report.model_name} v{report.model_version} |\n"
        f"| rows compared | {report.rows} |\n| mismatches | {report.mismatches} |\n"
        f"| healthy after (s) | {report.health_seconds} |\n| detail | {report.detail} |\n"
    )
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("verify", report.model_name, f"v{report.model_version}"),
        description=f"Image verification {verdict}",
    )
