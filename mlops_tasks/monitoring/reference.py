"""Reading the reference: the training split recorded on a model version's MLflow run."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.errors import ModelNotFoundError, ReferenceDataNotFoundError, RegistryError
from mlops_tasks.metrics import TaskType
from mlops_tasks.monitoring.models import PREDICTION_COLUMN, REFERENCE_ARTIFACT, ReferenceData
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig

__all__ = ["download_reference", "load_reference"]

_TASK_TYPES: tuple[TaskType, ...] = ("classification", "regression")

logger = logging.getLogger(__name__)


def load_reference(
    model_name: str,
    *,
    version: int | str | None = None,
    alias: str = "champion",
    mlflow_config: MlflowConfig | None = None,
    with_predictions: bool = True,
) -> ReferenceData:
    """The training split recorded for a model version, with its lineage.

    Args:
        model_name: Registered model name.
        version: Version number; default: the version holding ``alias``.
        alias: Alias used when ``version`` is not given.
        mlflow_config: Where MLflow lives.
        with_predictions: Score the reference with the model (for prediction drift).

    Returns:
        The reference frame (features only), target, task, features, the run's
        ``holdout_*`` metrics and, when asked, the model's predictions on it.

    Raises:
        ModelNotFoundError: No such model, version or alias.
        ReferenceDataNotFoundError: The version's run did not record
            ``reference/train.parquet`` (not trained by :mod:`mlops_tasks.training`).

    Example:
        ```python
        from mlops_tasks.monitoring import load_reference
        ref = load_reference("churn-classifier")          # the champion's training split
        print(ref.model_version, len(ref.frame), ref.features)
        ```
    """
    from mlops_tasks.registry import check_model_name
    from mlops_tasks.tracking import connect
    from mlops_tasks.training import TAG_TARGET, TAG_TASK

    check_model_name(model_name)
    resolved, client = connect(mlflow_config)
    mv = _model_version(client, model_name, version, alias)
    label = f"model {model_name!r} version {mv.version}"
    if not mv.run_id:
        raise ReferenceDataNotFoundError(
            f"{label} has no MLflow run, so no reference data was recorded; pass a reference "
            "dataset to the drift check (reference=DatasetSpec(...))."
        )
    try:
        run = client.get_run(mv.run_id)
    except Exception as exc:
        raise RegistryError(f"Reading run {mv.run_id} of {label} failed: {exc}") from exc
    reference = download_reference(client, mv.run_id, label)
    model_uri = f"models:/{model_name}/{mv.version}"
    params = run.data.params
    features = [
        f for key in ("numeric_features", "categorical_features") for f in params.get(key, "").split(",") if f
    ]
    target = run.data.tags.get(TAG_TARGET)
    task = run.data.tags.get(TAG_TASK)
    predictions = None
    if with_predictions:
        predictions = _predict(resolved, model_uri, reference, features, label)
    frame = (
        reference[[c for c in features if c in reference.columns]]
        if features
        else reference.drop(columns=[target] if target in reference.columns else [])
    )
    return ReferenceData(
        frame=frame.reset_index(drop=True),
        source=f"{model_uri} (run {mv.run_id}, {REFERENCE_ARTIFACT})",
        model_name=model_name,
        model_version=str(mv.version),
        run_id=mv.run_id,
        model_uri=model_uri,
        target=target,
        task=task if task in _TASK_TYPES else None,
        features=features,
        training_metrics={k: float(v) for k, v in run.data.metrics.items() if k.startswith("holdout_")},
        predictions=predictions,
    )


def _model_version(client: Any, model_name: str, version: int | str | None, alias: str) -> Any:
    """The model version asked for: by number, else the one holding ``alias``."""
    from mlops_tasks.registry import get_alias_version, get_model_version

    if version is not None:
        return get_model_version(client, model_name, version)
    mv = get_alias_version(client, model_name, alias)
    if mv is None:
        raise ModelNotFoundError(
            f"Model {model_name!r} has no version with alias {alias!r}; promote one "
            f"(promote_model) or pass a version number."
        )
    return mv


def download_reference(client: Any, run_id: str, label: str) -> pd.DataFrame:
    """The training split recorded on an MLflow run (artifact ``reference/train.parquet``).

    Args:
        client: An ``MlflowClient``.
        run_id: The run of the model version.
        label: How to name the model version in the error message.

    Returns:
        The recorded rows, target included.

    Raises:
        ReferenceDataNotFoundError: The run has no such artifact.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
        except Exception as exc:
            raise ReferenceDataNotFoundError(
                f"{label} (run {run_id}) has no recorded reference data: artifact {REFERENCE_ARTIFACT} "
                "is missing (the model was not trained with mlops_tasks.training.train_model, or the "
                "artifact was deleted). Pass a reference dataset to the drift check "
                "(reference=DatasetSpec(uri=...)), or retrain the model with the training pipeline."
            ) from exc
        return pd.read_parquet(path)


def _predict(
    resolved: ResolvedMlflowConfig, model_uri: str, frame: pd.DataFrame, features: list[str], label: str
) -> pd.Series | None:
    from mlops_tasks.tracking import load_sklearn_model

    try:
        model = load_sklearn_model(resolved, model_uri)
        x = frame[features] if features else frame
        return pd.Series(np.asarray(model.predict(x)), name=PREDICTION_COLUMN)
    except Exception as exc:  # prediction drift is optional: the data checks still run
        logger.warning("Cannot score the reference of %s for prediction drift: %s", label, exc)
        return None
