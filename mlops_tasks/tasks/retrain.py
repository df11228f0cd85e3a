"""Tasks of the retrain stage: the cool-down claim (under a Prefect lock), reference, retrain data."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

import pandas as pd
from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from mlops_tasks import retrain as _retrain
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tasks._prefect import IO_RETRIES, resolves_blocks

__all__ = [
    "claim_retrain",
    "load_training_reference",
    "prefect_claim_lock",
    "prepare_training_data",
    "release_retrain_claim",
]


def prefect_claim_lock(name: str, timeout_s: float) -> AbstractContextManager[object]:
    """Hold a Prefect global concurrency limit: the cool-down claim lock of the retrain.

    The lock :func:`mlops_tasks.retrain.claim_retrain` takes (a
    :data:`mlops_tasks.retrain.ClaimLock`), as the claim task passes it.

    Creates the global concurrency limit ``name`` with size 1 when it is missing (two
    first runs may both try: one creates it, the other gets a conflict and goes on), and
    returns the context manager that holds one slot of it. The Prefect server takes a
    slot with one conditional update, so of two holders on any hosts sharing the Prefect
    API only one is inside at a time; a holder that dies loses the slot when its lease
    expires.

    Args:
        name: The limit's name (:func:`mlops_tasks.retrain.lock_name`).
        timeout_s: Longest wait for the slot; then ``TimeoutError`` on entering.

    Returns:
        The context manager holding the slot (a :data:`mlops_tasks.retrain.ClaimLock` result).

    Example:
        ```python
        from mlops_tasks.retrain import claim_retrain
        claim = claim_retrain("churn-classifier", cooldown_minutes=60, claimant="cli",
                              lock=prefect_claim_lock)
        ```
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass
    return concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True)


@task(name="claim-retrain", timeout_seconds=300, **IO_RETRIES)
@resolves_blocks
def claim_retrain(
    model_name: str,
    *,
    cooldown_minutes: float,
    claimant: str,
    mlflow_config: MlflowConfig | None = None,
    lock_timeout_s: float = 60.0,
    now: datetime | None = None,
) -> _retrain.RetrainClaim:
    """Claim a retrain unless the cool-down runs.

    Task form of :func:`mlops_tasks.retrain.claim_retrain`.

    The claim is atomic across runs on any host sharing the Prefect API: the task
    passes :func:`prefect_claim_lock` as ``lock``. Retried on transient failures.

    Example:
        ```python
        claim = claim_retrain("churn-classifier", cooldown_minutes=1440, claimant="manual")
        ```
    """
    claim = _retrain.claim_retrain(
        model_name,
        cooldown_minutes=cooldown_minutes,
        claimant=claimant,
        lock=prefect_claim_lock,
        mlflow_config=mlflow_config,
        lock_timeout_s=lock_timeout_s,
        now=now,
    )
    get_run_logger().info("Retrain of %s: %s", model_name, claim.reason)
    return claim


@task(name="release-retrain-claim", timeout_seconds=300)
@resolves_blocks
def release_retrain_claim(
    claim: _retrain.RetrainClaim, claimant: str, *, mlflow_config: MlflowConfig | None = None
) -> bool:
    """Give back a claim whose retrain stopped before training.

    Task form of :func:`mlops_tasks.retrain.release_retrain_claim`.

    Example:
        ```python
        release_retrain_claim(claim, "manual")
        ```
    """
    released = _retrain.release_retrain_claim(claim, claimant, mlflow_config=mlflow_config)
    get_run_logger().info(
        "Retrain claim of %s %s",
        claim.model_name,
        "released" if released else "kept (claimed by someone else since)",
    )
    return released


@task(name="load-training-reference", timeout_seconds=1800, **IO_RETRIES)
@resolves_blocks
def load_training_reference(
    model_name: str, *, alias: str = "champion", mlflow_config: MlflowConfig | None = None
) -> _retrain.TrainingReference:
    """Load the training split recorded with ``model_name@alias``.

    Task form of :func:`mlops_tasks.retrain.load_training_reference`.

    Retried on transient failures.

    Example:
        ```python
        split = load_training_reference("churn-classifier").frame
        ```
    """
    ref = _retrain.load_training_reference(model_name, alias=alias, mlflow_config=mlflow_config)
    get_run_logger().info(
        "Training split of %s v%s: %d rows (%s)", model_name, ref.version, len(ref.frame), ref.source
    )
    return ref


@task(name="prepare-training-data", timeout_seconds=1800)
@resolves_blocks
def prepare_training_data(
    parts: list[tuple[str, pd.DataFrame]],
    *,
    target: str,
    location: str,
    features: list[str] | None = None,
    reference_label: str = "reference",
    min_fresh_rows: int = 1,
) -> _retrain.RetrainData:
    """Combine reference and fresh rows into one Parquet dataset.

    Task form of :func:`mlops_tasks.retrain.prepare_training_data`.

    Example:
        ```python
        data = prepare_training_data([("reference", ref), ("new.csv", new)], target="churned",
                                     location="/tmp/retrain.parquet")
        ```
    """
    data = _retrain.prepare_training_data(
        parts,
        target=target,
        location=location,
        features=features,
        reference_label=reference_label,
        min_fresh_rows=min_fresh_rows,
    )
    get_run_logger().info(
        "Retrain data %s: %d rows (%d reference, %d fresh)",
        data.uri,
        data.rows,
        data.reference_rows,
        data.fresh_rows,
    )
    return data
