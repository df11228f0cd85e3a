"""Rollouts under faults (issue 11), on the real local and docker targets.

The issue's scenario first (local): version 1 live in blue under keep-alive load, a
canary of version 2 with a short bake, the candidate SIGKILLed during the 10 % bake.
The rollout must fail with a ``EndpointDeployError`` carrying its record (outcome
``rolled_back``), all traffic back on blue, the champion alias unchanged, and the
endpoint serving version 1 throughout with no failed request beyond those in flight on
the killed process.

Then a representative subset of ``bench/rollout_faults.py``'s matrix on both targets,
on one endpoint per target that the scenarios share (each leaves one good version
live): the candidate hung during the bake, answering 500s at a linear step, killed
after the last shift before promotion, and the old slot killed during the bake.

The registry, the docker settings and the target parameter are the contract suite's
own fixtures (``tests/test_deploy_contract.py``), imported unchanged.
"""

from __future__ import annotations

import time

import pytest

import tests.test_deploy_contract as contract
from mlops_tasks.deploy import (
    EndpointSpec,
    GuardLimits,
    RolloutSpec,
    deploy_blue_green,
    describe_deployment,
    stop_endpoint,
)
from mlops_tasks.deploy.models import DeploymentRecord
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.errors import EndpointDeployError
from tests.conftest import client_for, free_port
from tests.fault_support import (
    EndpointMonitor,
    Expectation,
    FailingReload,
    FaultContext,
    FaultRun,
    HangCandidate,
    KillSlot,
    NoFault,
    Outcome,
    Phase,
    injected,
    judge_scenario,
    reconcile_problems,
    run_faulted_rollout,
)

# The contract suite's fixtures, unchanged: the registered versions (good, 500s, ...), the docker
# settings with run-id labels and cleanup, and the target parameter (local, docker).
registry = contract.registry
docker_env = contract.docker_env
target_kind = contract.target_kind

BAKE_S = 1.5
#: The guard reacts within 0.3 s; 5 answers are enough to judge a share.
GUARD = GuardLimits(max_error_share=0.05, interval_s=0.3, min_requests=5)
FAST = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0, load_timeout_s=120)

docker_too = pytest.mark.parametrize("target_kind", ["local", "docker"], indirect=True)
local_only = pytest.mark.parametrize("target_kind", ["local"], indirect=True)


def _rollout(strategy: str) -> RolloutSpec:
    return RolloutSpec(
        strategy=strategy,
        canary_percent=10,
        linear_step_percent=50,
        bake_seconds=BAKE_S,
        termination_wait_s=0,
        load_timeout_s=120,
        guard=GUARD,
    )


def _deploy(
    reg: dict, version: int, endpoint: EndpointSpec, kind: str, rollout: RolloutSpec = FAST, listener=None
) -> DeploymentRecord:
    return deploy_blue_green(
        reg["name"],
        version,
        endpoint=endpoint,
        rollout=rollout,
        target=kind,
        smoke_rows=reg["smoke"],
        mlflow_config=reg["config"],
        listener=listener,
        lock_timeout_s=30,
    )


def _champion(reg: dict) -> int:
    return int(client_for(reg["config"]).get_model_version_by_alias(reg["name"], "champion").version)


@pytest.fixture(scope="module")
def fault_endpoint(target_kind, registry):
    """One endpoint per target serving v1; every scenario leaves one good version live."""
    spec = EndpointSpec(name=f"rollout-faults-{target_kind}", port=free_port(), preview_port=free_port())
    _deploy(registry, registry["v"]["v1"], spec, target_kind)
    yield spec
    stop_endpoint(spec.name)


def _faulted(
    kind: str,
    reg: dict,
    endpoint: EndpointSpec,
    make_fault,
    phase: Phase | None,
    strategy: str,
    candidate: int | None = None,
    base: int | None = None,
) -> tuple[FaultRun, int, int, str]:
    """Roll out ``candidate`` (default: the good version not live) with the fault at ``phase``.

    ``base``: the version to serve before the rollout (deployed first if another one serves).

    Returns the run, the version live before, the candidate and the slot live before. The
    fault is cleaned up (a frozen process continues) before returning; then a rerun of
    the version that should be live must reconcile to one weighted slot serving the champion.
    """
    info = describe_deployment(endpoint.name)
    if base is not None and info.live_version != base:
        _deploy(reg, base, endpoint, kind)
        info = describe_deployment(endpoint.name)
    assert info.live_color is not None and info.live_version == _champion(reg), info
    before, live_color = info.live_version, info.live_color
    v = reg["v"]
    if candidate is None:
        candidate = v["v2"] if before == v["v1"] else v["v1"]
    router = get_target(kind, endpoint).router
    with injected(make_fault(FaultContext(kind, endpoint, live_color))) as fault:
        run = run_faulted_rollout(
            lambda listener: _deploy(reg, candidate, endpoint, kind, _rollout(strategy), listener),
            fault=fault,
            phase=phase,
            endpoint=endpoint,
            router=router,
            bodies=reg["bodies"],
            candidate=candidate,
            rate=40,
        )
    expected = candidate if run.outcome == "succeeded" else before
    _deploy(reg, expected, endpoint, kind)
    assert reconcile_problems(endpoint.name, _champion(reg), expected) == []
    return run, before, candidate, live_color


def _assert_rolled_back(
    run: FaultRun, before: int, candidate: int, live_color: str, reg: dict, *, candidate_bad: bool = False
) -> None:
    """The rollout failed typed, moved nothing, and the old slot kept serving."""
    timeline = [e.step for e in run.record.timeline] if run.record else []
    assert isinstance(run.error, EndpointDeployError), (run.error, timeline)
    assert run.error.record is not None and run.error.record.outcome == "rolled_back", timeline
    assert run.record is not None and run.record.live_color == live_color
    assert (
        judge_scenario(
            Expectation(
                before, candidate, candidate_bad=candidate_bad, candidate_faulted=run.candidate_faulted
            ),
            Outcome(run.outcome, run.error, _champion(reg), run.live_ok),
        )
        == []
    )
    assert _champion(reg) == before
    # Clients: nothing failed beyond one request per open connection on each killed process,
    # and after the rollout every answer came from the old version.
    assert run.load.failed <= run.allowance(), (run.load.failures[:5], run.load.router_errors[:5])
    assert run.load.versions_after(run.finished) == {str(before)}
    assert run.load.versions_between(run.started, run.finished) <= {str(before), str(candidate)}
    # The old slot kept weight the whole time: the router always had a live server to use.
    assert run.monitor.down.longest_ms == 0 and run.monitor.router.longest_ms == 0, vars(run.monitor.down)


def _longest_answer_gap_ms(run: FaultRun, version: int) -> float:
    """Longest time between two consecutive answers of ``version`` during the rollout."""
    done = sorted(
        a.done
        for a in run.load.answers
        if a.version == str(version) and a.status == 200 and run.started <= a.done <= run.finished
    )
    return max((b - a for a, b in zip(done, done[1:], strict=False)), default=float("inf")) * 1000


# -- the issue ---------------------------------------------------------------------------------------


@local_only
def test_issue_candidate_killed_in_canary_bake_rolls_back_to_blue(target_kind, registry, fault_endpoint):
    """Issue 11: SIGKILL of the canary during its 10 % bake must not promote the dead candidate."""
    run, before, candidate, live_color = _faulted(
        target_kind,
        registry,
        fault_endpoint,
        lambda ctx: KillSlot(ctx, "candidate"),
        Phase("shift", 1, "10 %", delay_s=0.5),
        "canary",
        base=registry["v"]["v1"],
    )
    assert run.trigger.fired and len(run.fault.processes) == fault_endpoint.replicas
    assert before == registry["v"]["v1"]
    _assert_rolled_back(run, before, candidate, live_color, registry)
    steps = [e.step for e in run.record.timeline]
    assert "traffic-back" in steps and "champion-moved" not in steps
    # v1 answered all along: never a pause of more than a second between two of its answers.
    assert _longest_answer_gap_ms(run, before) < 1000


# -- the matrix, on both targets ------------------------------------------------------------------------


@docker_too
def test_candidate_hung_during_bake_rolls_back(target_kind, registry, fault_endpoint):
    run, before, candidate, live_color = _faulted(
        target_kind,
        registry,
        fault_endpoint,
        HangCandidate,
        Phase("shift", 1, "10 %", delay_s=0.5),
        "canary",
    )
    assert run.trigger.fired and run.fault.processes
    _assert_rolled_back(run, before, candidate, live_color, registry)


@docker_too
def test_candidate_killed_after_last_shift_before_promotion_rolls_back(target_kind, registry, fault_endpoint):
    run, before, candidate, live_color = _faulted(
        target_kind,
        registry,
        fault_endpoint,
        lambda ctx: KillSlot(ctx, "candidate"),
        Phase("shift", 2, "100 %"),
        "canary",
    )
    assert run.trigger.fired
    # All traffic was on the candidate when it died: requests are lost until the router's
    # checks or the strategy's gate see it (one per connection), never longer.
    timeline = [e.step for e in run.record.timeline] if run.record else []
    assert isinstance(run.error, EndpointDeployError) and run.outcome == "rolled_back", timeline
    assert _champion(registry) == before
    assert run.load.versions_after(run.finished) == {str(before)}
    assert run.load.failed <= run.allowance(), (run.load.failures[:5], run.load.router_errors[:5])


@local_only
def test_candidate_answering_500s_at_a_linear_step_rolls_back(target_kind, registry, fault_endpoint):
    run, before, candidate, live_color = _faulted(
        target_kind,
        registry,
        fault_endpoint,
        NoFault,
        None,
        "linear",
        candidate=registry["v"]["spike"],
    )
    _assert_rolled_back(run, before, candidate, live_color, registry, candidate_bad=True)
    assert run.load.slot_errors, "the candidate's 500s never reached a client"
    assert {a.version for a in run.load.slot_errors} == {str(candidate)}


@local_only
def test_old_slot_killed_during_bake_endpoint_keeps_serving(target_kind, registry, fault_endpoint):
    """Blue dies while the canary bakes: whatever the strategy decides, clients keep getting answers
    and the endpoint ends with one weighted slot serving the champion."""
    run, before, candidate, live_color = _faulted(
        target_kind,
        registry,
        fault_endpoint,
        lambda ctx: KillSlot(ctx, "live"),
        Phase("shift", 1, "10 %", delay_s=0.5),
        "canary",
    )
    assert run.trigger.fired and run.fault.processes
    assert isinstance(run.error, EndpointDeployError) or run.outcome == "succeeded", run.error
    assert (
        judge_scenario(
            Expectation(before, candidate, candidate_faulted=run.candidate_faulted),
            Outcome(run.outcome, run.error, _champion(registry), run.live_ok),
        )
        == []
    )
    assert run.load.failed <= run.allowance(), (run.load.failures[:5], run.load.router_errors[:5])
    assert run.monitor.down.longest_ms == 0, vars(run.monitor.down)


@local_only
def test_router_config_check_failing_keeps_the_live_slot(target_kind, registry, fault_endpoint):
    """A deploy that must reload the router (2 replicas) while ``haproxy -c`` fails: nothing changes."""
    two = fault_endpoint.model_copy(update={"replicas": 2})
    info = describe_deployment(fault_endpoint.name)
    before = info.live_version
    candidate = registry["v"]["v2"] if before == registry["v"]["v1"] else registry["v"]["v1"]
    with injected(FailingReload(FaultContext(target_kind, fault_endpoint, info.live_color))) as fault:
        fault.inject()  # armed for the whole deploy
        run = run_faulted_rollout(
            lambda listener: _deploy(registry, candidate, two, target_kind, _rollout("canary"), listener),
            fault=fault,
            phase=None,
            endpoint=fault_endpoint,
            router=get_target(target_kind, two).router,
            bodies=registry["bodies"],
            candidate=candidate,
            rate=40,
        )
    assert isinstance(run.error, EndpointDeployError) and "injected fault" in str(run.error)
    assert run.outcome == "failed" and _champion(registry) == before
    assert run.load.failed == 0 and run.load.versions_after(0) == {str(before)}
    assert reconcile_problems(fault_endpoint.name, _champion(registry), before) == []


def test_monitor_sees_a_window_without_weighted_server(target_kind, fault_endpoint):
    """The monitor can fail: every live server of the serving slot in maintenance opens a down window
    (the slot still answers ``/health``, so traffic could be served and is not)."""
    live = describe_deployment(fault_endpoint.name).live_color
    router = get_target(target_kind, fault_endpoint).router
    # The slot's servers in backend "live", with their backup twins where the template has them.
    names = [s.name for s in router.servers("live") if s.name.startswith(f"{live}_")]
    with EndpointMonitor(router) as monitor:
        time.sleep(0.2)
        for name in names:
            router.set_state("live", name, "maint")
        time.sleep(0.3)
        for name in names:
            router.set_state("live", name, "ready")
        router.wait_up(live, fault_endpoint.replicas, 5)
        time.sleep(0.2)
    assert 200 <= monitor.down.longest_ms < 2000 and monitor.down.count == 1, vars(monitor.down)
    assert monitor.router.longest_ms == 0 and monitor.polls > 20
