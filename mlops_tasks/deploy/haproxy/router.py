"""HAProxy as a :class:`~mlops_tasks.deploy.interfaces.TrafficRouter`.

The router process or container is run by an :class:`HAProxyHost` (the local and the
docker target each host one); weights, preview and mirror go through HAProxy's runtime
API (:class:`~mlops_tasks.deploy.router.RouterClient`), and requests through its
endpoint and preview ports.
"""

from __future__ import annotations

import http.client
import ssl
from typing import Protocol

from mlops_tasks.deploy.haproxy.config import BACKUP_SUFFIX, LIVE, color_of
from mlops_tasks.deploy.haproxy.runtime import RouterClient
from mlops_tasks.deploy.interfaces import Entry, Reply, ServerView, TrafficRouter
from mlops_tasks.deploy.models import AbSplit, Color, EndpointSpec, SlotStatus

__all__ = ["HAProxyHost", "HAProxyRouter", "http_request"]


class HAProxyHost(Protocol):
    """Runs one endpoint's HAProxy (a process or a container)."""

    endpoint: EndpointSpec

    @property
    def router(self) -> RouterClient:
        """The runtime API client."""
        ...

    def ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> RouterClient:
        """Start HAProxy if it does not run, or apply a changed configuration."""
        ...

    def router_running(self) -> bool:
        """HAProxy runs and its admin socket answers."""
        ...

    def stop_router(self) -> None:
        """Stop HAProxy."""
        ...

    def base_url(self) -> str:
        """``http://host:port`` of the endpoint."""
        ...

    def preview_address(self) -> str:
        """``host:port`` of the preview frontend."""
        ...

    def client_auth(self) -> tuple[dict[str, str], bool, str | None]:
        """Headers of the tooling's own requests, whether to use TLS, its client certificate.

        The headers carry its API key; the certificate (PEM with key) is presented under
        mutual TLS.
        """
        ...


def http_request(
    address: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    tls: bool = False,
    client_cert: str | None = None,
) -> Reply:
    """One HTTP request to ``host:port``; ``Reply(0, error=...)`` when nothing answers.

    With ``tls`` the request goes over HTTPS without verifying the certificate: the
    tooling talks to its own router on this machine (clients verify theirs);
    ``client_cert`` (a PEM with certificate and key) is presented to a router that requires
    client certificates.

    Example:
        ```python
        reply = http_request("127.0.0.1:8000", "GET", "/version")
        ```
    """
    host, port = address.rsplit(":", 1)
    conn: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            context.load_cert_chain(client_cert)
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout_s, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k: v for k, v in resp.getheaders()}, resp.read())
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, error=str(exc) or type(exc).__name__)
    finally:
        conn.close()


class HAProxyRouter(TrafficRouter):
    """The HAProxy traffic router of a local or docker target.

    Example:
        ```python
        traffic = HAProxyRouter(get_target("local", EndpointSpec(name="churn")))
        print(traffic.weights())
        ```
    """

    def __init__(self, host: HAProxyHost) -> None:
        self.host = host

    @property
    def replicas(self) -> int:
        """Servers per slot."""
        return self.host.endpoint.replicas

    def ensure_running(self, slots: dict[Color, SlotStatus], live: Color | None) -> None:
        self.host.ensure_router(slots, live)

    def running(self) -> bool:
        return self.host.router_running()

    def stop(self) -> None:
        self.host.stop_router()

    def attach(self, color: Color, addresses: list[str]) -> None:
        pairs = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addresses]
        self.host.router.attach_slot(color, pairs, self.replicas)

    def detach(self, color: Color) -> None:
        self.host.router.detach_slot(color, self.replicas)

    def set_weights(self, weights: dict[Color, int]) -> None:
        self.host.router.set_slot_weights(weights, self.replicas)

    def servers(self) -> list[ServerView]:
        out = []
        for s in self.host.router.servers(LIVE):
            backup = s.name.endswith(BACKUP_SUFFIX)
            out.append(
                ServerView(
                    name=s.name,
                    color=color_of(s.name),
                    address=s.address,
                    status=s.status,
                    weight=s.weight,
                    responses=s.responses,
                    sessions=s.current_sessions,
                    backup=backup,
                )
            )
        return out

    def weights(self) -> dict[Color, int]:
        return self.host.router.slot_weights(self.replicas)

    def set_mirror(self, color: Color | None) -> None:
        self.host.router.set_shadow(color, self.replicas)

    def set_preview(self, color: Color | None) -> None:
        self.host.router.set_preview(color, self.replicas)

    def set_split(self, split: AbSplit | None) -> None:
        self.host.router.set_split(split)

    def split(self) -> AbSplit | None:
        return self.host.router.split()

    def send(
        self,
        entry: Entry,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> Reply:
        address = (
            self.host.preview_address()
            if entry == "preview"
            else self.host.base_url().removeprefix("http://").removeprefix("https://")
        )
        auth, tls, cert = self.host.client_auth()
        return http_request(address, method, path, body, {**(headers or {}), **auth}, timeout_s, tls, cert)
