"""Containerize: a registered model version -> a small, offline-built server image.

The image holds the model server (:mod:`mlops_tasks.serving`, without Prefect,
Great Expectations, Evidently or MLflow), exactly the wheels the model needs and
the MLflow model folder. Stages, one module each:

1. :func:`prepare_build_context` (``context.py``) writes a folder you can inspect: a
   readable ``Dockerfile`` (from ``templates/Dockerfile.template``, see ``dockerfile.py``),
   ``.dockerignore``, ``requirements.txt`` (``requirements.py``: the model's own MLflow
   requirements without MLflow, plus the server's minimal set), ``wheels/``
   (``wheelhouse.py``: downloaded on the host for the image's platform and Python), the
   server code in ``server/`` and the model in ``model/`` (``model_source.py``) with
   ``serving-model.json`` (name, version, run id) for the server.
2. :func:`build_model_image` (``build.py``) builds it through the Docker SDK (layers
   ordered base -> dependencies -> model, so a new version with the same dependencies
   rebuilds in seconds), reuses an image of identical content, and prunes old images of
   the model beyond ``keep_images`` (``prune.py``).
3. :func:`verify_model_image` (``verify.py``) runs the image on a free loopback port,
   waits for ``/health``, sends holdout rows to ``/invocations``, compares with
   in-process predictions and records the verdict as the MLflow version tag
   ``mlops.image.verified=<image id>`` (read back with :func:`image_verified`).
4. :func:`push_model_image` (``push.py``) pushes to any container registry
   (``container_registry.py``: credentials given explicitly or as a loaded block,
   Amazon ECR log-in with a token from boto3, refusals told apart).

Docker engine precedence (``engine.py``): explicit ``DockerEngine(base_url=...)`` (or a
prefect-docker ``DockerHost`` block) > ``$DOCKER_HOST`` > the local socket. Parameter
and result models are in ``models.py``, shared label names in ``constants.py``.
"""

from mlops_tasks.containerize.build import build_model_image
from mlops_tasks.containerize.constants import (
    CONTENT_LABEL,
    DEFAULT_BASE_IMAGE,
    IMAGE_UID,
    MANAGED_LABEL,
    METADATA_FILE,
    MODEL_LABEL,
    SERVER_PORT,
    STAGE_LABEL,
    TAG_IMAGE_VERIFIED,
    TAG_IMAGE_VERIFIED_AT,
    VERIFY_LABEL,
    model_label,
)
from mlops_tasks.containerize.container_registry import ecr_credentials
from mlops_tasks.containerize.context import default_repository, prepare_build_context
from mlops_tasks.containerize.dockerfile import render_dockerfile
from mlops_tasks.containerize.engine import DockerEngine
from mlops_tasks.containerize.models import (
    BuildContext,
    ImageRef,
    ImageSpec,
    ModelSource,
    RegistryCredentials,
    VerificationReport,
)
from mlops_tasks.containerize.progress import LogFn
from mlops_tasks.containerize.prune import prune_model_images
from mlops_tasks.containerize.push import push_model_image
from mlops_tasks.containerize.requirements import (
    EXCLUDED_REQUIREMENTS,
    S3_REQUIREMENTS,
    SERVER_REQUIREMENTS,
    resolve_requirements,
)
from mlops_tasks.containerize.verify import image_verified, verify_model_image
from mlops_tasks.containerize.wheelhouse import cached_wheelhouse, fill_wheelhouse

__all__ = [
    "CONTENT_LABEL",
    "DEFAULT_BASE_IMAGE",
    "EXCLUDED_REQUIREMENTS",
    "IMAGE_UID",
    "MANAGED_LABEL",
    "METADATA_FILE",
    "MODEL_LABEL",
    "S3_REQUIREMENTS",
    "SERVER_PORT",
    "SERVER_REQUIREMENTS",
    "STAGE_LABEL",
    "TAG_IMAGE_VERIFIED",
    "TAG_IMAGE_VERIFIED_AT",
    "VERIFY_LABEL",
    "BuildContext",
    "DockerEngine",
    "ImageRef",
    "ImageSpec",
    "LogFn",
    "ModelSource",
    "RegistryCredentials",
    "VerificationReport",
    "build_model_image",
    "cached_wheelhouse",
    "default_repository",
    "ecr_credentials",
    "fill_wheelhouse",
    "image_verified",
    "model_label",
    "prepare_build_context",
    "prune_model_images",
    "push_model_image",
    "render_dockerfile",
    "resolve_requirements",
    "verify_model_image",
]
