"""Configuration: one settings object, one precedence.

Every environment variable the package reads is a typed field with its default on
:class:`MlopsSettings` (pydantic-settings, prefix ``MLOPS_``); the standard names of other
tools keep working as aliases (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``,
``MLFLOW_EXPERIMENT_NAME``, ``DOCKER_HOST``, ``AWS_*``).

One precedence everywhere, written once in :func:`first_set`:
**explicit argument > block > environment > embedded default**.

Blocks are Prefect objects and belong to the edge (:mod:`mlops_tasks.blocks`, the tasks and
flows): they are resolved there into the plain :class:`MlflowConfig` / :class:`S3Config`
models below, with :func:`mlops_tasks.blocks.resolve_mlflow_block` and
:func:`mlops_tasks.blocks.resolve_s3_block`. Nothing in this module loads a block or imports
Prefect. A config that still names a block (``MlflowConfig(block="prod")``) reaching core code
raises :class:`~mlops_tasks.errors.ConfigurationError` saying to resolve the block at the edge
(:func:`require_no_block`).

Embedded defaults need no server: one local state folder (``./.mlops`` or
``$MLOPS_STATE_DIR``) holds the MLflow SQLite store (``mlflow.db``) and the artifact folder
(``artifacts/``); Prefect uses its ephemeral API. See docs/configuration.md for the table of
variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_tasks.errors import ConfigurationError

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_STATE_DIR",
    "MlflowConfig",
    "MlopsSettings",
    "ResolvedMlflowConfig",
    "S3Config",
    "first_set",
    "get_settings",
    "parse_pairs",
    "require_no_block",
    "resolve_mlflow_config",
    "state_dir",
]

DEFAULT_EXPERIMENT = "mlops-tasks"
DEFAULT_STATE_DIR = ".mlops"


def _env(*names: str) -> AliasChoices:
    """The environment names of a field, first wins (used where a tool has a standard name)."""
    return AliasChoices(*names)


class MlopsSettings(BaseSettings):
    """Every environment variable of mlops-tasks, with its type and default.

    Fields without an alias are read from ``MLOPS_<FIELD>`` (``state_dir`` from
    ``MLOPS_STATE_DIR``); aliased fields list their names, first wins. A value of ``None``
    means "not set": the consumer's own default (or the tool's, e.g. boto3's) applies.

    The model server (:mod:`mlops_tasks.serving`) is copied alone into model images and
    imports nothing but :mod:`mlops_tasks.errors`, so it reads its ``MLOPS_SERVE_*``,
    ``MLOPS_MODEL_*`` and ``MLOPS_PREDICTION_LOG*`` variables itself; they are declared here
    too so this class is the one list of variables, and a test keeps both in step.

    Example:
        ```python
        from mlops_tasks.settings import get_settings
        settings = get_settings()
        print(settings.state_dir, settings.mlflow_tracking)
        ```
    """

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", populate_by_name=True, frozen=True)

    # local state and code version
    state_dir: Path = Field(Path(DEFAULT_STATE_DIR), description="Local state folder.")
    git_sha: str | None = Field(None, description="Code version tagged on runs; else `git rev-parse`.")
    # MLflow (standard names first, the MLOPS_ form also works)
    mlflow_tracking: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_TRACKING_URI"),
        description="MLflow tracking server or store; else the SQLite store in the state folder.",
    )
    mlflow_registry: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_REGISTRY_URI", "MLOPS_MLFLOW_REGISTRY_URI"),
        description="MLflow model registry, when not the tracking store.",
    )
    mlflow_experiment: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_EXPERIMENT_NAME", "MLOPS_MLFLOW_EXPERIMENT_NAME"),
        description=f"Experiment for training runs; else {DEFAULT_EXPERIMENT!r}.",
    )
    # S3 and other AWS endpoints (boto3's own names are aliases)
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("MLOPS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3-compatible endpoint for datasets, prediction logs and reports.",
    )
    ecr_endpoint_url: str | None = Field(None, description="ECR API endpoint for registry logins.")
    aws_access_key_id: str | None = Field(
        None, validation_alias=_env("AWS_ACCESS_KEY_ID", "MLOPS_AWS_ACCESS_KEY_ID"), description="AWS key id."
    )
    aws_secret_access_key: SecretStr | None = Field(
        None,
        validation_alias=_env("AWS_SECRET_ACCESS_KEY", "MLOPS_AWS_SECRET_ACCESS_KEY"),
        description="AWS secret key.",
    )
    aws_session_token: SecretStr | None = Field(
        None,
        validation_alias=_env("AWS_SESSION_TOKEN", "MLOPS_AWS_SESSION_TOKEN"),
        description="AWS session token.",
    )
    aws_region: str | None = Field(
        None,
        validation_alias=_env("AWS_DEFAULT_REGION", "AWS_REGION", "MLOPS_AWS_REGION"),
        description="AWS region.",
    )
    # deploy targets
    haproxy_bin: str | None = Field(None, description="Path of the haproxy executable; else the PATH.")
    docker_host: str | None = Field(
        None, validation_alias=_env("MLOPS_DOCKER_HOST", "DOCKER_HOST"), description="Docker daemon URL."
    )
    docker_router_image: str | None = Field(None, description="HAProxy image of the docker target.")
    docker_base_image: str | None = Field(None, description="FROM image of model images.")
    docker_labels: str | None = Field(None, description="Extra container labels, `k=v,k2=v2`.")
    docker_allow_unverified: bool | None = Field(None, description="Run images that were not verified.")
    docker_slot_env: str | None = Field(None, description="Extra slot environment, `K=v,K2=v2`.")
    # endpoint watchdog (mlops_tasks.deploy.watchdog.SupervisionPolicy)
    watchdog_interval_s: float | None = Field(None, gt=0, description="Watchdog check period (s).")
    watchdog_backoff_s: float | None = Field(
        None, ge=0, description="Wait before a watchdog's first restart, doubled per restart (s)."
    )
    watchdog_max_restarts: int | None = Field(
        None, ge=1, description="Restarts within the window before the watchdog gives up."
    )
    watchdog_window_s: float | None = Field(None, gt=0, description="Window of the restart count (s).")
    # model server (read by mlops_tasks.serving itself, see the class docstring)
    model_uri: str | None = Field(None, description="Model the server loads (models:/..., a folder).")
    model_name: str | None = Field(None, description="Model name the server reports.")
    model_version: str | None = Field(None, description="Model version the server reports.")
    model_run_id: str | None = Field(None, description="MLflow run id the server reports.")
    model_cache_dir: str | None = Field(None, description="Cache folder of downloaded models.")
    serve_host: str = Field("127.0.0.1", description="Interface the model server binds.")
    serve_port: int = Field(8080, ge=1, le=65535, description="Port of the model server.")
    serve_instance: str | None = Field(None, description="Instance name; else hostname:port.")
    serve_max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Larger bodies get 413.")
    serve_max_batch_rows: int = Field(4096, gt=0, description="Rows per request at most.")
    serve_http: Literal["builtin", "uvicorn"] = Field("builtin", description="HTTP server.")
    serve_keep_alive_s: float = Field(75.0, gt=0, description="Idle keep-alive of connections.")
    serve_max_header_bytes: int = Field(32 * 1024, gt=0, description="Larger request heads get 431.")
    serve_request_timeout_s: float = Field(30.0, gt=0, description="Requests not received by then get 408.")
    serve_extra_columns: Literal["ignore", "reject"] = Field(
        "ignore", description="Request columns the signature does not name: ignore (as MLflow) or reject."
    )
    serve_log_level: str = Field("info", description="Model server log level.")
    prediction_log: str | None = Field(None, description="Prediction log folder or s3:// prefix.")
    prediction_log_disabled: bool = Field(False, description="Do not log predictions.")
    prediction_log_format: Literal["parquet", "jsonl"] = Field("parquet", description="Log file format.")
    prediction_log_flush_s: float = Field(2.0, gt=0, description="Seconds between log flushes.")
    prediction_log_retention_hours: float = Field(720.0, ge=0, description="Log files kept this long.")


def get_settings() -> MlopsSettings:
    """The settings as the environment sets them now (read on every call, never cached).

    Returns:
        A fresh :class:`MlopsSettings`.

    Raises:
        pydantic.ValidationError: A variable holds a value of the wrong type.
    """
    return MlopsSettings()


def first_set(*layers: Any) -> Any:
    """The first value that is set: the one precedence rule of the package.

    Callers pass the layers in order **argument, block, environment, default**; ``None``
    and empty strings count as "not set".

    Example:
        ```python
        assert first_set(None, "from-block", "from-env", "default") == "from-block"
        ```
    """
    for value in layers:
        if value is not None and value != "":
            return value
    return None


def parse_pairs(raw: str | None, variable: str) -> dict[str, str]:
    """``"k=v,k2=v2"`` as a dict (the form of ``MLOPS_DOCKER_LABELS`` / ``MLOPS_DOCKER_SLOT_ENV``).

    Raises:
        ConfigurationError: An item has no ``=``.
    """
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (raw or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"{variable} item {item!r} is not KEY=VALUE; use k=v,k2=v2.")
        pairs[key.strip()] = value.strip()
    return pairs


def state_dir() -> Path:
    """The local state folder: ``$MLOPS_STATE_DIR`` or ``./.mlops``, made absolute."""
    return get_settings().state_dir.expanduser().resolve()


def require_no_block(kind: Literal["mlflow", "s3"], block: str | None) -> None:
    """Refuse a config that still names a block: blocks are resolved at the flow/task edge.

    Args:
        kind: ``"mlflow"`` or ``"s3"``, for the message.
        block: The block name the config holds (``None``: nothing to refuse).

    Raises:
        ConfigurationError: ``block`` is set.
    """
    if block:
        helper = "resolve_mlflow_block" if kind == "mlflow" else "resolve_s3_block"
        raise ConfigurationError(
            f"The {kind} settings name block {block!r}, but blocks are resolved at the flow/task edge: "
            f"pass mlops_tasks.blocks.{helper}(config) down (the tasks and flows do), not a block name."
        )


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
    registry_uri: str | None = Field(None, description="Model registry URI; defaults to the tracking URI.")
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

    def explicit_values(self) -> dict[str, Any]:
        """The fields set on this object (not ``block``), for layering over a block's values."""
        return {
            name: value
            for name, value in self.model_dump(exclude={"block"}).items()
            if value is not None and name in self.model_fields_set
        }


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

    @property
    def has_credentials(self) -> bool:
        """Whether a token or a username and password are set."""
        return bool(self.token or (self.username and self.password))


class S3Config(BaseModel):
    """How to reach S3 or an S3-compatible store for datasets and logs.

    Fields left as ``None`` fall back to the prefect-aws ``AwsCredentials`` block
    named in ``block`` (its keys, region and ``aws_client_parameters.endpoint_url``),
    then to the environment (``MLOPS_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``,
    ``AWS_ACCESS_KEY_ID``, ... through :class:`MlopsSettings`), then to boto3's own
    defaults (profiles, ``~/.aws``).

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
    keys_from_block: str | None = Field(
        None,
        description="Set by the edge when it filled the keys from this block: named in error "
        "messages only, never loaded.",
    )

    @classmethod
    def from_block(cls, block: Any, **overrides: Any) -> S3Config:
        """Settings from a prefect-aws ``AwsCredentials``, ``MinIOCredentials`` or ``S3Bucket``.

        The block is read by attribute only (no Prefect import here): the edge loads it.

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
            credentials, "minio_root_user", None
        )
        secret = getattr(credentials, "aws_secret_access_key", None) or getattr(
            credentials, "minio_root_password", None
        )
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

    def describe_source(self) -> str:
        """Where the credentials come from, for error messages (never the secret itself)."""
        if self.keys_from_block:
            return f"AwsCredentials block {self.keys_from_block!r}"
        if self.aws_access_key_id:
            return f"explicit S3Config (access key id {self.aws_access_key_id[:4]}...)"
        if self.block:
            return f"AwsCredentials block {self.block!r}"
        return "the environment (AWS_ACCESS_KEY_ID / AWS_PROFILE / ~/.aws)"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)`` (only those set).

        Each value is :func:`first_set` of this object (after its block) and the environment;
        keys come from the environment only as a pair, so a profile still applies otherwise.

        Raises:
            ConfigurationError: ``block`` is set (resolve it at the edge first).
        """
        require_no_block("s3", self.block)
        env = get_settings()
        # keys travel as a set: this object's, else the environment's pair, else boto3's chain
        own = self.aws_access_key_id is not None
        from_env = not own and bool(env.aws_access_key_id and env.aws_secret_access_key)
        key_id = self.aws_access_key_id if own else env.aws_access_key_id if from_env else None
        secret = self.aws_secret_access_key if own else env.aws_secret_access_key if from_env else None
        token = self.aws_session_token if own else env.aws_session_token if from_env else None
        values = {
            "endpoint_url": first_set(self.endpoint_url, env.s3_endpoint_url),
            "region_name": first_set(self.region_name, env.aws_region),
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret.get_secret_value() if secret else None,
            "aws_session_token": token.get_secret_value() if token else None,
        }
        return {key: value for key, value in values.items() if value}


def resolve_mlflow_config(config: MlflowConfig | None = None) -> ResolvedMlflowConfig:
    """Decide every MLflow setting: explicit argument > block > environment > embedded default.

    Args:
        config: Explicit settings that name no block (the edge resolves blocks with
            :func:`mlops_tasks.blocks.resolve_mlflow_block`); ``None`` fields fall through to
            the environment.

    Returns:
        The resolved configuration. For the embedded default the state folder is
        created so the SQLite store can be opened.

    Raises:
        ConfigurationError: ``config.block`` is set (resolve it at the edge first).
    """
    argument = config or MlflowConfig()
    require_no_block("mlflow", argument.block)
    layers = [argument.explicit_values()]
    env = get_settings()

    def pick(field: str, environment: Any = None, default: Any = None) -> Any:
        return first_set(*(layer.get(field) for layer in layers), environment, default)

    tracking_uri = pick("tracking_uri", env.mlflow_tracking)
    artifact_location = pick("artifact_location")
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
    return ResolvedMlflowConfig(
        tracking_uri=tracking_uri,
        registry_uri=pick("registry_uri", env.mlflow_registry, tracking_uri),
        experiment_name=pick("experiment_name", env.mlflow_experiment, DEFAULT_EXPERIMENT),
        artifact_location=artifact_location,
        request_timeout_s=pick("request_timeout_s", None, argument.request_timeout_s),
        token=pick("token"),
        username=pick("username"),
        password=pick("password"),
    )
