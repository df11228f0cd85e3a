"""Helpers of the Dask tests: models registered the way foreign code does, then altered on purpose."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
from mlflow_support import fluent_mlflow

from mlops_tasks.tracking import sklearn_model_requirements

__all__ = ["log_variant", "pause", "write_partitions"]


def pause(frame):
    """An identity step that takes a while (so a worker can be killed while it scores)."""
    time.sleep(0.15)
    return frame


def log_variant(config, estimator, example: pd.DataFrame) -> tuple[str, str, Path]:
    """Log ``estimator`` with a signature and register it as version 1 of a new model.

    Returns the model name, the version and the local folder holding the registered model's
    files (to alter them the way a broken or foreign model would be).
    """
    import mlflow
    from mlflow.models import infer_signature

    from mlops_tasks.settings import resolve_mlflow_config

    name = f"variant-{uuid.uuid4().hex[:8]}"
    signature = infer_signature(example, estimator.predict(example))
    with fluent_mlflow(resolve_mlflow_config(config)) as client, mlflow.start_run():
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            registered_model_name=name,
            serialization_format="cloudpickle",
            pip_requirements=sklearn_model_requirements(estimator),
        )
        version = str(info.registered_model_version)
        uri = client.get_model_version_download_uri(name, version)
    return name, version, Path(unquote(urlparse(uri).path))


def write_partitions(folder: Path, frames: list[pd.DataFrame], fmt: str = "parquet") -> list[Path]:
    """Write one file per frame (``part-00000.parquet`` ...) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"part-{i:05d}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
