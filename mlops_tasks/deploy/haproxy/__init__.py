"""HAProxy as the traffic router: configuration, executable, runtime API, and the router.

- :mod:`~mlops_tasks.deploy.haproxy.config`: the rendered configuration and the mirror script;
- :mod:`~mlops_tasks.deploy.haproxy.binary`: the executable, its version, checked writes;
- :mod:`~mlops_tasks.deploy.haproxy.runtime`: :class:`RouterClient` (admin socket);
- :mod:`~mlops_tasks.deploy.haproxy.router`: :class:`HAProxyRouter`, the
  :class:`~mlops_tasks.deploy.interfaces.TrafficRouter` over a process or container host.
"""

from __future__ import annotations

__all__: list[str] = []
