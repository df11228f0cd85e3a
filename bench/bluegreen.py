"""Blue-green benchmark: failed requests, switch time and rollback time under keep-alive load.

Runs on loopback only, in a temporary state folder with its own MLflow store:

1. registers two versions of a churn model and deploys version 1 (local target);
2. starts the test's load client: 8 keep-alive connections POSTing ``/invocations``,
   no retries, each answer attributed to a slot by ``X-Served-By``;
3. deploys version 2 all-at-once with blue kept warm, then rolls back by hand;
4. prints the figures. ``switch_ms`` runs from green healthy to the first answer after
   which the client sees only green; ``rollback_ms`` from the rollback call to the first
   answer after which the client sees only blue again.

Then the same on the docker target when an engine answers: slots are model-image
containers, the router an HAProxy container. Without a registry the router and base
images are the locally built ones of ``mlops_tasks.testing.docker`` (debootstrap); the
bench's images, containers and network carry ``org.mlops-tasks.test=bench-<id>`` and are
removed at the end (base images are kept). The images are not verified first
(``MLOPS_DOCKER_ALLOW_UNVERIFIED=1``): the bench measures the switch, not the gate. The
last line is the local target's::

    bluegreen: failed_requests=<n> total_requests=<n> switch_ms=<n> rollback_ms=<n>

Run: ``.venv/bin/python bench/bluegreen.py [--rate 60] [--settle 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _only_after(answers, prefix: str, since: float, until: float = float("inf")) -> float | None:
    """Done-time of the first answer after which (until ``until``) every answer came from ``prefix``."""
    relevant = [a for a in answers if since <= a.sent < until and a.status == 200]
    others = [a.sent for a in relevant if not a.served_by.startswith(prefix)]
    last_other = max(others, default=since)
    tail = [a for a in relevant if a.sent > last_other]
    return min((a.done for a in tail), default=None)


def run(kind: str, rate: float, settle: float) -> dict[str, float]:
    from mlops_tasks.demo import TARGET, make_churn_data
    from mlops_tasks.deploy import (
        EndpointSpec,
        RolloutSpec,
        deploy_blue_green,
        rollback_deployment,
        stop_endpoint,
    )
    from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.conftest import free_port
    from tests.deploy_support import LoadClient, body_for, features, make_pipeline, register_version
    from tests.mlflow_support import fluent_mlflow

    root = Path(tempfile.mkdtemp(prefix="bench-bluegreen-"))
    os.environ["MLOPS_STATE_DIR"] = str(root / "state")
    cfg = MlflowConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        experiment_name="bench",
    )
    frame = make_churn_data(2000, seed=5)
    x, y = features(frame), frame[TARGET]
    resolved = resolve_mlflow_config(cfg)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v1 = register_version(client, exp, "bench-churn", make_pipeline(1.0).fit(x, y), x)
        v2 = register_version(client, exp, "bench-churn", make_pipeline(0.1).fit(x, y), x)
    endpoint = EndpointSpec(name=f"bench-{kind}", port=free_port(), preview_port=free_port())
    fast = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0)
    smoke = x.tail(50)
    t0 = time.monotonic()
    deploy_blue_green(
        "bench-churn", v1, endpoint=endpoint, rollout=fast, target=kind, smoke_rows=smoke, mlflow_config=cfg
    )
    first_deploy_s = time.monotonic() - t0
    bodies = [body_for(x.iloc[[i]]) for i in range(300)]
    marks: dict[str, float] = {}
    try:
        with LoadClient("127.0.0.1", endpoint.port, bodies, connections=8, rate=rate) as load:
            load.wait_answers(200)
            blue_prefix = f"{endpoint.name}-blue-"
            green_prefix = f"{endpoint.name}-green-"

            def listen(record) -> None:
                step = record.timeline[-1].step
                marks.setdefault(step, time.monotonic())

            warm = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=120)
            deployer = threading.Thread(
                target=lambda: deploy_blue_green(
                    "bench-churn",
                    v2,
                    endpoint=endpoint,
                    rollout=warm,
                    target=kind,
                    smoke_rows=smoke,
                    mlflow_config=cfg,
                    listener=listen,
                )
            )
            deployer.start()
            while "started" not in marks:
                time.sleep(0.005)
            while "succeeded" not in marks:
                time.sleep(0.02)
            time.sleep(settle)
            rollback_at = time.monotonic()
            rollback_deployment(endpoint.name, mlflow_config=cfg, lock_timeout_s=30)
            time.sleep(settle)
            load.wait_answers(1000)
        deployer.join(130)
        result = load.result
    finally:
        stop_endpoint(endpoint.name)
        shutil.rmtree(root, ignore_errors=True)
    switched = _only_after(result.answers, green_prefix, marks["green-healthy"], rollback_at)
    back = _only_after(result.answers, blue_prefix, rollback_at)
    return {
        "failed_requests": result.failed,
        "total_requests": result.total,
        "slot_errors": len(result.slot_errors),
        "switch_ms": (switched - marks["green-healthy"]) * 1000 if switched else -1,
        "rollback_ms": (back - rollback_at) * 1000 if back else -1,
        "first_deploy_s": first_deploy_s,
        "deploy_s": marks["succeeded"] - marks["started"],
    }


def _docker_setup() -> tuple[object, str] | str:
    """Engine client and run label for the docker part, or why it is skipped."""
    import uuid

    from mlops_tasks.testing.docker import TEST_LABEL, docker_client, ensure_base_image

    try:
        client = docker_client()
    except AssertionError as exc:
        return f"no engine ({exc})"
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("MLOPS_DOCKER_ROUTER_IMAGE", ensure_base_image(client, "bookworm-haproxy"))
    os.environ.setdefault("MLOPS_DOCKER_BASE_IMAGE", ensure_base_image(client))
    os.environ["MLOPS_DOCKER_LABELS"] = f"{TEST_LABEL}={run_id}"
    os.environ["MLOPS_DOCKER_ALLOW_UNVERIFIED"] = "1"
    return client, run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s per connection at most")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load after each switch")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlops_tasks.deploy.targets import target_kinds

    kinds = target_kinds()

    results = {}
    for kind in ("local", "docker"):
        if kind not in kinds:
            print(f"{kind}: skipped (no {kind} target in this version)")
            continue
        cleanup = None
        if kind == "docker":
            setup = _docker_setup()
            if isinstance(setup, str):
                print(f"docker: skipped ({setup})")
                continue
            cleanup = setup
        try:
            started = time.monotonic()
            results[kind] = figures = run(kind, args.rate, args.settle)
            figures["run_s"] = time.monotonic() - started
        finally:
            if cleanup is not None:
                from mlops_tasks.testing.docker import TEST_LABEL, remove_labelled

                remove_labelled(cleanup[0], TEST_LABEL, cleanup[1])
        print(
            f"{kind}: "
            + " ".join(f"{k}={v:.1f}" if k.endswith("_s") else f"{k}={v:.0f}" for k, v in figures.items())
        )
    local = results["local"]
    print(
        f"bluegreen: failed_requests={local['failed_requests']:.0f} "
        f"total_requests={local['total_requests']:.0f} switch_ms={local['switch_ms']:.0f} "
        f"rollback_ms={local['rollback_ms']:.0f}"
    )
    return 0 if all(r["failed_requests"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
