"""Test helpers for MLflow's fluent API: the package itself uses explicit clients only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["fluent_mlflow"]


@contextlib.contextmanager
def fluent_mlflow(config) -> Iterator[object]:
    """Point MLflow's fluent API (``mlflow.start_run``, ``mlflow.<flavor>.log_model``) at ``config``.

    For tests that make models the way foreign code does. Uses MLflow's public setters and
    restores the previous URIs afterwards; yields a client bound to the same URIs.
    """
    import mlflow

    from mlops_tasks.tracking import get_client

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.registry_uri)
    try:
        yield get_client(config)
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
        if saved["MLFLOW_REGISTRY_URI"] is None:  # set_registry_uri(None) leaves the variable set
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
