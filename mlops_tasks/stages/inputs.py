"""What the stages read before they run: the demo dataset, the version to deploy, its smoke rows.

Shared by the flows (which load through their Prefect tasks) and the command line (which
loads through the core functions), so both pick the same version, the same label column and
the same smoke rows.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from mlops_tasks.data import DatasetSpec, LoadedDataset, load_dataset, split_dataset, write_dataset
from mlops_tasks.demo import TARGET as DEMO_TARGET
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import ModelNotFoundError
from mlops_tasks.settings import MlflowConfig, state_dir
from mlops_tasks.stages.params import DemoData
from mlops_tasks.stages.stage_params import StageData

__all__ = ["demo_dataset", "label_column", "load_stage_data", "pick_version", "smoke_rows_of"]

logger = logging.getLogger(__name__)


def demo_dataset(demo: DemoData) -> DatasetSpec:
    """The churn demo's dataset, written once into the state folder.

    The file is written under a temporary name and renamed, so two stages (or two Airflow
    tasks) asking for it at once both read a whole file.

    Args:
        demo: Rows, seed and drift of the synthetic data.

    Returns:
        A spec of the CSV file (``<state>/data/churn-rows<n>-seed<s>-drift<d>.csv``).

    Example:
        ```python
        from mlops_tasks.stages.inputs import demo_dataset
        from mlops_tasks.stages.params import DemoData
        spec = demo_dataset(DemoData(rows=2000))
        ```
    """
    path = state_dir() / "data" / f"churn-rows{demo.rows}-seed{demo.seed}-drift{demo.drift:g}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".csv", dir=path.parent)
        os.close(fd)
        try:
            write_dataset(make_churn_data(demo.rows, seed=demo.seed, drift=demo.drift), tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return DatasetSpec(uri=str(path), name="churn-demo")


def pick_version(model_name: str, version: int | None, mlflow_config: MlflowConfig | None) -> int:
    """The version to deploy: the one given, else alias ``challenger``, else ``champion``.

    Args:
        model_name: Registered model name.
        version: An explicit version (wins).
        mlflow_config: MLflow settings (blocks already resolved).

    Returns:
        The version number.

    Raises:
        ModelNotFoundError: Neither alias exists and no version was given.

    Example:
        ```python
        version = pick_version("churn-classifier", None, None)
        ```
    """
    from mlops_tasks.registry import CHALLENGER, CHAMPION, get_alias_version
    from mlops_tasks.tracking import connect

    if version is not None:
        return version
    _, client = connect(mlflow_config)
    for alias in (CHALLENGER, CHAMPION):
        mv = get_alias_version(client, model_name, alias)
        if mv is not None:
            return int(mv.version)
    raise ModelNotFoundError(
        f"Model {model_name!r} has neither a challenger nor a champion; run the training "
        "pipeline first, or give a version."
    )


def label_column(
    model_name: str,
    version: int,
    *,
    target_column: str | None,
    smoke_dataset: DatasetSpec | None,
    mlflow_config: MlflowConfig | None,
) -> str | None:
    """The label to drop from the smoke rows: given, else the one the version was trained on.

    Args:
        model_name: Registered model name.
        version: The version being deployed.
        target_column: An explicit label column (wins).
        smoke_dataset: The smoke dataset; ``None`` means the demo data (its label is known).
        mlflow_config: MLflow settings (blocks already resolved).

    Returns:
        The column name, or ``None`` when the version recorded none.

    Example:
        ```python
        column = label_column("churn-classifier", 3, target_column=None, smoke_dataset=None,
                              mlflow_config=None)
        ```
    """
    from mlops_tasks.registry import get_model_version
    from mlops_tasks.tracking import connect
    from mlops_tasks.training import TAG_TARGET

    if target_column:
        return target_column
    if smoke_dataset is None:
        return DEMO_TARGET  # the demo data's label
    _, client = connect(mlflow_config)
    run_id = get_model_version(client, model_name, version).run_id
    return client.get_run(run_id).data.tags.get(TAG_TARGET) if run_id else None


def smoke_rows_of(frame: pd.DataFrame, target: str | None, rows: int) -> pd.DataFrame:
    """The first ``rows`` holdout rows of ``frame`` without the label (the deploy smoke test's input).

    Args:
        frame: The smoke dataset.
        target: Its label column, dropped when present (the holdout split is stratified on it
            when every value has two rows or more: classes; a regression label is not).
        rows: How many rows to keep.

    Returns:
        The rows to send through the preview port.

    Example:
        ```python
        rows = smoke_rows_of(frame, "churned", 50)
        ```
    """
    if target and target in frame.columns:
        classes = bool(frame[target].value_counts().min() >= 2)
        _, holdout = split_dataset(frame, target=target, stratify=classes)
        return holdout.drop(columns=[target]).head(rows)
    return frame.head(rows)


def load_stage_data(params: StageData) -> LoadedDataset:
    """The dataset a stage's parameters name (``dataset``), or the demo data (``demo``).

    Example:
        ```python
        from mlops_tasks.stages.stage_params import TrainParams
        loaded = load_stage_data(TrainParams(model_name="churn-classifier"))
        ```
    """
    spec = params.dataset or demo_dataset(params.demo)
    loaded = load_dataset(spec)
    logger.info(
        "Loaded %s: %d rows, fingerprint %s", spec.uri, loaded.info.rows, loaded.info.fingerprint[:12]
    )
    return loaded
