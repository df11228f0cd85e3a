"""The two interfaces a blue-green rollout is written against: slot runner and traffic router.

A :class:`SlotRunner` runs the model servers of the two slots (``blue``, ``green``) of one
endpoint: prepare a model version, start and stop a slot, say what runs and read a
server's ``/health``, ``/metrics`` and ``/version``. A :class:`TrafficRouter` decides which
servers get the endpoint's requests: attach and detach a slot, set weights, mirror
(shadow) and preview, and send a request through its live or preview entry point.

The strategy (:mod:`mlops_tasks.deploy.strategy`), the gates and the bake guard use only
these members. Local processes and Docker containers are slot runners
(:mod:`mlops_tasks.deploy.targets`), HAProxy is a traffic router
(:class:`mlops_tasks.deploy.haproxy.router.HAProxyRouter`), and
:mod:`mlops_tasks.deploy.memory` has an in-memory pair for tests.

A *deploy target* is anything with ``kind``, ``endpoint``, ``folder``, ``force``,
``runner``, ``traffic`` and ``clock`` attributes (:class:`DeployTarget`).

Colours only name slots. In a rollout the roles are *live* (the slot that serves) and
*candidate* (the slot the new version starts in).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from mlops_tasks.deploy.models import COLORS, AbSplit, Color, EndpointSpec, SlotStatus
from mlops_tasks.errors import RouterError, SlotStartError
from mlops_tasks.settings import MlflowConfig

__all__ = [
    "Clock",
    "DeployTarget",
    "Entry",
    "Reply",
    "ServerView",
    "SlotRunner",
    "SystemClock",
    "TrafficRouter",
]

#: The router's entry points: ``live`` (the endpoint port) and ``preview`` (the candidate only).
Entry = Literal["live", "preview"]


class Clock(Protocol):
    """Time as the strategy sees it (the in-memory target passes a virtual one)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock (:func:`time.monotonic`, :func:`time.sleep`).

    Example:
        ```python
        clock = SystemClock(); clock.sleep(0.1)
        ```
    """

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """:func:`time.sleep` (nothing for 0 or less)."""
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class Reply:
    """An HTTP answer through the router (``status`` 0: nothing answered).

    Example:
        ```python
        reply = traffic.send("live", "GET", "/version")
        print(reply.status, reply.headers.get("X-Served-By"))
        ```
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def header(self, name: str) -> str:
        """A header's value, looked up case-insensitively (``""`` when absent)."""
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), "")


@dataclass
class ServerView:
    """One server of the live pool as the router sees it.

    ``backup`` marks the slot's backup twin: it gets traffic only when no weighted server
    is UP (so an attached, healthy slot serves when the weighted one died).
    """

    name: str
    color: Color
    address: str
    status: str
    weight: int
    responses: int = 0
    sessions: int = 0
    backup: bool = False

    @property
    def up(self) -> bool:
        """The router routes to it (checked UP, not in maintenance or drain)."""
        return self.status.startswith("UP")


class SlotRunner(ABC):
    """Runs the two slots of one endpoint (six abstract members).

    Example:
        ```python
        runner.start_slot("green", "churn-classifier", 4, runner.prepare("churn-classifier", 4, None))
        print(runner.slot_status("green").healthy)
        ```
    """

    endpoint: EndpointSpec
    folder: Path

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
    def stop_slot(self, color: Color, grace_s: float = 10.0) -> None:
        """Stop the slot's servers gracefully (requests in flight finish) and forget them."""

    @abstractmethod
    def slot_status(self, color: Color) -> SlotStatus:
        """What runs in ``color`` now: addresses, version, running replicas, health."""

    @abstractmethod
    def read_server(self, address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        """``GET <path>`` on one server (``/health``, ``/metrics``); ``(0, b"")`` on no answer."""

    @abstractmethod
    def slot_log_tail(self, color: Color, lines: int = 20) -> str:
        """The last lines the slot's servers wrote (for error messages)."""

    # -- with defaults ------------------------------------------------------------------

    def set_supervised(self, color: Color, supervised: bool) -> None:  # noqa: B027
        """Have the slot restarted when it dies outside a rollout (``True``), or not.

        New slots start unsupervised, so a candidate that dies during a bake stays dead
        for the guard to see. A runner without supervision keeps this no-op.
        """

    def slots(self) -> dict[Color, SlotStatus]:
        """What runs in every slot (``slot_status`` of each colour)."""
        return {c: self.slot_status(c) for c in COLORS}

    def answers_health(self, addresses: list[str], timeout_s: float = 2.0) -> bool:
        """Every server in ``addresses`` answers ``/health`` 200."""
        return all(self.read_server(a, "/health", timeout_s)[0] == 200 for a in addresses)

    def wait_healthy(
        self, color: Color, timeout_s: float, tries: int, clock: Clock | None = None
    ) -> SlotStatus:
        """Wait until every server of the slot answers ``/health`` 200 ``tries`` times in a row.

        Raises:
            SlotStartError: A server process exited (crashed on start), or the slot was
                not healthy within ``timeout_s``.
        """
        clock = clock or SystemClock()
        deadline = clock.monotonic() + timeout_s
        streak = 0
        where = f"Slot {color} of endpoint {self.endpoint.name!r}"
        while True:
            status = self.slot_status(color)
            if status.running < self.endpoint.replicas:
                raise SlotStartError(
                    f"{where} exited while starting ({status.running}/{self.endpoint.replicas} "
                    "running). Server output:\n" + self.slot_log_tail(color)
                )
            streak = streak + 1 if self.answers_health(status.addresses) else 0
            if streak >= tries:
                return self.slot_status(color)
            if clock.monotonic() >= deadline:
                raise SlotStartError(
                    f"{where} was not healthy within {timeout_s:g} s (GET /health). Server "
                    "output:\n" + self.slot_log_tail(color)
                )
            clock.sleep(0.1)

    def shadow_agreement(self, since: Any, candidate: Color) -> dict[str, float]:
        """Share of mirrored requests where ``candidate`` predicted what the live slot did.

        The default joins both slots' prediction-log rows (``<folder>/prediction-log``) by
        request id. Returns ``{"compared": n, "agreement": share}``.
        """
        from mlops_tasks.deploy.shadow import prediction_log_agreement

        return prediction_log_agreement(self.folder / "prediction-log", self.endpoint.name, since, candidate)


class TrafficRouter(ABC):
    """Splits one endpoint's traffic between the slots (ten abstract members).

    Every server belongs to a slot; a slot's servers share one weight. An attached slot
    with weight 0 serves only when no weighted server is UP (backup twins).

    Example:
        ```python
        traffic.attach("green", ["127.0.0.1:9001"])
        traffic.set_weights({"blue": 90, "green": 10})
        print(traffic.weights(), traffic.send("live", "GET", "/version").status)
        ```
    """

    @abstractmethod
    def ensure_running(self, slots: dict[Color, SlotStatus], live: Color | None) -> None:
        """Start the router if it does not run (``slots`` attached, ``live`` at 100 %).

        Raises:
            EndpointPortError: The endpoint or preview port is taken.
            RouterConfigError: The router rejected its configuration.
        """

    @abstractmethod
    def running(self) -> bool:
        """The router runs and answers its control interface."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the router (the endpoint stops answering)."""

    @abstractmethod
    def attach(self, color: Color, addresses: list[str]) -> None:
        """Point the slot's servers at ``addresses`` (``host:port``), live weight 0."""

    @abstractmethod
    def detach(self, color: Color) -> None:
        """Take the slot's servers out of every pool (no traffic at all)."""

    @abstractmethod
    def set_weights(self, weights: dict[Color, int]) -> None:
        """Set the live weight of each slot; raised weights first so some server keeps one.

        Raises:
            RouterError: All weights are 0, or the router does not answer.
        """

    @abstractmethod
    def servers(self) -> list[ServerView]:
        """Every server of the live pool (incl. backup twins) as the router sees it now.

        Raises:
            RouterError: The router does not answer.
        """

    @abstractmethod
    def set_mirror(self, color: Color | None) -> None:
        """Copy live requests to ``color`` (shadow); ``None`` stops mirroring."""

    @abstractmethod
    def set_preview(self, color: Color | None) -> None:
        """Make the preview entry point reach ``color`` only (``None``: nothing)."""

    @abstractmethod
    def send(
        self,
        entry: Entry,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> Reply:
        """Send one request through the ``live`` or ``preview`` entry point."""

    # -- with defaults ------------------------------------------------------------------

    def set_split(self, split: AbSplit | None) -> None:
        """Split live traffic between two attached slots by variant (A/B test); ``None`` ends it.

        While a split is set it decides which slot answers each live request (the
        weights do not); each answer names its variant (``X-Variant``). A router that
        cannot split keeps this default.

        Raises:
            RouterError: The router cannot split traffic by variant.
        """
        raise RouterError(f"{type(self).__name__} cannot split traffic by variant (A/B tests).")

    def split(self) -> AbSplit | None:
        """The A/B split in force (``None``: none)."""
        return None

    def slot_servers(self, color: Color) -> list[ServerView]:
        """The slot's weighted (non-backup) servers."""
        return [s for s in self.servers() if s.color == color and not s.backup]

    def weights(self) -> dict[Color, int]:
        """Live weight of each slot (0 when its servers are in maintenance)."""
        out: dict[Color, int] = {c: 0 for c in COLORS}
        for s in self.servers():
            if not s.backup and not s.status.startswith("MAINT"):
                out[s.color] = max(out[s.color], s.weight)
        return out

    def wait_up(self, color: Color, timeout_s: float, clock: Clock | None = None) -> bool:
        """Wait until the router's own checks see every server of the slot UP."""
        clock = clock or SystemClock()
        deadline = clock.monotonic() + timeout_s
        while True:
            states = self.slot_servers(color)
            if states and all(s.up for s in states):
                return True
            if clock.monotonic() >= deadline:
                return False
            clock.sleep(0.05)

    def wait_idle(self, color: Color, timeout_s: float, clock: Clock | None = None) -> bool:
        """Wait until no session is open to the slot's servers; False on timeout."""
        clock = clock or SystemClock()
        deadline = clock.monotonic() + timeout_s
        while True:
            if sum(s.sessions for s in self.servers() if s.color == color) == 0:
                return True
            if clock.monotonic() >= deadline:
                return False
            clock.sleep(0.05)


class DeployTarget(Protocol):
    """What :func:`~mlops_tasks.deploy.strategy.deploy_blue_green` deploys to."""

    kind: str
    endpoint: EndpointSpec
    folder: Path
    force: bool

    @property
    def runner(self) -> SlotRunner:
        """The slot runner."""
        ...

    @property
    def traffic(self) -> TrafficRouter:
        """The traffic router."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock the rollout waits on."""
        ...
