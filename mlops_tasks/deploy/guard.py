"""The bake guard: green's 5xx share and p95 latency from the servers' own ``/metrics``.

Each model server counts ``/invocations`` answers by status
(``mlops_serve_requests_total``) and keeps a latency histogram
(``mlops_serve_request_duration_seconds``). The guard takes a snapshot of green's
servers when a bake starts and judges the difference at every evaluation, so only
requests answered during this bake count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlops_tasks.deploy.models import GuardLimits
from mlops_tasks.deploy.targets.base import http_get

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

    def __add__(self, other: MetricsSnapshot) -> MetricsSnapshot:
        keys = set(self.buckets) | set(other.buckets)
        return MetricsSnapshot(
            self.total + other.total, self.errors_5xx + other.errors_5xx,
            {k: self.buckets.get(k, 0) + other.buckets.get(k, 0) for k in keys}, self.count + other.count,
        )

    def __sub__(self, other: MetricsSnapshot) -> MetricsSnapshot:
        keys = set(self.buckets) | set(other.buckets)
        return MetricsSnapshot(
            self.total - other.total, self.errors_5xx - other.errors_5xx,
            {k: self.buckets.get(k, 0) - other.buckets.get(k, 0) for k in keys}, self.count - other.count,
        )

    @property
    def error_share(self) -> float:
        """5xx answers / all ``/invocations`` answers (0 when there were none)."""
        return self.errors_5xx / self.total if self.total else 0.0

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
        elif name == "mlops_serve_request_duration_seconds_bucket":
            le = labels.get("le", "+Inf")
            bound = math.inf if le == "+Inf" else float(le)
            snap.buckets[bound] = snap.buckets.get(bound, 0) + int(value)
        elif name == "mlops_serve_request_duration_seconds_count":
            snap.count += int(value)
    return snap


def read_snapshot(addresses: list[str]) -> MetricsSnapshot:
    """The summed snapshot of every server in ``addresses`` (unreachable ones count 0)."""
    total = MetricsSnapshot()
    for address in addresses:
        status, body = http_get(address, "/metrics")
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

    def as_dict(self) -> dict[str, float]:
        """Figures for the deployment record."""
        return {"requests": float(self.requests), "error_share": self.error_share,
                "p95_ms": self.p95_ms if math.isfinite(self.p95_ms) else -1.0}


def judge(delta: MetricsSnapshot, limits: GuardLimits) -> GuardVerdict:
    """Compare what green answered since the bake started with the limits.

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
