"""The bake guard: the candidate's health, the router's view and its own ``/metrics``.

Each model server counts ``/invocations`` answers by status
(``mlops_serve_requests_total``) and keeps a latency histogram
(``mlops_serve_request_duration_seconds``). The guard takes :class:`Evidence` of the
candidate's servers when a bake starts and judges the difference at every evaluation, so
only requests answered during this bake count.

Missing evidence is never a pass (:func:`judge_evidence`): a server whose ``/metrics`` or
``/health`` does not answer, one the router marks DOWN, counters that went backwards (the
process restarted), or far fewer answers than the candidate's traffic share should have
brought are breaches; too few requests to judge is *insufficient*, which the strategy
turns into a longer bake and then a failure, never a pass.

The guard judges the server, not its callers: a 4xx answer (a malformed body, a missing
column) never counts as an error on its own, so a burst of bad requests during a bake
cannot roll back a good candidate. 5xx answers and latency count. And when the live slot
gets the same traffic (a canary or linear split, or mirrored copies in a shadow bake), the
candidate's 4xx share is compared with the live slot's over the same period: a candidate
refusing more than ``GuardLimits.max_4xx_share_margin`` (2 points by default) more of
it than the live slot did is a breach (a changed schema that refuses good requests is the
candidate's fault).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlops_tasks.deploy.interfaces import SlotRunner, TrafficRouter
from mlops_tasks.deploy.models import Color, GuardLimits
from mlops_tasks.errors import RouterError

__all__ = [
    "Evidence",
    "GuardLimits",
    "GuardVerdict",
    "MetricsSnapshot",
    "compare_client_errors",
    "growth",
    "judge",
    "judge_evidence",
    "parse_metrics",
    "read_counts",
    "read_evidence",
    "read_snapshot",
]

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class MetricsSnapshot:
    """Counters of one or more servers at one moment.

    Example:
        ```python
        snap = parse_metrics(text)
        print(snap.total, snap.errors_5xx)
        ```
    """

    total: int = 0
    errors_5xx: int = 0
    buckets: dict[float, int] = field(default_factory=dict)
    count: int = 0
    errors_4xx: int = 0

    def __add__(self, other: MetricsSnapshot) -> MetricsSnapshot:
        keys = set(self.buckets) | set(other.buckets)
        return MetricsSnapshot(
            self.total + other.total,
            self.errors_5xx + other.errors_5xx,
            {k: self.buckets.get(k, 0) + other.buckets.get(k, 0) for k in keys},
            self.count + other.count,
            self.errors_4xx + other.errors_4xx,
        )

    def __sub__(self, other: MetricsSnapshot) -> MetricsSnapshot:
        keys = set(self.buckets) | set(other.buckets)
        return MetricsSnapshot(
            self.total - other.total,
            self.errors_5xx - other.errors_5xx,
            {k: self.buckets.get(k, 0) - other.buckets.get(k, 0) for k in keys},
            self.count - other.count,
            self.errors_4xx - other.errors_4xx,
        )

    @property
    def error_share(self) -> float:
        """5xx answers / all ``/invocations`` answers (0 when there were none)."""
        return self.errors_5xx / self.total if self.total else 0.0

    @property
    def client_error_share(self) -> float:
        """4xx answers / all ``/invocations`` answers (0 when there were none)."""
        return self.errors_4xx / self.total if self.total else 0.0

    def quantile_ms(self, q: float = 0.95) -> float:
        """Upper bound (ms) of the histogram bucket holding quantile ``q`` (0 when empty)."""
        if self.count <= 0:
            return 0.0
        rank = q * self.count
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= rank:
                return bound * 1000.0 if math.isfinite(bound) else math.inf
        return math.inf


def parse_metrics(text: str) -> MetricsSnapshot:
    """Read ``/invocations`` counts and the latency histogram from Prometheus text.

    Example:
        ```python
        snap = parse_metrics('mlops_serve_requests_total{endpoint="/invocations",status="500"} 3')
        assert snap.errors_5xx == 3
        ```
    """
    snap = MetricsSnapshot()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, value = m["name"], float(m["value"])
        labels = dict(_LABEL.findall(m["labels"] or ""))
        if name == "mlops_serve_requests_total" and labels.get("endpoint") == "/invocations":
            snap.total += int(value)
            if labels.get("status", "").startswith("5"):
                snap.errors_5xx += int(value)
            elif labels.get("status", "").startswith("4"):
                snap.errors_4xx += int(value)
        elif name == "mlops_serve_request_duration_seconds_bucket":
            le = labels.get("le", "+Inf")
            bound = math.inf if le == "+Inf" else float(le)
            snap.buckets[bound] = snap.buckets.get(bound, 0) + int(value)
        elif name == "mlops_serve_request_duration_seconds_count":
            snap.count += int(value)
    return snap


def read_counts(
    runner: SlotRunner, addresses: list[str], timeout_s: float = 2.0
) -> dict[str, MetricsSnapshot]:
    """``/metrics`` of each server in ``addresses`` that answers 200 (no answer: asked once more).

    Example:
        ```python
        live = read_counts(target.runner, target.runner.slot_status("blue").addresses)
        ```
    """
    out = {}
    for address in addresses:
        status, body = runner.read_server(address, "/metrics", timeout_s)
        if status == 0:
            status, body = runner.read_server(address, "/metrics", timeout_s)
        if status == 200:
            out[address] = parse_metrics(body.decode(errors="replace"))
    return out


def growth(start: Mapping[str, MetricsSnapshot], now: Mapping[str, MetricsSnapshot]) -> MetricsSnapshot:
    """What the servers answered between two readings (restarted or missing servers left out).

    Example:
        ```python
        delta = growth(start.per_server, now.per_server)
        ```
    """
    delta = MetricsSnapshot()
    for address, snap in now.items():
        before = start.get(address)
        if before is not None and snap.total >= before.total:
            delta = delta + (snap - before)
    return delta


def compare_client_errors(
    candidate: MetricsSnapshot, live: MetricsSnapshot, limits: GuardLimits
) -> str | None:
    """A breach when the candidate refuses (4xx) clearly more of the same traffic than the live slot.

    Both slots need ``limits.min_requests`` answers. The candidate's 4xx share must exceed
    the live slot's by more than ``limits.max_4xx_share_margin`` and by more than chance
    explains (over 3 standard errors of the difference), so a burst of malformed requests
    that happens to hit the small canary share does not count.

    Example:
        ```python
        live = MetricsSnapshot(total=900, errors_4xx=270)
        assert compare_client_errors(MetricsSnapshot(total=100, errors_4xx=30), live, GuardLimits()) is None
        assert compare_client_errors(MetricsSnapshot(total=100, errors_4xx=100), live, GuardLimits())
        ```
    """
    n1, n2 = candidate.total, live.total
    if n1 < limits.min_requests or n2 < limits.min_requests:
        return None
    p1, p2 = candidate.client_error_share, live.client_error_share
    pooled = (candidate.errors_4xx + live.errors_4xx) / (n1 + n2)
    spread = 3.0 * math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    excess = p1 - p2
    if excess <= limits.max_4xx_share_margin or excess <= spread:
        return None
    return (
        f"4xx share {p1:.1%} of {n1} requests is {(p1 - p2) * 100:.1f} points over the live slot's "
        f"{p2:.1%} of {n2} on the same traffic (margin {limits.max_4xx_share_margin * 100:g} points): "
        "the candidate refuses requests the live slot accepts"
    )


def read_snapshot(runner: SlotRunner, addresses: list[str]) -> MetricsSnapshot:
    """The summed snapshot of every server in ``addresses`` (unreachable ones count 0)."""
    total = MetricsSnapshot()
    for address in addresses:
        status, body = runner.read_server(address, "/metrics")
        if status == 200:
            total = total + parse_metrics(body.decode(errors="replace"))
    return total


@dataclass
class GuardVerdict:
    """One evaluation of the guard."""

    requests: int
    error_share: float
    p95_ms: float
    breach: str | None
    #: Enough candidate answers were seen to judge the share and latency limits.
    sufficient: bool = True
    #: Answers HAProxy routed to the candidate and to all live servers during the bake.
    routed: int = 0
    routed_total: int = 0
    #: The breach is about the candidate's fitness (no answer, DOWN, restarted), not a limit.
    unhealthy: bool = False
    #: 4xx shares of the candidate and of the live slot on the same traffic (-1: not compared).
    client_error_share: float = 0.0
    live_client_error_share: float = -1.0

    def as_dict(self) -> dict[str, float]:
        """Figures for the deployment record."""
        return {
            "requests": float(self.requests),
            "error_share": self.error_share,
            "p95_ms": self.p95_ms if math.isfinite(self.p95_ms) else -1.0,
            "routed": float(self.routed),
            "routed_total": float(self.routed_total),
            "sufficient": 1.0 if self.sufficient else 0.0,
            "client_error_share": self.client_error_share,
            "live_client_error_share": self.live_client_error_share,
        }


@dataclass
class Evidence:
    """What the guard could read about a slot at one moment.

    Example:
        ```python
        ev = read_evidence(target.runner, target.traffic, "green", ["127.0.0.1:9001"])
        print(ev.unreachable, ev.router_down, ev.total.total)
        ```
    """

    per_server: dict[str, MetricsSnapshot] = field(default_factory=dict)
    #: Addresses whose ``/metrics`` did not answer 200.
    unreachable: list[str] = field(default_factory=list)
    #: Addresses whose ``/health`` did not answer 200.
    unhealthy: list[str] = field(default_factory=list)
    #: Router servers of the slot that are not UP in backend ``live`` (or missing there).
    router_down: list[str] = field(default_factory=list)
    #: The router's admin socket did not answer (its view is unknown).
    router_error: str | None = None
    #: HTTP answers HAProxy's live backend got from the slot's servers, and from all servers.
    routed: int = 0
    routed_total: int = 0

    def problems(self) -> list[str]:
        """What this reading shows wrong with the slot (empty: every server answered and is UP)."""
        found = []
        if self.unreachable:
            found.append(f"/metrics did not answer on {', '.join(self.unreachable)}")
        if self.unhealthy:
            found.append(f"/health did not answer 200 on {', '.join(self.unhealthy)}")
        if self.router_error:
            found.append(f"the router's view is unknown ({self.router_error})")
        if self.router_down:
            found.append(f"the router does not see {', '.join(self.router_down)} UP")
        return found

    @property
    def total(self) -> MetricsSnapshot:
        """The summed snapshot of the servers that answered."""
        out = MetricsSnapshot()
        for snap in self.per_server.values():
            out = out + snap
        return out


def read_evidence(
    runner: SlotRunner,
    traffic: TrafficRouter | None,
    color: Color,
    addresses: list[str],
    timeout_s: float = 2.0,
) -> Evidence:
    """Read ``/metrics`` and ``/health`` of each server and the router's view of the slot.

    A ``/metrics`` or ``/health`` read that gets no answer at all (refused, reset or
    ``timeout_s`` passed) is asked once more before the server counts as unreachable or
    unhealthy: a killed server refuses both at once and a hung one times out twice, while
    one read lost to a CPU spike on a busy host does not end a healthy bake. An answer that
    is not 200 counts at once.

    Example:
        ```python
        ev = read_evidence(target.runner, target.traffic, "green", slot.addresses)
        ```
    """
    ev = Evidence()
    for address in addresses:
        status, body = _read_asking_twice(runner, address, "/metrics", timeout_s)
        if status == 200:
            ev.per_server[address] = parse_metrics(body.decode(errors="replace"))
        else:
            ev.unreachable.append(address)
            continue  # no need to wait for /health too
        if _read_asking_twice(runner, address, "/health", timeout_s)[0] != 200:
            ev.unhealthy.append(address)
    if traffic is not None:
        try:
            views = traffic.servers()
        except RouterError as exc:
            ev.router_error = str(exc)
            return ev
        own = [v for v in views if v.color == color and not v.backup]
        if len(own) < runner.endpoint.replicas:
            ev.router_down.append(f"{runner.endpoint.replicas - len(own)} {color} server(s) (missing)")
        ev.router_down.extend(f"{v.name} ({v.status})" for v in own if not v.up)
        ev.routed = sum(v.responses for v in views if v.color == color)
        ev.routed_total = sum(v.responses for v in views)
    return ev


def _read_asking_twice(runner: SlotRunner, address: str, path: str, timeout_s: float) -> tuple[int, bytes]:
    """Read ``path`` of one server, asking a second time when the first read got no answer."""
    status, body = runner.read_server(address, path, timeout_s)
    if status == 0:
        status, body = runner.read_server(address, path, timeout_s)
    return status, body


def judge_evidence(
    start: Evidence,
    now: Evidence,
    limits: GuardLimits,
    share: float | None,
    live: MetricsSnapshot | None = None,
) -> GuardVerdict:
    """Judge a bake from two readings; anything unknown is a breach, never a pass.

    Args:
        start: The reading when the bake started.
        now: The current reading.
        limits: The guard limits.
        share: The candidate's live traffic share (0..1), or None when it gets only
            mirrored or probe requests (shadow), so no routed count is expected.
        live: What the live slot answered over the same period, when it gets the same
            traffic as the candidate (split or mirrored): the 4xx shares are compared
            (:func:`compare_client_errors`). None: no comparison.

    Example:
        ```python
        verdict = judge_evidence(start, read_evidence(runner, traffic, "green", addrs), limits, 0.1)
        if verdict.breach: ...
        ```
    """
    delta = growth(start.per_server, now.per_server)
    routed = now.routed - start.routed
    routed_total = now.routed_total - start.routed_total
    base = judge(delta, limits)
    verdict = GuardVerdict(
        base.requests,
        base.error_share,
        base.p95_ms,
        base.breach,
        sufficient=delta.total >= limits.min_requests,
        routed=routed,
        routed_total=routed_total,
        client_error_share=delta.client_error_share,
    )
    if live is not None:
        verdict.live_client_error_share = live.client_error_share
        if verdict.breach is None:
            verdict.breach = compare_client_errors(delta, live, limits)
    problems = now.problems()
    restarted = [
        a
        for a, snap in now.per_server.items()
        if a in start.per_server and snap.total < start.per_server[a].total
    ]
    if restarted:
        problems.append(f"request counters went backwards on {', '.join(restarted)} (the server restarted)")
    if share and routed_total >= 20 and routed < 0.5 * share * routed_total:
        problems.append(
            f"it answered {routed} of {routed_total} live requests, far fewer than its "
            f"{share:.0%} share (~{share * routed_total:.0f})"
        )
    if problems:
        verdict.breach = "; ".join(problems)
        verdict.unhealthy = True
    return verdict


def judge(delta: MetricsSnapshot, limits: GuardLimits) -> GuardVerdict:
    """Compare what the candidate answered since the bake started with the limits (4xx never count).

    Example:
        ```python
        verdict = judge(MetricsSnapshot(total=100, errors_5xx=5), GuardLimits(max_error_share=0.01))
        assert verdict.breach
        ```
    """
    p95 = delta.quantile_ms(0.95)
    breach = None
    if delta.total >= limits.min_requests:
        if delta.error_share > limits.max_error_share:
            breach = (
                f"5xx share {delta.error_share:.1%} of {delta.total} requests is over the limit "
                f"{limits.max_error_share:.1%}"
            )
        elif p95 > limits.max_p95_latency_ms:
            breach = f"p95 latency {p95:g} ms is over the limit {limits.max_p95_latency_ms:g} ms"
    return GuardVerdict(delta.total, delta.error_share, p95, breach)
