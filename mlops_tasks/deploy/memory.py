"""In-memory slot runner, traffic router, registry access and clock, for fast tests.

:class:`MemoryTarget` is a deploy target whose slots are simulated model servers and whose
router routes simulated requests by weight among UP servers (an attached slot with
weight 0 serves only when no weighted server is UP, like HAProxy's backup twins). Time is
virtual (:class:`VirtualClock`): every wait of the strategy advances it at once and sends
simulated client traffic through the live entry point, so a canary with a 60 s bake runs
in milliseconds. Both halves record what was asked of them (``calls``), faults can be
injected at any moment (:meth:`MemoryTarget.kill`, ``hang``, ``slow``, ``fail``,
``kill_router``, ``fail_reload``), and the target checks after every change that the
strategy never leaves the endpoint without a weighted UP server while a slot is healthy.

Example:
    ```python
    from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
    from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget

    target = MemoryTarget(EndpointSpec(name="demo"))
    registry = MemoryRegistryAccess({"m": [1, 2]})
    deploy_blue_green("m", 1, target=target, registry=registry)
    deploy_blue_green("m", 2, target=target, registry=registry,
                      rollout=RolloutSpec(strategy="canary", bake_seconds=30))
    assert target.serving_version() == 2 and registry.champion("m") == 2
    ```
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.deploy.clock import VirtualClock
from mlops_tasks.deploy.interfaces import Entry, Reply, ServerView, SlotRunner, TrafficRouter
from mlops_tasks.deploy.models import AB_SUBJECT_HEADER, COLORS, AbSplit, Color, EndpointSpec, SlotStatus
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.deploy.state import endpoint_dir
from mlops_tasks.errors import (
    ModelNotFoundError,
    PromotionRefusedError,
    RouterConfigError,
    RouterError,
)
from mlops_tasks.settings import MlflowConfig

__all__ = [
    "BUCKETS",
    "MemoryRegistryAccess",
    "MemoryRouter",
    "MemorySlotRunner",
    "MemoryTarget",
    "SimServer",
    "VirtualClock",
    "memory_predictions",
]

#: Upper bounds (s) of the simulated latency histogram.
BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def memory_predictions(rows: int, offset: float = 0.0) -> list[float]:
    """What every simulated model predicts: ``offset`` for each row (0 = correct)."""
    return [offset] * rows


@dataclass
class SimServer:
    """One simulated model server."""

    address: str
    color: Color
    replica: int
    model_name: str
    version: int
    #: ``ok``, ``dead`` (killed), ``hung`` (stopped), ``slow``, ``failing`` (answers 500)
    #: or ``refusing`` (answers 422 to well-formed requests: a changed schema).
    condition: str = "ok"
    latency_s: float = 0.002
    prediction_offset: float = 0.0
    #: Serves another model under this version's number (the smoke test must catch it).
    impostor: bool = False
    counts: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def process_runs(self) -> bool:
        """The process exists (a hung one does, a killed one does not)."""
        return self.condition != "dead"

    @property
    def answers(self) -> bool:
        """It answers HTTP at all."""
        return self.condition not in ("dead", "hung")

    def metrics(self) -> str:
        """Prometheus text like the real server's ``/metrics``."""
        lines = [
            f'mlops_serve_requests_total{{endpoint="/invocations",status="{s}"}} {n}'
            for s, n in sorted(self.counts.items())
        ]
        for bound in BUCKETS:
            n = sum(1 for lat in self.latencies if lat <= bound)
            lines.append(f'mlops_serve_request_duration_seconds_bucket{{le="{bound}"}} {n}')
        lines.append(f'mlops_serve_request_duration_seconds_bucket{{le="+Inf"}} {len(self.latencies)}')
        lines.append(f"mlops_serve_request_duration_seconds_count {len(self.latencies)}")
        return "\n".join(lines) + "\n"

    def handle(
        self, endpoint: str, method: str, path: str, body: bytes | None, mirrored: bool = False
    ) -> Reply:
        """Answer one request as the real server would in this condition."""
        if not self.answers:
            return Reply(0, error="connection refused" if self.condition == "dead" else "timed out")
        headers = {
            "X-Served-By": f"{endpoint}-{self.color}-{self.replica}",
            "X-Model-Version": str(self.version),
        }
        if path == "/health":
            return Reply(200, headers, b"ok")
        if path == "/version":
            doc = {"model_name": self.model_name, "model_version": str(self.version)}
            return Reply(200, headers, json.dumps(doc).encode())
        if path == "/metrics":
            return Reply(200, headers, self.metrics().encode())
        try:
            request: dict[str, Any] | None = json.loads(body or b"{}")
        except ValueError:
            request = None
        status = 500 if self.condition == "failing" else 200
        if status == 200 and (request is None or self.condition == "refusing"):
            status = 400 if request is None else 422  # the caller's mistake, or a changed schema
        self.counts[status] = self.counts.get(status, 0) + 1
        self.latencies.append(self.latency_s)
        if status != 200:
            return Reply(status, headers, b'{"error": "injected failure"}')
        assert request is not None
        rows = len(request.get("dataframe_split", {}).get("data", []))
        offset = self.prediction_offset if (mirrored or self.impostor) else 0.0
        return Reply(200, headers, json.dumps({"predictions": memory_predictions(rows, offset)}).encode())


class MemorySlotRunner(SlotRunner):
    """Simulated slots; ``calls`` records every start, stop and supervision change."""

    def __init__(self, target: MemoryTarget) -> None:
        self.target = target
        self.endpoint = target.endpoint
        self.folder = target.folder
        self.slots_now: dict[Color, list[SimServer]] = {c: [] for c in COLORS}
        self.supervised: dict[Color, bool] = {c: False for c in COLORS}
        self.calls: list[tuple[Any, ...]] = []
        #: Versions whose servers crash as they start, never answer, or serve another model;
        #: offsets their predictions get on mirrored rows (all rows for an impostor).
        self.crash_on_start: set[int] = set()
        self.never_healthy: set[int] = set()
        self.impostors: set[int] = set()
        self.shadow_offset: dict[int, float] = {}
        self.mirror_log: list[tuple[str, Color, float]] = []
        self._ports = itertools.count(20000)

    def prepare(self, model_name: str, version: int, mlflow_config: MlflowConfig | None) -> str:
        self.calls.append(("prepare", model_name, version))
        return f"memory://{model_name}/{version}"

    def start_slot(self, color: Color, model_name: str, version: int, handle: str) -> SlotStatus:
        self.calls.append(("start_slot", color, version))
        self.stop_slot(color, 0)
        self.slots_now[color] = [
            SimServer(
                f"mem-{color}-{i}:{next(self._ports)}",
                color,
                i,
                model_name,
                version,
                condition=self._start_condition(version),
                impostor=version in self.impostors,
                prediction_offset=self.shadow_offset.get(version, 1.0 if version in self.impostors else 0.0),
            )
            for i in range(1, self.endpoint.replicas + 1)
        ]
        self.target.changed("start_slot")
        return self.slot_status(color)

    def _start_condition(self, version: int) -> str:
        if version in self.crash_on_start:
            return "dead"
        return "hung" if version in self.never_healthy else "ok"

    def stop_slot(self, color: Color, grace_s: float = 10.0) -> None:
        if self.slots_now[color]:
            self.calls.append(("stop_slot", color))
        self.slots_now[color] = []
        self.supervised[color] = False
        self.target.changed("stop_slot")

    def slot_status(self, color: Color) -> SlotStatus:
        servers = self.slots_now[color]
        running = sum(1 for s in servers if s.process_runs)
        answering = [s for s in servers if s.answers]
        healthy = bool(servers) and len(answering) == len(servers)
        version = answering[0].version if answering else None
        return SlotStatus(
            color=color,
            version=version,
            model_name=servers[0].model_name if servers else None,
            addresses=[s.address for s in servers],
            running=running,
            healthy=healthy,
        )

    def read_server(self, address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        server = self.server(address)
        if server is None:
            return 0, b""
        reply = server.handle(self.endpoint.name, "GET", path, None)
        return reply.status, reply.body

    def slot_log_tail(self, color: Color, lines: int = 20) -> str:
        return "\n".join(f"{s.address}: {s.condition}" for s in self.slots_now[color])

    def set_supervised(self, color: Color, supervised: bool) -> None:
        self.calls.append(("set_supervised", color, supervised))
        self.supervised[color] = supervised

    def shadow_agreement(self, since: Any, candidate: Color) -> dict[str, float]:
        rows = [(rid, c, p) for rid, c, p in self.mirror_log]
        live = {rid: p for rid, c, p in rows if c != candidate}
        pairs = [(live[rid], p) for rid, c, p in rows if c == candidate and rid in live]
        if not pairs:
            return {"compared": 0.0, "agreement": 0.0}
        same = sum(1 for a, b in pairs if a == b)
        return {"compared": float(len(pairs)), "agreement": same / len(pairs)}

    def server(self, address: str) -> SimServer | None:
        """The simulated server at ``address`` (None when nothing runs there)."""
        return next((s for c in COLORS for s in self.slots_now[c] if s.address == address), None)


@dataclass
class _Member:
    """One server entry of the simulated live pool."""

    name: str
    color: Color
    address: str = ""
    weight: int = 0
    maint: bool = True
    backup: bool = False
    responses: int = 0


class MemoryRouter(TrafficRouter):
    """A simulated router; ``calls`` records every change asked of it."""

    def __init__(self, target: MemoryTarget) -> None:
        self.target = target
        self.alive = False
        self.pool: dict[str, _Member] = {}
        self.preview: Color | None = None
        self.mirror: Color | None = None
        self.reload_fails = False
        self.replicas_configured = 0
        self.calls: list[tuple[Any, ...]] = []
        self._rr = itertools.count()
        self._current: dict[str, int] = {}
        self.ab: AbSplit | None = None
        #: ``(variant, subject)`` of every live request answered under an A/B split.
        self.ab_log: list[tuple[str, str | None]] = []
        self._draws = np.random.default_rng(14)

    def _need_alive(self) -> None:
        if not self.alive:
            raise RouterError("The in-memory router is not running (admin socket refused).")

    def ensure_running(self, slots: dict[Color, SlotStatus], live: Color | None) -> None:
        replicas = self.target.endpoint.replicas
        if self.alive and self.replicas_configured == replicas:
            return
        if self.reload_fails:
            raise RouterConfigError("The in-memory router's (re)load was made to fail.")
        self.calls.append(("ensure_running", live))
        self.alive, self.replicas_configured = True, replicas
        self.pool = {}
        for color in COLORS:
            for i in range(1, replicas + 1):
                for backup in (False, True):
                    name = f"{color}_{i}{'_b' if backup else ''}"
                    self.pool[name] = _Member(name, color, backup=backup)
        for color in COLORS:
            slot = slots.get(color)
            if slot is not None and slot.running:
                self._point(color, slot.addresses, 100 if color == live else 0)
        idle = next((c for c in COLORS if c != live and c in slots and slots[c].running), None)
        self.preview, self.mirror = idle, None
        self.target.changed("ensure_running")

    def running(self) -> bool:
        return self.alive

    def stop(self) -> None:
        self.calls.append(("stop",))
        self.alive = False
        self.target.changed("stop")

    def _point(self, color: Color, addresses: list[str], weight: int) -> None:
        for i, address in enumerate(addresses, start=1):
            for name in (f"{color}_{i}", f"{color}_{i}_b"):
                member = self.pool[name]
                member.address, member.maint = address, False
                member.weight = 0 if member.backup else weight

    def attach(self, color: Color, addresses: list[str]) -> None:
        self._need_alive()
        if len(addresses) != self.target.endpoint.replicas:
            raise RouterError(f"Slot {color} has {len(addresses)} addresses.")
        self.calls.append(("attach", color, tuple(addresses)))
        self._point(color, addresses, 0)
        self.target.changed("attach")

    def detach(self, color: Color) -> None:
        self._need_alive()
        self.calls.append(("detach", color))
        for member in self.pool.values():
            if member.color == color:
                member.maint, member.weight = True, 0
        self.target.changed("detach")

    def set_weights(self, weights: dict[Color, int]) -> None:
        self._need_alive()
        if sum(weights.values()) <= 0:
            raise RouterError("At least one slot must keep a weight above 0.")
        self.calls.append(("set_weights", dict(weights)))
        current = self.weights()
        for color in sorted(weights, key=lambda c: weights[c] <= current.get(c, 0)):
            for member in self.pool.values():
                if member.color == color and not member.backup:
                    member.weight = weights[color]
                    self.target.changed("set_weights")

    def _status(self, member: _Member) -> str:
        if member.maint:
            return "MAINT"
        server = self.target.runner.server(member.address)
        return "UP" if server is not None and server.answers else "DOWN"

    def servers(self) -> list[ServerView]:
        self._need_alive()
        return [
            ServerView(m.name, m.color, m.address, self._status(m), m.weight, m.responses, 0, m.backup)
            for m in self.pool.values()
        ]

    def set_mirror(self, color: Color | None) -> None:
        self._need_alive()
        self.calls.append(("set_mirror", color))
        self.mirror = color

    def set_preview(self, color: Color | None) -> None:
        self._need_alive()
        self.calls.append(("set_preview", color))
        self.preview = color

    def set_split(self, split: AbSplit | None) -> None:
        self._need_alive()
        self.calls.append(("set_split", split))
        self.ab = split

    def split(self) -> AbSplit | None:
        self._need_alive()
        return self.ab

    def _ab_variant(self, headers: dict[str, str] | None) -> tuple[str, str | None]:
        """Like the HAProxy rules: crc32(subject) % 100 or a random bucket; no subject -> A."""
        assert self.ab is not None
        subject = Reply(0, dict(headers or {})).header(AB_SUBJECT_HEADER) or None
        if self.ab.mode == "request":
            bucket = int(self._draws.integers(100))
        elif subject is None:
            return "A", None
        else:
            bucket = AbSplit.bucket_of(subject)
        return ("A" if bucket < self.ab.percent_a else "B"), subject

    def _send_ab(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None) -> Reply:
        """A live request under the split: only the variant's slot may answer it."""
        assert self.ab is not None
        variant, subject = self._ab_variant(headers)
        color = self.ab.colors[variant]  # type: ignore[index]
        members = [
            m for m in self.pool.values() if m.color == color and not m.backup and self._status(m) == "UP"
        ]
        if not members:
            return Reply(503, {"X-Variant": variant}, b"no server available (variant)")
        member = self._pick(members)
        member.responses += 1
        server = self.target.runner.server(member.address)
        assert server is not None
        reply = server.handle(self.target.endpoint.name, method, path, body)
        reply.headers["X-Variant"] = variant
        if path == "/invocations":
            self.ab_log.append((variant, subject))
        return reply

    def routable(self) -> list[_Member]:
        """The live pool members a request can go to now (backup twins when no weighted one)."""
        up = [m for m in self.pool.values() if self._status(m) == "UP"]
        weighted = [m for m in up if not m.backup and m.weight > 0]
        return weighted or [m for m in up if m.backup]

    def _pick(self, members: list[_Member]) -> _Member:
        """Smooth weighted round robin (weight 0 counts 1, e.g. backup twins)."""
        total = sum(max(1, m.weight) for m in members)
        for m in members:
            self._current[m.name] = self._current.get(m.name, 0) + max(1, m.weight)
        best = max(members, key=lambda m: self._current[m.name])
        self._current[best.name] -= total
        return best

    def send(
        self,
        entry: Entry,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> Reply:
        if not self.alive:
            return Reply(0, error="connection refused (router down)")
        runner = self.target.runner
        if entry == "preview":
            members = [
                m
                for m in self.pool.values()
                if m.color == self.preview and not m.backup and self._status(m) == "UP"
            ]
            if not members:
                return Reply(503, body=b"no server available (preview)")
            server = runner.server(self._pick(members).address)
            assert server is not None
            return server.handle(self.target.endpoint.name, method, path, body)
        if self.ab is not None:
            return self._send_ab(method, path, body, headers)
        members = self.routable()
        if not members:
            return Reply(503, body=b"no server available")
        member = self._pick(members)
        member.responses += 1
        server = runner.server(member.address)
        assert server is not None
        reply = server.handle(self.target.endpoint.name, method, path, body)
        if self.mirror is not None and method == "POST" and path == "/invocations":
            self._mirror_copy(member, reply, body)
        return reply

    def _mirror_copy(self, member: _Member, reply: Reply, body: bytes | None) -> None:
        """Send a copy to the mirror slot and log both predictions under one request id."""
        runner = self.target.runner
        targets = [
            m
            for m in self.pool.values()
            if m.color == self.mirror and not m.backup and self._status(m) == "UP"
        ]
        if not targets:
            return
        rid = f"r{next(self._rr)}"
        copy = runner.server(self._pick(targets).address)
        assert copy is not None
        mirrored = copy.handle(self.target.endpoint.name, "POST", "/invocations", body, mirrored=True)
        if mirrored.status == 200 and reply.status == 200:
            runner.mirror_log.append((rid, member.color, json.loads(reply.body)["predictions"][0]))
            runner.mirror_log.append((rid, copy.color, json.loads(mirrored.body)["predictions"][0]))


class MemoryTarget:
    """An in-memory deploy target: slot runner, router, virtual clock and client traffic.

    One instance per endpoint name (``MemoryTarget(spec)`` returns the existing one), so
    :func:`~mlops_tasks.deploy.rollback_deployment` and ``describe_deployment``, which
    find the target by name, see the same simulated world. :meth:`forget_all` drops them.
    """

    kind = "memory"
    _instances: dict[str, MemoryTarget] = {}

    def __new__(cls, endpoint: EndpointSpec) -> MemoryTarget:
        existing = cls._instances.get(endpoint.name)
        if existing is not None:
            return existing
        self = super().__new__(cls)
        cls._instances[endpoint.name] = self
        self._setup(endpoint)
        return self

    def _setup(self, endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self.folder = endpoint_dir(endpoint.name)
        self.force = False
        self.clock = VirtualClock()
        self.clock.on_advance = self.send_traffic
        self.runner = MemorySlotRunner(self)
        self.traffic = MemoryRouter(self)
        #: Simulated client requests per virtual second through the live entry point.
        self.rps = 40.0
        #: Share of simulated client requests with a malformed body (a caller's mistake).
        self.malformed_share = 0.0
        self._random = random.Random(0)
        #: Virtual seconds after which a killed *supervised* slot is restarted (the watchdog
        #: of the local target, the restart policy of docker); None: never.
        self.restart_after_s: float | None = 3.0
        self.client_results: list[tuple[float, int, str]] = []
        #: ``(virtual time, cause)`` of every change that left no weighted UP server while
        #: a slot was healthy (only changes the strategy made; injected faults are not counted).
        self.violations: list[tuple[float, str]] = []
        self.unserved: list[tuple[float, str]] = []
        self._weighted_before = False

    @classmethod
    def forget_all(cls) -> None:
        """Drop every in-memory endpoint (between tests)."""
        cls._instances.clear()

    # -- the invariant ----------------------------------------------------------------------

    def _healthy_attached(self) -> bool:
        """Some slot is healthy and attached to a running router."""
        if not self.traffic.alive:
            return False
        attached = {m.color for m in self.traffic.pool.values() if not m.maint}
        return any(self.runner.slot_status(c).healthy for c in attached)

    def _weighted_up(self) -> bool:
        return self.traffic.alive and any(not m.backup for m in self.traffic.routable())

    def changed(self, cause: str) -> None:
        """Check the invariants after a change (called by runner, router and faults).

        A change the strategy made must not take the last weighted UP server away while an
        attached slot is healthy (``violations``); and whenever an attached slot is healthy,
        some server must take requests (``unserved``, backup twins count).
        """
        weighted = self._weighted_up()
        healthy = self._healthy_attached()
        if self._weighted_before and not weighted and healthy and not cause.startswith("fault:"):
            self.violations.append((self.clock.now, cause))
        if healthy and not self.traffic.routable():
            self.unserved.append((self.clock.now, cause))
        self._weighted_before = weighted

    # -- faults -------------------------------------------------------------------------------

    def _set(self, color: Color, condition: str, **extra: Any) -> None:
        servers = list(self.runner.slots_now[color])
        for server in servers:
            server.condition = condition
            for key, value in extra.items():
                setattr(server, key, value)
        self.changed(f"fault:{condition}")
        if condition == "dead" and self.runner.supervised[color] and self.restart_after_s is not None:
            self.clock.call_later(self.restart_after_s, lambda: self._revive(color, servers))

    def _revive(self, color: Color, servers: list[SimServer]) -> None:
        """What the watchdog / restart policy does: restart a supervised slot's dead servers."""
        if not self.runner.supervised[color] or self.runner.slots_now[color] != servers:
            return
        for server in servers:
            if server.condition == "dead":
                server.condition, server.counts, server.latencies = "ok", {}, []
        self.runner.calls.append(("restarted", color))
        self.changed("watchdog")

    def kill(self, color: Color) -> None:
        """SIGKILL every server of the slot."""
        self._set(color, "dead")

    def hang(self, color: Color) -> None:
        """SIGSTOP every server of the slot (process there, no answers)."""
        self._set(color, "hung")

    def slow(self, color: Color, latency_s: float = 5.0) -> None:
        """The slot answers after ``latency_s``."""
        self._set(color, "slow", latency_s=latency_s)

    def fail(self, color: Color) -> None:
        """The slot answers ``/invocations`` with 500."""
        self._set(color, "failing")

    def refuse(self, color: Color) -> None:
        """The slot answers well-formed ``/invocations`` requests with 422 (a changed schema)."""
        self._set(color, "refusing")

    def kill_router(self) -> None:
        """The router process dies (requests are refused until it is started again)."""
        self.traffic.alive = False
        self.changed("fault:router")

    def fail_reload(self, failing: bool = True) -> None:
        """Make every (re)start or reload of the router fail."""
        self.traffic.reload_fails = failing

    # -- simulated clients and what they saw ----------------------------------------------------

    def send_traffic(self, elapsed_s: float) -> None:
        """Send ``rps x elapsed_s`` (at least one) client requests through the live entry point."""
        good = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).encode()
        for _ in range(max(1, int(self.rps * elapsed_s))):
            malformed = self.malformed_share > 0 and self._random.random() < self.malformed_share
            reply = self.traffic.send("live", "POST", "/invocations", b"{" if malformed else good)
            if not malformed:
                self.client_results.append((self.clock.now, reply.status, reply.header("X-Served-By")))

    def client_failures(self) -> list[tuple[float, int, str]]:
        """Well-formed client requests that did not get a 200."""
        return [r for r in self.client_results if r[1] != 200]

    def serving_version(self) -> int | None:
        """The version a request through the live entry point gets now (None: no answer)."""
        reply = self.traffic.send("live", "GET", "/version")
        return int(reply.header("X-Model-Version")) if reply.status == 200 else None

    def weighted_slots(self) -> list[Color]:
        """Slots with weight above 0 in the router."""
        return [c for c, w in self.traffic.weights().items() if w > 0] if self.traffic.alive else []


class MemoryRegistryAccess(RegistryAccess):
    """Model versions and the ``champion`` alias in memory; ``calls`` records promotions.

    Args:
        versions: Model name -> versions whose quality gate passed.
        failed_gate: Model name -> versions whose gate failed (deployable with ``force``).
    """

    def __init__(
        self, versions: dict[str, Iterable[int]], failed_gate: dict[str, Iterable[int]] | None = None
    ) -> None:
        self.passed = {m: set(v) for m, v in versions.items()}
        self.failed = {m: set(v) for m, v in (failed_gate or {}).items()}
        self.aliases: dict[str, int] = {}
        self.calls: list[tuple[Any, ...]] = []

    def champion(self, model_name: str) -> int | None:
        return self.aliases.get(model_name)

    def check_deployable(self, model_name: str, version: int, force: bool) -> None:
        if version not in self.passed.get(model_name, set()) | self.failed.get(model_name, set()):
            raise ModelNotFoundError(f"{model_name!r} has no version {version}.")
        if version not in self.passed.get(model_name, set()) and not force:
            raise PromotionRefusedError(f"{model_name!r} version {version} has not passed its gate.")

    def promote(self, model_name: str, version: int) -> int | None:
        self.calls.append(("promote", model_name, version))
        previous = self.aliases.get(model_name)
        self.aliases[model_name] = version
        return previous

    def reference_predictions(self, model_name: str, version: int, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(memory_predictions(len(rows)))

    def input_example(self, handle: str, model_name: str, version: int) -> pd.DataFrame:
        return pd.DataFrame({"x": [1.0, 2.0, 3.0]})
