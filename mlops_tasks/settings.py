"""Configuration with embedded defaults.

One precedence everywhere: **explicit argument > environment > embedded default**.

Embedded defaults need no server: one local state folder (``./.mlops`` or
``$MLOPS_STATE_DIR``) holds the MLflow SQLite store (``mlflow.db``) and the
artifact folder (``artifacts/``); Prefect uses its ephemeral API.

Environment variables read (the standard names where a tool has one):

==============================  ===============================================
``MLOPS_STATE_DIR``             local state folder (default ``./.mlops``)
``MLFLOW_TRACKING_URI``         MLflow tracking server or store
``MLFLOW_REGISTRY_URI``         MLflow registry, when not the tracking store
``MLFLOW_EXPERIMENT_NAME``      experiment for training runs
``MLOPS_S3_ENDPOINT_URL``       S3-compatible endpoint for datasets (else boto3's
                                own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``)
``AWS_*``                       credentials and region, read by boto3 itself
==============================  ===============================================
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_EXPERIMENT = "mlops-tasks"
DEFAULT_STATE_DIR = ".mlops"


class MlflowConfig(BaseModel):
    """Where MLflow tracking and the model registry live.

    Every field left as ``None`` falls back to the environment, then to the
    embedded default (a SQLite store in the state folder).

    Example:
        ```python
        from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
        cfg = resolve_mlflow_config(MlflowConfig(tracking_uri="http://127.0.0.1:5000"))
        assert cfg.tracking_uri == "http://127.0.0.1:5000"
        ```
    """

    model_config = ConfigDict(frozen=True)

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


class S3Config(BaseModel):
    """How to reach S3 or an S3-compatible store for datasets and logs.

    Fields left as ``None`` fall back to ``MLOPS_S3_ENDPOINT_URL`` and then to
    boto3's own environment and config files (``AWS_ACCESS_KEY_ID``, ...).
    """

    model_config = ConfigDict(frozen=True)

    endpoint_url: str | None = Field(None, description="S3 API endpoint, e.g. http://127.0.0.1:9000.")
    region_name: str | None = Field(None, description="AWS region.")
    aws_access_key_id: str | None = Field(None, description="Access key id.")
    aws_secret_access_key: SecretStr | None = Field(None, description="Secret access key.")
    aws_session_token: SecretStr | None = Field(None, description="Session token, if any.")

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)`` (only those set)."""
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


def resolve_mlflow_config(config: MlflowConfig | None = None) -> ResolvedMlflowConfig:
    """Decide every MLflow setting: explicit argument > environment > embedded default.

    Args:
        config: Explicit settings; ``None`` fields fall through.

    Returns:
        The resolved configuration. For the embedded default the state folder is
        created so the SQLite store can be opened.
    """
    config = config or MlflowConfig()
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
    )
