"""MLflow connections: explicit clients built from configuration, no process-wide state.

Core code talks to MLflow only through an :class:`mlflow.MlflowClient` built by
:func:`get_client` from a :class:`~mlops_tasks.settings.ResolvedMlflowConfig` and passed
along. Credentials reach MLflow through the ``mlops-tasks`` request-auth provider
(:mod:`mlops_tasks.mlflow_auth`), never through the process environment. Models are read
with :func:`load_sklearn_model` / :func:`load_pyfunc_model`, which download with explicit
tracking and registry URIs and load from the local copy, so MLflow's global URIs are never
read or set: two pipelines with different servers can run in one process at once.
Nothing here uses MLflow's fluent API (``mlflow.start_run``, ``mlflow.set_tracking_uri``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_tasks.databases import check_database, is_postgres_uri
from mlops_tasks.errors import ConfigurationError, ServiceUnavailableError
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig, resolve_mlflow_config

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "artifact_location",
    "check_tracking_server",
    "connect",
    "fetch_model",
    "ensure_experiment",
    "get_client",
    "load_pyfunc_model",
    "load_sklearn_model",
    "log_sklearn_model",
    "resolve_and_check",
    "sklearn_model_requirements",
]

logger = logging.getLogger(__name__)


def check_tracking_server(config: ResolvedMlflowConfig) -> None:
    """Fail fast with a clear error when an HTTP tracking server does not answer.

    MLflow's own client retries for minutes before giving up; this check asks
    the server's ``/health`` once with a short timeout instead.

    A PostgreSQL tracking URI (``postgresql+psycopg2://...``) is checked by connecting once
    (:func:`mlops_tasks.databases.check_database`).

    Raises:
        ServiceUnavailableError: The server did not answer ``/health`` with 200.
        DatabaseUnavailableError: The PostgreSQL store did not answer.
        DatabaseAuthError: The PostgreSQL store refused the user or password.
        ConfigurationError: The tracking URI uses a scheme MLflow does not know.
    """
    uri = config.tracking_uri
    scheme = uri.split(":", 1)[0].lower()
    if scheme in {"http", "https"}:
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=config.request_timeout_s) as response:
                if response.status == 200:
                    return
                problem = f"answered {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"answered {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = f"did not answer ({getattr(exc, 'reason', exc)})"
        raise ServiceUnavailableError(
            f"MLflow tracking server {uri} {problem} on /health; start it (mlflow server ...) "
            "or point MLFLOW_TRACKING_URI / MlflowConfig.tracking_uri at a running one."
        )
    if is_postgres_uri(uri):
        check_database(uri, service="MLflow tracking store", timeout_s=config.request_timeout_s)
        return
    known = {"sqlite", "file", "postgresql", "mysql", "mssql", "databricks"}
    if scheme.split("+", 1)[0] not in known and "/" not in uri[:1]:
        raise ConfigurationError(
            f"MLflow tracking URI {uri!r} has an unknown scheme {scheme!r}; use http(s)://, "
            "sqlite:///path or a database URL."
        )


def resolve_and_check(config: MlflowConfig | None = None) -> ResolvedMlflowConfig:
    """Resolve ``config`` (argument > block > environment > default) and check the server answers."""
    resolved = resolve_mlflow_config(config)
    check_tracking_server(resolved)
    return resolved


def get_client(config: ResolvedMlflowConfig) -> MlflowClient:
    """An MLflow client bound to the resolved tracking and registry URIs.

    The config's credentials (token, or username and password) are recorded for the
    ``mlops-tasks`` request-auth provider, which sends them to these servers only.

    Raises:
        ConfigurationError: ``MLFLOW_TRACKING_AUTH`` selects another auth provider while
            the config carries credentials.
    """
    from mlflow import MlflowClient

    if config.has_credentials:
        from mlops_tasks.mlflow_auth import register_credentials

        register_credentials(config)
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


def connect(config: MlflowConfig | None = None) -> tuple[ResolvedMlflowConfig, MlflowClient]:
    """Resolve and check ``config``, then build its client: the entry of every MLflow call.

    Returns:
        The resolved configuration and a client bound to it.

    Raises:
        ServiceUnavailableError: The tracking server did not answer.
        ConfigurationError: Bad tracking URI, or an unresolvable block.

    Example:
        ```python
        from mlops_tasks.tracking import connect
        resolved, client = connect()
        print(resolved.tracking_uri, client.search_experiments()[:1])
        ```
    """
    resolved = resolve_and_check(config)
    return resolved, get_client(resolved)


def artifact_location(client: MlflowClient, model_uri: str) -> str:
    """Where the artifacts of ``model_uri`` live, asked of ``client`` (not of MLflow's globals).

    MLflow's own ``models:/`` resolution reads the *global* registry URI, so ``models:/`` and
    ``runs:/`` URIs are resolved here with the explicit client first.

    Args:
        client: The client bound to the tracking server and registry.
        model_uri: ``models:/<model_id>``, ``models:/name/<version|latest>``,
            ``models:/name@alias``, ``runs:/<run_id>/path`` or any artifact URI.

    Returns:
        An artifact URI MLflow's artifact repositories read directly.
    """
    uri = model_uri
    for _ in range(3):  # a version's location may itself be a logged model's models:/ URI
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/") :].partition("/")
            artifact_uri: str = client.get_run(run_id).info.artifact_uri
            return artifact_uri.rstrip("/") + (f"/{path}" if path else "")
        if not uri.startswith("models:/"):
            return uri
        rest = uri[len("models:/") :].strip("/")
        version: str | None
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        else:
            name, _, version = rest.partition("/")
        if not version:  # models:/<model_id>
            uri = client.get_logged_model(name).artifact_location
        elif str(version).lower() == "latest":
            latest = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
            uri = client.get_model_version_download_uri(name, latest.version)
        else:
            uri = client.get_model_version_download_uri(name, version)
    return uri


def fetch_model(config: ResolvedMlflowConfig, model_uri: str, dst_path: str) -> str:
    """Download ``model_uri`` (``models:/...``, ``runs:/...``, any artifact URI) into ``dst_path``.

    The URI is resolved with an explicit client (:func:`artifact_location`) and downloaded
    with explicit tracking and registry URIs, so MLflow's global URIs are neither read nor set.

    Returns:
        The local folder holding the model.
    """
    import mlflow.artifacts

    location = artifact_location(get_client(config), model_uri)
    # The one process-wide write left: MLflow 3 reads this switch only from the environment
    # (MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() in mlflow.utils.file_utils.ArtifactProgressBar);
    # download_artifacts, the artifact repositories and mlflow.config offer no per-call or
    # documented setter. setdefault keeps a value the user set; it is not a credential and
    # changes no URI, only whether tqdm bars are drawn in task logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.artifacts.download_artifacts(
        artifact_uri=location,
        dst_path=dst_path,
        tracking_uri=config.tracking_uri,
        registry_uri=config.registry_uri,
    )


def load_sklearn_model(config: ResolvedMlflowConfig, model_uri: str) -> Any:
    """Load a scikit-learn model logged to the MLflow that ``config`` names.

    Example:
        ```python
        from mlops_tasks.tracking import load_sklearn_model, resolve_and_check
        model = load_sklearn_model(resolve_and_check(), "models:/churn-classifier@champion")
        ```
    """
    import mlflow.sklearn

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        return mlflow.sklearn.load_model(fetch_model(config, model_uri, tmp))


def load_pyfunc_model(config: ResolvedMlflowConfig, model_uri: str) -> Any:
    """Load a model as an MLflow pyfunc from the MLflow that ``config`` names."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        return mlflow.pyfunc.load_model(fetch_model(config, model_uri, tmp))


def ensure_experiment(client: MlflowClient, config: ResolvedMlflowConfig) -> str:
    """Return the id of the configured experiment, creating it if needed.

    Raises:
        ConfigurationError: The experiment exists but is deleted.
    """
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigurationError(
                f"MLflow experiment {config.experiment_name!r} is deleted; restore it "
                "(mlflow experiments restore) or choose another experiment_name."
            )
        return experiment.experiment_id
    from mlflow.exceptions import MlflowException

    logger.info("Creating MLflow experiment %s", config.experiment_name)
    try:
        return client.create_experiment(config.experiment_name, artifact_location=config.artifact_location)
    except MlflowException:
        # Two tasks (threads or processes) may create it at the same moment: the loser reads
        # the winner's experiment; any other failure is raised as it was.
        experiment = client.get_experiment_by_name(config.experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


#: What loading any scikit-learn model saved by MLflow (skops or pickle) needs.
_SKLEARN_MODEL_BASE = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "cloudpickle")


class _ModuleRecorder(pickle.Pickler):
    """A pickler that writes nothing and records the module of every object it would save."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
        module = getattr(owner, "__module__", None)
        if isinstance(module, str):
            self.modules.add(module)
        return NotImplemented  # pickle it as usual: its parts are recorded in turn


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


@functools.cache
def _distributions_by_module() -> Mapping[str, list[str]]:
    """Top-level module -> installed distributions (read once: it scans every package's metadata)."""
    return importlib.metadata.packages_distributions()


def sklearn_model_requirements(model: Any) -> list[str] | None:
    """The pip requirements of a fitted scikit-learn model, pinned to this environment's versions.

    The distributions of every module whose classes or functions the model holds (found by
    pickling it into nothing), plus what loading a scikit-learn model needs. MLflow's own
    inference loads the model in a subprocess and lists every package imported meanwhile
    (seconds per model, and it picks up whatever the process had imported: test runners,
    terminal libraries), which then end up in the model's image.

    Args:
        model: The fitted estimator or pipeline.

    Returns:
        Sorted ``name==version`` lines, or None when the model cannot be pickled (then MLflow
        infers them).

    Example:
        ```python
        sklearn_model_requirements(pipeline)  # ['numpy==2.4.6', ..., 'scikit-learn==1.9.1', ...]
        ```
    """
    recorder = _ModuleRecorder()
    try:
        recorder.dump(model)
    except Exception as exc:  # noqa: BLE001 - an unpicklable model: MLflow infers instead
        logger.warning(
            "Could not list the modules of %s (%s); MLflow infers its requirements", type(model), exc
        )
        return None
    by_module = _distributions_by_module()
    names = set(_SKLEARN_MODEL_BASE)
    for top in {module.partition(".")[0] for module in recorder.modules}:
        names.update(by_module.get(top, ()))
    pinned = []
    for name in sorted(names, key=str.lower):
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pinned


def log_sklearn_model(
    client: MlflowClient,
    model: Any,
    *,
    experiment_id: str,
    run_id: str,
    name: str = "model",
    signature: Any = None,
    input_example: Any = None,
    skops_trusted_types: list[str] | None = None,
) -> str:
    """Log a scikit-learn model as an MLflow 3 *logged model* of ``run_id``, through ``client``.

    The client's logged-model calls (``create_logged_model``, ``log_outputs``,
    ``log_model_artifacts``, ``finalize_logged_model``) replace ``mlflow.sklearn.log_model``,
    which needs a fluent active run and MLflow's global tracking URI. The model is saved
    with ``mlflow.sklearn.save_model`` into a temporary folder (no global state) and uploaded;
    its pip requirements are :func:`sklearn_model_requirements` (MLflow infers them only when
    the model cannot be pickled).

    Returns:
        The model id (its URI is ``models:/<id>``).

    Raises:
        mlflow.exceptions.MlflowException: MLflow refused a call; the logged model is
            marked ``FAILED``.
    """
    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    logged = client.create_logged_model(experiment_id=experiment_id, name=name, source_run_id=run_id)
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        description = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        )
        with tempfile.TemporaryDirectory(prefix="mlops-log-") as tmp:
            local = os.path.join(tmp, name)
            mlflow.sklearn.save_model(
                model,
                local,
                mlflow_model=description,
                signature=signature,
                input_example=input_example,
                skops_trusted_types=skops_trusted_types,
                pip_requirements=sklearn_model_requirements(model),
            )
            client.log_model_artifacts(logged.model_id, local)
    except Exception:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id
