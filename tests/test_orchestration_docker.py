"""The Docker work pool: a real Prefect server, a real Docker worker, flows in the offline-built image.

The flow image is built from this project (wheelhouse on the host, debootstrap base
image, no registry) and reused while its inputs are unchanged: the first run of this
file builds it (a few minutes), later runs find it. The worker process is killed by PID
(with its process group); flow-run containers carry this run's test label and are removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.definitions import by_name
from tests.orchestration_support import PROJECT, prefect_server, stop_process_group, wait_final
from tests.orchestration_support import client as _client

pytestmark = pytest.mark.timeout(1200)

RUN_ID = f"orch-docker-{uuid.uuid4().hex[:6]}"
MODEL = "churn-docker"
# Shared by test sessions so an unchanged requirement set downloads nothing again.
WHEEL_CACHE = Path(tempfile.gettempdir()) / "mlops-tasks-wheelhouse"


@pytest.fixture(scope="module")
def docker():
    from mlops_tasks.testing.docker import TEST_LABEL, docker_client, remove_labelled

    client = docker_client()
    yield client
    remove_labelled(client, TEST_LABEL, RUN_ID)


@pytest.fixture(scope="module")
def flow_image(docker):
    from deployments.docker_pool import build_flow_image
    from mlops_tasks.testing.docker import ensure_base_image

    return build_flow_image(ensure_base_image(docker), client=docker, wheel_cache_dir=WHEEL_CACHE)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


def test_flow_image_is_reused_while_its_inputs_are_unchanged(docker, flow_image) -> None:
    from deployments.docker_pool import IMAGE_LABEL, REPOSITORY, build_flow_image
    from mlops_tasks.testing.docker import ensure_base_image

    again = build_flow_image(ensure_base_image(docker), client=docker, wheel_cache_dir=WHEEL_CACHE)
    kept = [tag for image in docker.images.list(name=REPOSITORY) for tag in image.tags]
    assert flow_image.tag in kept and len(kept) <= 3, kept  # older flow images were pruned
    assert again.reused and again.tag == flow_image.tag
    image = docker.images.get(flow_image.tag)
    assert image.labels[IMAGE_LABEL] == flow_image.content_hash[:12]
    assert flow_image.tag.endswith(":" + flow_image.content_hash[:12])
    check = "import flows.training, prefect, mlflow; print(prefect.__version__)"
    output = docker.containers.run(
        flow_image.tag,
        ["python", "-c", check],
        remove=True,
        network_disabled=True,
        labels={"org.mlops-tasks.test": RUN_ID},
    )
    import prefect

    assert output.decode().strip() == prefect.__version__


def test_unknown_docker_pool_is_a_clear_error(prefect_api: str, flow_image) -> None:
    from deployments.docker_pool import deploy_to_docker_pool
    from mlops_tasks.errors import WorkPoolNotFoundError

    with pytest.raises(WorkPoolNotFoundError, match="prefect work-pool create no-such-pool --type docker"):
        deploy_to_docker_pool(flow_image.tag, "no-such-pool", only=["training-pipeline"])


def test_docker_worker_runs_the_training_deployment_in_the_image(
    prefect_api: str, docker, flow_image, tmp_path: Path
) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect_docker.worker import DockerWorker

    from deployments.docker_pool import POOL, deploy_to_docker_pool

    state = tmp_path / "state"
    state.mkdir()
    with _client() as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=POOL, type="docker", base_job_template=DockerWorker.get_default_base_job_template()
            ),
            overwrite=True,
        )
    spec = by_name("training-pipeline")
    assert deploy_to_docker_pool(
        flow_image.tag,
        POOL,
        only=[spec.name],
        state=state,
        extra_job_variables={"labels": {"org.mlops-tasks.test": RUN_ID}},
    ) == [spec.full_name]
    with _client() as client:
        deployment = client.read_deployment_by_name(spec.full_name)
        assert deployment.work_pool_name == POOL
        assert deployment.job_variables["image"] == flow_image.tag
        assert deployment.job_variables["image_pull_policy"] == "Never"
        params = spec.parameters()["params"]
        params.update(model_name=MODEL, demo={"rows": 2000, "seed": 3, "drift": 0.0})
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={"params": params})

    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PYTHONPATH": str(PROJECT),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "docker"],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        run = wait_final(flow_run.id, 400)
    finally:
        stop_process_group(worker)
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}\n{log.read_text()[-3000:]}"
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert {f"evaluation-{MODEL}", f"gate-{MODEL}"} <= {a.key for a in artifacts if a.key}
    # The run used the host's state folder (mounted at the same path): its MLflow store is there.
    assert (state / "mlflow.db").exists()
