"""The Docker engine connection: which engine, a connected client, image look-up.

Engine precedence: explicit ``DockerEngine(base_url=...)`` (or a prefect-docker
``DockerHost`` block, or a ``docker.DockerClient``) > ``$DOCKER_HOST`` > the local socket.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_tasks.errors import ConfigurationError, DockerUnavailableError
from mlops_tasks.settings import first_set, get_settings

__all__ = ["DockerEngine", "engine_client", "find_image"]


class DockerEngine(BaseModel):
    """Which Docker engine to talk to.

    ``base_url`` falls back to ``$DOCKER_HOST``, then to the local socket. A
    prefect-docker ``DockerHost`` block (anything with ``get_client()``) is
    accepted wherever a ``DockerEngine`` is.

    Example:
        ```python
        from mlops_tasks.containerize import DockerEngine
        client = DockerEngine(base_url="unix:///var/run/docker.sock").client()
        ```
    """

    model_config = ConfigDict(frozen=True)

    base_url: str | None = Field(None, description="Engine URL, e.g. unix:///var/run/docker.sock.")
    timeout_s: int = Field(600, gt=0, description="API timeout (a build streams within it).")

    def client(self) -> Any:
        """A connected ``docker.DockerClient``.

        Raises:
            DockerUnavailableError: No engine answers at the address.
        """
        import docker

        url = first_set(self.base_url, get_settings().docker_host)
        try:
            client = (
                docker.DockerClient(base_url=url, timeout=self.timeout_s)
                if url
                else docker.from_env(timeout=self.timeout_s)
            )
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError
            raise DockerUnavailableError(
                f"No Docker engine answers at {url or 'the default socket'}: {exc}. Start one "
                "(scripts/ensure-system.sh installs docker.io and starts dockerd) or set DOCKER_HOST."
            ) from exc
        return client


def engine_client(engine: DockerEngine | Any | None) -> Any:
    """A connected Docker client for whatever names an engine.

    Args:
        engine: A :class:`DockerEngine`, anything with ``get_client()`` (a prefect-docker
            ``DockerHost`` block), a ``docker.DockerClient``, or None for the default engine.

    Returns:
        A ``docker.DockerClient`` that answered a ping.

    Raises:
        DockerUnavailableError: No engine answers.
        ConfigurationError: ``engine`` is none of the above.

    Example:
        ```python
        client = engine_client(DockerEngine(base_url="unix:///var/run/docker.sock"))
        ```
    """
    if engine is None:
        return DockerEngine().client()
    if isinstance(engine, DockerEngine):
        return engine.client()
    if hasattr(engine, "get_client"):  # prefect-docker DockerHost block
        try:
            client = engine.get_client()
            client.ping()
            return client
        except Exception as exc:
            raise DockerUnavailableError(f"No Docker engine answers for {engine!r}: {exc}") from exc
    if hasattr(engine, "ping") and hasattr(engine, "images"):  # a docker.DockerClient
        return engine
    raise ConfigurationError(
        f"engine must be a DockerEngine, a DockerHost block or a DockerClient, got {engine!r}"
    )


def find_image(client: Any, ref: str) -> Any | None:
    """The engine's image named ``ref`` (id, ``repo:tag`` or digest), or None when it has none.

    Args:
        client: A ``docker.DockerClient``.
        ref: Image id or reference.

    Returns:
        A ``docker.models.images.Image`` or None.

    Example:
        ```python
        image = find_image(engine_client(None), "mlops-tasks/churn:v3")
        ```
    """
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
