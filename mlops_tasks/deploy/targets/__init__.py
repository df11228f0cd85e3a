"""Deployment targets: where the blue and green slots and the router run.

Targets are found by name in entry point group ``mlops_tasks.deploy_targets``
(``local``: processes on loopback behind an HAProxy process; ``docker``: containers on a
user-defined network behind an HAProxy container; ``memory``: the in-memory target of
:mod:`mlops_tasks.deploy.memory`). A package adds a target by declaring an entry point
there whose object is called with the :class:`~mlops_tasks.deploy.models.EndpointSpec`.
When the group is not installed (the package runs from a source tree without being
installed), the built-in targets are used.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.targets.base import Target
from mlops_tasks.deploy.targets.docker import DockerTarget
from mlops_tasks.deploy.targets.local import LocalTarget
from mlops_tasks.errors import ConfigurationError

__all__ = ["ENTRY_POINT_GROUP", "DockerTarget", "LocalTarget", "Target", "get_target", "target_kinds"]

#: The entry point group deploy targets register in.
ENTRY_POINT_GROUP = "mlops_tasks.deploy_targets"

#: Used when the group is not installed (a source checkout without ``pip install -e``).
BUILT_IN = {
    "local": "mlops_tasks.deploy.targets.local:LocalTarget",
    "docker": "mlops_tasks.deploy.targets.docker:DockerTarget",
    "memory": "mlops_tasks.deploy.memory:MemoryTarget",
}


def _load(path: str) -> Callable[[EndpointSpec], Any]:
    module, name = path.split(":")
    factory: Callable[[EndpointSpec], Any] = getattr(importlib.import_module(module), name)
    return factory


def _entry_point_factory(ep: EntryPoint) -> Callable[[EndpointSpec], Any]:
    return lambda spec: ep.load()(spec)


def _built_in_factory(path: str) -> Callable[[EndpointSpec], Any]:
    return lambda spec: _load(path)(spec)


def target_kinds() -> dict[str, Callable[[EndpointSpec], Any]]:
    """Target name -> factory, from the entry point group (built-ins when it is absent).

    Example:
        ```python
        print(sorted(target_kinds()))  # ['docker', 'local', 'memory']
        ```
    """
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    kinds: dict[str, Callable[[EndpointSpec], Any]] = {}
    for name in sorted(set(found) | set(BUILT_IN)):
        ep = found.get(name)
        kinds[name] = _entry_point_factory(ep) if ep is not None else _built_in_factory(BUILT_IN[name])
    return kinds


def get_target(kind: str, endpoint: EndpointSpec) -> Any:
    """The target of ``kind`` for ``endpoint``.

    Raises:
        ConfigurationError: No target of that kind.

    Example:
        ```python
        target = get_target("local", EndpointSpec(name="churn"))
        ```
    """
    kinds = target_kinds()
    if kind not in kinds:
        raise ConfigurationError(
            f"Unknown deployment target {kind!r}; available: {', '.join(sorted(kinds))}."
        )
    return kinds[kind](endpoint)


def __getattr__(name: str) -> Any:
    if name == "TARGETS":
        warnings.warn(
            "mlops_tasks.deploy.targets.TARGETS is deprecated: targets are found through entry "
            f"point group {ENTRY_POINT_GROUP!r}; use get_target() or target_kinds().",
            DeprecationWarning,
            stacklevel=2,
        )
        return {"local": LocalTarget, "docker": DockerTarget}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
