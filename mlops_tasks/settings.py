"""Configuration with embedded defaults.

One precedence everywhere: **explicit argument > block > environment > embedded default**.
A block is a Prefect Block named in the settings (``MlflowConfig.block`` names an
:class:`~mlops_tasks.blocks.MlflowServer`, ``S3Config.block`` a prefect-aws
``AwsCredentials``); it is loaded from the Prefect API when the settings are resolved,
so an updated block takes effect on the next run.

Embedded defaults need no server: one local state folder (``./.mlops`` or
``$MLOPS_STATE_DIR``) holds the MLflow SQLite store (``mlflow.db``) and the
artifact folder (``artifacts/``); Prefect uses its ephemeral API.

Environment variables read (the standard names where a tool has one):

==============================  ===============================================
``MLOPS_STATE_DIR``             local state folder (default ``./.mlops``)
``MLFLOW_TRACKING_URI``         MLflow tracking server or store
``MLFLOW_REGISTRY_URI``         MLflow registry, when not the tracking store
``MLFLOW_EXPERIMENT_NAME``      experiment for training runs
``MLFLOW_TRACKING_TOKEN``       bearer token (or ``MLFLOW_TRACKING_USERNAME`` /
                                ``MLFLOW_TRACKING_PASSWORD``), read by MLflow itself
``MLOPS_S3_ENDPOINT_URL``       S3-compatible endpoint for datasets (else boto3's
                                own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``)
``AWS_*``                       credentials and region, read by boto3 itself
==============================  ===============================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_EXPERIMENT = "mlops-tasks"
DEFAULT_STATE_DIR = ".mlops"


class MlflowConfig(BaseModel):
    """Where MLflow tracking and the model registry live.

    Every field left as ``None`` falls back to the block named in ``block`` (an
    :class:`~mlops_tasks.blocks.MlflowServer`), then to the environment, then to the
    embedded default (a SQLite store in the state folder).

    Example:
        ```python
        from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
        cfg = resolve_mlflow_config(MlflowConfig(tracking_uri="http://127.0.0.1:5000"))
        assert cfg.tracking_uri == "http://127.0.0.1:5000"
        ```
    """

    model_config = ConfigDict(frozen=True)

    block: str | None = Field(
        None,
        description="Name of an MLflow Server block (mlops_tasks.blocks.MlflowServer) whose settings "
        "fill the fields left empty here.",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI, e.g. http://mlflow:5000 or sqlite:///mlflow.db."
    )
    registry_uri: str | None = Field(
        None, description="Model registry URI; defaults to the tracking URI."
    )
    experiment_name: str | None = Field(None, description="Experiment for training runs.")
    artifact_location: str | None = Field(
        None,
        description="Artifact root for a new experiment (local folder or s3://...). "
        "Defaults to the state folder for a local store and to the server's default otherwise.",
    )
    token: SecretStr | None = Field(
        None, description="Bearer token for the tracking server; prefer a block in deployments."
    )
    username: str | None = Field(None, description="Basic-auth user of the tracking server.")
    password: SecretStr | None = Field(None, description="Basic-auth password of the tracking server.")
    request_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of the reachability check of a tracking server."
    )


class ResolvedMlflowConfig(BaseModel):
    """An :class:`MlflowConfig` with every field decided."""

    model_config = ConfigDict(frozen=True)

    tracking_uri: str
    registry_uri: str
    experiment_name: str
    artifact_location: str | None
    request_timeout_s: float
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


class S3Config(BaseModel):
    """How to reach S3 or an S3-compatible store for datasets and logs.

    Fields left as ``None`` fall back to the prefect-aws ``AwsCredentials`` block
    named in ``block`` (its keys, region and ``aws_client_parameters.endpoint_url``),
    then to ``MLOPS_S3_ENDPOINT_URL`` and boto3's own environment and config files
    (``AWS_ACCESS_KEY_ID``, ...).

    Example:
        ```python
        from mlops_tasks.settings import S3Config
        s3 = S3Config(block="minio")  # an AwsCredentials block saved as "minio"
        ```
    """

    model_config = ConfigDict(frozen=True)

    block: str | None = Field(
        None,
        description="Name of a prefect-aws AwsCredentials block whose keys, region and endpoint "
        "fill the fields left empty here.",
    )
    endpoint_url: str | None = Field(None, description="S3 API endpoint, e.g. http://127.0.0.1:9000.")
    region_name: str | None = Field(None, description="AWS region.")
    aws_access_key_id: str | None = Field(None, description="Access key id.")
    aws_secret_access_key: SecretStr | None = Field(None, description="Secret access key.")
    aws_session_token: SecretStr | None = Field(None, description="Session token, if any.")

    @classmethod
    def from_block(cls, block: Any, **overrides: Any) -> S3Config:
        """Settings from a prefect-aws ``AwsCredentials``, ``MinIOCredentials`` or ``S3Bucket``.

        Args:
            block: The loaded block (an ``S3Bucket`` contributes its credentials).
            **overrides: Fields that win over the block's values.

        Returns:
            The settings, with the block's endpoint, region and keys.

        Example:
            ```python
            from prefect_aws import AwsCredentials
            s3 = S3Config.from_block(AwsCredentials.load("minio"))
            ```
        """
        credentials = getattr(block, "credentials", block)  # S3Bucket -> its credentials
        params = getattr(credentials, "aws_client_parameters", None)
        key_id = getattr(credentials, "aws_access_key_id", None) or getattr(
            credentials, "minio_root_user", None)
        secret = getattr(credentials, "aws_secret_access_key", None) or getattr(
            credentials, "minio_root_password", None)
        token = getattr(credentials, "aws_session_token", None)
        values: dict[str, Any] = {
            "endpoint_url": getattr(params, "endpoint_url", None),
            "region_name": getattr(credentials, "region_name", None),
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "aws_session_token": SecretStr(token) if isinstance(token, str) else token,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})

    def resolved(self) -> S3Config:
        """These settings with the block's values filled in (explicit fields win).

        Raises:
            BlockNotFoundError: No ``AwsCredentials`` block has that name.
            ServiceUnavailableError: The Prefect API did not answer.
        """
        if not self.block:
            return self
        from prefect_aws import AwsCredentials

        from mlops_tasks.blocks import load_block

        explicit = self.model_dump(exclude={"block"}, exclude_none=True)
        return S3Config.from_block(load_block(AwsCredentials, self.block), **explicit)

    def describe_source(self) -> str:
        """Where the credentials come from, for error messages (never the secret itself)."""
        if self.aws_access_key_id:
            return f"explicit S3Config (access key id {self.aws_access_key_id[:4]}...)"
        if self.block:
            return f"AwsCredentials block {self.block!r}"
        return "the environment (AWS_ACCESS_KEY_ID / AWS_PROFILE / ~/.aws)"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)`` (only those set).

        Raises:
            BlockNotFoundError: ``block`` names no ``AwsCredentials`` block.
        """
        if self.block:
            return self.resolved().client_kwargs()
        kwargs: dict[str, str] = {}
        endpoint = self.endpoint_url or os.environ.get("MLOPS_S3_ENDPOINT_URL")
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.region_name:
            kwargs["region_name"] = self.region_name
        if self.aws_access_key_id:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        if self.aws_session_token:
            kwargs["aws_session_token"] = self.aws_session_token.get_secret_value()
        return kwargs


def state_dir() -> Path:
    """The local state folder: ``$MLOPS_STATE_DIR`` or ``./.mlops``, made absolute."""
    return Path(os.environ.get("MLOPS_STATE_DIR") or DEFAULT_STATE_DIR).expanduser().resolve()


def _first(*values: str | None) -> str | None:
    for value in values:
        if value:
            return value
    return None


def _with_block(config: MlflowConfig) -> MlflowConfig:
    """``config`` with the empty fields filled from its ``block`` (explicit fields win)."""
    if not config.block:
        return config
    from mlops_tasks.blocks import MlflowServer, load_block

    base = load_block(MlflowServer, config.block).to_config()
    explicit = {name: value for name, value in config.model_dump(exclude={"block"}).items()
                if value is not None and name in config.model_fields_set}
    return base.model_copy(update=explicit)


def resolve_mlflow_config(config: MlflowConfig | None = None) -> ResolvedMlflowConfig:
    """Decide every MLflow setting: explicit argument > block > environment > embedded default.

    Args:
        config: Explicit settings; ``None`` fields fall through to ``config.block``, then
            to the environment.

    Returns:
        The resolved configuration. For the embedded default the state folder is
        created so the SQLite store can be opened.

    Raises:
        BlockNotFoundError: ``config.block`` names no MLflow Server block.
        ServiceUnavailableError: The Prefect API did not answer while loading the block.
    """
    config = _with_block(config or MlflowConfig())
    tracking_uri = _first(config.tracking_uri, os.environ.get("MLFLOW_TRACKING_URI"))
    artifact_location = config.artifact_location
    if tracking_uri is None:
        root = state_dir()
        root.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        artifact_location = artifact_location or (root / "artifacts").as_uri()
    elif tracking_uri.startswith("sqlite:") and artifact_location is None:
        # A local store with no artifact root would write to ./mlruns of whatever
        # folder the process runs in; keep artifacts beside the database instead.
        db_path = Path(tracking_uri.split("///", 1)[-1])
        artifact_location = (db_path.parent / "artifacts").resolve().as_uri()
    registry_uri = _first(config.registry_uri, os.environ.get("MLFLOW_REGISTRY_URI"), tracking_uri)
    experiment = _first(
        config.experiment_name, os.environ.get("MLFLOW_EXPERIMENT_NAME"), DEFAULT_EXPERIMENT
    )
    return ResolvedMlflowConfig(
        tracking_uri=tracking_uri,
        registry_uri=registry_uri or tracking_uri,
        experiment_name=experiment or DEFAULT_EXPERIMENT,
        artifact_location=artifact_location,
        request_timeout_s=config.request_timeout_s,
        token=config.token,
        username=config.username,
        password=config.password,
    )
