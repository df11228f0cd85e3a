"""Supervision: a live slot or router that dies outside a rollout comes back by itself.

Run on every target like the contract suite (its fixtures ``registry``, ``target_kind``
and ``docker_env`` are reused), on one endpoint per target serving v1 with a steady
keep-alive load. The crash is a SIGKILL of the process from outside (on docker: the
container's main process by its host pid, not ``docker kill``, which Docker treats as a
deliberate stop). On ``local`` the watchdog restarts; on ``docker`` the restart policy
does and the watchdog re-points and reports.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from mlops_tasks.deploy import EndpointSpec, describe_deployment, stop_endpoint
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.deploy.targets.local import pid_alive
from mlops_tasks.deploy.watchdog import RECOVERED, UNHEALTHY, read_events, watchdog_pid
from tests import test_deploy_contract as contract
from tests.conftest import free_port
from tests.deploy_support import LoadClient

# The contract suite's fixtures, reused: its registered versions, its target parametrization
# (local, docker) and its docker settings and cleanup.
docker_env = contract.docker_env
registry = contract.registry
target_kind = contract.target_kind
_deploy = contract._deploy

MAX_RESTARTS = 3
RECOVERY_LIMIT_S = 30.0


@pytest.fixture(scope="module")
def supervised(target_kind, registry):
    """An endpoint serving v1 whose watchdog gives up after MAX_RESTARTS restarts."""
    patch = pytest.MonkeyPatch()
    patch.setenv("MLOPS_WATCHDOG_MAX_RESTARTS", str(MAX_RESTARTS))
    patch.setenv("MLOPS_WATCHDOG_BACKOFF_S", "0.5")
    patch.setenv("MLOPS_WATCHDOG_WINDOW_S", "120")
    spec = EndpointSpec(name=f"supervise-{target_kind}", port=free_port(), preview_port=free_port())
    _deploy(registry, registry["v"]["v1"], spec, kind=target_kind)
    # the probe's request body, whichever of this module's tests runs first in this process
    _answers.body = registry["bodies"][0]  # type: ignore[attr-defined]
    yield spec
    stop_endpoint(spec.name)
    patch.undo()


def _answers(port: int) -> bool:
    """One POST through the endpoint answered 200 by a slot."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST",
            "/invocations",
            body=_answers.body,  # type: ignore[attr-defined]
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200 and bool(resp.getheader("X-Served-By"))
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _wait_answering(port: int, since: float, limit_s: float = RECOVERY_LIMIT_S) -> float:
    """Seconds from ``since`` until the endpoint answers 200 again (fails after ``limit_s``)."""
    while time.monotonic() - since < limit_s:
        if _answers(port):
            return time.monotonic() - since
        time.sleep(0.05)
    pytest.fail(f"The endpoint did not answer 200 within {limit_s:g} s")


def _host_pid(container) -> int:
    container.reload()
    return int(container.attrs["State"]["Pid"])


def _kill_slot(target, color: str) -> int:
    """SIGKILL the slot's first server from outside; return the killed pid."""
    if target.kind == "docker":
        pid = _host_pid(target._slot_containers(color)[0])
    else:
        pid = target.slot_status(color).pids[0]
    os.kill(pid, signal.SIGKILL)
    return pid


def _events(name: str, what: str, since: int) -> list[tuple[str, bool]]:
    return [(e["event"], e["gave_up"]) for e in read_events(name)[since:] if e["what"] == what]


def _wait_events(name: str, what: str, since: int, want: list[tuple[str, bool]], limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while _events(name, what, since)[: len(want)] != want and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _events(name, what, since)[: len(want)] == want, read_events(name)[since:]


def _router_view(target) -> list[tuple[str, str, bool, int, str]]:
    """What runtime changes set: per backend/server maintenance, weight and address."""
    return sorted(
        (s.backend, s.name, s.status.startswith("MAINT"), s.weight, s.address)
        for s in target.router.servers()
    )


def _load(spec: EndpointSpec, reg) -> LoadClient:
    _answers.body = reg["bodies"][0]  # type: ignore[attr-defined]
    return LoadClient("127.0.0.1", spec.port, reg["bodies"], connections=4, rate=20)


def test_killed_live_slot_comes_back(target_kind, registry, supervised):
    target = get_target(target_kind, supervised)
    live, version = describe_deployment(supervised.name).live_color, registry["v"]["v1"]
    seen = len(read_events(supervised.name))
    with _load(supervised, registry) as load:
        load.wait_answers(20)
        before = len(load.result.answers)
        killed_at = time.monotonic()
        killed = _kill_slot(target, live)
        while pid_alive(killed):
            time.sleep(0.01)
        recovery = _wait_answering(supervised.port, killed_at)
        print(f"\n[{target_kind}] live slot SIGKILLed -> endpoint answers 200 again after {recovery:.2f} s")
        load.wait_answers(len(load.result.answers) + 20)
    assert len(load.result.answers) >= before + 20
    assert load.result.answers[-1].status == 200
    assert load.result.answers[-1].version == str(version)
    _wait_events(supervised.name, f"slot {live} replica 1", seen, [(UNHEALTHY, False), (RECOVERED, False)])
    status = target.slot_status(live)
    assert status.healthy and status.version == version
    if target_kind == "local":
        assert killed not in status.pids  # a new process, on the same port
        assert status.addresses == target.slot_status(live).addresses


def test_killed_router_comes_back_with_runtime_state(target_kind, registry, supervised):
    target = get_target(target_kind, supervised)
    info = describe_deployment(supervised.name)
    live, replicas = info.live_color, supervised.replicas
    # A runtime-only change the rendered file does not have: it must survive the restart.
    target.router.set_slot_weights({live: 57}, replicas)
    view = _router_view(target)
    seen = len(read_events(supervised.name))
    with _load(supervised, registry) as load:
        load.wait_answers(20)
        if target_kind == "docker":
            pid = _host_pid(target._router_container())
        else:
            pid = target.router_master_pid()
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.01)
        recovery = _wait_answering(supervised.port, killed_at)
        print(f"\n[{target_kind}] router SIGKILLed -> endpoint answers 200 again after {recovery:.2f} s")
        load.wait_answers(len(load.result.answers) + 20)
    assert load.result.answers[-1].status == 200
    assert target.router.slot_weights(replicas)[live] == 57
    deadline = time.monotonic() + 10  # docker: addresses come back through the watchdog's re-point
    while _router_view(target) != view and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _router_view(target) == view
    _wait_events(supervised.name, "router", seen, [(UNHEALTHY, False), (RECOVERED, False)])
    target.router.set_slot_weights({live: 100}, replicas)
    after = describe_deployment(supervised.name)
    assert after.live_color == live and after.live_version == info.live_version


def test_killed_candidate_is_not_restarted(target_kind, registry, supervised):
    target = get_target(target_kind, supervised)
    live = describe_deployment(supervised.name).live_color
    idle = "green" if live == "blue" else "blue"
    v1 = registry["v"]["v1"]
    seen = len(read_events(supervised.name))
    handle = target.prepare(registry["name"], v1, registry["config"])
    target.start_slot(idle, registry["name"], v1, handle)
    try:
        target.wait_healthy(idle, 120, 1)
        _kill_slot(target, idle)
        time.sleep(3)  # several watchdog rounds and back-off periods
        status = target.slot_status(idle)
        assert status.running == 0
        if target_kind == "docker":
            assert all(r["restart_count"] == 0 for r in target.slot_container_states(idle))
        assert not [e for e in read_events(supervised.name)[seen:] if idle in e["what"]]
    finally:
        target.stop_slot(idle, grace_s=1)


def test_slot_crashing_on_every_start_gives_up(target_kind, registry, supervised):
    target = get_target(target_kind, supervised)
    live = describe_deployment(supervised.name).live_color
    seen = len(read_events(supervised.name))
    if target_kind == "docker":
        container = target._slot_containers(live)[0]
        code, out = container.exec_run(["rm", "-rf", "/opt/model"], user="root")
        assert code == 0, out
        moved = None
    else:
        handle = Path(target.read_slot(live)["handle"])
        moved = handle.with_name(handle.name + ".moved")
        shutil.move(handle, moved)
        # Supervising anew resets the watchdog's counters (the first test restarted this slot
        # once); Docker counts restarts over the container's life, whatever its policy says.
        target.set_supervised(live, False)
        target.set_supervised(live, True)
    started = time.monotonic()
    try:
        _kill_slot(target, live)
        what = f"slot {live} replica 1"
        _wait_events(supervised.name, what, seen, [(UNHEALTHY, False), (UNHEALTHY, True)], limit_s=90)
        took = time.monotonic() - started
        gave_up = [e for e in read_events(supervised.name)[seen:] if e["what"] == what and e["gave_up"]]
        print(
            f"\n[{target_kind}] crash loop: gave up after {gave_up[0]['restarts']} restarts in {took:.1f} s"
        )
        if target_kind == "local":
            assert gave_up[0]["restarts"] == MAX_RESTARTS
        else:
            # Docker counts MaximumRetryCount over the container's life and forgets it only after
            # 10 s of running, so an earlier restart of this container (the first test) may count.
            assert 1 <= gave_up[0]["restarts"] <= MAX_RESTARTS
        if target_kind == "local":
            assert took >= 0.5 + 1 + 2  # the back-off, not a tight loop
            assert target.slot_status(live).running == 0
        time.sleep(2)  # no more restarts after giving up
        assert target.slot_status(live).running == 0
        assert len([e for e in read_events(supervised.name)[seen:] if e["what"] == what]) == 2
    finally:
        if moved is not None:
            shutil.move(moved, handle)
    # The next deployment brings the version back (and restarts the watchdog's counters).
    rec = _deploy(registry, registry["v"]["v1"], supervised, kind=target_kind)
    assert "restart-live" in [e.step for e in rec.timeline]
    assert _answers(supervised.port)


def test_stop_endpoint_leaves_nothing_running(target_kind, supervised):
    target = get_target(target_kind, supervised)
    dog = watchdog_pid(target.folder)
    assert dog is not None
    if target_kind == "docker":
        from mlops_tasks.deploy.targets.docker import ENDPOINT_LABEL

        selector = {"label": f"{ENDPOINT_LABEL}={supervised.name}"}
        assert target.client.containers.list(filters=selector)
        assert stop_endpoint(supervised.name) is True
        assert not target.client.containers.list(all=True, filters=selector)
        pids = [dog]
    else:
        pids = [
            dog,
            target.router_master_pid(),
            *target.slot_status("blue").pids,
            *target.slot_status("green").pids,
        ]
        assert stop_endpoint(supervised.name) is True
    time.sleep(1.5)  # a watchdog left behind would have restarted something by now
    assert not any(pid_alive(p) for p in pids if p)
    assert watchdog_pid(target.folder) is None
    if target_kind == "local":
        assert target.router_master_pid() is None
        assert not any(target.slot_status(c).pids for c in ("blue", "green"))


def test_events_reach_prefect_when_its_api_url_is_set(prefect_harness, tmp_path):
    """The watchdog's events go to Prefect from a process whose environment names the API."""
    import asyncio
    import subprocess
    import sys
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.settings import PREFECT_API_URL

    name = f"events-{uuid.uuid4().hex[:8]}"
    code = (
        "import sys; from pathlib import Path\n"
        "from mlops_tasks.deploy.watchdog import UNHEALTHY, emit_endpoint_event\n"
        "from mlops_tasks.endpoint_events import emit_prefect_endpoint_event\n"
        f"emit_endpoint_event(Path(sys.argv[1]), UNHEALTHY, {name!r}, 'router', 'test', 2, True,\n"
        "                    emitter=emit_prefect_endpoint_event)\n"
        "from prefect.events.worker import EventsWorker\n"
        "EventsWorker.drain_all(timeout=30)\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True, timeout=120)
    assert '"gave_up": true' in (tmp_path / "events.jsonl").read_text()

    async def read():
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[UNHEALTHY]),
                    resource=EventResourceFilter(id=[f"mlops.endpoint.{name}"]),
                ),
                limit=10,
            )
            return page.events

    deadline = time.monotonic() + 30
    events = asyncio.run(read())
    while not events and time.monotonic() < deadline:
        time.sleep(0.5)
        events = asyncio.run(read())
    assert len(events) == 1
    assert events[0].payload == {
        "endpoint": name,
        "what": "router",
        "reason": "test",
        "restarts": 2,
        "gave_up": True,
    }
    assert events[0].resource["mlops.endpoint.gave-up"] == "true"
