"""Settings, labels and engine-error translation of the ``docker`` target."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, Field

from mlops_tasks.errors import DockerUnavailableError, EndpointDeployError, SlotStartError

__all__ = [
    "DEFAULT_ROUTER_IMAGE",
    "ENDPOINT_LABEL",
    "REPLICA_LABEL",
    "ROLE_LABEL",
    "ROUTER_LIVE_PORT",
    "ROUTER_MOUNT",
    "ROUTER_PREVIEW_PORT",
    "ROUTER_REDIRECT_PORT",
    "SLOT_COMMAND",
    "SLOT_LABEL",
    "SLOT_LOG_MOUNT",
    "SLOT_PORT",
    "STATE_LABEL",
    "DockerTargetOptions",
    "engine_errors",
    "env_pairs",
]

ENDPOINT_LABEL = "org.mlops-tasks.endpoint"
STATE_LABEL = "org.mlops-tasks.endpoint-state"
ROLE_LABEL = "org.mlops-tasks.role"
SLOT_LABEL = "org.mlops-tasks.slot"
REPLICA_LABEL = "org.mlops-tasks.replica"
DEFAULT_ROUTER_IMAGE = "haproxy:lts"
#: Where the router's state folder is mounted inside the router container.
ROUTER_MOUNT = "/run/mlops-router"
#: Ports HAProxy binds inside the router container (published on the endpoint's ports).
ROUTER_LIVE_PORT, ROUTER_PREVIEW_PORT = 8080, 8081
#: Port of the optional plain-HTTP redirect frontend inside the router container (published
#: on ``EndpointSecurity.http_redirect_port``).
ROUTER_REDIRECT_PORT = 8082
#: Port of the model server inside a slot container (containerize.SERVER_PORT).
SLOT_PORT = 8080
SLOT_LOG_MOUNT = "/var/lib/mlops/prediction-log"
SLOT_COMMAND = ["/opt/venv/bin/python", "-m", "mlops_tasks.serving.cli"]


def env_pairs(variable: str) -> dict[str, str]:
    """``K=v,K2=v2`` pairs of an environment variable, as a dict."""
    raw = os.environ.get(variable, "")
    pairs = [p.split("=", 1) for p in raw.split(",") if "=" in p]
    return {k.strip(): v.strip() for k, v in pairs if k.strip()}


class DockerTargetOptions(BaseModel):
    """Settings of the docker target; each has an environment variable.

    Options are read from the environment when an endpoint is first started and kept in
    its ``docker.json``, so later runs (rollback, stop, describe) use the same ones; a
    variable set later wins over the kept value.

    Example:
        ```python
        opts = DockerTargetOptions(router_image="haproxy:3.0", base_image="python:3.11-slim")
        ```
    """

    router_image: str = Field(
        DEFAULT_ROUTER_IMAGE, description="HAProxy image of the router [MLOPS_DOCKER_ROUTER_IMAGE]."
    )
    base_image: str | None = Field(
        None, description="FROM image of model images; default python:3.11-slim [MLOPS_DOCKER_BASE_IMAGE]."
    )
    engine_url: str | None = Field(None, description="Docker engine URL [DOCKER_HOST].")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on containers, network and images [MLOPS_DOCKER_LABELS=k=v,k2=v2].",
    )
    allow_unverified: bool = Field(
        False,
        description="Run images that did not pass verify_model_image [MLOPS_DOCKER_ALLOW_UNVERIFIED=1].",
    )
    slot_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment of the model-server containers [MLOPS_DOCKER_SLOT_ENV=K=v,K2=v2].",
    )
    pull: bool = Field(True, description="Pull a missing router image (needs a registry).")

    repository: str | None = Field(
        None, description="Repository of the model images; default mlops-tasks/<model name>."
    )
    pinned: list[str] = Field(
        default_factory=list,
        description="Fields set by a Deploy Target block: the environment does not "
        "override them (argument > block > environment > default).",
    )

    @classmethod
    def resolve(cls, saved: dict[str, Any] | None = None) -> DockerTargetOptions:
        """Kept options overridden by the environment (except the fields a block pinned)."""
        doc = dict(saved or {})
        pinned = set(doc.get("pinned") or [])
        env = os.environ
        values: dict[str, Any] = {
            "router_image": env.get("MLOPS_DOCKER_ROUTER_IMAGE"),
            "base_image": env.get("MLOPS_DOCKER_BASE_IMAGE"),
            "engine_url": env.get("DOCKER_HOST"),
            "labels": env_pairs("MLOPS_DOCKER_LABELS") if env.get("MLOPS_DOCKER_LABELS") else None,
            "slot_env": env_pairs("MLOPS_DOCKER_SLOT_ENV") if env.get("MLOPS_DOCKER_SLOT_ENV") else None,
            "allow_unverified": (
                env["MLOPS_DOCKER_ALLOW_UNVERIFIED"].lower() in ("1", "true", "yes")
                if env.get("MLOPS_DOCKER_ALLOW_UNVERIFIED")
                else None
            ),
        }
        doc.update({k: v for k, v in values.items() if v is not None and k not in pinned})
        return cls.model_validate(doc)

    def pin(self, **values: Any) -> DockerTargetOptions:
        """These options with ``values`` set and kept over the environment (a block's settings).

        Example:
            ```python
            opts = DockerTargetOptions().pin(router_image="haproxy:3.0")
            ```
        """
        given = {k: v for k, v in values.items() if v is not None}
        return self.model_copy(update={**given, "pinned": sorted(set(self.pinned) | set(given))})


@contextmanager
def engine_errors(what: str, error: type[EndpointDeployError] = SlotStartError) -> Iterator[None]:
    """Translate Docker SDK and connection errors into a typed deployment error."""
    import docker
    import requests

    try:
        yield
    except EndpointDeployError:
        raise
    except (
        docker.errors.DockerException,
        requests.RequestException,
        ConnectionError,
        DockerUnavailableError,
    ) as exc:
        detail = getattr(exc, "explanation", None) or str(exc)
        raise error(
            f"The Docker engine failed to {what}: {detail}. Check that the engine runs (docker info), "
            "then run the deployment again; blue keeps serving."
        ) from exc
