"""Containerize against a real Docker engine, a real MLflow store and a loopback registry.

Base images come from debootstrap (mlops_tasks.testing.docker) and are kept between
runs; every other image, container and network made here carries the label
``org.mlops-tasks.test=<run id>`` and is removed at the end of the module. Without a
Docker engine these tests fail (never skip) and say how to start one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import pandas as pd
import pytest
from conftest import client_for, free_port
from test_training import SPEC, info_for

from mlops_tasks.containerize import (
    IMAGE_UID,
    DockerEngine,
    ImageRef,
    ImageSpec,
    RegistryCredentials,
    build_model_image,
    ecr_credentials,
    image_verified,
    prepare_build_context,
    push_model_image,
    resolve_requirements,
    verify_model_image,
)
from mlops_tasks.data import split_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import (
    BaseImageNotFoundError,
    ConfigurationError,
    ContainerRegistryAuthError,
    ContainerRegistryUnreachableError,
    DockerUnavailableError,
    ImageVerificationError,
    ModelNotFoundError,
    WheelhouseError,
)
from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
from mlops_tasks.registry import register_model
from mlops_tasks.testing.docker import (
    TEST_LABEL,
    docker_client,
    ensure_base_image,
    local_registry,
    remove_labelled,
)
from mlops_tasks.training import train_model

RUN_ID = f"containerize-{uuid.uuid4().hex[:8]}"
PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def docker():
    client = docker_client()
    yield client
    remove_labelled(client, TEST_LABEL, RUN_ID)
    leftovers = client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"})
    assert not leftovers


@pytest.fixture(scope="module")
def spec(docker) -> ImageSpec:
    return ImageSpec(base_image=ensure_base_image(docker), labels={TEST_LABEL: RUN_ID})


def register_version(mlflow_config, name: str, seed: int):
    frame = make_churn_data(600, seed=seed)
    train, holdout = split_dataset(frame, target="churned")
    trained = train_model(
        train, SPEC, data=info_for(frame, uri=f"file:///data/churn-{seed}.csv"), mlflow_config=mlflow_config
    )
    gate = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
    report = evaluate_model(
        trained, holdout, gate, compare_to_champion=False, fail_on_error=False, mlflow_config=mlflow_config
    )
    version = register_model(trained, report, name, mlflow_config=mlflow_config)
    return version, holdout, trained


@pytest.fixture(scope="module")
def model(mlflow_config):
    name = f"image-{uuid.uuid4().hex[:8]}"
    version, holdout, trained = register_version(mlflow_config, name, seed=21)
    return name, version.version, holdout, trained


@pytest.fixture(scope="module")
def built(model, spec, mlflow_config, docker):
    name, version, _, _ = model
    lines: list[str] = []
    ref = build_model_image(name, version, spec=spec, mlflow_config=mlflow_config, log=lines.append)
    assert any(line.startswith("Step ") for line in lines), "the build log is streamed to the callback"
    return ref


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with local_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    with local_registry(tmp_path_factory.mktemp("auth-registry"), username="ci", password=PASSWORD) as reg:
        yield reg


def run_in_image(docker, image_id: str, code: str) -> tuple[int, str]:
    container = docker.containers.run(
        image_id, ["python", "-c", code], detach=True, labels={TEST_LABEL: RUN_ID}
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


# --- the core without Prefect ---------------------------------------------------------

NO_PREFECT = """
import importlib.abc, sys

class RefusePrefect(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith(("prefect.", "prefect_")):
            raise ImportError("blocked: " + name)

sys.meta_path.insert(0, RefusePrefect())
import mlops_tasks.containerize as c
for name in c.__all__:
    getattr(c, name)
text = c.render_dockerfile(c.ModelSource(name="m", version=1), c.ImageSpec(), {})
assert "pip install --no-index" in text, text
assert not [m for m in sys.modules if m.split(".")[0] == "prefect" or m.startswith("prefect_")]
"""


def test_core_imports_and_reads_its_templates_without_prefect():
    done = subprocess.run([sys.executable, "-c", NO_PREFECT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_saved_block_name_is_loaded_by_the_task_not_by_the_core():
    ref = ImageRef(
        repository="r/m", tags=["v1"], image_id="sha256:0", size_bytes=0, model_name="m", model_version=1
    )
    with pytest.raises(ConfigurationError, match="saved Prefect block"):
        push_model_image(ref, f"127.0.0.1:{free_port()}", credentials="docker-registry-credentials/prod")


# --- the build context ----------------------------------------------------------------


def test_requirements_drop_mlflow_and_keep_model_pins():
    reqs = resolve_requirements(["mlflow==3.1.0", "scikit-learn==1.5.2", "# comment", "", "numpy>=2"])
    assert "scikit-learn==1.5.2" in reqs and "numpy>=2" in reqs
    assert not any(r.lower().startswith("mlflow") for r in reqs)
    names = {r.split("=")[0].split(">")[0] for r in reqs}
    assert {"uvicorn", "orjson", "skops", "pyarrow", "boto3"} <= names
    assert not names & {"prefect", "great-expectations", "evidently"}
    assert "boto3" not in {
        r.split("=")[0] for r in resolve_requirements([], ImageSpec(s3_prediction_log=False))
    }


def test_build_context_is_readable_and_complete(built):
    ctx = built.build_context
    dockerfile = (ctx / "Dockerfile").read_text()
    assert "pip install --no-index --find-links /build/wheels" in dockerfile
    assert dockerfile.index("COPY --from=deps /opt/venv") < dockerfile.index("COPY model/")
    assert f"USER {IMAGE_UID}:{IMAGE_UID}" in dockerfile and "HEALTHCHECK" in dockerfile
    assert (ctx / ".dockerignore").exists()
    meta = json.loads((ctx / "model" / "serving-model.json").read_text())
    assert meta == {
        "name": built.model_name,
        "version": str(built.model_version),
        "run_id": built.labels["org.mlops-tasks.model.run-id"],
    }
    wheels = {p.name.split("-")[0].lower() for p in (ctx / "wheels").glob("*.whl")}
    assert {"scikit_learn", "numpy", "uvicorn", "skops"} <= wheels
    assert not wheels & {"mlflow", "mlflow_skinny", "prefect", "great_expectations", "evidently"}


# --- the built image ------------------------------------------------------------------


def test_image_labels_user_and_healthcheck(built, model, docker):
    name, version, _, trained = model
    image = docker.images.get(built.image_id)
    labels = image.labels
    assert labels["org.mlops-tasks.managed"] == "true"
    assert labels["org.mlops-tasks.model.name"] == name
    assert labels["org.mlops-tasks.model.version"] == str(version)
    assert labels["org.mlops-tasks.model.run-id"] == trained.run_id
    assert labels["org.mlops-tasks.model.data-fingerprint"] == trained.data_fingerprint
    assert labels["org.mlops-tasks.model.gate-passed"] == "true"
    assert labels["org.opencontainers.image.version"] == str(version)
    assert labels["org.opencontainers.image.title"]
    config = image.attrs["Config"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert "/health" in " ".join(config["Healthcheck"]["Test"])
    assert {f"{built.repository}:v{version}", f"{built.repository}:{built.tags[1]}"} <= set(image.tags)
    status, out = run_in_image(docker, built.image_id, "import os; print(os.getuid())")
    assert status == 0 and out.strip() == str(IMAGE_UID)


def test_image_holds_the_server_but_not_the_pipeline_stack(built, docker):
    code = (
        "import importlib\n"
        "import mlops_tasks.serving.app, sklearn, skops, uvicorn, pyarrow\n"
        "for mod in ('prefect', 'great_expectations', 'evidently', 'mlflow'):\n"
        "    try:\n"
        "        importlib.import_module(mod)\n"
        "        print('IMPORTED', mod)\n"
        "    except ImportError:\n"
        "        print('missing', mod)\n"
    )
    status, out = run_in_image(docker, built.image_id, code)
    assert status == 0, out
    assert out.split() == [
        "missing",
        "prefect",
        "missing",
        "great_expectations",
        "missing",
        "evidently",
        "missing",
        "mlflow",
    ]


def verify_containers(docker, model_name: str) -> list:
    """This model's verification containers (another test process may verify its own meanwhile)."""
    selector = ["org.mlops-tasks.verify", f"org.mlops-tasks.model.name={model_name}"]
    return docker.containers.list(all=True, filters={"label": selector})


def test_verify_runs_the_image_and_records_the_verdict(built, model, mlflow_config, docker):
    name, version, holdout, _ = model
    assert not image_verified(built, name, version, mlflow_config=mlflow_config)
    report = verify_model_image(built, holdout, target="churned", mlflow_config=mlflow_config)
    assert report.passed and report.mismatches == 0 and report.rows == len(holdout)
    assert report.health_seconds is not None and report.recorded
    assert report.image is not None and report.image.verified and report.image.image_id == built.image_id
    assert image_verified(built, name, version, mlflow_config=mlflow_config)
    tags = client_for(mlflow_config).get_model_version(name, str(version)).tags
    assert tags["mlops.image.verified"] == built.image_id
    assert not verify_containers(docker, name)


def test_verify_fails_when_not_healthy_in_time_and_cleans_up(built, model, mlflow_config, docker):
    name, version, holdout, _ = model
    with pytest.raises(ImageVerificationError, match="not healthy") as info:
        verify_model_image(
            built,
            holdout,
            target="churned",
            load_timeout_s=0.05,
            tries=1,
            record=False,
            mlflow_config=mlflow_config,
        )
    assert info.value.report is not None and not info.value.report.passed
    assert not verify_containers(docker, name)


def test_prediction_log_goes_to_a_mounted_host_folder(built, model, docker, tmp_path):
    _, _, holdout, _ = model
    log_dir = tmp_path / "plog"
    log_dir.mkdir()
    os.chown(log_dir, IMAGE_UID, IMAGE_UID)
    port = free_port()
    container = docker.containers.run(
        built.image_id,
        detach=True,
        labels={TEST_LABEL: RUN_ID},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(log_dir): {"bind": "/var/lib/mlops/prediction-log", "mode": "rw"}},
    )
    try:
        wait_healthy(port, container)
        rows = holdout.drop(columns=["churned"]).head(5)
        post_rows(port, rows)
        container.stop(timeout=30)  # graceful stop flushes the log
    finally:
        logs = container.logs().decode()
        container.remove(force=True)
    files = list(log_dir.rglob("*.parquet"))
    assert files, f"no prediction log written; container log:\n{logs[-2000:]}"
    assert all(p.stat().st_uid == IMAGE_UID for p in files)
    logged = pd.concat([pd.read_parquet(p) for p in files])
    assert len(logged) == len(rows) and logged["model_name"].eq(model[0]).all()


def wait_healthy(port: int, container) -> None:
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"not healthy: {container.logs().decode()[-2000:]}")


def post_rows(port: int, rows: pd.DataFrame) -> None:
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert urllib.request.urlopen(request, timeout=30).status == 200


def test_prediction_log_to_s3_with_credentials_passed_at_run_time(built, model, docker, s3_bucket):
    import boto3

    config, bucket = s3_bucket
    _, _, holdout, _ = model
    port = free_port()
    # host network: the container reaches the loopback S3 server; credentials only in the run's env
    container = docker.containers.run(
        built.image_id,
        detach=True,
        labels={TEST_LABEL: RUN_ID},
        network_mode="host",
        environment={
            "MLOPS_SERVE_HOST": "127.0.0.1",
            "MLOPS_SERVE_PORT": str(port),
            "MLOPS_PREDICTION_LOG": f"s3://{bucket}/plog",
            "MLOPS_S3_ENDPOINT_URL": config.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    try:
        wait_healthy(port, container)
        post_rows(port, holdout.drop(columns=["churned"]).head(3))
        container.stop(timeout=30)
    finally:
        logs = container.logs().decode()
        container.remove(force=True)
    listed = boto3.client("s3", **config.client_kwargs()).list_objects_v2(Bucket=bucket, Prefix="plog/")
    assert listed.get("KeyCount", 0) >= 1, f"nothing logged to S3; container log:\n{logs[-2000:]}"
    assert "testing" not in json.dumps(docker.images.get(built.image_id).attrs)


def test_second_build_of_the_same_version_reuses_the_image(built, model, spec, mlflow_config):
    name, version, _, _ = model
    lines: list[str] = []
    again = build_model_image(name, version, spec=spec, mlflow_config=mlflow_config, log=lines.append)
    assert again.reused and again.image_id == built.image_id
    assert not any(line.startswith("Step ") for line in lines), "nothing was built"


# --- push and pull ----------------------------------------------------------------------


def test_push_to_registry_and_pull_back_by_digest(built, registry, docker):
    pushed = push_model_image(built, registry.host)
    assert pushed.repo_digest and pushed.repo_digest.startswith(f"{registry.host}/{built.repository}@sha256:")
    assert pushed.pushed == [f"{registry.host}/{built.repository}:{tag}" for tag in built.tags]
    for ref in pushed.pushed:
        docker.images.remove(ref)
    pulled = docker.images.pull(pushed.repo_digest)
    assert pulled.id == built.image_id
    assert pulled.labels["org.mlops-tasks.model.name"] == built.model_name
    assert pulled.attrs["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_UID}"


def test_registry_refusing_credentials(built, auth_registry, docker):
    with pytest.raises(ContainerRegistryAuthError, match="refused"):
        push_model_image(
            built, auth_registry.host, credentials=RegistryCredentials(username="ci", password="wrong")
        )
    with pytest.raises(ContainerRegistryAuthError):
        push_model_image(built, auth_registry.host)
    assert not [t for t in docker.images.get(built.image_id).tags if t.startswith(auth_registry.host)]


def test_push_with_credentials_from_a_block_leaves_no_secret_in_the_image(built, auth_registry, docker):
    from prefect.blocks.core import Block
    from pydantic import SecretStr

    class TestRegistryCredentials(Block):
        username: str
        password: SecretStr

    block = TestRegistryCredentials(username="ci", password=SecretStr(PASSWORD))
    pushed = push_model_image(built, f"{auth_registry.host}/team", credentials=block)
    assert pushed.repo_digest and pushed.repo_digest.startswith(f"{auth_registry.host}/team/")
    image = docker.images.get(pushed.repo_digest)
    history = json.dumps(image.history()) + json.dumps(image.attrs)
    assert PASSWORD not in history
    found = False
    for chunk in image.save(named=False):  # every byte of every layer
        if PASSWORD.encode() in chunk:
            found = True
    assert not found
    for ref in pushed.pushed:
        docker.images.remove(ref)


def test_prefect_task_loads_saved_registry_credentials_by_name(built, auth_registry, prefect_harness, docker):
    from prefect import flow
    from prefect.blocks.core import Block
    from pydantic import SecretStr

    from mlops_tasks import tasks

    class SavedRegistryCredentials(Block):
        username: str
        password: SecretStr

    name = f"ci-{uuid.uuid4().hex[:6]}"
    SavedRegistryCredentials(username="ci", password=SecretStr(PASSWORD)).save(name)

    @flow
    def push_by_name() -> ImageRef:
        return tasks.push_model_image(
            built, auth_registry.host, credentials=f"{SavedRegistryCredentials.get_block_type_slug()}/{name}"
        )

    pushed = push_by_name()
    assert pushed.repo_digest and pushed.repo_digest.startswith(f"{auth_registry.host}/")
    for ref in pushed.pushed:
        docker.images.remove(ref)


def test_registry_unreachable_or_unknown(built):
    with pytest.raises(ContainerRegistryUnreachableError, match="does not answer"):
        push_model_image(built, f"127.0.0.1:{free_port()}")
    with pytest.raises(ContainerRegistryUnreachableError, match="unknown"):
        push_model_image(built, "registry.invalid")


def test_ecr_login_token_from_boto3(s3_server):
    creds = ecr_credentials("123456789012.dkr.ecr.us-east-1.amazonaws.com", endpoint_url=s3_server)
    assert creds.username == "AWS"
    assert creds.password.get_secret_value() == "123456789012-auth-token"  # moto's token for the account
    assert "auth-token" not in repr(creds)


# --- bad input --------------------------------------------------------------------------


def test_model_version_that_does_not_exist(model, spec, mlflow_config):
    name = model[0]
    with pytest.raises(ModelNotFoundError, match="no version 99"):
        build_model_image(name, 99, spec=spec, mlflow_config=mlflow_config)


def test_requirement_without_wheels_is_named(model, spec, mlflow_config, tmp_path):
    name, version, _, _ = model
    bad = spec.model_copy(update={"extra_requirements": ["scikit-learn==0.20.0"]})
    with pytest.raises(WheelhouseError, match="scikit-learn==0.20.0") as info:
        prepare_build_context(
            name, version, spec=bad, mlflow_config=mlflow_config, context_dir=tmp_path / "c"
        )
    assert info.value.package == "scikit-learn==0.20.0"


def test_engine_not_reachable(model, spec, mlflow_config, tmp_path):
    engine = DockerEngine(base_url=f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DockerUnavailableError, match="ensure-system.sh"):
        build_model_image(model[0], model[1], spec=spec, engine=engine, mlflow_config=mlflow_config)


def test_base_image_missing(model, spec, mlflow_config):
    missing = spec.model_copy(update={"base_image": f"mlops-tasks-test/missing-base:{uuid.uuid4().hex[:6]}"})
    with pytest.raises(BaseImageNotFoundError, match="missing-base") as info:
        build_model_image(model[0], model[1], spec=missing, mlflow_config=mlflow_config)
    assert info.value.step.startswith("FROM ")


def test_failed_step_is_reported_with_its_log(model, spec, mlflow_config, docker):
    # A base without python3: the venv step fails inside the build.
    busybox = f"mlops-tasks-test/no-python:{RUN_ID}"
    tar = subprocess.run(
        ["tar", "-C", "/", "-cf", "-", "--files-from", "/dev/null"], capture_output=True, check=True
    ).stdout
    docker.api.import_image_from_data(
        tar,
        repository=busybox.split(":")[0],
        tag=busybox.split(":")[1],
        changes=[f"LABEL {TEST_LABEL}={RUN_ID}"],
    )
    broken = spec.model_copy(update={"base_image": busybox})
    from mlops_tasks.errors import ImageBuildError

    with pytest.raises(ImageBuildError) as info:
        build_model_image(model[0], model[1], spec=broken, mlflow_config=mlflow_config)
    assert "python3 -m venv" in (info.value.step or "")
    assert info.value.log_tail


# --- a new version with the same dependencies -----------------------------------------


def test_new_version_reuses_dependency_layers_and_prunes_old_images(
    built, model, spec, mlflow_config, docker
):
    import docker as docker_sdk

    name = model[0]
    old_layers = docker.images.get(built.image_id).attrs["RootFS"]["Layers"]
    second, _, _ = register_version(mlflow_config, name, seed=22)
    newer = build_model_image(
        name, second.version, spec=spec.model_copy(update={"keep_images": 1}), mlflow_config=mlflow_config
    )
    assert not newer.reused and newer.image_id != built.image_id
    assert newer.labels["org.mlops-tasks.model.version"] == str(second.version)
    new_layers = docker.images.get(newer.image_id).attrs["RootFS"]["Layers"]
    # base, user, dependencies and server layers are shared; only the model layer differs
    assert new_layers[:-1] == old_layers[:-1] and new_layers[-1] != old_layers[-1]
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        docker.images.get(built.image_id)  # pruned: keep_images=1


def test_prefect_tasks(model, spec, mlflow_config, prefect_harness, registry):
    from prefect import flow

    from mlops_tasks import tasks

    name = model[0]

    @flow
    def containerize(version: int) -> tuple:
        ref = tasks.build_model_image(name, version, spec=spec, mlflow_config=mlflow_config)
        pushed = tasks.push_model_image(ref, registry.host)
        return ref, pushed

    ref, pushed = containerize(2)
    assert ref.reused and pushed.repo_digest
