"""The deployment stage's entry points, in one place.

:func:`deploy_blue_green` is the rollout (:mod:`mlops_tasks.deploy.rollout`);
:func:`rollback_deployment`, :func:`describe_deployment` and :func:`stop_endpoint` act on a
deployed endpoint (:mod:`mlops_tasks.deploy.endpoint_ops`); :func:`smoke_test` is the
preview check (:mod:`mlops_tasks.deploy.smoke`). The strategy itself talks only to a
:class:`~mlops_tasks.deploy.interfaces.SlotRunner` and a
:class:`~mlops_tasks.deploy.interfaces.TrafficRouter`.
"""

from __future__ import annotations

from mlops_tasks.deploy.endpoint_ops import describe_deployment, rollback_deployment, stop_endpoint
from mlops_tasks.deploy.rollout import Listener, deploy_blue_green, resolve_target
from mlops_tasks.deploy.smoke import smoke_test

__all__ = [
    "Listener",
    "deploy_blue_green",
    "describe_deployment",
    "resolve_target",
    "rollback_deployment",
    "smoke_test",
    "stop_endpoint",
]
