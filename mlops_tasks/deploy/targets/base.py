"""The base of the real targets: a slot runner that also hosts an HAProxy router.

A real target runs two slots (``blue`` and ``green``, each of ``replicas`` model
servers) as a :class:`~mlops_tasks.deploy.interfaces.SlotRunner`, and hosts the
endpoint's HAProxy (a process or a container, see
:class:`~mlops_tasks.deploy.haproxy.router.HAProxyHost`), which the strategy reaches as
a :class:`~mlops_tasks.deploy.interfaces.TrafficRouter` through :attr:`Target.traffic`.
"""

from __future__ import annotations

import http.client
import json
from abc import abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from mlops_tasks.deploy.haproxy.config import server_names
from mlops_tasks.deploy.haproxy.router import HAProxyRouter
from mlops_tasks.deploy.haproxy.runtime import RouterClient
from mlops_tasks.deploy.interfaces import Clock, SlotRunner, SystemClock, TrafficRouter
from mlops_tasks.deploy.models import COLORS, Color, EndpointSpec, SlotStatus
from mlops_tasks.deploy.state import endpoint_dir
from mlops_tasks.errors import RouterError

__all__ = ["Target", "http_get", "http_post_json", "probe_version"]


def http_get(address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """``GET http://<address><path>``; ``(0, b"")`` when nothing answers.

    Example:
        ```python
        status, body = http_get("127.0.0.1:8000", "/health")
        ```
    """
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def http_post_json(
    address: str, path: str, doc: Any, timeout_s: float = 10.0, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``POST`` a JSON document; ``(status, parsed JSON or text)``, ``(0, error)`` on no answer."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(doc),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()


def probe_version(address: str) -> tuple[str | None, int | None]:
    """``(model_name, model_version)`` a server reports on ``/version`` (``None`` if unknown)."""
    status, body = http_get(address, "/version")
    if status != 200:
        return None, None
    try:
        doc = json.loads(body)
        version = doc.get("model_version")
        return doc.get("model_name"), int(version) if str(version).isdigit() else None
    except ValueError:
        return None, None


class Target(SlotRunner):
    """Runs the slots and hosts the HAProxy router of one endpoint (a deploy target).

    Example:
        ```python
        from mlops_tasks.deploy.targets import get_target
        target = get_target("local", EndpointSpec(name="churn", port=8000))
        print(target.slot_status("blue"))
        ```
    """

    kind: ClassVar[str] = ""

    def __init__(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self.folder: Path = endpoint_dir(endpoint.name)
        #: Set by ``deploy_blue_green(force=True)``: :meth:`prepare` may skip checks it would
        #: otherwise insist on (the docker target's image verification).
        self.force = False

    # -- the deploy-target view: this runner, its HAProxy router, the real clock ---------

    @property
    def runner(self) -> SlotRunner:
        """The target itself runs the slots."""
        return self

    @cached_property
    def traffic(self) -> TrafficRouter:
        """The endpoint's HAProxy as a traffic router."""
        return HAProxyRouter(self)

    @property
    def clock(self) -> Clock:
        """The real clock."""
        return SystemClock()

    def read_server(self, address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        """``GET <path>`` on one server over HTTP (:func:`http_get`)."""
        return http_get(address, path, timeout_s)

    # -- the HAProxy host ----------------------------------------------------------------

    @abstractmethod
    def ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> RouterClient:
        """Start the router if it does not run (with ``slots`` attached, ``live`` at 100 %).

        Raises:
            EndpointPortError: The endpoint or preview port is taken.
            RouterConfigError: HAProxy rejected the rendered configuration.
        """

    @abstractmethod
    def router_running(self) -> bool:
        """The router process/container runs and its admin socket answers."""

    @abstractmethod
    def stop_router(self) -> None:
        """Stop the router (the endpoint stops answering)."""

    @property
    @abstractmethod
    def router(self) -> RouterClient:
        """The runtime API client of the router."""

    # -- shared behaviour --------------------------------------------------------------

    def start_watchdog(self) -> int:
        """(Re)start the endpoint's watchdog (:mod:`mlops_tasks.deploy.watchdog`); its pid."""
        from mlops_tasks.deploy.supervision import start_watchdog

        return start_watchdog(self.folder, self.kind, self.endpoint)

    def stop_watchdog(self) -> None:
        """Stop the endpoint's watchdog; ``stop_router`` calls it first."""
        from mlops_tasks.deploy.supervision import stop_watchdog

        stop_watchdog(self.folder)

    def probe_servers(self, addresses: list[str], healthy: bool) -> tuple[str | None, int | None, bool]:
        """``(model_name, version, healthy)`` of a slot's servers from ``/version`` and ``/health``.

        ``healthy`` comes in as what the processes/containers say (all of them run) and
        stays True only if every server reports a version and answers ``/health`` 200.
        """
        name, version = (None, None)
        for address in addresses:
            n, v = probe_version(address)
            if v is None:
                healthy = False
            name, version = name or n, version or v
        if healthy:
            healthy = all(http_get(a, "/health")[0] == 200 for a in addresses)
        return name, version, healthy

    def router_view(self, color: Color) -> tuple[int, str]:
        """``(weight, HAProxy state)`` of the slot's first server in backend ``live``."""
        weight, rstate = 0, ""
        if self.router_running():
            try:
                states = {s.name: s for s in self.router.servers("live")}
                first = states.get(server_names(color, self.endpoint.replicas)[0])
                if first is not None:
                    rstate = first.status
                    weight = 0 if first.status.startswith("MAINT") else first.weight
            except RouterError:
                pass
        return weight, rstate

    def initial_servers(
        self, slots: dict[Color, SlotStatus], live: Color | None
    ) -> tuple[dict[str, tuple[str, int]], dict[str, int], Color | None]:
        """Servers, weights and preview slot a freshly rendered router config starts with."""
        servers: dict[str, tuple[str, int]] = {}
        for color in COLORS:
            slot = slots.get(color)
            if slot is None or not slot.running:
                continue
            for name, address in zip(
                server_names(color, self.endpoint.replicas), slot.addresses, strict=False
            ):
                host, port = address.rsplit(":", 1)
                servers[name] = (host, int(port))
        weights: dict[str, int] = {c: (100 if c == live else 0) for c in COLORS}
        idle = next((c for c in COLORS if c != live and c in slots and slots[c].running), None)
        return servers, weights, idle

    def base_url(self) -> str:
        """The endpoint's URL as clients on this machine reach it (``https`` with TLS)."""
        host = "127.0.0.1" if self.endpoint.host in ("0.0.0.0", "") else self.endpoint.host
        scheme = "https" if self.endpoint.security.tls else "http"
        return f"{scheme}://{host}:{self.endpoint.port}"

    def client_auth(self) -> tuple[dict[str, str], bool, str | None]:
        """The tooling's API key header, whether the router speaks TLS, its client certificate.

        The key header is there with keys on; the certificate (PEM with its key) under
        mutual TLS.
        """
        headers = {}
        if self.endpoint.security.api_keys:
            from mlops_tasks.deploy.apikeys import KeyStore

            headers["X-API-Key"] = KeyStore(self.folder).internal_key()
        cert = None
        if self.endpoint.security.mtls:
            from mlops_tasks.deploy.tooling_cert import internal_client_pem

            cert = str(internal_client_pem(self.folder))
        return headers, self.endpoint.security.tls, cert

    def preview_address(self) -> str:
        """``host:port`` of the preview frontend."""
        host = "127.0.0.1" if self.endpoint.host in ("0.0.0.0", "") else self.endpoint.host
        return f"{host}:{self.endpoint.preview}"
