"""Prefect Blocks for the connections the flows need: an MLflow server and a deploy target.

S3 has no block of its own here: use prefect-aws's ``AwsCredentials`` (or the
credentials of an ``S3Bucket``) and name it in :attr:`mlops_tasks.settings.S3Config.block`.

The package registers these block types through its ``prefect.collections`` entry
point (``mlops_tasks.blocks``): a Prefect server started in an environment where
mlops-tasks is installed lists them in the UI's block catalog, and
``prefect block register -m mlops_tasks.blocks`` registers them on any server.

Flows take blocks **by name** in their parameters (``MlflowConfig.block``,
``S3Config.block``, ``DeploymentPipelineParams.target_block``), so a deployment's
parameters hold no secret and rotating a credential is one block update. Precedence
everywhere: explicit argument > block > environment > embedded default.

Blocks are loaded here, at the edge, and passed down as plain settings:
:func:`resolve_mlflow_block` and :func:`resolve_s3_block` turn a config that names a
block into one that holds the block's values (explicit fields win) and names none. Core code
refuses a config that still names a block (``ConfigurationError``); every task resolves the
configs among its arguments with :func:`resolve_config_blocks` before calling core code.

Example:
    ```python
    from pydantic import SecretStr
    from mlops_tasks.blocks import MlflowServer
    from mlops_tasks.settings import MlflowConfig

    MlflowServer(tracking_uri="https://mlflow.example.com", token=SecretStr("...")).save("prod")
    config = MlflowConfig(block="prod")  # what a flow parameter holds
    ```
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, HttpUrl, SecretStr

from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.errors import BlockNotFoundError, ServiceUnavailableError
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = [
    "DeployTarget",
    "MlflowServer",
    "load_block",
    "resolve_config_blocks",
    "resolve_mlflow_block",
    "resolve_s3_block",
]

_BlockT = TypeVar("_BlockT", bound=Block)

#: Square PNG logos the Prefect UI shows in the block catalog.
# HttpUrl, as Prefect types these class variables (its own blocks build them the same way).
_MLFLOW_LOGO = HttpUrl("https://github.com/mlflow.png?size=200")
_HAPROXY_LOGO = HttpUrl("https://github.com/haproxy.png?size=200")
_DOCS = HttpUrl("https://mlflow.org/docs/latest/self-hosting/")
_HAPROXY_DOCS = HttpUrl("https://docs.haproxy.org/2.6/management.html")


def load_block(block_type: type[_BlockT], name: str) -> _BlockT:
    """Load the block document ``name`` of ``block_type`` from the Prefect API.

    Args:
        block_type: The block class (``MlflowServer``, prefect-aws's ``AwsCredentials``, ...).
        name: The block document's name (``"prod"``, not ``"mlflow-server/prod"``).

    Returns:
        The loaded block.

    Raises:
        BlockNotFoundError: No block of that type has that name.
        ServiceUnavailableError: The Prefect API did not answer.

    Example:
        ```python
        from mlops_tasks.blocks import MlflowServer, load_block
        server = load_block(MlflowServer, "prod")
        ```
    """
    import httpx

    slug = block_type.get_block_type_slug()
    try:
        return block_type.load(name)  # type: ignore[return-value]  # async_dispatch: Self | coroutine
    except ValueError as exc:
        raise BlockNotFoundError(
            f"No {block_type.__name__} block named {name!r} ({slug}/{name}) on the Prefect API; "
            f"create it in the UI (Blocks > +) or with {block_type.__name__}(...).save({name!r}), "
            "or fix the name in the flow parameters."
        ) from exc
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        raise ServiceUnavailableError(
            f"Cannot load block {slug}/{name}: the Prefect API did not answer ({exc}); "
            "start it or set PREFECT_API_URL."
        ) from exc


class MlflowServer(Block):
    """An MLflow tracking server (and model registry) with its credentials.

    Converts to :class:`~mlops_tasks.settings.MlflowConfig` with :meth:`to_config`;
    flows name it in ``MlflowConfig(block="<name>")``. The token (or username and
    password) reaches MLflow through the ``mlops-tasks`` request-auth provider
    (:mod:`mlops_tasks.mlflow_auth`), for this server only.

    Attributes:
        tracking_uri: Tracking server or store URI.
        registry_uri: Model registry URI, when not the tracking server.
        experiment_name: Experiment for training runs.
        artifact_location: Artifact root of new experiments.
        token: Bearer token for the server.
        username: Basic-auth user.
        password: Basic-auth password.
        request_timeout_s: Timeout of the reachability check.

    Example:
        ```python
        from mlops_tasks.blocks import MlflowServer
        server = MlflowServer.load("BLOCK_NAME")
        config = server.to_config()
        ```
    """

    _block_type_name = "MLflow Server"
    _block_type_slug = "mlflow-server"
    _logo_url = _MLFLOW_LOGO
    _documentation_url = _DOCS
    _description = "An MLflow tracking server and model registry, with its credentials."
    _code_example = """
    ```python
    from mlops_tasks.blocks import MlflowServer
    mlflow_server = MlflowServer.load("BLOCK_NAME")
    config = mlflow_server.to_config()
    ```
    """

    tracking_uri: str = Field(
        ..., description="Tracking server URI, e.g. https://mlflow.example.com or sqlite:///mlflow.db."
    )
    registry_uri: str | None = Field(None, description="Model registry URI; empty: the tracking URI.")
    experiment_name: str | None = Field(
        None, description="Experiment for training runs; empty: environment or mlops-tasks."
    )
    artifact_location: str | None = Field(
        None, description="Artifact root for new experiments; empty: the server's default."
    )
    token: SecretStr | None = Field(
        None, description="Bearer token sent to the server (MLFLOW_TRACKING_TOKEN)."
    )
    username: str | None = Field(None, description="Basic-auth user (MLFLOW_TRACKING_USERNAME).")
    password: SecretStr | None = Field(None, description="Basic-auth password (MLFLOW_TRACKING_PASSWORD).")
    request_timeout_s: float = Field(
        10.0, gt=0, description="Timeout in seconds of the reachability check of the server."
    )

    def to_config(self) -> MlflowConfig:
        """The block's settings as an :class:`~mlops_tasks.settings.MlflowConfig`.

        Example:
            ```python
            config = MlflowServer(tracking_uri="http://127.0.0.1:5000").to_config()
            assert config.tracking_uri == "http://127.0.0.1:5000"
            ```
        """
        return MlflowConfig(
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            experiment_name=self.experiment_name,
            artifact_location=self.artifact_location,
            token=self.token,
            username=self.username,
            password=self.password,
            request_timeout_s=self.request_timeout_s,
        )


class DeployTarget(Block):
    """Where an endpoint's slots and router run, and the endpoint's name and ports.

    Converts to the ``target`` kind and :class:`~mlops_tasks.deploy.models.EndpointSpec`
    the deployment pipeline uses; flows name it in
    ``DeploymentPipelineParams(target_block="<name>")``.

    Attributes:
        kind: ``local`` processes or ``docker`` containers.
        docker_host: Docker daemon URL for the docker kind.
        endpoint_name: Endpoint name.
        host: Interface the router listens on.
        port: Port clients use.
        preview_port: Port that reaches the idle slot.
        replicas: Model servers per slot.
        router_image: HAProxy image of the docker kind.
        server_image: Model image repository of the docker kind.

    Example:
        ```python
        from mlops_tasks.blocks import DeployTarget
        target = DeployTarget.load("BLOCK_NAME")
        kind, endpoint = target.kind, target.endpoint_spec()
        ```
    """

    _block_type_name = "Deploy Target"
    _block_type_slug = "deploy-target"
    _logo_url = _HAPROXY_LOGO
    _documentation_url = _HAPROXY_DOCS
    _description = "Where a model endpoint's blue and green slots and its HAProxy router run."
    _code_example = """
    ```python
    from mlops_tasks.blocks import DeployTarget
    deploy_target = DeployTarget.load("BLOCK_NAME")
    endpoint = deploy_target.endpoint_spec()
    ```
    """

    kind: Literal["local", "docker"] = Field(
        "local", description="Target kind: local processes or docker containers."
    )
    docker_host: str | None = Field(
        None,
        description="Docker daemon URL for the docker kind (DOCKER_HOST form, e.g. "
        "unix:///var/run/docker.sock); empty: the environment's.",
    )
    endpoint_name: str = Field(
        "churn", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$", description="Endpoint name (keys ports and state)."
    )
    host: str = Field("127.0.0.1", description="Interface the router listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port clients use.")
    preview_port: int | None = Field(
        None, ge=1, le=65535, description="Port that always reaches the idle slot; empty: port + 1."
    )
    replicas: int = Field(1, ge=1, le=16, description="Model-server processes or containers per slot.")
    router_image: str | None = Field(
        None, description="HAProxy image for the docker kind; empty: the target's default (haproxy:lts)."
    )
    server_image: str | None = Field(
        None, description="Repository of model images for the docker kind; empty: the build's default."
    )

    def endpoint_spec(self) -> EndpointSpec:
        """The endpoint this target serves.

        Example:
            ```python
            spec = DeployTarget(endpoint_name="churn", port=9000).endpoint_spec()
            assert spec.preview == 9001
            ```
        """
        return EndpointSpec(
            name=self.endpoint_name,
            host=self.host,
            port=self.port,
            preview_port=self.preview_port,
            replicas=self.replicas,
        )

    def docker_options(self) -> dict[str, Any]:
        """The docker kind's settings that are set (``docker_host``, ``router_image``, ``server_image``)."""
        values = {
            "docker_host": self.docker_host,
            "router_image": self.router_image,
            "server_image": self.server_image,
        }
        return {key: value for key, value in values.items() if value is not None}


def _mlflow_block_config(name: str) -> MlflowConfig:
    return load_block(MlflowServer, name).to_config()


def _s3_block_config(name: str) -> S3Config:
    from prefect_aws import AwsCredentials

    return S3Config.from_block(load_block(AwsCredentials, name))


def resolve_mlflow_block(config: MlflowConfig | None) -> MlflowConfig | None:
    """``config`` with the named :class:`MlflowServer` block's values filled in; names no block.

    Args:
        config: Settings that may name a block; fields set here win over the block's.

    Returns:
        Plain settings for core code (``None`` stays ``None``).

    Raises:
        BlockNotFoundError: No MLflow Server block has that name.
        ServiceUnavailableError: The Prefect API did not answer.

    Example:
        ```python
        from mlops_tasks.blocks import resolve_mlflow_block
        from mlops_tasks.settings import MlflowConfig
        plain = resolve_mlflow_block(MlflowConfig(block="prod", experiment_name="churn"))
        ```
    """
    if config is None or not config.block:
        return config
    return _mlflow_block_config(config.block).model_copy(update=config.explicit_values())


def resolve_s3_block(config: S3Config | None) -> S3Config | None:
    """``config`` with the named prefect-aws ``AwsCredentials`` block's values filled in.

    Args:
        config: Settings that may name a block; fields set here win over the block's.

    Returns:
        Plain settings for core code that name no block (``None`` stays ``None``).

    Raises:
        BlockNotFoundError: No ``AwsCredentials`` block has that name.
        ServiceUnavailableError: The Prefect API did not answer.
    """
    if config is None or not config.block:
        return config
    explicit = config.model_dump(exclude={"block"}, exclude_none=True)
    base = _s3_block_config(config.block)
    if config.aws_access_key_id is None and base.aws_access_key_id is not None:
        explicit["keys_from_block"] = config.block
    return base.model_copy(update=explicit)


def resolve_config_blocks(value: Any) -> Any:
    """``value`` with every :class:`MlflowConfig` / :class:`S3Config` in it resolved to plain settings.

    Walks pydantic models (e.g. a ``DatasetSpec`` holding an ``S3Config``), lists, tuples and
    dicts; a model is copied only when something in it changed. The tasks call it on their
    arguments so core code never sees a block name.

    Args:
        value: Any argument of a task.

    Returns:
        The same value, or a copy whose configs name no block.

    Raises:
        BlockNotFoundError: A named block does not exist.
        ServiceUnavailableError: The Prefect API did not answer.

    Example:
        ```python
        from mlops_tasks.blocks import resolve_config_blocks
        from mlops_tasks.data import DatasetSpec
        from mlops_tasks.settings import S3Config
        spec = resolve_config_blocks(DatasetSpec(uri="s3://data/x.csv", s3=S3Config(block="minio")))
        assert spec.s3.block is None
        ```
    """
    if isinstance(value, MlflowConfig):
        return resolve_mlflow_block(value)
    if isinstance(value, S3Config):
        return resolve_s3_block(value)
    if isinstance(value, BaseModel):
        update = {}
        for name in type(value).model_fields:
            current = getattr(value, name, None)
            resolved = resolve_config_blocks(current)
            if resolved is not current:
                update[name] = resolved
        return value.model_copy(update=update) if update else value
    if isinstance(value, list | tuple):
        items = [resolve_config_blocks(item) for item in value]
        changed = any(new is not old for new, old in zip(items, value, strict=True))
        return type(value)(items) if changed else value
    if isinstance(value, dict):
        resolved_items = {key: resolve_config_blocks(item) for key, item in value.items()}
        changed = any(resolved_items[key] is not item for key, item in value.items())
        return resolved_items if changed else value
    return value
