"""Blocks: the standard block suite, save/load round trips, precedence, flows using blocks by name."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from importlib.metadata import entry_points
from inspect import signature
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import s3_auth_enforced
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from flows.deployment import DeploymentPipelineParams, resolve_target
from flows.monitoring import DriftCheckParams, drift_check
from mlops_tasks.blocks import (
    DeployTarget,
    MlflowServer,
    resolve_config_blocks,
    resolve_mlflow_block,
    resolve_s3_block,
)
from mlops_tasks.data import DatasetSpec, load_dataset, write_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.errors import BlockNotFoundError, ConfigurationError, StorageError
from mlops_tasks.mlflow_auth import authorization_for
from mlops_tasks.monitoring import DriftSettings
from mlops_tasks.settings import MlflowConfig, S3Config, resolve_mlflow_config
from mlops_tasks.tracking import get_client


class _Suite(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block) -> None:
        # Prefect's version downloads the logo, and these machines have no internet. The logos
        # are GitHub avatars, which GitHub serves as square PNGs of the requested size: check
        # the URL asks for one inside the suite's bounds (45 < width < 1000).
        url = urlsplit(str(block._logo_url))
        assert (url.scheme, url.netloc) == ("https", "github.com") and url.path.endswith(".png")
        assert 45 < int(parse_qs(url.query)["size"][0]) < 1000


class TestMlflowServerStandard(_Suite):
    @pytest.fixture
    def block(self):
        return MlflowServer


class TestDeployTargetStandard(_Suite):
    @pytest.fixture
    def block(self):
        return DeployTarget


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_entry_point_names_the_blocks_module():
    eps = {ep.name: ep.value for ep in entry_points(group="prefect.collections")}
    assert eps.get("mlops_tasks") == "mlops_tasks.blocks"
    from prefect.blocks.core import Block
    from prefect.plugins import load_prefect_collections

    assert "mlops_tasks" in load_prefect_collections()
    assert Block.get_block_class_from_key("mlflow-server") is MlflowServer
    assert Block.get_block_class_from_key("deploy-target") is DeployTarget


def test_server_lists_the_block_types_and_cli_registers_them(prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    # `prefect block register -m mlops_tasks.blocks`, as docs/operations.md says
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "mlops_tasks.blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully registered 2 blocks" in done.stdout
    with get_client(sync_client=True) as client:
        slugs = {client.read_block_type_by_slug(s).slug for s in ("mlflow-server", "deploy-target")}
        assert slugs == {"mlflow-server", "deploy-target"}
        assert client.read_block_type_by_slug("aws-credentials").slug == "aws-credentials"


def test_mlflow_server_round_trip_keeps_the_secret(prefect_harness):
    name = unique("mlflow")
    MlflowServer(
        tracking_uri="http://127.0.0.1:5999",
        experiment_name="exp",
        token=SecretStr("t0ken"),
        username="ann",
        password=SecretStr("pw"),
    ).save(name)
    loaded = MlflowServer.load(name)
    assert loaded.token.get_secret_value() == "t0ken" and loaded.password.get_secret_value() == "pw"
    from prefect.blocks.core import Block

    generic = Block.load(f"mlflow-server/{name}")  # by slug: the class comes from the registry
    assert isinstance(generic, MlflowServer) and generic.tracking_uri == "http://127.0.0.1:5999"
    config = loaded.to_config()
    assert isinstance(config, MlflowConfig) and config.token.get_secret_value() == "t0ken"
    # the secret never shows in the model's JSON
    assert "t0ken" not in loaded.model_dump_json() and "t0ken" not in config.model_dump_json()


def test_deploy_target_round_trip_and_endpoint(prefect_harness):
    name = unique("target")
    DeployTarget(
        kind="docker",
        docker_host="unix:///var/run/docker.sock",
        endpoint_name="fraud",
        port=9100,
        preview_port=9200,
        replicas=2,
        router_image="haproxy:2.6",
        server_image="registry.local/fraud",
    ).save(name)
    loaded = DeployTarget.load(name)
    assert loaded.endpoint_spec() == EndpointSpec(name="fraud", port=9100, preview_port=9200, replicas=2)
    assert loaded.docker_options() == {
        "docker_host": "unix:///var/run/docker.sock",
        "router_image": "haproxy:2.6",
        "server_image": "registry.local/fraud",
    }
    # a block decides what the parameters leave unset; explicit parameters win
    kind, endpoint = resolve_target(DeploymentPipelineParams(target_block=name))
    assert (kind, endpoint.name, endpoint.port, endpoint.preview) == ("docker", "fraud", 9100, 9200)
    explicit = EndpointSpec(name="churn", port=8100)
    kind, endpoint = resolve_target(
        DeploymentPipelineParams(target_block=name, target="local", endpoint=explicit)
    )
    assert (kind, endpoint) == ("local", explicit)
    with pytest.raises(BlockNotFoundError, match="Deploy Target|DeployTarget"):
        resolve_target(DeploymentPipelineParams(target_block=unique("missing")))


def test_mlflow_precedence_argument_block_environment_default(prefect_harness, monkeypatch):
    name = unique("mlflow")
    MlflowServer(
        tracking_uri="http://block.invalid:5000", experiment_name="from-block", token=SecretStr("blocktoken")
    ).save(name)
    # nothing set: the embedded default
    assert resolve_mlflow_config(MlflowConfig()).tracking_uri.startswith("sqlite:///")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env.invalid:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    # environment beats the default
    assert resolve_mlflow_config(MlflowConfig()).tracking_uri == "http://env.invalid:5000"
    # core code refuses a block name: blocks are resolved at the edge
    with pytest.raises(ConfigurationError, match="resolved at the flow/task edge"):
        resolve_mlflow_config(MlflowConfig(block=name))
    # the block beats the environment
    resolved = resolve_mlflow_config(resolve_mlflow_block(MlflowConfig(block=name)))
    assert resolved.tracking_uri == "http://block.invalid:5000" and resolved.experiment_name == "from-block"
    # the argument beats the block, field by field
    plain = resolve_mlflow_block(MlflowConfig(block=name, experiment_name="from-arg"))
    resolved = resolve_mlflow_config(plain)
    assert resolved.tracking_uri == "http://block.invalid:5000" and resolved.experiment_name == "from-arg"
    # the token never enters the environment: the request-auth provider sends it to that server
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_AUTH", raising=False)
    get_client(resolved)
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert authorization_for("http://block.invalid:5000/api/2.0/mlflow/runs/get") == "Bearer blocktoken"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    # the edge resolves the block into plain settings that name none
    plain = resolve_mlflow_block(MlflowConfig(block=name, experiment_name="from-arg"))
    assert plain.block is None and plain.tracking_uri == "http://block.invalid:5000"
    assert resolve_mlflow_config(plain) == resolved
    with pytest.raises(BlockNotFoundError, match="MlflowServer block named"):
        resolve_mlflow_block(MlflowConfig(block=unique("missing")))


def test_tasks_resolve_blocks_in_their_arguments_before_core_code_runs(prefect_harness):
    from mlops_tasks.tasks._prefect import resolves_blocks

    name = unique("mlflow")
    MlflowServer(tracking_uri="http://block.invalid:5000", experiment_name="from-block").save(name)
    seen = {}

    @resolves_blocks
    def core(spec: DatasetSpec, *, mlflow_config: MlflowConfig | None = None, rows: int = 1) -> int:
        """A stand-in core function."""
        seen.update(spec=spec, mlflow_config=mlflow_config)
        return rows

    assert core.__doc__ == "A stand-in core function." and "mlflow_config" in str(signature(core))
    spec = DatasetSpec(uri="data.csv", s3=S3Config(region_name="eu-west-1"))
    assert core(spec, mlflow_config=MlflowConfig(block=name, experiment_name="arg"), rows=3) == 3
    assert seen["spec"] is spec  # nothing named a block: passed as it is
    plain = seen["mlflow_config"]
    assert plain.block is None and plain.tracking_uri == "http://block.invalid:5000"
    assert plain.experiment_name == "arg"


def aws_block(endpoint: str, key: str = "testing", secret: str = "testing") -> str:
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    name = unique("aws")
    AwsCredentials(
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    ).save(name)
    return name


def test_s3_config_from_aws_credentials_block(prefect_harness, s3_bucket, monkeypatch, churn):
    config, bucket = s3_bucket
    name = aws_block(config.endpoint_url)
    # no endpoint anywhere but in the block: the read can only work through it
    monkeypatch.delenv("MLOPS_S3_ENDPOINT_URL", raising=False)
    uri = f"s3://{bucket}/blocks/churn.parquet"
    plain = resolve_s3_block(S3Config(block=name))
    assert plain.block is None and plain.keys_from_block == name
    write_dataset(churn.head(50), uri, s3=plain)
    spec = resolve_config_blocks(DatasetSpec(uri=uri, s3=S3Config(block=name)))  # nested, as tasks do
    assert load_dataset(spec).info.rows == 50
    with pytest.raises(ConfigurationError, match="resolved at the flow/task edge"):
        load_dataset(DatasetSpec(uri=uri, s3=S3Config(block=name)))  # the core alone refuses
    kwargs = resolve_s3_block(S3Config(block=name, region_name="eu-west-1")).client_kwargs()
    assert kwargs["region_name"] == "eu-west-1" and kwargs["endpoint_url"] == config.endpoint_url
    # an S3Bucket block contributes its credentials
    from prefect_aws import AwsCredentials, S3Bucket

    from_bucket = S3Config.from_block(S3Bucket(bucket_name=bucket, credentials=AwsCredentials.load(name)))
    assert from_bucket.endpoint_url == config.endpoint_url and from_bucket.aws_access_key_id == "testing"
    with pytest.raises(BlockNotFoundError, match="AwsCredentials block named"):
        resolve_s3_block(S3Config(block=unique("missing")))


def test_s3_block_with_wrong_keys_names_the_block(prefect_harness, s3_bucket):
    config, bucket = s3_bucket
    name = aws_block(config.endpoint_url, key="AKIAWRONGKEY0000", secret="nope")
    with (
        s3_auth_enforced(config.endpoint_url),
        pytest.raises(StorageError, match=rf"InvalidAccessKeyId.*AwsCredentials block '{name}'"),
    ):
        load_dataset(DatasetSpec(uri=f"s3://{bucket}/any.csv", s3=resolve_s3_block(S3Config(block=name))))


def test_drift_check_flow_uses_saved_blocks_by_name(prefect_harness, s3_bucket, tmp_path):
    config, bucket = s3_bucket
    aws = aws_block(config.endpoint_url)
    server = unique("mlflow")
    MlflowServer(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="blocks").save(server)
    s3 = S3Config(block=aws)
    reference = write_dataset(
        make_churn_data(600, seed=1).drop(columns=["churned"]),
        f"s3://{bucket}/ref.parquet",
        s3=resolve_s3_block(s3),
    )
    current = write_dataset(
        make_churn_data(600, seed=2, drift=0.9).drop(columns=["churned"]),
        f"s3://{bucket}/cur.parquet",
        s3=resolve_s3_block(s3),
    )
    report = drift_check(
        DriftCheckParams(
            model_name="blocks-model",
            reference=DatasetSpec(uri=reference, s3=s3),
            current=DatasetSpec(uri=current, s3=s3),
            settings=DriftSettings(min_rows=100, check_prediction=False),
            report_location=f"s3://{bucket}/reports",
            s3=s3,
            mlflow=MlflowConfig(block=server),
            emit_event=False,
        )
    )
    assert report.status == "drift" and report.html_uri.startswith(f"s3://{bucket}/reports/")
    # the run was logged where the MLflow block points
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = {e.name for e in client.search_experiments()}
    assert any(e.startswith("blocks") for e in experiments), experiments
