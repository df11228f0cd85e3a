"""How the bake guard reads a candidate's evidence (in-memory target, no sleeping).

A scrape that gets no answer once (a CPU spike on a busy host) is asked again; a killed or
hung server, which gives no answer twice, is unreachable, and a server answering non-200
counts at once.
"""

from __future__ import annotations

import itertools

import pytest

from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
from mlops_tasks.deploy.guard import read_evidence
from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget
from mlops_tasks.deploy.models import GuardLimits

_names = itertools.count()


@pytest.fixture
def target() -> MemoryTarget:
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"guard-reads-{next(_names)}"))
    registry = MemoryRegistryAccess({"m": [1]})
    spec = RolloutSpec(strategy="all_at_once", termination_wait_s=0, guard=GuardLimits(interval_s=0.5))
    assert deploy_blue_green("m", 1, target=target, registry=registry, rollout=spec).outcome == "succeeded"
    return target


def _drop_first_reads(target: MemoryTarget, drops: int, path_dropped: str = "/metrics") -> list[str]:
    """Make the next ``drops`` reads of ``path_dropped`` give no answer; returns the paths read."""
    runner = target.runner
    real = runner.read_server
    seen: list[str] = []

    def read_server(address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        seen.append(path)
        if path == path_dropped and seen.count(path_dropped) <= drops:
            return 0, b""
        return real(address, path, timeout_s)

    runner.read_server = read_server  # type: ignore[method-assign]
    return seen


def _addresses(target: MemoryTarget) -> list[str]:
    return target.runner.slot_status("blue").addresses


def test_one_lost_scrape_is_asked_again_not_a_breach(target: MemoryTarget) -> None:
    seen = _drop_first_reads(target, drops=1)
    ev = read_evidence(target.runner, target.traffic, "blue", _addresses(target))
    assert ev.problems() == []
    assert seen == ["/metrics", "/metrics", "/health"]


def test_two_lost_scrapes_make_the_server_unreachable(target: MemoryTarget) -> None:
    _drop_first_reads(target, drops=2)
    ev = read_evidence(target.runner, target.traffic, "blue", _addresses(target))
    assert ev.unreachable == _addresses(target)


@pytest.mark.parametrize("fault", ["kill", "hang"])
def test_killed_or_hung_server_is_unreachable_after_the_second_ask(target: MemoryTarget, fault: str) -> None:
    getattr(target, fault)("blue")
    seen = _drop_first_reads(target, drops=0)
    ev = read_evidence(target.runner, None, "blue", _addresses(target))
    assert ev.unreachable == _addresses(target)
    assert seen == ["/metrics", "/metrics"]


def test_an_error_answer_counts_at_once(target: MemoryTarget) -> None:
    runner = target.runner
    real = runner.read_server
    seen: list[str] = []

    def read_server(address: str, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        seen.append(path)
        return (503, b"") if path == "/metrics" else real(address, path, timeout_s)

    runner.read_server = read_server  # type: ignore[method-assign]
    ev = read_evidence(runner, None, "blue", _addresses(target))
    assert ev.unreachable == _addresses(target) and seen == ["/metrics"]


def test_one_lost_health_read_is_asked_again_two_make_it_unhealthy(target: MemoryTarget) -> None:
    seen = _drop_first_reads(target, 1, "/health")
    ev = read_evidence(target.runner, None, "blue", _addresses(target))
    assert ev.problems() == [] and seen == ["/metrics", "/health", "/health"]
    _drop_first_reads(target, 2, "/health")
    ev = read_evidence(target.runner, None, "blue", _addresses(target))
    assert ev.unhealthy == _addresses(target)
