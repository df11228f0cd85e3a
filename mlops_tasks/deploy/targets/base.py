"""The target interface the blue-green strategy is written against.

A target runs two slots (``blue`` and ``green``, each of ``replicas`` model servers)
and one HAProxy router (see :mod:`mlops_tasks.deploy.router`) for one endpoint. The
strategy only asks it to prepare a model version, start a slot, say what runs, stop a
slot and hand out the router's runtime client; everything else (weights, preview,
shadow, guard) goes through the router and the servers' own HTTP endpoints, so a new
target (e.g. Docker) implements only the methods marked abstract here.
"""

from __future__ import annotations

import http.client
import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from mlops_tasks.deploy.models import COLORS, Color, EndpointSpec, SlotStatus
from mlops_tasks.deploy.router import RouterClient, server_names
from mlops_tasks.deploy.state import endpoint_dir
from mlops_tasks.errors import RouterError, SlotStartError
from mlops_tasks.settings import MlflowConfig


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
        conn.request("POST", path, body=json.dumps(doc),
                     headers={"Content-Type": "application/json", **(headers or {})})
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


class Target(ABC):
    """Runs the slots and the router of one endpoint.

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

    # -- what each target implements ----------------------------------------------------

    @abstractmethod
    def prepare(self, model_name: str, version: int, mlflow_config: MlflowConfig | None) -> str:
        """Make ``version`` runnable (download it, build or pull an image); return its handle."""

    @abstractmethod
    def start_slot(self, color: Color, model_name: str, version: int, handle: str) -> SlotStatus:
        """Start ``replicas`` servers of ``version`` in ``color`` (stopping what ran there).

        Returns at once with the slot's addresses; :meth:`wait_healthy` waits for them.

        Raises:
            EndpointPortError: No port could be bound.
            SlotStartError: The servers could not be started.
        """

    @abstractmethod
    def slot_status(self, color: Color) -> SlotStatus:
        """What runs in ``color`` now, read from the processes/containers and their ``/version``."""

    @abstractmethod
    def stop_slot(self, color: Color, grace_s: float = 10.0) -> None:
        """Stop the slot's servers gracefully (requests in flight finish) and forget them."""

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

    @abstractmethod
    def slot_log_tail(self, color: Color, lines: int = 20) -> str:
        """The last lines the slot's servers wrote (for error messages)."""

    @property
    @abstractmethod
    def router(self) -> RouterClient:
        """The runtime API client of the router."""

    # Not abstract on purpose: a target without supervision (an in-memory test double) keeps it.
    def set_supervised(self, color: Color, supervised: bool) -> None:  # noqa: B027
        """Have the slot restarted when it dies outside a rollout (``True``), or not.

        New slots start unsupervised, so a candidate that dies during a bake stays dead
        for the guard to see; the strategy supervises a slot once it is confirmed live and
        unsupervises it before retiring it. The local target's watchdog restarts a
        supervised slot's processes; the docker target gives its containers a restart
        policy. Targets without supervision keep this no-op.

        Example:
            ```python
            target.set_supervised("green", True)
            ```
        """

    # -- shared behaviour --------------------------------------------------------------

    def start_watchdog(self) -> int:
        """(Re)start the endpoint's watchdog (:mod:`mlops_tasks.deploy.watchdog`); its pid."""
        from mlops_tasks.deploy.watchdog import start_watchdog

        return start_watchdog(self.folder, self.kind, self.endpoint)

    def stop_watchdog(self) -> None:
        """Stop the endpoint's watchdog; ``stop_router`` calls it first."""
        from mlops_tasks.deploy.watchdog import stop_watchdog

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
            for name, address in zip(server_names(color, self.endpoint.replicas), slot.addresses,
                                     strict=False):
                host, port = address.rsplit(":", 1)
                servers[name] = (host, int(port))
        weights = {c: (100 if c == live else 0) for c in COLORS}
        idle = next((c for c in COLORS if c != live and c in slots and slots[c].running), None)
        return servers, weights, idle

    def wait_healthy(self, color: Color, timeout_s: float, tries: int) -> SlotStatus:
        """Wait until every server of the slot answers ``/health`` 200 ``tries`` times in a row.

        Raises:
            SlotStartError: A server process exited (crashed on start), or the slot was
                not healthy within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        streak = 0
        while True:
            status = self.slot_status(color)
            if status.running < self.endpoint.replicas:
                raise SlotStartError(
                    f"Slot {color} of endpoint {self.endpoint.name!r} exited while starting "
                    f"({status.running}/{self.endpoint.replicas} running). Server output:\n"
                    + self.slot_log_tail(color)
                )
            ok = all(http_get(a, "/health")[0] == 200 for a in status.addresses)
            streak = streak + 1 if ok else 0
            if streak >= tries:
                return self.slot_status(color)
            if time.monotonic() >= deadline:
                raise SlotStartError(
                    f"Slot {color} of endpoint {self.endpoint.name!r} was not healthy within "
                    f"{timeout_s:g} s (GET /health). Server output:\n" + self.slot_log_tail(color)
                )
            time.sleep(0.1)

    def base_url(self) -> str:
        """The endpoint's URL as clients on this machine reach it."""
        host = "127.0.0.1" if self.endpoint.host in ("0.0.0.0", "") else self.endpoint.host
        return f"http://{host}:{self.endpoint.port}"

    def preview_address(self) -> str:
        """``host:port`` of the preview frontend."""
        host = "127.0.0.1" if self.endpoint.host in ("0.0.0.0", "") else self.endpoint.host
        return f"{host}:{self.endpoint.preview}"
