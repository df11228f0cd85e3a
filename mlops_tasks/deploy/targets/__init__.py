"""Deployment targets: where the blue and green slots and the router run.

``local`` (processes on loopback behind an HAProxy process) and ``docker`` (containers
on a user-defined network behind an HAProxy container) implement the same
:class:`~mlops_tasks.deploy.targets.base.Target` interface and are registered in
:data:`TARGETS`.
"""

from __future__ import annotations

from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.targets.base import Target
from mlops_tasks.deploy.targets.docker import DockerTarget
from mlops_tasks.deploy.targets.local import LocalTarget
from mlops_tasks.errors import ConfigurationError

#: Target kind -> class. A new target adds itself here.
TARGETS: dict[str, type[Target]] = {"local": LocalTarget, "docker": DockerTarget}


def get_target(kind: str, endpoint: EndpointSpec) -> Target:
    """The target of ``kind`` for ``endpoint``.

    Raises:
        ConfigurationError: No target of that kind.

    Example:
        ```python
        target = get_target("local", EndpointSpec(name="churn"))
        ```
    """
    try:
        cls = TARGETS[kind]
    except KeyError:
        raise ConfigurationError(
            f"Unknown deployment target {kind!r}; available: {', '.join(sorted(TARGETS))}."
        ) from None
    return cls(endpoint)


__all__ = ["TARGETS", "DockerTarget", "LocalTarget", "Target", "get_target"]
