"""Reading the MLflow model registry: model names, versions and the ``champion`` alias.

The read helpers every stage needs (evaluation compares with the champion, monitoring and
scoring read the live version, containerize the version to build); the writes (register,
promote, roll back) live in :mod:`mlops_tasks.registry`, which re-exports these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_tasks.errors import ConfigurationError, ModelNotFoundError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TAG_CHAMPION_VERSION",
    "check_model_name",
    "get_alias_version",
    "get_champion",
    "get_model_version",
    "is_not_found",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_CHAMPION_VERSION = "mlops.champion_version"


def check_model_name(name: str) -> str:
    """Refuse empty or malformed registered-model names before any I/O."""
    if not name or not name.strip() or "/" in name or name != name.strip():
        raise ConfigurationError(
            f"Registered model name {name!r} is not usable: give a non-empty name without "
            "slashes or surrounding spaces, e.g. 'churn-classifier'."
        )
    return name


def is_not_found(exc: Exception) -> bool:
    """Whether an ``MlflowException`` says the object does not exist."""
    code = getattr(exc, "error_code", "")
    return "RESOURCE_DOES_NOT_EXIST" in str(code) or "not found" in str(exc).lower()


def get_model_version(client: MlflowClient, name: str, version: int | str) -> Any:
    """Fetch a version or raise :class:`ModelNotFoundError` naming it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if is_not_found(exc):
            raise ModelNotFoundError(
                f"Model {name!r} has no version {version} (deleted or never registered); "
                "list versions with `mlflow models` or the MLflow UI."
            ) from exc
        raise RegistryError(f"Reading {name!r} version {version} failed: {exc}") from exc


def get_alias_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    """The version holding ``alias``, or ``None`` when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise RegistryError(f"Reading alias {alias!r} of model {name!r} failed: {exc}") from exc


def get_champion(client: MlflowClient, name: str) -> Any | None:
    """The champion version of ``name``, ``None`` when there has never been one.

    Raises:
        ModelNotFoundError: A champion was recorded but its version is gone
            (deleted), so comparing against production is impossible.
    """
    from mlflow.exceptions import MlflowException

    champion = get_alias_version(client, name, CHAMPION)
    if champion is not None:
        return champion
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise RegistryError(f"Reading registered model {name!r} failed: {exc}") from exc
    recorded = model.tags.get(TAG_CHAMPION_VERSION)
    if recorded:
        raise ModelNotFoundError(
            f"The champion of model {name!r} was version {recorded}, which no longer exists "
            "(deleted), so the alias 'champion' points nowhere. Promote an existing version "
            f"with promote_model({name!r}, <version>, force=True), or evaluate with "
            "compare_to_champion=False."
        )
    return None
