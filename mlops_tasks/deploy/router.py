"""The HAProxy router (compatibility module): configuration, executable and runtime API.

These names live in :mod:`mlops_tasks.deploy.haproxy` now (``config``, ``binary``,
``runtime``); importing them from here keeps working (e.g.
``from mlops_tasks.deploy.router import RouterClient, haproxy_version, server_names``).
"""

from __future__ import annotations

from mlops_tasks.deploy.haproxy import binary, config, runtime
from mlops_tasks.deploy.haproxy.binary import *  # noqa: F403
from mlops_tasks.deploy.haproxy.config import *  # noqa: F403
from mlops_tasks.deploy.haproxy.runtime import *  # noqa: F403

__all__ = sorted([*binary.__all__, *config.__all__, *runtime.__all__])
