"""The bake guard judges the server, not the caller (in-memory target, virtual time).

Three cases: a burst of malformed requests during a canary's bake does not roll it back
(a caller's 4xx never counts on its own); a real server fault (5xx, latency) still does;
and a candidate that refuses well-formed requests (4xx share over the live slot's on the
same split traffic by more than the margin) does too. The guard's reading code
(``parse_metrics``, ``growth``, ``compare_client_errors``) is checked on its own as well.
"""

from __future__ import annotations

import itertools

import pytest

from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
from mlops_tasks.deploy.guard import MetricsSnapshot, compare_client_errors, growth, parse_metrics
from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget
from mlops_tasks.deploy.models import DeploymentRecord, GuardLimits
from mlops_tasks.errors import GuardBreachError

_names = itertools.count()


@pytest.fixture
def target() -> tuple[MemoryTarget, MemoryRegistryAccess]:
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"guard-callers-{next(_names)}"))
    registry = MemoryRegistryAccess({"m": [1, 2]})
    assert _deploy(target, registry, 1, "all_at_once").outcome == "succeeded"
    target.client_results.clear()
    return target, registry


def _deploy(target: MemoryTarget, registry: MemoryRegistryAccess, version: int, strategy: str, **spec):
    rollout = RolloutSpec(
        strategy=strategy,
        bake_seconds=10,
        termination_wait_s=0,
        canary_percent=10,
        guard=GuardLimits(interval_s=0.5, extend_s=5),
        **spec,
    )
    return deploy_blue_green("m", version, target=target, registry=registry, rollout=rollout)


@pytest.mark.parametrize("strategy", ["canary", "linear", "shadow"])
def test_a_burst_of_malformed_requests_does_not_roll_back_a_good_candidate(target, strategy: str) -> None:
    world, registry = target
    world.malformed_share = 0.4
    record = _deploy(world, registry, 2, strategy)
    assert record.outcome == "succeeded", record.error
    assert registry.champion("m") == 2
    assert record.guard["client_error_share"] > 0.2  # the candidate did see the bad requests
    assert world.client_failures() == []


@pytest.mark.parametrize("fault", ["fail", "slow"])
def test_a_server_fault_still_rolls_back_among_malformed_requests(target, fault: str) -> None:
    world, registry = target
    world.malformed_share = 0.4

    def inject(record: DeploymentRecord) -> None:
        if record.timeline[-1].step == "shift":
            getattr(world, fault)("green")

    with pytest.raises(GuardBreachError) as info:
        deploy_blue_green(
            "m",
            2,
            target=world,
            registry=registry,
            rollout=RolloutSpec(strategy="canary", bake_seconds=10, termination_wait_s=0),
            listener=inject,
        )
    assert info.value.record.outcome == "rolled_back"
    assert ("5xx share" if fault == "fail" else "p95 latency") in info.value.record.error
    assert registry.champion("m") == 1


@pytest.mark.parametrize("strategy", ["canary", "shadow"])
def test_a_candidate_refusing_what_the_live_slot_accepts_is_rolled_back(target, strategy: str) -> None:
    world, registry = target
    world.malformed_share = 0.1

    def inject(record: DeploymentRecord) -> None:
        if record.timeline[-1].step in ("shift", "shadow-on"):
            world.refuse("green")

    with pytest.raises(GuardBreachError) as info:
        deploy_blue_green(
            "m",
            2,
            target=world,
            registry=registry,
            rollout=RolloutSpec(
                strategy=strategy, bake_seconds=10, termination_wait_s=0, guard=GuardLimits(probe=False)
            ),
            listener=inject,
        )
    error = info.value.record.error
    assert info.value.record.outcome == "rolled_back"
    assert "4xx share" in error and "over the live slot's" in error and "margin 2 points" in error
    assert registry.champion("m") == 1


def test_parse_metrics_counts_4xx_apart_from_5xx() -> None:
    text = "\n".join(
        f'mlops_serve_requests_total{{endpoint="/invocations",status="{s}"}} {n}'
        for s, n in (("200", 90), ("400", 6), ("415", 1), ("422", 2), ("500", 1))
    )
    snap = parse_metrics(text + '\nmlops_serve_requests_total{endpoint="other",status="431"} 7\n')
    assert (snap.total, snap.errors_4xx, snap.errors_5xx) == (100, 9, 1)
    assert snap.error_share == 0.01 and snap.client_error_share == 0.09


def test_growth_leaves_out_restarted_and_missing_servers() -> None:
    start = {"a": MetricsSnapshot(total=10, errors_4xx=2), "b": MetricsSnapshot(total=50)}
    now = {
        "a": MetricsSnapshot(total=30, errors_4xx=7),
        "b": MetricsSnapshot(total=3),
        "c": MetricsSnapshot(5),
    }
    delta = growth(start, now)
    assert (delta.total, delta.errors_4xx) == (20, 5)


@pytest.mark.parametrize(
    ("candidate", "live", "breach"),
    [
        ((100, 30), (900, 270), False),  # same share
        ((10, 6), (90, 27), False),  # 60 % of a small canary sample: chance, not a breach
        ((100, 100), (900, 270), True),  # refuses everything
        ((2000, 320), (18000, 2340), True),  # 16 % against 13 %: over the margin, beyond chance
        ((2000, 300), (18000, 2340), False),  # 15 % against 13 %: not more than 2 points
        ((200, 38), (1800, 234), False),  # 19 % against 13 % of a small sample: chance
        ((3, 3), (900, 0), False),  # too few candidate answers to judge
    ],
)
def test_compare_client_errors(candidate, live, breach: bool) -> None:
    verdict = compare_client_errors(
        MetricsSnapshot(total=candidate[0], errors_4xx=candidate[1]),
        MetricsSnapshot(total=live[0], errors_4xx=live[1]),
        GuardLimits(),
    )
    assert (verdict is not None) == breach, verdict


def test_the_margin_is_a_setting() -> None:
    assert GuardLimits().max_4xx_share_margin == 0.02
    loose = GuardLimits(max_4xx_share_margin=0.8)
    assert (
        compare_client_errors(
            MetricsSnapshot(100, errors_4xx=100), MetricsSnapshot(900, errors_4xx=270), loose
        )
        is None
    )
