"""The settings object: every variable in one place, the aliases, the precedence, no Prefect in the base."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr

from mlops_tasks.settings import (
    MlflowConfig,
    MlopsSettings,
    S3Config,
    first_set,
    get_settings,
    resolve_mlflow_config,
    state_dir,
)

ROOT = Path(__file__).resolve().parents[1]


def environment_names() -> set[str]:
    names: set[str] = set()
    for name, field in MlopsSettings.model_fields.items():
        alias = field.validation_alias
        names |= set(alias.choices) if isinstance(alias, AliasChoices) else {f"MLOPS_{name.upper()}"}
    return names


def test_every_mlops_variable_in_the_code_is_a_settings_field():
    used: set[str] = set()
    for folder in ("mlops_tasks", "flows", "deployments"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sh", ".lua", ".cfg", ".txt", ""}:
                used |= set(re.findall(r"\bMLOPS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")))
    missing = used - environment_names()
    assert not missing, f"declare these on MlopsSettings: {sorted(missing)}"
    assert len([n for n in environment_names() if n.startswith("MLOPS_")]) >= 28


def test_model_server_defaults_equal_the_settings_defaults(monkeypatch):
    from mlops_tasks.serving.cli import build_parser

    for name in environment_names():
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["--model-uri", "/models/x"])
    s = MlopsSettings()
    assert (args.host, args.port, args.max_body_bytes, args.max_batch_rows) == (
        s.serve_host,
        s.serve_port,
        s.serve_max_body_bytes,
        s.serve_max_batch_rows,
    )
    assert (args.http, args.keep_alive_timeout, args.log_level) == (
        s.serve_http,
        s.serve_keep_alive_s,
        s.serve_log_level,
    )
    assert (args.log_format, args.log_flush_interval, args.log_retention_hours) == (
        s.prediction_log_format,
        s.prediction_log_flush_s,
        s.prediction_log_retention_hours,
    )


def test_standard_names_are_aliases(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/docker.sock")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env.invalid:5000")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", "http://s3.invalid:9000")
    settings = get_settings()
    assert settings.docker_host == "unix:///tmp/docker.sock"
    assert state_dir() == (tmp_path / "state").resolve()
    resolved = resolve_mlflow_config()
    assert resolved.tracking_uri == resolved.registry_uri == "http://env.invalid:5000"
    assert S3Config().client_kwargs() == {
        "endpoint_url": "http://s3.invalid:9000",
        "region_name": "eu-west-3",
        "aws_access_key_id": "AKIAENV",
        "aws_secret_access_key": "envsecret",
    }
    # explicit keys travel as a set: none of the environment's is mixed in
    explicit = S3Config(aws_access_key_id="AKIAARG", aws_secret_access_key=SecretStr("argsecret"))
    assert explicit.client_kwargs()["aws_secret_access_key"] == "argsecret"
    # the MLOPS_ form of a standard name works too, the standard name first
    monkeypatch.setenv("MLOPS_DOCKER_HOST", "tcp://mlops.invalid:2375")
    assert get_settings().docker_host == "tcp://mlops.invalid:2375"


def test_precedence_argument_environment_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert first_set(None, "", "env", "default") == "env"
    default = resolve_mlflow_config()
    assert default.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert default.experiment_name == "mlops-tasks"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    assert resolve_mlflow_config().experiment_name == "from-env"
    assert resolve_mlflow_config(MlflowConfig(experiment_name="from-arg")).experiment_name == "from-arg"


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("MLOPS_SERVE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="serve_port"):
        get_settings()


def test_base_and_stage_cores_import_without_prefect():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'prefect', 'prefect_aws', 'prefect_docker'}:\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mlops_tasks.settings, mlops_tasks.tracking, mlops_tasks.mlflow_auth\n"
        "import mlops_tasks.data, mlops_tasks.training, mlops_tasks.evaluation, mlops_tasks.registry\n"
        "from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config\n"
        "from mlops_tasks.errors import ConfigurationError\n"
        "try:\n"
        "    resolve_mlflow_config(MlflowConfig(block='prod'))\n"
        "except ConfigurationError as exc:\n"
        "    assert 'resolve_mlflow_block' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('a block name was resolved without the edge')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_core_refuses_a_config_that_names_a_block():
    from mlops_tasks.errors import ConfigurationError
    from mlops_tasks.settings import MlflowConfig, S3Config, require_no_block

    with pytest.raises(ConfigurationError, match="resolve_s3_block"):
        S3Config(block="minio").client_kwargs()
    with pytest.raises(ConfigurationError, match="resolve_mlflow_block"):
        require_no_block("mlflow", MlflowConfig(block="prod").block)
    require_no_block("s3", None)  # nothing named: nothing to refuse
    import mlops_tasks.settings as settings

    assert not hasattr(settings, "register_block_loader") and not hasattr(settings, "load_named_block")


def test_renamed_container_registry_errors_keep_their_old_names_with_a_warning():
    import mlops_tasks.errors as errors

    renamed = {
        "RegistryPushError": errors.ContainerRegistryError,
        "RegistryUnreachableError": errors.ContainerRegistryUnreachableError,
        "RegistryAuthError": errors.ContainerRegistryAuthError,
        "RepositoryNotFoundError": errors.ContainerRepositoryNotFoundError,
    }
    for old_name, new in renamed.items():
        with pytest.warns(DeprecationWarning, match=f"{old_name} is deprecated.*{new.__name__}"):
            old = getattr(errors, old_name)
        assert issubclass(new, old)  # an old ``except`` clause still catches the new error
        assert not issubclass(new, errors.RegistryError)  # not the MLflow model registry's
        assert old_name not in errors.__all__ and new.__name__ in errors.__all__
    assert issubclass(errors.ContainerRegistryUnreachableError, errors.ServiceUnavailableError)
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018


def test_rollout_errors_are_apart_from_prefect_deployment_errors_and_keep_their_old_names():
    import mlops_tasks.errors as errors

    with pytest.warns(DeprecationWarning, match="DeploymentError is deprecated.*EndpointDeployError"):
        old_rollout = errors.DeploymentError
    with pytest.warns(DeprecationWarning, match="DeploymentNotFoundError is deprecated.*Prefect"):
        old_prefect = errors.DeploymentNotFoundError
    assert "DeploymentError" not in errors.__all__ and "DeploymentNotFoundError" not in errors.__all__
    # What the strategy raises now is still caught by an old ``except DeploymentError``.
    for rollout_error in (
        errors.RolloutError,
        errors.GuardBreachError,
        errors.CandidateUnhealthyError,
        errors.RouterError,
        errors.SlotStartError,
        errors.SmokeTestError,
        errors.RollbackError,
        errors.EndpointBusyError,
    ):
        assert issubclass(rollout_error, errors.EndpointDeployError)
        assert issubclass(rollout_error, old_rollout)
        assert not issubclass(rollout_error, errors.OrchestrationError)
    raised = errors.GuardBreachError("breach", record={"outcome": "rolled_back"})
    assert raised.record == {"outcome": "rolled_back"}
    assert issubclass(errors.PrefectDeploymentNotFoundError, old_prefect)
    assert issubclass(errors.PrefectDeploymentNotFoundError, errors.OrchestrationError)
    assert not issubclass(errors.PrefectDeploymentNotFoundError, errors.EndpointDeployError)


def test_reusable_flows_have_no_churn_defaults_but_the_demo_entry_points_do():
    from deployments.definitions import DEPLOYMENTS
    from flows.batch import BatchPredictParams
    from flows.deployment import DeploymentPipelineParams
    from flows.monitoring import DriftCheckParams
    from flows.parameters import require_model_name
    from flows.retrain import RetrainParams
    from flows.training import TrainingPipelineParams
    from mlops_tasks.errors import ConfigurationError

    for model in (TrainingPipelineParams, DeploymentPipelineParams, DriftCheckParams, RetrainParams):
        assert model().model_name is None, model
    assert DeploymentPipelineParams().target_column is None
    assert BatchPredictParams.model_fields["model_name"].is_required()
    with pytest.raises(ConfigurationError, match="give model_name"):
        require_model_name(None, "training-pipeline")
    served = {spec.name: spec.parameters() for spec in DEPLOYMENTS}
    for name in ("train", "deploy", "retrain"):
        assert served[name]["params"]["model_name"] == "churn-classifier", name
    # the daily drift check follows the demo endpoint (its model comes from the endpoint)
    assert served["daily"]["params"]["endpoint"] == "churn"
    assert DriftCheckParams().endpoint is None
    assert served["deploy"]["params"]["target_column"] == "churned"
