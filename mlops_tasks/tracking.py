"""MLflow connection helpers shared by training, evaluation and the registry.

Core code talks to MLflow through an explicit :class:`mlflow.MlflowClient`.
Logging a model still goes through MLflow's fluent API (``mlflow.sklearn.log_model``
needs an active run), so :func:`mlflow_session` sets the tracking and registry
URIs for the duration of a block, under a lock, and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlops_tasks.errors import ConfigurationError, ServiceUnavailableError
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig, resolve_mlflow_config

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

_session_lock = threading.RLock()
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
#: Credentials MLflow's REST client reads from the environment on every request.
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def _credential_env(config: ResolvedMlflowConfig) -> dict[str, str]:
    """The MLflow credential variables ``config`` sets (empty: MLflow reads the environment)."""
    values = {
        "MLFLOW_TRACKING_TOKEN": config.token.get_secret_value() if config.token else None,
        "MLFLOW_TRACKING_USERNAME": config.username,
        "MLFLOW_TRACKING_PASSWORD": config.password.get_secret_value() if config.password else None,
    }
    return {name: value for name, value in values.items() if value}


def check_tracking_server(config: ResolvedMlflowConfig) -> None:
    """Fail fast with a clear error when an HTTP tracking server does not answer.

    MLflow's own client retries for minutes before giving up; this check asks
    the server's ``/health`` once with a short timeout instead.

    Raises:
        ServiceUnavailableError: The server did not answer ``/health`` with 200.
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
    if scheme not in {"sqlite", "file", "postgresql", "mysql", "mssql", "databricks"} and "/" not in uri[:1]:
        raise ConfigurationError(
            f"MLflow tracking URI {uri!r} has an unknown scheme {scheme!r}; use http(s)://, "
            "sqlite:///path or a database URL."
        )


def resolve_and_check(config: MlflowConfig | None = None) -> ResolvedMlflowConfig:
    """Resolve ``config`` (argument > environment > default) and check the server answers."""
    resolved = resolve_mlflow_config(config)
    check_tracking_server(resolved)
    return resolved


def get_client(config: ResolvedMlflowConfig) -> MlflowClient:
    """An MLflow client bound to the resolved tracking and registry URIs."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


@contextlib.contextmanager
def mlflow_session(config: ResolvedMlflowConfig) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at ``config`` for a block; restore the old URIs after.

    Credentials in ``config`` (token, or username and password) are exported as
    ``MLFLOW_TRACKING_TOKEN`` / ``..._USERNAME`` / ``..._PASSWORD`` for the block only,
    since MLflow's REST client reads them from the environment.

    Yields:
        A client bound to the same URIs.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _session_lock:
        # The URIs as *set* (None when never set), not as resolved: restoring a resolved
        # default would pin it, and later calls would miss MLFLOW_* variables set after.
        previous_tracking = tracking_utils._tracking_uri
        previous_registry = registry_utils._registry_uri
        # set_tracking_uri also exports MLFLOW_TRACKING_URI; keep the caller's environment as it was.
        credentials = _credential_env(config)
        saved_env = {name: os.environ.get(name) for name in (*_URI_VARIABLES, *credentials)}
        os.environ.update(credentials)
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.registry_uri)
        try:
            yield get_client(config)
        finally:
            mlflow.set_tracking_uri(previous_tracking)
            mlflow.set_registry_uri(previous_registry)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def ensure_experiment(client: MlflowClient, config: ResolvedMlflowConfig) -> str:
    """Return the id of the configured experiment, creating it if needed."""
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigurationError(
                f"MLflow experiment {config.experiment_name!r} is deleted; restore it "
                "(mlflow experiments restore) or choose another experiment_name."
            )
        return experiment.experiment_id
    logger.info("Creating MLflow experiment %s", config.experiment_name)
    return client.create_experiment(
        config.experiment_name, artifact_location=config.artifact_location
    )
