"""Tasks of the data stage: load a dataset, split it."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from mlops_tasks import data as _data
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = ["load_dataset", "split_dataset"]


@task(name="load-dataset", timeout_seconds=1800, **IO_RETRIES)
@resolves_blocks
def load_dataset(spec: _data.DatasetSpec) -> _data.LoadedDataset:
    """Read a CSV or Parquet dataset with its fingerprint.

    Task form of :func:`mlops_tasks.data.load_dataset`.

    Retried on transient failures.

    Example:
        ```python
        @flow
        def peek(uri: str) -> int:
            return load_dataset(DatasetSpec(uri=uri)).info.rows
        ```
    """
    loaded = _data.load_dataset(spec)
    get_run_logger().info(
        "Loaded %s: %d rows x %d columns, fingerprint %s",
        spec.uri,
        loaded.info.rows,
        len(loaded.info.columns),
        loaded.info.fingerprint[:12],
    )
    return loaded


@task(name="split-dataset")
@resolves_blocks
def split_dataset(
    frame: pd.DataFrame,
    *,
    target: str,
    holdout_fraction: float = 0.2,
    seed: int = 42,
    stratify: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and holdout.

    Task form of :func:`mlops_tasks.data.split_dataset`.

    Example:
        ```python
        train, holdout = split_dataset(frame, target="churned", seed=7)
        ```
    """
    train, holdout = _data.split_dataset(
        frame, target=target, holdout_fraction=holdout_fraction, seed=seed, stratify=stratify
    )
    get_run_logger().info("Split %d rows: %d train, %d holdout", len(frame), len(train), len(holdout))
    return train, holdout
