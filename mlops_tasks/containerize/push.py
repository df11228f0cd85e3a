"""Push a model image's tags to a container registry and return its repository digest."""

from __future__ import annotations

import logging
from typing import Any

from mlops_tasks.containerize.container_registry import (
    check_registry_reachable,
    coerce_registry_credentials,
    ecr_credentials,
    is_ecr_host,
    registry_refusal,
    split_registry,
)
from mlops_tasks.containerize.engine import DockerEngine, engine_client, find_image
from mlops_tasks.containerize.models import ImageRef, RegistryCredentials
from mlops_tasks.containerize.progress import LogFn, emit_progress
from mlops_tasks.errors import ConfigurationError, ContainerRegistryError, DockerUnavailableError

__all__ = ["push_model_image"]

logger = logging.getLogger(__name__)


def _untag(client: Any, ref: str) -> None:
    """Drop a registry tag added for a push that failed (the image itself stays)."""
    import docker

    try:
        client.images.remove(ref)
    except docker.errors.APIError:
        logger.warning("Could not remove tag %s", ref)


def _login(client: Any, host: str, target: str, creds: RegistryCredentials | None) -> dict[str, str] | None:
    """Log the engine in to the registry; return the auth config for the pushes (None: anonymous)."""
    import docker

    if creds is None:
        return None
    auth = {"username": creds.username, "password": creds.password.get_secret_value()}
    try:
        client.login(registry=host, reauth=True, **auth)
    except docker.errors.APIError as exc:
        raise registry_refusal(target, str(exc.explanation or exc)) from None
    return auth


def _push_tag(
    client: Any, target: str, tag: str, auth: dict[str, str] | None, log: LogFn | None
) -> str | None:
    """Push one tag (removing the registry tag again on failure); return the digest the registry gave."""
    import docker

    ref = f"{target}:{tag}"
    digest: str | None = None
    try:
        for chunk in client.api.push(target, tag=tag, auth_config=auth, stream=True, decode=True):
            if "error" in chunk:
                message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise registry_refusal(ref, message)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
            if chunk.get("status") and chunk.get("id") is None:
                emit_progress(log, chunk["status"])
    except docker.errors.APIError as exc:
        _untag(client, ref)
        raise registry_refusal(ref, str(exc.explanation or exc)) from None
    except ContainerRegistryError:
        _untag(client, ref)
        raise
    except (docker.errors.DockerException, OSError) as exc:
        _untag(client, ref)
        raise DockerUnavailableError(f"The Docker engine failed while pushing {ref}: {exc}") from exc
    return digest


def push_model_image(
    image: ImageRef,
    registry: str,
    *,
    credentials: RegistryCredentials | Any | None = None,
    repository: str | None = None,
    engine: DockerEngine | Any | None = None,
    ecr_endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
    log: LogFn | None = None,
) -> ImageRef:
    """Tag the image for a registry and push its tags; return it with its repository digest.

    Args:
        image: From :func:`~mlops_tasks.containerize.build_model_image`.
        registry: ``host[:port][/namespace]``, e.g. ``127.0.0.1:5000`` or
            ``123456789012.dkr.ecr.eu-west-1.amazonaws.com``.
        credentials: :class:`RegistryCredentials` or an object with ``username`` and
            ``password`` (e.g. a loaded prefect-docker ``DockerRegistryCredentials``
            block; the Prefect task also takes a saved block's name ``"slug/name"``).
            For an ECR host and no credentials, a token is fetched with boto3.
        repository: Repository in the registry; default the image's local one.
        engine: Docker engine.
        ecr_endpoint_url: ECR API endpoint for the token (tests, VPC endpoints).
        connect_timeout_s: Time allowed for the registry's TCP port to answer.
        log: Progress callback.

    Returns:
        The image reference with ``repo_digest`` and ``pushed`` filled in.

    Raises:
        ContainerRegistryUnreachableError: Unknown host or nothing answers.
        ContainerRegistryAuthError: Credentials refused or missing.
        ContainerRepositoryNotFoundError: The registry has no such repository.
        ContainerRegistryError: Any other refusal.
        ConfigurationError: The image is not on the engine, or the credentials are unusable.

    Example:
        ```python
        from mlops_tasks.containerize import RegistryCredentials, push_model_image
        pushed = push_model_image(ref, "registry.example.com/ml",
                                  credentials=RegistryCredentials(username="ci", password="..."))
        print(pushed.repo_digest)
        ```
    """
    host, namespace = split_registry(registry)
    creds = coerce_registry_credentials(credentials)
    if creds is None and is_ecr_host(host):
        creds = ecr_credentials(host, endpoint_url=ecr_endpoint_url)
    check_registry_reachable(host, connect_timeout_s)
    client = engine_client(engine)
    local = find_image(client, image.image_id)
    if local is None:
        raise ConfigurationError(
            f"Image {image.image_id} ({image.reference}) is not on the engine; build it first."
        )
    target = f"{host}/{namespace + '/' if namespace else ''}{repository or image.repository}"
    auth = _login(client, host, target, creds)
    digest: str | None = None
    pushed: list[str] = []
    for tag in image.tags:
        local.tag(target, tag)
        digest = _push_tag(client, target, tag, auth, log) or digest
        pushed.append(f"{target}:{tag}")
        emit_progress(log, f"Pushed {target}:{tag}")
    return image.model_copy(
        update={"repo_digest": f"{target}@{digest}" if digest else None, "pushed": pushed}
    )
