"""Lean HTTP model server for MLflow scikit-learn models.

Import-light on purpose: nothing here imports Prefect, Great Expectations or
Evidently, and MLflow only when a ``models:/`` URI is resolved, so a container
image can carry the server alone. Public names are loaded on first use.

Example:
    ```python
    from mlops_tasks.serving import ServerConfig, serve, read_prediction_log
    serve(ServerConfig(model_uri="models:/churn@champion", port=8080, log_sink="/srv/plog"))
    df = read_prediction_log("/srv/plog", start="2026-01-01")
    ```
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ServerConfig": "mlops_tasks.serving.app",
    "ModelServerApp": "mlops_tasks.serving.app",
    "serve": "mlops_tasks.serving.cli",
    "main": "mlops_tasks.serving.cli",
    "load_model": "mlops_tasks.serving.model",
    "download_model": "mlops_tasks.serving.model",
    "LoadedModel": "mlops_tasks.serving.model",
    "ModelInfo": "mlops_tasks.serving.model",
    "read_prediction_log": "mlops_tasks.serving.predlog",
    "prune_prediction_log": "mlops_tasks.serving.predlog",
    "PredictionLogWriter": "mlops_tasks.serving.predlog",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_tasks.serving' has no attribute {name!r}")
    return getattr(import_module(module), name)
