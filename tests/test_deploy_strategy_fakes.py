"""Every strategy path on the in-memory slot runner and router (virtual time: seconds in all).

The fault x phase matrix of the rollout-safety issue runs here in full: for every pair the
endpoint always keeps a weighted UP server while a slot is healthy (checked by the fake at
every change), clients see no failure except the faulted candidate's own 500s and refused
connections while the router is down, the outcome and the champion alias agree with what
serves, and a rerun reconciles to one weighted slot serving the champion. The champion
alias lives in :class:`~mlops_tasks.deploy.memory.MemoryRegistryAccess` (the MLflow calls
are behind :class:`~mlops_tasks.deploy.registry_access.RegistryAccess`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
from mlops_tasks.deploy.endpoint_ops import rollback_deployment
from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget
from mlops_tasks.deploy.models import DeploymentRecord, GuardLimits
from mlops_tasks.deploy.state import EndpointLock, read_records
from mlops_tasks.errors import (
    EndpointBusyError,
    EndpointDeployError,
    GuardBreachError,
    RolloutError,
    SlotStartError,
    SmokeTestError,
)

MODEL = "m"
_names = itertools.count()


class Killed(BaseException):
    """The flow process dies: no cleanup runs (not an Exception, so no abort path catches it)."""


@dataclass
class World:
    target: MemoryTarget
    registry: MemoryRegistryAccess

    @property
    def name(self) -> str:
        return self.target.endpoint.name

    def deploy(self, version: int, strategy: str = "canary", listener=None, **spec) -> DeploymentRecord:
        return deploy_blue_green(
            MODEL,
            version,
            target=self.target,
            registry=self.registry,
            rollout=rollout(strategy, **spec),
            listener=listener,
        )

    def serving(self) -> int | None:
        return self.target.serving_version()

    def assert_consistent(self, version: int) -> None:
        """One weighted slot, serving ``version``, which is the champion."""
        weighted = self.target.weighted_slots()
        assert len(weighted) == 1, weighted
        assert self.target.runner.slot_status(weighted[0]).version == version
        assert self.serving() == version
        assert self.registry.champion(MODEL) == version


def rollout(strategy: str, **overrides) -> RolloutSpec:
    values = dict(
        strategy=strategy,
        bake_seconds=5,
        termination_wait_s=2,
        linear_step_percent=25,
        guard=GuardLimits(interval_s=0.5, extend_s=5),
    )
    values.update(overrides)
    return RolloutSpec(**values)


@pytest.fixture
def world() -> World:
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"fake-{next(_names)}"))
    registry = MemoryRegistryAccess({MODEL: [1, 2, 3]})
    w = World(target, registry)
    assert w.deploy(1, "all_at_once").outcome == "succeeded"
    target.client_results.clear()
    target.violations.clear()
    return w


def _clean(w: World) -> None:
    assert w.target.violations == []
    assert w.target.unserved == []
    assert w.target.client_failures() == []


# -- every strategy path ----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["all_at_once", "canary", "linear", "shadow"])
def test_strategy_promotes(world: World, strategy: str) -> None:
    record = world.deploy(2, strategy)
    assert record.outcome == "succeeded" and record.previous_version == 1
    world.assert_consistent(2)
    assert not world.target.runner.slot_status(record.previous_version and "blue").running
    _clean(world)
    if strategy == "linear":
        shifts = [e.detail for e in record.timeline if e.step == "shift"]
        assert [s.split()[1] for s in shifts] == ["25", "50", "75", "100"]
    if strategy == "shadow":
        assert record.shadow["compared"] > 0 and record.shadow["agreement"] == 1.0


def test_shadow_without_promotion_keeps_live(world: World) -> None:
    record = world.deploy(2, "shadow", promote_after_shadow=False)
    assert record.outcome == "succeeded" and record.live_color == "blue"
    world.assert_consistent(1)
    assert not world.target.runner.slot_status("green").running
    _clean(world)


def test_shadow_disagreement_rolls_back(world: World) -> None:
    world.target.runner.shadow_offset[2] = 1.0
    with pytest.raises(RolloutError, match="Shadow comparison failed"):
        world.deploy(2, "shadow")
    assert world.target.runner.slot_status("green").running == 0
    world.assert_consistent(1)
    _clean(world)


def test_guard_breach_rolls_back(world: World) -> None:
    def spike(record: DeploymentRecord) -> None:
        if record.timeline[-1].step == "shift":
            world.target.fail("green")

    with pytest.raises(GuardBreachError) as info:
        world.deploy(2, "canary", listener=spike)
    assert info.value.record.outcome == "rolled_back"
    assert "5xx share" in info.value.record.error
    world.assert_consistent(1)
    assert {f[2] for f in world.target.client_failures()} <= {f"{world.name}-green-1"}


def test_warm_manual_rollback(world: World) -> None:
    def roll_back_while_warm(record: DeploymentRecord) -> None:
        if record.timeline[-1].step == "retire-started":
            world.target.clock.call_later(
                0.5, lambda: rollback_deployment(world.name, registry=world.registry)
            )

    record = world.deploy(2, "canary", listener=roll_back_while_warm, termination_wait_s=30)
    assert record.timeline[-1].step == "retire-skipped"
    last = [r for r in read_records(world.name) if r.kind == "rollback"][-1]
    assert last.outcome == "succeeded" and last.version == 1
    assert not any(e.step == "redeploy" for e in last.timeline)  # only weights changed
    world.assert_consistent(1)
    _clean(world)


def test_cold_manual_rollback(world: World) -> None:
    world.deploy(2, "canary")
    record = rollback_deployment(world.name, registry=world.registry)
    assert record.kind == "rollback" and record.outcome == "succeeded" and record.version == 1
    world.assert_consistent(1)
    _clean(world)


def test_killed_mid_rollout_then_rerun_reconciles(world: World) -> None:
    def kill_flow(record: DeploymentRecord) -> None:
        if record.timeline[-1].step == "shift":
            raise Killed

    with pytest.raises(Killed):
        world.deploy(2, "canary", listener=kill_flow)
    assert sorted(world.target.weighted_slots()) == ["blue", "green"]  # left mid-canary
    record = world.deploy(2, "canary")
    assert record.outcome == "succeeded"
    assert any(e.step == "reconciled" for e in record.timeline)
    world.assert_consistent(2)


def test_noop_and_busy(world: World) -> None:
    assert world.deploy(1).outcome == "noop"
    with EndpointLock(world.name).hold(1):
        with pytest.raises(EndpointBusyError):
            world.deploy(2)
    world.assert_consistent(1)


def test_candidate_crashing_on_start(world: World) -> None:
    world.target.runner.crash_on_start.add(2)
    with pytest.raises(SlotStartError):
        world.deploy(2)
    world.assert_consistent(1)
    _clean(world)


def test_candidate_never_healthy(world: World) -> None:
    world.target.runner.never_healthy.add(2)
    with pytest.raises(SlotStartError, match="not healthy within 3 s"):
        world.deploy(2, load_timeout_s=3)
    assert world.target.runner.slot_status("green").running == 0
    world.assert_consistent(1)
    _clean(world)


def test_smoke_predictions_differ(world: World) -> None:
    world.target.runner.impostors.add(2)
    with pytest.raises(SmokeTestError, match="differ from the registered model") as info:
        world.deploy(2)
    assert info.value.record.outcome == "rolled_back"
    assert world.target.runner.slot_status("green").running == 0
    world.assert_consistent(1)
    _clean(world)


def test_first_deployment_failing_leaves_nothing_weighted() -> None:
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"fake-{next(_names)}"))
    registry = MemoryRegistryAccess({MODEL: [1]})
    target.runner.crash_on_start.add(1)
    with pytest.raises(SlotStartError) as info:
        deploy_blue_green(MODEL, 1, target=target, registry=registry, rollout=rollout("canary"))
    assert info.value.record.outcome == "failed" and registry.champion(MODEL) is None


def test_records_what_was_asked(world: World) -> None:
    world.deploy(2, "canary")
    calls = world.target.traffic.calls
    assert ("set_weights", {"green": 10, "blue": 90}) in calls
    assert calls.index(("set_weights", {"green": 100, "blue": 0})) < calls.index(("detach", "blue"))
    assert ("set_supervised", "green", True) in world.target.runner.calls


# -- the fault x phase matrix -------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    strategy: str
    step: str
    detail: str = ""
    delay_s: float = 0.0  # virtual seconds after the event (inside the bake that follows)


PHASES = [
    Phase("start", "canary", "green-healthy"),
    Phase("smoke", "canary", "smoke-started"),
    Phase("canary-10", "canary", "shift", "10 %"),
    Phase("canary-10-bake", "canary", "shift", "10 %", delay_s=2),
    *[Phase(f"linear-{p}-bake", "linear", "shift", f"{p} %", delay_s=2) for p in (25, 50, 75)],
    Phase("shadow", "shadow", "shadow-on", delay_s=2),
    Phase("after-last-shift", "canary", "shift", "100 %"),
    Phase("after-last-shift-linear", "linear", "shift", "100 %"),
    Phase("termination", "canary", "retire-started"),
]

FAULTS: dict[str, Callable[[MemoryTarget], None]] = {
    "candidate-killed": lambda t: t.kill("green"),
    "candidate-hung": lambda t: t.hang("green"),
    "candidate-slow": lambda t: t.slow("green", 5.0),
    "candidate-500s": lambda t: t.fail("green"),
    "old-killed": lambda t: t.kill("blue"),
    "router-killed": lambda t: t.kill_router(),
    "router-reload-failing": lambda t: t.fail_reload(),
}


def expected_outcome(fault: str, phase: Phase) -> str | None:
    """The outcome a pair must end with (None: either, as long as it is consistent)."""
    if fault in ("candidate-killed", "candidate-hung"):
        return "rolled_back"
    if fault in ("candidate-slow", "candidate-500s"):
        # The guard judges quality during bakes; at termination the candidate is fit
        # (answers, UP), so it stays: quality after the bake is monitoring's job.
        return "succeeded" if phase.name == "termination" else "rolled_back"
    if fault in ("old-killed", "router-reload-failing"):
        return "succeeded"
    return None


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_phase_matrix(world: World, fault: str, phase: Phase) -> None:
    target, seen = world.target, {"n": 0}
    inject = FAULTS[fault]

    def trigger(record: DeploymentRecord) -> None:
        event = record.timeline[-1]
        if seen["n"] or event.step != phase.step or phase.detail not in event.detail:
            return
        seen["n"] = 1
        if phase.delay_s:
            target.clock.call_later(phase.delay_s, lambda: inject(target))
        else:
            inject(target)

    router_down_at: list[float] = []
    try:
        record = world.deploy(2, phase.strategy, listener=trigger)
    except EndpointDeployError as exc:
        assert exc.record is not None, exc
        record = exc.record
    assert seen["n"], f"phase {phase.name} never reached: {[e.step for e in record.timeline]}"
    want = expected_outcome(fault, phase)
    assert record.outcome in ("succeeded", "rolled_back"), (record.outcome, record.error)
    if want is not None:
        assert record.outcome == want, (record.error, [e.step for e in record.timeline])
    if fault == "router-killed" and not target.traffic.running():
        router_down_at.append(target.clock.now)  # nothing restarted it: the rerun does
        target.traffic.ensure_running(target.runner.slots(), record.live_color)
    version = 2 if record.outcome == "succeeded" else 1
    if fault != "router-killed":
        assert world.serving() == version and world.registry.champion(MODEL) == version
    assert target.violations == [], target.violations
    assert target.unserved == [], target.unserved
    for at, status, served_by in target.client_failures():
        if status == 0:
            assert fault == "router-killed", (at, status)
        else:
            assert fault == "candidate-500s" and served_by == f"{world.name}-green-1", (at, status, served_by)
    # the rerun reconciles to one weighted slot serving the champion
    target.fail_reload(False)
    rerun = world.deploy(world.registry.champion(MODEL) or 1, "all_at_once")
    assert rerun.outcome in ("noop", "succeeded")
    world.assert_consistent(world.registry.champion(MODEL))


# -- finding targets -------------------------------------------------------------------------


def test_targets_by_name_and_object() -> None:
    from mlops_tasks.deploy.targets import get_target, target_kinds
    from mlops_tasks.errors import ConfigurationError

    assert {"local", "docker", "memory"} <= set(target_kinds())
    spec = EndpointSpec(name=f"fake-{next(_names)}")
    assert isinstance(get_target("memory", spec), MemoryTarget)
    assert get_target("memory", spec) is MemoryTarget(spec)  # one world per endpoint name
    with pytest.raises(ConfigurationError, match="Unknown deployment target"):
        get_target("nowhere", spec)


def test_old_names_keep_working() -> None:
    import mlops_tasks.deploy.targets as targets
    from mlops_tasks.deploy.router import RouterClient, haproxy_version, server_names  # noqa: F401
    from mlops_tasks.deploy.strategy import (  # noqa: F401
        describe_deployment,
        rollback_deployment,
        smoke_test,
        stop_endpoint,
    )
    from mlops_tasks.deploy.targets.base import http_get  # noqa: F401
    from mlops_tasks.deploy.targets.docker import ENDPOINT_LABEL, DockerTargetOptions  # noqa: F401
    from mlops_tasks.deploy.targets.local import pid_alive, port_free, terminate  # noqa: F401

    with pytest.warns(DeprecationWarning, match="entry"):
        assert set(targets.TARGETS) == {"local", "docker"}


def test_mirror_script_is_a_package_template() -> None:
    from importlib.resources import files

    from mlops_tasks.deploy.router import MIRROR_LUA

    text = files("mlops_tasks.deploy.haproxy").joinpath("templates/mirror.lua").read_text()
    assert text == MIRROR_LUA and 'core.register_action("mirror"' in text
