"""The blue-green contract, run on the real targets (``docker`` and ``local``).

One end-to-end path per strategy runs here on each real target, plus what only a real
slot runner or router can show (processes that crash, ports, HAProxy reloads, the Docker
engine). The strategy's logic on every path, and the fault x phase matrix, run in seconds
on the in-memory target in ``tests/test_deploy_strategy_fakes.py``.

Every scenario keeps a steady keep-alive load on the endpoint (8 connections, no
retries) and checks that no request fails: no connection error, no reset, no router
error. Answers are attributed to a version by the ``X-Model-Version`` header.

On ``docker`` the slots are model-image containers and the router an HAProxy container
made from a locally built image (debootstrap, ``bookworm-haproxy``); the base images are
kept between runs, everything else carries ``org.mlops-tasks.test=<run id>`` and is
removed at the end. The model images are built once per version for the session (the
endpoints share them by content hash). Image verification has its own test; the
scenarios run with ``MLOPS_DOCKER_ALLOW_UNVERIFIED=1``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from mlops_tasks.deploy import (
    EndpointSpec,
    RolloutSpec,
    deploy_blue_green,
    describe_deployment,
    rollback_deployment,
    stop_endpoint,
)
from mlops_tasks.deploy.router import haproxy_version
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.errors import (
    EndpointDeployError,
    EndpointPortError,
    PromotionRefusedError,
    RouterConfigError,
    SlotStartError,
    UnverifiedImageError,
)
from tests.conftest import client_for, free_port
from tests.deploy_support import (
    LoadClient,
    SpikeModel,
    body_for,
    features,
    make_pipeline,
    register_version,
)

RUN_ID = f"deploy-contract-{uuid.uuid4().hex[:8]}"
# 120 s to become healthy: a container's server loaded its model in over 60 s once with the
# 2 cores at load average 90 (other jobs); the local processes need a few seconds.
FAST = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0, load_timeout_s=120)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def docker_env():
    """The docker target's test settings: local base/router images, run-id labels, cleanup."""
    from mlops_tasks.testing.docker import TEST_LABEL, docker_client, ensure_base_image, remove_labelled

    client = docker_client()
    patch = pytest.MonkeyPatch()
    patch.setenv("MLOPS_DOCKER_ROUTER_IMAGE", ensure_base_image(client, "bookworm-haproxy"))
    patch.setenv("MLOPS_DOCKER_BASE_IMAGE", ensure_base_image(client))
    patch.setenv("MLOPS_DOCKER_LABELS", f"{TEST_LABEL}={RUN_ID}")
    patch.setenv("MLOPS_DOCKER_ALLOW_UNVERIFIED", "1")
    # The servers in the containers: the cloudpickled bad models load, the sleepy one sleeps.
    patch.setenv("MLOPS_DOCKER_SLOT_ENV", "MLOPS_TEST_SLEEPY=1,MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true")
    yield client
    patch.undo()
    remove_labelled(client, TEST_LABEL, RUN_ID)
    selector = {"label": f"{TEST_LABEL}={RUN_ID}"}
    assert not client.containers.list(all=True, filters=selector)
    assert not client.networks.list(filters=selector)


@pytest.fixture(scope="module", params=["docker", "local"])
def target_kind(request) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_env")
    return request.param


@pytest.fixture(scope="module")
def registry(mlflow_config, churn):
    """One registered model with three good versions and one that answers 500 on small batches."""
    from mlops_tasks.demo import TARGET
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.mlflow_support import fluent_mlflow

    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # the cloudpickled bad models
    name = f"bg-{os.getpid()}"
    x, y = features(churn), churn[TARGET]
    resolved = resolve_mlflow_config(mlflow_config)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v = {
            "v1": register_version(client, exp, name, make_pipeline(1.0).fit(x, y), x),
            "v2": register_version(client, exp, name, make_pipeline(0.05).fit(x, y), x),
            "v3": register_version(client, exp, name, make_pipeline(0.3).fit(x, y), x),
            # answers 500 on small batches (tests/test_rollout_faults.py shares this fixture)
            "spike": register_version(
                client, exp, name, SpikeModel(make_pipeline(1.0).fit(x, y)), x, pickled=True
            ),
        }
    yield {
        "name": name,
        "v": v,
        "x": x,
        "config": mlflow_config,
        "bodies": [body_for(x.iloc[[i]]) for i in range(200)],
        "smoke": x.tail(50),
    }
    patch.undo()


def _deploy(reg, version, endpoint, rollout=FAST, kind="local", **kw):
    return deploy_blue_green(
        reg["name"],
        version,
        endpoint=endpoint,
        rollout=rollout,
        target=kind,
        smoke_rows=reg["smoke"],
        mlflow_config=reg["config"],
        **kw,
    )


def _champion(reg) -> int:
    return int(client_for(reg["config"]).get_model_version_by_alias(reg["name"], "champion").version)


def _load(endpoint: EndpointSpec, reg) -> LoadClient:
    return LoadClient("127.0.0.1", endpoint.port, reg["bodies"], connections=8, rate=40)


def _pids(kind: str, endpoint: EndpointSpec) -> list[int | str]:
    """Process ids (local) or container ids (docker) of both slots."""
    target = get_target(kind, endpoint)
    slots = [target.slot_status(c) for c in ("blue", "green")]
    return [p for slot in slots for p in [*slot.pids, *slot.containers]]


def _marker(kind: str) -> str:
    """File naming what a target prepared for a version (the cache a fault test poisons)."""
    return "folder.txt" if kind == "local" else "image.txt"


@pytest.fixture(scope="module")
def endpoint(target_kind, registry):
    """An endpoint serving v1, shared by the fault scenarios (each leaves one version live)."""
    spec = EndpointSpec(name=f"faults-{target_kind}", port=free_port(), preview_port=free_port())
    _deploy(registry, registry["v"]["v1"], spec, kind=target_kind)
    yield spec
    stop_endpoint(spec.name)


def _live(endpoint: EndpointSpec) -> tuple[str, int]:
    info = describe_deployment(endpoint.name)
    assert info.router_running and info.live_color is not None
    return info.live_color, info.live_version


def _assert_one_live(endpoint: EndpointSpec, reg) -> int:
    info = describe_deployment(endpoint.name)
    weighted = [c for c, s in info.slots.items() if s.weight > 0]
    assert weighted == [info.live_color], info.slots
    assert info.live_version == _champion(reg)
    return info.live_version


# -- the zero-failed-request sequence ----------------------------------------------------------------


def test_zero_failed_requests_through_deploys_and_rollbacks(target_kind, registry):
    """All-at-once then canary under load (guard rollbacks and cold rollback: the fakes' tests)."""
    v = registry["v"]
    spec = EndpointSpec(name=f"load-{target_kind}", port=free_port(), preview_port=free_port())
    try:
        first = _deploy(registry, v["v1"], spec, kind=target_kind)
        assert first.outcome == "succeeded" and _champion(registry) == v["v1"]
        with _load(spec, registry) as load:
            load.wait_answers(50)
            assert load.result.versions_after(0) == {str(v["v1"])}

            # 1. all at once
            rec = _deploy(registry, v["v2"], spec, kind=target_kind)
            after_aao = time.monotonic()
            assert rec.outcome == "succeeded" and rec.previous_version == v["v1"]
            assert _champion(registry) == v["v2"]
            load.wait_answers(len(load.result.answers) + 40)

            # 2. canary (both versions answer during the bake), blue kept warm for a rollback
            seen_in_bake: set[str] = set()

            def during_bake(record):
                if record.timeline[-1].step == "shift" and "10 %" in record.timeline[-1].detail:
                    t0 = time.monotonic()
                    load.wait_answers(len(load.result.answers) + 120)
                    seen_in_bake.update(load.result.versions_between(t0, time.monotonic()))

            canary = RolloutSpec(strategy="canary", canary_percent=10, bake_seconds=1.0, termination_wait_s=0)
            rec = _deploy(registry, v["v3"], spec, canary, kind=target_kind, listener=during_bake)
            after_canary = time.monotonic()
            assert rec.outcome == "succeeded"
            assert seen_in_bake == {str(v["v2"]), str(v["v3"])}
            assert _champion(registry) == v["v3"]
            load.wait_answers(len(load.result.answers) + 40)

        result = load.result
    finally:
        stop_endpoint(spec.name)

    assert result.failed == 0, (result.failures[:5], result.router_errors[:5])
    assert result.total >= 200
    assert result.versions_after(after_aao) <= {str(v["v2"]), str(v["v3"])}
    assert result.versions_between(after_aao, after_canary) <= {str(v["v2"]), str(v["v3"])}
    assert result.versions_after(after_canary) == {str(v["v3"])}
    assert not result.slot_errors


def test_linear_deploy_then_warm_manual_rollback_switches_weights_only(target_kind, registry):
    v = registry["v"]
    spec = EndpointSpec(name=f"warm-{target_kind}", port=free_port(), preview_port=free_port())
    try:
        _deploy(registry, v["v1"], spec, kind=target_kind)
        with _load(spec, registry) as load:
            load.wait_answers(40)
            keep_warm = RolloutSpec(
                strategy="linear", linear_step_percent=50, bake_seconds=0.5, termination_wait_s=3600
            )
            rollback = {}

            def roll_back_while_warm(record):
                # Called by the deployment thread itself: once it succeeded, blue is warm and the
                # lock is free during the termination wait; roll back from another thread.
                if record.timeline[-1].step == "succeeded" and not rollback:
                    import threading

                    def go():
                        rollback["record"] = rollback_deployment(
                            spec.name, mlflow_config=registry["config"], lock_timeout_s=30
                        )
                        rollback["at"] = time.monotonic()

                    rollback["thread"] = threading.Thread(target=go)
                    rollback["thread"].start()

            import threading

            deployer = threading.Thread(
                target=lambda: rollback.setdefault(
                    "deploy",
                    _deploy(
                        registry, v["v2"], spec, keep_warm, kind=target_kind, listener=roll_back_while_warm
                    ),
                )
            )
            deployer.start()
            deadline = time.monotonic() + 120
            while "at" not in rollback:
                assert time.monotonic() < deadline, "rollback did not happen"
                time.sleep(0.1)
            rollback["thread"].join()
            deployer.join(60)
            assert not deployer.is_alive()
            load.wait_answers(len(load.result.answers) + 40)
        result = load.result
        rec = rollback["record"]
        assert rec.outcome == "succeeded" and rec.version == v["v1"]
        assert [e.step for e in rec.timeline if e.step == "redeploy"] == []  # no slot was started
        assert _champion(registry) == v["v1"]
        assert result.failed == 0
        assert result.versions_after(rollback["at"]) == {str(v["v1"])}
        # The deployment's termination wait found its old blue live again and kept it.
        steps = [e.step for e in rollback["deploy"].timeline]
        assert "retire-skipped" in steps
        shifts = [e.detail for e in rollback["deploy"].timeline if e.step == "shift"]
        assert [d.split(",")[0].split()[-2] for d in shifts] == ["50", "100"]
        assert _assert_one_live(spec, registry) == v["v1"]
    finally:
        stop_endpoint(spec.name)


def test_shadow_green_gets_copies_while_clients_see_blue(target_kind, registry):
    v = registry["v"]
    spec = EndpointSpec(name=f"shadow-{target_kind}", port=free_port(), preview_port=free_port())
    try:
        _deploy(registry, v["v1"], spec, kind=target_kind)
        with _load(spec, registry) as load:
            load.wait_answers(40)
            shadow = RolloutSpec(
                strategy="shadow",
                bake_seconds=2,
                termination_wait_s=0,
                shadow_min_agreement=0.5,
                promote_after_shadow=False,
            )
            rec = _deploy(registry, v["v2"], spec, shadow, kind=target_kind)
        result = load.result
        assert rec.outcome == "succeeded"
        assert rec.guard["requests"] > 20  # green's own request counter grew with live traffic
        assert rec.shadow["compared"] > 20 and rec.shadow["agreement"] >= 0.5
        assert result.failed == 0
        assert {a.version for a in result.answers} == {str(v["v1"])}
        assert _assert_one_live(spec, registry) == v["v1"]
        assert (
            get_target(target_kind, spec).slot_status("green" if _live(spec)[0] == "blue" else "blue").running
            == 0
        )
    finally:
        stop_endpoint(spec.name)


# -- faults: blue keeps serving, no request fails, state stays consistent ----------------------------


def _fault(endpoint, registry, action):
    before = _live(endpoint)
    with _load(endpoint, registry) as load:
        load.wait_answers(40)
        outcome = action()
        load.wait_answers(len(load.result.answers) + 40)
    result = load.result
    assert result.failed == 0, (result.failures[:5], result.router_errors[:5])
    assert {a.version for a in result.answers} == {str(before[1])}
    assert _live(endpoint) == before
    assert _assert_one_live(endpoint, registry) == before[1]
    return outcome


def _idle_stopped(kind, endpoint):
    live = _live(endpoint)[0]
    assert get_target(kind, endpoint).slot_status("green" if live == "blue" else "blue").running == 0


def _crashing_image(target, registry, version) -> str:
    """The version's model image with a broken MLmodel: the server exits at start."""
    import io

    from mlops_tasks.testing.docker import TEST_LABEL

    good = target.prepare(registry["name"], version, registry["config"])
    dockerfile = (
        f"FROM {good}\nUSER 0\nRUN echo 'flavors: {{sklearn: {{pickled_model: missing.pkl}}}}' "
        "> /opt/model/MLmodel\nUSER 10001:10001\n"
    )
    image, _ = target.client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), rm=True, labels={TEST_LABEL: RUN_ID}
    )
    return image.id


def test_fault_green_crashes_on_start(target_kind, registry, endpoint):
    target = get_target(target_kind, endpoint)
    version = registry["v"]["v2"]
    folder = target.folder / "models" / f"{registry['name']}-v{version}"
    if target_kind == "docker":
        crashing = _crashing_image(target, registry, version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "image.txt").write_text(crashing)
    else:
        model_dir = folder / "download" / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "MLmodel").write_text("flavors: {sklearn: {pickled_model: missing.pkl}}\n")
        (folder / "folder.txt").write_text(str(model_dir))
    try:

        def act():
            with pytest.raises(SlotStartError, match="exited while starting") as err:
                _deploy(registry, version, endpoint, kind=target_kind)
            return err.value

        err = _fault(endpoint, registry, act)
        assert err.record.outcome == "rolled_back"
        _idle_stopped(target_kind, endpoint)
    finally:
        import shutil

        shutil.rmtree(folder)


def test_fault_rendered_config_rejected_then_valid_reload_is_seamless(
    target_kind, registry, endpoint, monkeypatch
):
    target = get_target(target_kind, endpoint)
    module = sys.modules[type(target).__module__]  # the target renders with its own import
    cfg_before = target.cfg_path.read_text()
    moved = endpoint.model_copy(update={"preview_port": free_port()})
    good_render = module.render_config
    monkeypatch.setattr(module, "render_config", lambda cfg: good_render(cfg) + "    no-such-directive on\n")

    def act():
        with pytest.raises(RouterConfigError, match="rejected"):
            _deploy(registry, registry["v"]["v2"], moved, kind=target_kind)

    _fault(endpoint, registry, act)
    assert target.cfg_path.read_text() == cfg_before
    if target_kind == "docker":
        monkeypatch.setattr(module, "render_config", good_render)
        _docker_reload_then_port_move(target, registry, endpoint, moved)
        monkeypatch.undo()
        return
    local = module

    # The same change with a valid file: checked, then a seamless reload under load. The
    # listening sockets pass to the new worker, so no connection is ever refused; HAProxy 2.6
    # closes the old worker's idle keep-alive connections (no idle-close-on-response before
    # 2.7), so a client writing on one at that instant may see it closed.
    monkeypatch.setattr(local, "render_config", good_render)
    pid_before = target.router.info()["Pid"]
    live = _live(endpoint)
    with _load(endpoint, registry) as load:
        load.wait_answers(40)
        rec = _deploy(registry, live[1], moved, kind=target_kind)
        load.wait_answers(len(load.result.answers) + 40)
    assert rec.outcome == "noop"
    assert not any("Refused" in f for f in load.result.failures), load.result.failures
    assert not load.result.router_errors
    if haproxy_version(local.haproxy_binary()) >= (2, 7):
        assert load.result.failed == 0
    assert len(load.result.failures) <= load.connections  # at most the idle ones, once each
    assert target.router.info()["Pid"] != pid_before
    assert f":{moved.preview}" in target.cfg_path.read_text()
    # back to the fixture's ports for the next scenarios
    monkeypatch.undo()
    _deploy(registry, live[1], endpoint, kind=target_kind)


def _docker_reload_then_port_move(target, registry, endpoint, moved):
    """Docker: a checked config is applied by a seamless reload (USR2 to the router's master).

    A container's published ports are fixed when it is created, so a port change replaces
    the router container; that is done (and checked) outside the load.
    """
    pid_before = target.router.info()["Pid"]
    live_color = _live(endpoint)[0]
    # A reload forgets runtime changes: the target writes what runs now before every reload.
    slots = {c: target.slot_status(c) for c in ("blue", "green")}
    target.write_checked(target.render(slots, live_color, None))  # a plain endpoint: no security layout
    with _load(endpoint, registry) as load:
        load.wait_answers(40)
        target.reload_router()
        load.wait_answers(len(load.result.answers) + 40)
    assert not any("Refused" in f for f in load.result.failures), load.result.failures
    assert not load.result.router_errors
    if target.router_version() >= (2, 7):
        assert load.result.failed == 0
    assert len(load.result.failures) <= load.connections  # HAProxy 2.6: idle keep-alives, once each
    assert target.router.info()["Pid"] != pid_before

    live = _live(endpoint)
    rec = _deploy(registry, live[1], moved, kind="docker")
    assert rec.outcome == "noop"
    assert f"preview {moved.preview}" in target.cfg_path.read_text().splitlines()[0]
    from mlops_tasks.deploy.targets.base import http_get

    assert http_get(f"127.0.0.1:{moved.port}", "/health")[0] == 200
    assert http_get(f"127.0.0.1:{moved.preview}", "/health")[0] == 503  # the router, no idle slot
    assert http_get(f"127.0.0.1:{endpoint.preview}", "/health")[0] == 0  # the old port is closed
    assert _live(moved) == live
    _deploy(registry, live[1], endpoint, kind="docker")
    assert _live(endpoint) == live


def test_alias_only_rollback_refused_while_deployed(registry, endpoint):
    from mlops_tasks.deploy.state import endpoints_serving
    from mlops_tasks.registry import rollback_model

    with pytest.raises(PromotionRefusedError, match="rollback_deployment"):
        rollback_model(
            registry["name"], mlflow_config=registry["config"], serving_endpoints=endpoints_serving
        )


def test_crashed_router_and_live_slot_come_back_on_rerun(target_kind, registry, endpoint):
    from mlops_tasks.deploy.targets.local import terminate

    target = get_target(target_kind, endpoint)
    live_color, live_version = _live(endpoint)
    # Without the watchdog (a reboot, say; docker kill is a deliberate stop Docker does not
    # undo): the next run brings both back. tests/test_deploy_supervision.py has the watchdog.
    target.stop_watchdog()
    if target_kind == "docker":
        target._router_container().kill()
        for cid in target.slot_status(live_color).containers:
            target.client.containers.get(cid).kill()
    else:
        terminate([target._router_pid()], 5)
        terminate(target.slot_status(live_color).pids, 5)
    assert not target.router_running()
    rec = _deploy(registry, live_version, endpoint, kind=target_kind)
    steps = [e.step for e in rec.timeline]
    assert "router-started" in steps and "restart-live" in steps
    assert rec.outcome == "noop"
    with _load(endpoint, registry) as load:
        load.wait_answers(40)
    assert load.result.failed == 0 and {a.version for a in load.result.answers} == {str(live_version)}


# -- docker only: the engine fails mid-rollout (on the shared endpoint, so before tests that move the
# -- champion alias with their own endpoints) --------------------------------------------------------


#: Docker-only scenarios (no meaning for processes) take the module's target fixture at "docker"
#: only, so they share its endpoint and images instead of being skipped for "local".
docker_only = pytest.mark.parametrize("target_kind", ["docker"], indirect=True)


@pytest.fixture
def docker_endpoint(target_kind, endpoint):
    assert target_kind == "docker"
    return endpoint


class EngineProxy:
    """A TCP front of the local Docker socket that can be cut: the engine "goes away"."""

    def __init__(self, socket_path: str = "/var/run/docker.sock") -> None:
        import threading

        self.socket_path = socket_path
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.socket_path)
            self.open += [client, engine]
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.cut.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        except OSError:
            pass
        self.listener.close()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


@docker_only
def test_docker_engine_error_mid_rollout_keeps_blue(registry, docker_endpoint):
    """The engine refuses to create green's container (a name conflict): typed error, blue serves."""
    from mlops_tasks.testing.docker import TEST_LABEL

    target = get_target("docker", docker_endpoint)
    live_color, live_version = _live(docker_endpoint)
    green = "green" if live_color == "blue" else "blue"
    new = registry["v"]["v3"] if live_version != registry["v"]["v3"] else registry["v"]["v2"]
    squatter = []

    def take_green_name(record):
        if record.timeline[-1].step == "green-starting" and not squatter:
            squatter.append(
                target.client.containers.create(
                    os.environ["MLOPS_DOCKER_ROUTER_IMAGE"],
                    name=target._name(f"{green}-1"),
                    labels={TEST_LABEL: RUN_ID},
                )
            )

    def act():
        with pytest.raises(SlotStartError, match="Docker engine failed to start container") as err:
            _deploy(registry, new, docker_endpoint, kind="docker", listener=take_green_name)
        return err.value

    try:
        err = _fault(docker_endpoint, registry, act)
    finally:
        for container in squatter:
            container.remove(force=True)
    assert squatter and err.record.outcome == "rolled_back"
    assert "Conflict" in str(err) or "already in use" in str(err)


@docker_only
def test_docker_engine_gone_mid_rollout_keeps_blue(registry, docker_endpoint):
    """The engine connection drops as green is about to start: typed error, blue serves on."""
    proxy = EngineProxy()

    def cut(record):
        if record.timeline[-1].step == "green-starting":
            proxy.stop()

    live_version = _live(docker_endpoint)[1]
    new = registry["v"]["v3"] if live_version != registry["v"]["v3"] else registry["v"]["v2"]
    kept = get_target("docker", docker_endpoint).options_path
    options = kept.read_text()

    def act():
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOCKER_HOST", proxy.url)
            with pytest.raises(SlotStartError, match="Docker engine failed") as err:
                _deploy(registry, new, docker_endpoint, kind="docker", listener=cut)
        return err.value

    try:
        err = _fault(docker_endpoint, registry, act)
    finally:
        proxy.stop()
        assert kept.read_text() == options  # the cut engine's URL was not kept for later runs
    assert err.record.outcome == "rolled_back"
    assert proxy.cut.is_set()
    _idle_stopped("docker", docker_endpoint)


def test_fault_endpoint_port_taken(target_kind, registry):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    spec = EndpointSpec(name=f"taken-{target_kind}", port=port, preview_port=free_port())
    try:
        with pytest.raises(EndpointPortError, match=f"Port {port}"):
            _deploy(registry, registry["v"]["v1"], spec, kind=target_kind)
        target = get_target(target_kind, spec)
        assert not target.router_running()
        assert _pids(target_kind, spec) == []
        with pytest.raises(EndpointDeployError, match="never deployed"):
            describe_deployment(spec.name)
    finally:
        holder.close()
        stop_endpoint(spec.name)


def test_stop_endpoint_stops_everything(target_kind, registry):
    spec = EndpointSpec(name=f"stop-{target_kind}", port=free_port(), preview_port=free_port())
    _deploy(registry, registry["v"]["v1"], spec, kind=target_kind)
    target = get_target(target_kind, spec)
    from mlops_tasks.deploy.targets.local import pid_alive, port_free

    if target_kind == "docker":
        from mlops_tasks.deploy.targets.docker import ENDPOINT_LABEL

        selector = {"label": f"{ENDPOINT_LABEL}={spec.name}"}
        assert len(target.client.containers.list(filters=selector)) == 2  # one slot + the router
        assert len(target.client.networks.list(filters=selector)) == 1
        assert stop_endpoint(spec.name) is True
        assert not target.client.containers.list(all=True, filters=selector)
        assert not target.client.networks.list(filters=selector)
    else:
        pids = _pids(target_kind, spec) + [target._router_pid()]
        assert stop_endpoint(spec.name) is True
        assert not any(pid_alive(p) for p in pids)
    assert port_free("127.0.0.1", spec.port)
    assert stop_endpoint(spec.name) is False


# -- docker only, on their own endpoints (they move the champion alias) ------------------------------


@docker_only
def test_docker_unverified_image_refused_then_pipeline_builds_verifies_deploys(
    target_kind, registry, prefect_harness, monkeypatch
):
    """No verified image: refused. The pipeline builds, verifies, deploys; socket, labels, log."""
    from flows.deployment import DeploymentPipelineParams, deployment_pipeline
    from mlops_tasks.containerize import image_verified
    from mlops_tasks.deploy.targets.docker import ENDPOINT_LABEL
    from mlops_tasks.serving import read_prediction_log
    from mlops_tasks.testing.docker import TEST_LABEL

    monkeypatch.delenv("MLOPS_DOCKER_ALLOW_UNVERIFIED")
    spec = EndpointSpec(name="verify-docker", port=free_port(), preview_port=free_port())
    v1 = registry["v"]["v1"]
    try:
        with pytest.raises(UnverifiedImageError, match="verify_model_image") as err:
            _deploy(registry, v1, spec, kind="docker")
        assert err.value.record.outcome == "failed"
        assert _pids("docker", spec) == []

        record = deployment_pipeline(
            DeploymentPipelineParams(
                model_name=registry["name"],
                version=v1,
                endpoint=spec,
                target="docker",
                rollout=FAST,
                mlflow=registry["config"],
            )
        )
        assert record.outcome == "succeeded" and record.target == "docker"
        target = get_target("docker", spec)
        image = target.client.containers.get(target.slot_status(record.live_color).containers[0]).image
        assert image_verified(image.id, registry["name"], v1, mlflow_config=registry["config"])

        # The admin socket is the deploying user's, mode 600.
        st = target.socket_path.stat()
        assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == os.getuid()
        # Every container and the network carry the endpoint and the run-id labels.
        selector = {"label": [f"{ENDPOINT_LABEL}={spec.name}", f"{TEST_LABEL}={RUN_ID}"]}
        assert len(target.client.containers.list(filters=selector)) == 2
        assert [n.name for n in target.client.networks.list(filters=selector)] == [target.network_name]
        # The servers' prediction log lands in the endpoint's folder, where the drift check reads it.
        with _load(spec, registry) as load:
            load.wait_answers(40)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = read_prediction_log(str(target.folder / "prediction-log"))
            if len(frame) >= 40:
                break
            time.sleep(0.5)
        assert len(frame) >= 40 and set(frame["model_version"].astype(str)) == {str(v1)}
    finally:
        stop_endpoint(spec.name)


@docker_only
def test_docker_two_replicas_per_slot_zero_failed_requests(target_kind, registry):
    v = registry["v"]
    spec = EndpointSpec(name="replicas-docker", port=free_port(), preview_port=free_port(), replicas=2)
    try:
        _deploy(registry, v["v1"], spec, kind="docker")
        with _load(spec, registry) as load:
            load.wait_answers(40)
            _deploy(registry, v["v2"], spec, kind="docker")
            after = time.monotonic()
            load.wait_answers(len(load.result.answers) + 80)
        result = load.result
        target = get_target("docker", spec)
        live = _live(spec)
        assert live[1] == v["v2"]
        assert len(target.slot_status(live[0]).containers) == 2
        assert result.failed == 0, (result.failures[:5], result.router_errors[:5])
        assert result.versions_after(after) == {str(v["v2"])}
        served = {a.served_by for a in result.answers if a.sent >= after}
        assert served == {f"{spec.name}-{live[0]}-1", f"{spec.name}-{live[0]}-2"}
    finally:
        stop_endpoint(spec.name)


def test_docker_options_kept_per_endpoint_environment_overrides_except_block_pins(monkeypatch):
    from mlops_tasks.deploy.targets.docker import DockerTargetOptions

    saved = DockerTargetOptions(base_image="base:kept").pin(router_image="router:from-block").model_dump()
    monkeypatch.setenv("MLOPS_DOCKER_ROUTER_IMAGE", "router:from-env")
    monkeypatch.setenv("MLOPS_DOCKER_BASE_IMAGE", "base:from-env")
    monkeypatch.setenv("MLOPS_DOCKER_LABELS", "a=1, b = 2")
    resolved = DockerTargetOptions.resolve(saved)
    assert resolved.router_image == "router:from-block"  # argument > block > environment
    assert resolved.base_image == "base:from-env"
    assert resolved.labels == {"a": "1", "b": "2"}
    monkeypatch.delenv("MLOPS_DOCKER_BASE_IMAGE")
    assert DockerTargetOptions.resolve(saved).base_image == "base:kept"
    assert DockerTargetOptions.resolve(None).router_image == "router:from-env"


@docker_only
def test_docker_secured_endpoint_keys_tls_and_live_changes(target_kind, registry, tmp_path):
    """TLS, API keys, mutual TLS and a plain-HTTP redirect on the docker target, end to end.

    The router container reads the endpoint's mode-600 files through its read-only mount;
    the rollout's smoke test and probes pass the preview with the tooling key and
    certificate; a second rollout, a key issued and one revoked and a certificate rotated
    under a non-retrying TLS load fail no request; a reload keeps every runtime change;
    the access log (the container's output) names callers, never keys.
    """
    import http.client
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from mlops_tasks.deploy.access import (
        describe_security,
        issue_api_key,
        revoke_api_key,
        rotate_certificate,
    )
    from mlops_tasks.deploy.apikeys import new_key
    from mlops_tasks.deploy.models import EndpointSecurity
    from tests.tls_support import CertAuthority, served_serial, write_keys_file

    ca, clients_ca = CertAuthority(), CertAuthority("mlops test client CA")
    cert, key = ca.issue().write(tmp_path, "server")
    (tmp_path / "clients-ca.pem").write_bytes(clients_ca.pem)
    keys = {"svc-a": new_key(), "svc-b": new_key()}
    keys_file = write_keys_file(tmp_path, keys)
    spec = EndpointSpec(
        name=f"dsec-{os.getpid()}",
        port=free_port(),
        preview_port=free_port(),
        security=EndpointSecurity(
            api_keys=True,
            api_keys_file=str(keys_file),
            rate_limit=100,
            tls_cert_file=str(cert),
            tls_key_file=str(key),
            http_redirect_port=free_port(),
            client_ca_file=str(tmp_path / "clients-ca.pem"),
        ),
    )
    ctx = ca.client_context(tmp_path, clients_ca.issue(cn="svc-cert"))
    body = registry["bodies"][0]

    def call(headers=None, port=None, tls=True, path="/invocations", context=None):
        port = port or spec.port
        conn = (
            http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context or ctx)
            if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        )
        try:
            post = path == "/invocations"
            conn.request(
                "POST" if post else "GET",
                path,
                body=body if post else None,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def bearer(k):
        return {"Authorization": f"Bearer {k}"}

    v1, v2 = registry["v"]["v1"], registry["v"]["v2"]
    try:
        record = _deploy(registry, v1, spec, kind="docker")
        assert record.outcome == "succeeded", record.error
        status, hdrs, raw = call(bearer(keys["svc-a"]))
        assert status == 200 and hdrs["x-model-version"] == str(v1), (status, raw[:200])
        status, hdrs, raw = call()
        assert status == 401 and hdrs["www-authenticate"] == 'Bearer realm="mlops"'
        assert call(bearer(new_key()))[0] == 401
        assert call(port=spec.preview)[0] == 401  # the preview is protected the same way
        with pytest.raises((http.client.HTTPException, OSError)):
            call(bearer(keys["svc-a"]), tls=False)
        plain = spec.security.http_redirect_port
        status, _, raw = call(bearer(keys["svc-b"]), port=plain, tls=False)
        assert status == 403 and json.loads(raw)["error_code"] == "KEY_OVER_PLAIN_HTTP"
        status, hdrs, _ = call(port=plain, tls=False, path="/version")
        assert status == 308 and hdrs["location"] == f"https://127.0.0.1:{spec.port}/version"
        bare = ca.client_context(tmp_path)  # no client certificate: refused at the handshake
        with pytest.raises((OSError, http.client.HTTPException)):
            call(bearer(keys["svc-a"]), context=bare)
        before = served_serial("127.0.0.1", spec.port, ctx)

        fresh = ca.issue()
        new_cert, new_key_file = fresh.write(tmp_path, "rotated")
        load = LoadClient(
            "127.0.0.1",
            spec.port,
            registry["bodies"],
            connections=4,
            rate=8,
            headers=bearer(keys["svc-a"]),
            ssl_context=ctx,
        )
        with load:
            load.wait_answers(20)
            later = issue_api_key(spec.name, "svc-later")
            assert call(bearer(later))[0] == 200
            revoke_api_key(spec.name, "svc-b")
            assert call(bearer(keys["svc-b"]))[0] == 401
            rotate_certificate(spec.name, cert_file=str(new_cert), key_file=str(new_key_file))
            assert served_serial("127.0.0.1", spec.port, ctx) == fresh.serial != before
            record = _deploy(registry, v2, spec, kind="docker")
            assert record.outcome == "succeeded", record.error
            load.wait_answers(len(load.result.answers) + 20)
        assert load.result.failed == 0, load.result.failures[:3]
        assert {a.status for a in load.result.answers} == {200}
        assert {a.version for a in load.result.answers} >= {str(v2)}

        target = get_target("docker", spec)
        target.reload_router()  # the files hold every runtime change
        assert served_serial("127.0.0.1", spec.port, ctx) == fresh.serial
        # A bare reload loses the live servers' container addresses (HAProxy restores addresses
        # from its state file for hostnames only, docs/deploy.md): the watchdog re-points them
        # within a round and the health check brings them up; keys and certificate stay.
        deadline = time.monotonic() + 30
        while call(bearer(later))[0] in (502, 503) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert call(bearer(later))[0] == 200 and call(bearer(keys["svc-b"]))[0] == 401
        view = describe_security(spec.name)
        assert view.tls and view.api_keys and view.client_certificates
        served = x509.load_pem_x509_certificate(fresh.cert_pem)
        assert view.certificate_sha256 == served.fingerprint(hashes.SHA256()).hex()

        router = target._router_container()
        mounts = {m["Destination"]: m for m in router.attrs["Mounts"]}
        assert mounts[str(target.folder)]["RW"] is False  # the router reads the secrets, never writes
        environment = " ".join(router.attrs["Config"]["Env"] or [])
        logs = router.logs().decode(errors="replace")
        assert "caller=svc-a" in logs and "caller=svc-later" in logs
        assert "exposure=key-over-plain-http" in logs
        for secret in (*keys.values(), later):
            assert secret not in logs and secret not in environment
    finally:
        stop_endpoint(spec.name)
