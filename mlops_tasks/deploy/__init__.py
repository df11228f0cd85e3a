"""Blue-green deployment behind HAProxy: router, strategy, targets and state.

The public API (loaded lazily, so importing :mod:`mlops_tasks.deploy.state` from the
registry stays cheap):

- :func:`deploy_blue_green`, :func:`rollback_deployment`, :func:`describe_deployment`,
  :func:`stop_endpoint` (in :mod:`mlops_tasks.deploy.strategy`, from
  :mod:`mlops_tasks.deploy.rollout` and :mod:`mlops_tasks.deploy.endpoint_ops`);
- :class:`SlotRunner`, :class:`TrafficRouter` (:mod:`mlops_tasks.deploy.interfaces`),
  :class:`RegistryAccess` (:mod:`mlops_tasks.deploy.registry_access`); in-memory ones in
  :mod:`mlops_tasks.deploy.memory`;
- :class:`EndpointSpec`, :class:`RolloutSpec`, :class:`GuardLimits`,
  :class:`DeploymentRecord`, :class:`EndpointDescription`, :class:`SlotStatus`
  (in :mod:`mlops_tasks.deploy.models`).

Example:
    ```python
    from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
    deploy_blue_green("churn-classifier", 2, endpoint=EndpointSpec(name="churn"),
                      rollout=RolloutSpec(strategy="canary", bake_seconds=30))
    ```
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "deploy_blue_green": "strategy",
    "rollback_deployment": "strategy",
    "describe_deployment": "strategy",
    "stop_endpoint": "strategy",
    "smoke_test": "smoke",
    "SlotRunner": "interfaces",
    "TrafficRouter": "interfaces",
    "RegistryAccess": "registry_access",
    "EndpointSpec": "models",
    "RolloutSpec": "models",
    "GuardLimits": "models",
    "DeploymentRecord": "models",
    "EndpointDescription": "models",
    "SlotStatus": "models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlops_tasks.deploy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"mlops_tasks.deploy.{_EXPORTS[name]}"), name)
