"""One exception tree for the whole library.

Every error raised on purpose by mlops-tasks derives from :class:`MLOpsError`.
Messages name the object at fault (a file, a column, a model version) and say
what to do next. Errors from lower layers (pandas, boto3, MLflow, Great
Expectations) are translated at the boundary with ``raise ... from exc`` so the
original traceback stays attached.

Families:

- :class:`ConfigurationError`: a parameter or setting is wrong; fix the input.
- :class:`DataError`: a dataset cannot be read or has the wrong shape.
- :class:`DataValidationError`: Great Expectations found the data bad.
- :class:`TrainingError`: the estimator or its parameters cannot be used.
- :class:`EvaluationError` / :class:`QualityGateError`: the candidate cannot be
  evaluated, or failed its gate.
- :class:`RegistryError`: the MLflow model registry refused or lacks something.
- :class:`ContainerRegistryError`: a container (Docker/OCI) registry refused a push.
- :class:`EndpointDeployError`: a model endpoint's rollout failed or was rolled back (also
  :class:`AbTestError`: an A/B test cannot start, be evaluated or end as asked).
- :class:`OrchestrationError`: Prefect deployments, work pools or automations (a *Prefect
  deployment* is not a model endpoint's rollout).
- :class:`ClusterError`: a Dask cluster cannot be reached or its workers cannot run the job.
- :class:`ServiceUnavailableError`: a server (MLflow, S3, a Dask scheduler, PostgreSQL) did not
  answer; these are the only errors worth retrying.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "AbTestError",
    "AbTestNotFoundError",
    "AbTestRunningError",
    "OutcomesJoinError",
    "BaseImageNotFoundError",
    "BlockNotFoundError",
    "CandidateUnhealthyError",
    "ClusterError",
    "ClusterUnavailableError",
    "ConfigurationError",
    "ContainerRegistryAuthError",
    "ContainerRegistryError",
    "ContainerRegistryUnreachableError",
    "ContainerRepositoryNotFoundError",
    "ContainerizeError",
    "DataError",
    "DataValidationError",
    "DatabaseAuthError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DatasetNotFoundError",
    "EndpointDeployError",
    "DockerUnavailableError",
    "DriftError",
    "EmptyDatasetError",
    "EndpointBusyError",
    "EndpointNotFoundError",
    "EndpointPortError",
    "EstimatorError",
    "EvaluationError",
    "GuardBreachError",
    "ImageBuildError",
    "ImageVerificationError",
    "InvalidInputError",
    "MLOpsError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelServerError",
    "NoCommonColumnsError",
    "OrchestrationError",
    "PredictionLogError",
    "PrefectDeploymentNotFoundError",
    "PrefectUnavailableError",
    "PromotionRefusedError",
    "QualityGateError",
    "ReferenceDataNotFoundError",
    "RegistryError",
    "RollbackError",
    "RolloutError",
    "RouterConfigError",
    "RouterError",
    "SchemaError",
    "ServiceUnavailableError",
    "SlotStartError",
    "SmokeTestError",
    "StorageError",
    "TrainingError",
    "TransientError",
    "UnverifiedImageError",
    "WheelhouseError",
    "WorkerEnvironmentError",
    "WorkPoolNotFoundError",
    "is_transient",
]


class MLOpsError(Exception):
    """Base class of every error raised on purpose by mlops-tasks."""


class TransientError(MLOpsError):
    """Marks errors that may go away on retry (network, a server restarting)."""


class ConfigurationError(MLOpsError, ValueError):
    """A parameter, setting or spec is invalid; nothing was done."""


class BlockNotFoundError(ConfigurationError):
    """A Prefect block named in the parameters does not exist on the Prefect API."""


# --- data -------------------------------------------------------------------


class DataError(MLOpsError):
    """A dataset cannot be read or does not have the expected shape."""


class DatasetNotFoundError(DataError):
    """The file, bucket or object named by a dataset URI does not exist."""


class EmptyDatasetError(DataError):
    """The dataset was read but holds no rows (or no columns)."""


class SchemaError(DataError):
    """Columns are missing, renamed or of the wrong type for this step."""


class DataValidationError(DataError):
    """Great Expectations validation failed; ``report`` holds the details."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


# --- training and evaluation -------------------------------------------------


class TrainingError(MLOpsError):
    """Training could not run (bad estimator, rejected params, bad target)."""


class EstimatorError(TrainingError, ConfigurationError):
    """The estimator import path or its parameters are unusable."""


class EvaluationError(MLOpsError):
    """The candidate or the champion could not be evaluated on the holdout."""


class QualityGateError(EvaluationError):
    """The candidate failed its quality gate; ``report`` holds the verdict."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


# --- registry -----------------------------------------------------------------


class RegistryError(MLOpsError):
    """The MLflow model registry refused an operation or lacks an object."""


class ModelNotFoundError(RegistryError):
    """A registered model, version or alias does not exist (or was deleted)."""


class PromotionRefusedError(RegistryError):
    """A version cannot be promoted or rolled back in its current state."""


# --- services -------------------------------------------------------------------


class ServiceUnavailableError(TransientError):
    """A server (MLflow tracking server, S3 endpoint) did not answer in time."""


class StorageError(DataError):
    """Object storage refused a request (credentials, permissions, endpoint)."""


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` is worth retrying (used by task retry conditions)."""
    return isinstance(exc, TransientError)


# --- added by serving ---


class ModelServerError(MLOpsError):
    """The model server cannot start or cannot answer a request."""


class ModelLoadError(ModelServerError):
    """The model named by a URI or folder cannot be found, fetched or deserialized."""


class InvalidInputError(ModelServerError, SchemaError):
    """A prediction request is malformed or does not match the model signature.

    ``status`` is the HTTP status the server answers with (400, 413 or 422) and
    ``columns`` names the offending columns, when there are any.
    """

    def __init__(self, message: str, status: int = 400, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.columns = list(columns or [])


class PredictionLogError(ModelServerError, StorageError):
    """The prediction log sink cannot be written or read."""


# --- added by containerize ---


class ContainerizeError(MLOpsError):
    """Building, verifying or pushing a model image failed."""


class ImageBuildError(ContainerizeError):
    """``docker build`` failed; ``step`` is the failing Dockerfile step, ``log_tail`` its last lines."""

    def __init__(self, message: str, step: str | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.log_tail = log_tail


class WheelhouseError(ImageBuildError, ConfigurationError):
    """A requirement cannot be resolved into wheels for the image's platform; ``package`` names it."""

    def __init__(self, message: str, package: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, step="wheelhouse", log_tail=log_tail)
        self.package = package


class BaseImageNotFoundError(ImageBuildError, ConfigurationError):
    """The base image is not on the engine and cannot be pulled."""


class DockerUnavailableError(ServiceUnavailableError, ContainerizeError):
    """No Docker engine answers at the configured address (retried: it may be starting)."""


# The container-registry family. Its first names (RegistryPushError, RegistryUnreachableError,
# RegistryAuthError, RepositoryNotFoundError) read like the MLflow *model* registry's
# RegistryError, which they are not: they stay importable for one minor release, with a
# DeprecationWarning (module __getattr__ at the end), and the new classes subclass them so
# existing ``except`` clauses still catch what is raised now.


class RegistryPushError(ContainerizeError):
    """Deprecated name of :class:`ContainerRegistryError`."""


class RegistryUnreachableError(RegistryPushError, ServiceUnavailableError):
    """Deprecated name of :class:`ContainerRegistryUnreachableError`."""


class RegistryAuthError(RegistryPushError):
    """Deprecated name of :class:`ContainerRegistryAuthError`."""


class RepositoryNotFoundError(RegistryPushError):
    """Deprecated name of :class:`ContainerRepositoryNotFoundError`."""


class ContainerRegistryError(RegistryPushError):
    """A container (Docker/OCI) registry refused a push.

    Not the MLflow model registry (:class:`RegistryError`).
    """


class ContainerRegistryUnreachableError(ContainerRegistryError, RegistryUnreachableError):
    """The container registry host is unknown or does not answer."""


class ContainerRegistryAuthError(ContainerRegistryError, RegistryAuthError):
    """The container registry refused the credentials (or needs some and got none)."""


class ContainerRepositoryNotFoundError(ContainerRegistryError, RepositoryNotFoundError):
    """The container registry has no such repository (e.g. an ECR repository not created yet)."""


class ImageVerificationError(ContainerizeError):
    """The image did not become healthy or its predictions differ from in-process ones."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


# --- added by drift ---


class DriftError(MLOpsError):
    """A drift check cannot run on the data or model it was given."""


class ReferenceDataNotFoundError(DriftError, DataError):
    """The model version records no reference data (no ``reference/train.parquet`` on its run)."""


class NoCommonColumnsError(DriftError, SchemaError):
    """Reference and current data share no feature column, so nothing can be compared."""


# --- added by deploy ---


class DeploymentError(MLOpsError):
    """Deprecated name of :class:`EndpointDeployError`."""

    def __init__(self, message: str, record: Any = None) -> None:
        super().__init__(message)
        self.record = record


class EndpointDeployError(DeploymentError):
    """A model endpoint's rollout (blue-green, canary, linear, shadow) failed to start, finish or roll back.

    Not a Prefect deployment (see :class:`PrefectDeploymentNotFoundError`). ``record`` holds
    the :class:`~mlops_tasks.deploy.models.DeploymentRecord` of the attempt when there is one
    (its timeline says which step failed).
    """


class RouterError(EndpointDeployError):
    """The HAProxy router cannot be started, reached or told what to do."""


class RouterConfigError(RouterError, ConfigurationError):
    """HAProxy rejected a rendered configuration (``haproxy -c`` failed); nothing was applied."""


class EndpointSecurityError(EndpointDeployError, ConfigurationError):
    """An endpoint's TLS or API-key settings are wrong (raised before anything changes live).

    A certificate that does not match its key or has expired, a missing or unreadable key
    file, an unknown key name.
    """


class SecretBlockNotFoundError(EndpointSecurityError, BlockNotFoundError):
    """A Prefect Secret block named in an endpoint's security settings does not exist."""


class EndpointBusyError(EndpointDeployError):
    """Another deployment of the same endpoint holds its lock; wait for it to finish."""


class EndpointNotFoundError(EndpointDeployError, ConfigurationError):
    """No endpoint of that name was ever deployed from this state folder (or the name is malformed)."""


class EndpointPortError(EndpointDeployError):
    """A port the endpoint needs (endpoint, preview or a slot) is taken by another program."""


class SlotStartError(EndpointDeployError):
    """The idle slot (green) did not start or never became healthy; blue keeps serving."""


class UnverifiedImageError(SlotStartError):
    """The docker target refused a model image that did not pass ``verify_model_image``."""


class SmokeTestError(EndpointDeployError):
    """Green's predictions through the preview port differ from the registered model's."""


class RolloutError(EndpointDeployError):
    """The traffic shift was stopped and all traffic went back to blue."""


class GuardBreachError(RolloutError):
    """The bake guard saw green's 5xx share or p95 latency over its limit (automatic rollback)."""


class CandidateUnhealthyError(GuardBreachError):
    """The candidate slot died, hung, was marked DOWN by the router or was not found serving the live port.

    All traffic went back to the old slot, which stayed warm for this.
    """


class RollbackError(EndpointDeployError):
    """A manual rollback had nothing to go back to, or could not put it back."""


class AbTestError(EndpointDeployError):
    """An A/B test cannot start, be evaluated or end as asked; the endpoint keeps serving."""


class AbTestRunningError(AbTestError, EndpointBusyError):
    """An A/B test runs on the endpoint: a second test, a deployment or a retrain must wait for its end."""


class AbTestNotFoundError(AbTestError, ConfigurationError):
    """No A/B test runs on the endpoint named."""


class OutcomesJoinError(DataError):
    """An A/B test's outcomes dataset joins no logged request or subject (wrong keys or window)."""


# --- databases (PostgreSQL behind MLflow and Prefect) ---


class DatabaseError(MLOpsError):
    """The PostgreSQL database behind a server (MLflow tracking store, Prefect server) is unusable."""


class DatabaseUnavailableError(DatabaseError, ServiceUnavailableError):
    """Nothing answered at the database's host and port, or the database does not exist."""


class DatabaseAuthError(DatabaseError, ConfigurationError):
    """The database answered but refused the user or password; fix the connection URL."""


# --- added by cluster (Dask) ---


class ClusterError(MLOpsError):
    """A Dask cluster cannot be reached, or its workers cannot run the job they were given."""


class ClusterUnavailableError(ClusterError, ServiceUnavailableError):
    """No Dask scheduler answered at the configured address within the connect timeout."""


class WorkerEnvironmentError(ClusterError, ModelLoadError):
    """A Dask worker's libraries differ from the model's (e.g. another scikit-learn version).

    ``worker`` names the worker's address when known.
    """

    def __init__(self, message: str, worker: str | None = None) -> None:
        super().__init__(message)
        self.worker = worker

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.worker))


# --- orchestration (deployments, work pools, automations) ---


class OrchestrationError(MLOpsError):
    """Prefect deployments, work pools, blocks or automations are missing or misconfigured."""


class PrefectUnavailableError(OrchestrationError, ServiceUnavailableError):
    """The Prefect API (``PREFECT_API_URL``) does not answer; start the server or fix the URL."""


class WorkPoolNotFoundError(OrchestrationError, ConfigurationError):
    """A deployment names a work pool the Prefect server does not have; create it or pick another."""


class DeploymentNotFoundError(OrchestrationError, ConfigurationError):
    """Deprecated name of :class:`PrefectDeploymentNotFoundError`."""


class PrefectDeploymentNotFoundError(DeploymentNotFoundError):
    """An automation or a trigger names a Prefect deployment that does not exist (any more)."""


#: Deprecated name -> new name; the old classes leave the module namespace so that
#: ``from mlops_tasks.errors import RegistryPushError`` goes through :func:`__getattr__`.
_RENAMED = {
    "RegistryPushError": "ContainerRegistryError",
    "RegistryUnreachableError": "ContainerRegistryUnreachableError",
    "RegistryAuthError": "ContainerRegistryAuthError",
    "RepositoryNotFoundError": "ContainerRepositoryNotFoundError",
    "DeploymentError": "EndpointDeployError",
    "DeploymentNotFoundError": "PrefectDeploymentNotFoundError",
}
_WHY_RENAMED = {
    **dict.fromkeys(
        ["RegistryPushError", "RegistryUnreachableError", "RegistryAuthError", "RepositoryNotFoundError"],
        "it is a container-registry error, not a model registry one",
    ),
    "DeploymentError": "it is a model endpoint's rollout error, not a Prefect deployment one",
    "DeploymentNotFoundError": "it is about a Prefect deployment, not a model endpoint",
}
_DEPRECATED_CLASSES: dict[str, type[MLOpsError]] = {old: globals().pop(old) for old in _RENAMED}


def __getattr__(name: str) -> Any:
    """Old names of renamed errors: the old class (still a base of the new one), with a warning."""
    if name in _DEPRECATED_CLASSES:
        warnings.warn(
            f"mlops_tasks.errors.{name} is deprecated ({_WHY_RENAMED[name]}); use "
            f"mlops_tasks.errors.{_RENAMED[name]}, which it still catches.",
            DeprecationWarning,
            stacklevel=2,
        )
        return _DEPRECATED_CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
