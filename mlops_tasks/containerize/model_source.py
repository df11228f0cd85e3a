"""The registered model version an image is built from: look it up, download its folder."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_tasks.containerize.constants import METADATA_FILE
from mlops_tasks.containerize.models import ModelSource
from mlops_tasks.errors import ConfigurationError, ModelNotFoundError, RegistryError
from mlops_tasks.registry import check_model_name, get_alias_version, get_model_version
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tracking import fetch_model, get_client, resolve_and_check

__all__ = ["download_model", "resolve_model_source"]


def _find_version(client: Any, model_name: str, version: int | str) -> Any:
    if isinstance(version, str) and not version.isdigit():
        mv = get_alias_version(client, model_name, version)
        if mv is None:
            raise ModelNotFoundError(f"Model {model_name!r} has no alias {version!r}.")
        return mv
    if int(version) < 1:
        raise ConfigurationError(f"Model versions start at 1, got {version}.")
    return get_model_version(client, model_name, int(version))


def resolve_model_source(
    model_name: str, version: int | str, mlflow_config: MlflowConfig | None
) -> tuple[ModelSource, Any]:
    """Look up a registered version (by number or alias) in the MLflow model registry.

    Args:
        model_name: Registered model name.
        version: Version number, or an alias such as ``"champion"``.
        mlflow_config: Where MLflow lives (argument > environment > default).

    Returns:
        The version's :class:`ModelSource` and the resolved MLflow configuration
        (pass it to :func:`download_model`).

    Raises:
        ModelNotFoundError: The model, version or alias does not exist.
        ConfigurationError: Bad name or a version below 1.

    Example:
        ```python
        source, resolved = resolve_model_source("churn", "champion", None)
        ```
    """
    check_model_name(model_name)
    resolved = resolve_and_check(mlflow_config)
    mv = _find_version(get_client(resolved), model_name, version)
    created = None
    if getattr(mv, "creation_timestamp", None):
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
    gate = mv.tags.get("mlops.gate.passed")
    source = ModelSource(
        name=model_name,
        version=int(mv.version),
        run_id=mv.run_id,
        data_fingerprint=mv.tags.get("mlops.data_fingerprint"),
        gate_passed=None if gate is None else gate == "true",
        created=created,
    )
    return source, resolved


def download_model(source: ModelSource, resolved: Any, dst: Path) -> None:
    """Copy the version's MLflow model folder to ``dst`` and add ``serving-model.json``.

    Args:
        source: The version, from :func:`resolve_model_source`.
        resolved: The resolved MLflow configuration returned with it.
        dst: Folder to write (replaced when it exists).

    Raises:
        RegistryError: The MLflow model registry has no files for the version, or no ``MLmodel``.

    Example:
        ```python
        download_model(source, resolved, Path("/tmp/ctx/model"))
        ```
    """
    if dst.exists():
        shutil.rmtree(dst)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        try:
            local = Path(fetch_model(resolved, f"models:/{source.name}/{source.version}", tmp))
        except Exception as exc:
            raise RegistryError(
                f"Downloading {source.name!r} version {source.version} failed: {exc}"
            ) from exc
        if not (local / "MLmodel").exists():
            raise RegistryError(f"{source.name!r} version {source.version} has no MLmodel file at {local}.")
        shutil.copytree(local, dst)
    meta = {"name": source.name, "version": str(source.version), "run_id": source.run_id}
    (dst / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
