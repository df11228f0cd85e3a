"""The model on Dask workers: resolved once on the client, shipped once, loaded once per worker.

The client resolves an alias to a version **once** (an alias that moves during a long job does
not change the version the job scores with), downloads that version's MLflow model folder and
packs its files into a :class:`ModelPayload`. The payload is scattered to every worker once
(``client.scatter(..., broadcast=True)``); each worker unpacks and deserializes it on first use
and keeps the loaded estimator for the job's other partitions (:func:`load_on_worker`), so
workers need neither MLflow nor artifact-store credentials. A worker whose scikit-learn differs
from the one the model was saved with refuses it with
:class:`~mlops_tasks.errors.WorkerEnvironmentError` before unpickling anything.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_tasks.errors import ModelLoadError, ModelNotFoundError, WorkerEnvironmentError
from mlops_tasks.serving.model import ColumnSpec, ModelInfo, load_model_folder, parse_signature
from mlops_tasks.settings import MlflowConfig

__all__ = ["ModelPayload", "fetch_model_payload", "load_on_worker"]

logger = logging.getLogger(__name__)

#: Loaded estimators of this worker process, by payload digest (a few at most).
_LOADED: dict[str, Any] = {}
_MAX_LOADED = 2


@dataclass(frozen=True)
class ModelPayload:
    """One registered model version as bytes, ready to be scattered to Dask workers.

    Example:
        ```python
        payload = fetch_model_payload("churn-classifier", alias="champion")
        print(payload.version, payload.sklearn_version, [c.name for c in payload.columns])
        ```
    """

    name: str
    version: str
    run_id: str | None
    files: dict[str, bytes]
    digest: str
    sklearn_version: str | None
    columns: list[ColumnSpec]
    features: list[str]

    @property
    def label(self) -> str:
        """``<name> v<version>`` for messages."""
        return f"{self.name} v{self.version}"


def _resolve_version(client: Any, model_name: str, alias: str, version: int | str | None) -> Any:
    from mlops_tasks.registry_lookup import get_alias_version, get_model_version

    mv = (
        get_model_version(client, model_name, version)
        if version is not None
        else get_alias_version(client, model_name, alias)
    )
    if mv is None:
        raise ModelNotFoundError(
            f"Model {model_name!r} has no version with alias {alias!r}; promote one or pass a version."
        )
    return mv


def _features(params: dict[str, str], columns: list[ColumnSpec]) -> list[str]:
    """The run's recorded feature columns, else the signature's."""
    recorded = [
        f for key in ("numeric_features", "categorical_features") for f in params.get(key, "").split(",") if f
    ]
    return recorded or [c.name for c in columns]


def fetch_model_payload(
    model_name: str,
    *,
    alias: str = "champion",
    version: int | str | None = None,
    mlflow_config: MlflowConfig | None = None,
) -> ModelPayload:
    """Resolve ``alias`` (or ``version``) once and pack that version's model folder.

    Args:
        model_name: Registered model.
        alias: Alias resolved when ``version`` is not given.
        version: Version to pack.
        mlflow_config: Where MLflow lives.

    Returns:
        The payload (files, digest, signature, scikit-learn version it was saved with).

    Raises:
        ModelNotFoundError: No such model, version or alias.
        ModelLoadError: The version's folder has no ``MLmodel`` or no scikit-learn flavor.
        ServiceUnavailableError: The MLflow tracking server did not answer.

    Example:
        ```python
        payload = fetch_model_payload("churn-classifier", version=3)
        ```
    """
    import yaml

    from mlops_tasks.tracking import connect, fetch_model

    resolved, client = connect(mlflow_config)
    mv = _resolve_version(client, model_name, alias, version)
    run = client.get_run(mv.run_id) if mv.run_id else None
    with tempfile.TemporaryDirectory(prefix="mlops-payload-") as tmp:
        folder = Path(fetch_model(resolved, f"models:/{model_name}/{mv.version}", tmp))
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
    if "MLmodel" not in files:
        raise ModelLoadError(f"Model {model_name} v{mv.version} has no MLmodel file; re-register it.")
    mlmodel = yaml.safe_load(files["MLmodel"].decode("utf-8")) or {}
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ModelLoadError(
            f"Model {model_name} v{mv.version} has no scikit-learn flavor; batch scoring on a cluster "
            "runs models logged with MLflow's scikit-learn flavor (the training stage logs them so)."
        )
    columns, _ = parse_signature(mlmodel)
    digest = hashlib.sha256()
    for rel, data in files.items():
        digest.update(rel.encode())
        digest.update(hashlib.sha256(data).digest())
    payload = ModelPayload(
        name=model_name,
        version=str(mv.version),
        run_id=mv.run_id,
        files=files,
        digest=digest.hexdigest()[:16],
        sklearn_version=flavor.get("sklearn_version"),
        columns=columns,
        features=_features(dict(run.data.params) if run else {}, columns),
    )
    logger.info(
        "Packed %s (%d files, %d bytes, scikit-learn %s)",
        payload.label,
        len(files),
        sum(map(len, files.values())),
        payload.sklearn_version,
    )
    return payload


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # not on a worker (a test calling it in process)
        return None


def load_on_worker(payload: ModelPayload) -> Any:
    """The payload's estimator, deserialized once per worker process and kept for later partitions.

    Args:
        payload: What :func:`fetch_model_payload` packed.

    Returns:
        The fitted scikit-learn estimator.

    Raises:
        WorkerEnvironmentError: This worker's scikit-learn differs from the model's.
        ModelLoadError: The model files cannot be deserialized here.

    Example:
        ```python
        estimator = load_on_worker(payload)   # inside a task running on a Dask worker
        ```
    """
    cached = _LOADED.get(payload.digest)
    if cached is not None:
        return cached
    import sklearn

    worker = _worker_address()
    where = f"worker {worker}" if worker else "this process"
    if payload.sklearn_version and payload.sklearn_version != sklearn.__version__:
        raise WorkerEnvironmentError(
            f"{payload.label} was saved with scikit-learn {payload.sklearn_version} but {where} has "
            f"{sklearn.__version__}; install scikit-learn=={payload.sklearn_version} on the workers "
            "(or retrain the model with the workers' version).",
            worker=worker,
        )
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        for rel, data in payload.files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        try:
            loaded = load_model_folder(tmp, ModelInfo(name=payload.name, version=payload.version))
        except ModelLoadError as exc:
            raise ModelLoadError(f"{where} cannot load {payload.label}: {exc}") from exc
    while len(_LOADED) >= _MAX_LOADED:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[payload.digest] = loaded.estimator
    logger.info("Loaded %s on %s", payload.label, where)
    return loaded.estimator
