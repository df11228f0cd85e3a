"""Retraining: the cool-down claim and the fresh training data of a retrain.

Core functions of :func:`flows.retrain.retrain_pipeline`:

- :func:`claim_retrain` decides, atomically across processes and hosts, whether a
  model may be retrained now (its **cool-down**) and records the claim;
- :func:`load_training_reference` reads the training split recorded with the live
  model version (``reference/train.parquet`` on its MLflow run, target included);
- :func:`label_prediction_log` joins a prediction-log window with ground truth on
  the request id (the same join as the drift check's performance section);
- :func:`combine_training_data` stacks reference and fresh rows into one frame.

How the cool-down holds: the time of the last retrain of a model is a tag on its
MLflow registered model (``mlops.retrain.started_at``, with the flow run that
claimed it in ``mlops.retrain.claimed_by``). Reading and writing that tag happens
while holding a slot of a Prefect **global concurrency limit** of size 1 named
``mlops-retrain-<model>``: the Prefect server increments its active slots with one
conditional update, so of two runs that start at the same moment, on any machines
that share the Prefect API, exactly one reads the tag, sees no recent retrain and
writes its claim; the other waits for the slot (milliseconds), then reads the
fresh claim and skips. The slot is held only for the read and the write; a holder
that dies loses it when its lease expires.

This module does not import Prefect: :func:`claim_retrain` takes the lock as an
argument (a :data:`ClaimLock`), and the task layer passes the Prefect one
(:func:`mlops_tasks.tasks.retrain.prefect_claim_lock`, used by the
:func:`mlops_tasks.tasks.claim_retrain` task). Another orchestrator passes its own
lock that is atomic across its workers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from mlops_tasks.errors import (
    ConfigurationError,
    DataError,
    ModelNotFoundError,
    ReferenceDataNotFoundError,
    RegistryError,
    SchemaError,
)
from mlops_tasks.settings import MlflowConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LOCK_PREFIX",
    "RANGE_EXPECTATIONS",
    "TAG_RETRAIN_CLAIMED_BY",
    "TAG_RETRAIN_STARTED_AT",
    "ClaimLock",
    "RetrainClaim",
    "RetrainData",
    "TrainingReference",
    "check_retrainable",
    "claim_retrain",
    "combine_training_data",
    "label_prediction_log",
    "load_training_reference",
    "lock_name",
    "prepare_training_data",
    "release_retrain_claim",
    "suite_without_ranges",
]

#: Makes the lock held while a cool-down claim is read and written. Called with the lock
#: name (:func:`lock_name`) and the longest wait in seconds, before the MLflow client is
#: opened; the context manager it returns is entered around the read and the write and
#: must raise ``TimeoutError`` when the wait runs out. It must be atomic across every
#: process and host that may claim the same model (the task layer's
#: :func:`mlops_tasks.tasks.retrain.prefect_claim_lock` holds a Prefect global concurrency
#: limit of size 1).
ClaimLock = Callable[[str, float], AbstractContextManager[object]]

TAG_RETRAIN_STARTED_AT = "mlops.retrain.started_at"
TAG_RETRAIN_CLAIMED_BY = "mlops.retrain.claimed_by"
LOCK_PREFIX = "mlops-retrain-"


class RetrainClaim(BaseModel):
    """The cool-down verdict of one retrain attempt.

    Example:
        ```python
        claim = claim_retrain("churn-classifier", cooldown_minutes=60, claimant="manual",
                              lock=prefect_claim_lock)
        if not claim.claimed:
            print(claim.reason)
        ```
    """

    model_name: str
    claimed: bool = Field(..., description="True: this run may retrain (and the claim is recorded).")
    claimed_at: datetime | None = Field(None, description="When this run claimed the retrain.")
    last_started_at: datetime | None = Field(None, description="The previous retrain of the model.")
    last_claimed_by: str | None = Field(None, description="Who claimed the previous retrain.")
    cooldown_minutes: float
    next_allowed_at: datetime | None = Field(None, description="When the cool-down ends.")
    reason: str


def lock_name(model_name: str) -> str:
    """The Prefect global concurrency limit guarding a model's cool-down claim.

    Example:
        ```python
        assert lock_name("churn-classifier") == "mlops-retrain-churn-classifier"
        ```
    """
    return LOCK_PREFIX + re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        logger.warning("Ignoring unreadable retrain tag %r", text)
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read_claim(client: Any, model_name: str) -> tuple[datetime | None, str | None]:
    from mlflow.exceptions import MlflowException

    from mlops_tasks.registry import is_not_found

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if is_not_found(exc):
            raise ModelNotFoundError(
                f"Model {model_name!r} is not registered, so there is nothing to retrain; run the "
                "training pipeline first (python -m flows.training --model-name ...)."
            ) from exc
        raise RegistryError(f"Reading registered model {model_name!r} failed: {exc}") from exc
    tags = model.tags or {}
    return _parse_time(tags.get(TAG_RETRAIN_STARTED_AT)), tags.get(TAG_RETRAIN_CLAIMED_BY)


def claim_retrain(
    model_name: str,
    *,
    cooldown_minutes: float,
    claimant: str,
    lock: ClaimLock,
    mlflow_config: MlflowConfig | None = None,
    lock_timeout_s: float = 60.0,
    now: datetime | None = None,
) -> RetrainClaim:
    """Claim the right to retrain ``model_name`` now, unless it was retrained within the cool-down.

    The check and the claim happen while holding ``lock`` for the model (in the
    pipeline: its Prefect global concurrency limit of size 1, see
    :func:`mlops_tasks.tasks.retrain.prefect_claim_lock`), so they are atomic across
    the processes and hosts that share that lock. ``cooldown_minutes=0`` disables the check
    (the claim is still recorded). A claimant that already holds the claim (a
    retried task or flow run) gets it again.

    Args:
        model_name: Registered model name.
        cooldown_minutes: Shortest time between two retrains of the model.
        claimant: Who claims (a flow run id); stored with the claim.
        lock: Makes the lock held around the read and the write (a :data:`ClaimLock`).
        mlflow_config: Where MLflow lives.
        lock_timeout_s: Longest wait for the claim lock.
        now: The current time (tests).

    Returns:
        ``claimed=True`` with the recorded time, or ``claimed=False`` with the
        previous retrain and when the cool-down ends.

    Raises:
        ConfigurationError: ``cooldown_minutes`` is negative.
        ModelNotFoundError: The model is not registered.
        ServiceUnavailableError: MLflow did not answer.
        TimeoutError: The lock stayed taken for ``lock_timeout_s``.

    Example:
        ```python
        from mlops_tasks.retrain import claim_retrain
        from mlops_tasks.tasks.retrain import prefect_claim_lock
        claim = claim_retrain("churn-classifier", cooldown_minutes=24 * 60, claimant="cli",
                              lock=prefect_claim_lock)
        print(claim.claimed, claim.reason)
        ```
    """
    from mlops_tasks.registry import check_model_name
    from mlops_tasks.tracking import get_client, resolve_and_check

    check_model_name(model_name)
    if cooldown_minutes < 0:
        raise ConfigurationError(f"cooldown_minutes must be 0 (off) or more, got {cooldown_minutes}.")
    resolved = resolve_and_check(mlflow_config)
    held = lock(lock_name(model_name), lock_timeout_s)
    client = get_client(resolved)
    with held:
        last, by = _read_claim(client, model_name)
        moment = now or datetime.now(UTC)
        period = timedelta(minutes=cooldown_minutes)
        # The same claimant asking again (a retried task or flow run) keeps its claim.
        if cooldown_minutes > 0 and last is not None and moment < last + period and by != claimant:
            blocked_until = last + period
            reason = (
                f"cool-down: {model_name} was last retrained at {last.isoformat(timespec='seconds')}"
                f" (by {by or 'unknown'}); no retrain until {blocked_until.isoformat(timespec='seconds')}"
                f" (cooldown_minutes={cooldown_minutes:g})"
            )
            logger.info("Skipping retrain of %s: %s", model_name, reason)
            return RetrainClaim(
                model_name=model_name,
                claimed=False,
                last_started_at=last,
                last_claimed_by=by,
                cooldown_minutes=cooldown_minutes,
                next_allowed_at=blocked_until,
                reason=reason,
            )
        client.set_registered_model_tag(model_name, TAG_RETRAIN_STARTED_AT, moment.isoformat())
        client.set_registered_model_tag(model_name, TAG_RETRAIN_CLAIMED_BY, claimant)
    until = moment + period if cooldown_minutes > 0 else None
    reason = f"claimed at {moment.isoformat(timespec='seconds')}" + (
        f"; next retrain allowed after {until.isoformat(timespec='seconds')}" if until else " (cool-down off)"
    )
    logger.info("Retrain of %s claimed by %s: %s", model_name, claimant, reason)
    return RetrainClaim(
        model_name=model_name,
        claimed=True,
        claimed_at=moment,
        last_started_at=last,
        last_claimed_by=by,
        cooldown_minutes=cooldown_minutes,
        next_allowed_at=until,
        reason=reason,
    )


def release_retrain_claim(
    claim: RetrainClaim, claimant: str, *, mlflow_config: MlflowConfig | None = None
) -> bool:
    """Undo a claim whose retrain stopped before training started (bad input, unreadable data).

    The previous retrain time is put back, so the cool-down counts from it again.
    Nothing changes when someone else has claimed since.

    Returns:
        True when the claim was released.

    Example:
        ```python
        release_retrain_claim(claim, "run-123")
        ```
    """
    from mlops_tasks.tracking import connect

    if not claim.claimed:
        return False
    _, client = connect(mlflow_config)
    _, by = _read_claim(client, claim.model_name)
    if by != claimant:
        return False
    if claim.last_started_at is None:
        client.delete_registered_model_tag(claim.model_name, TAG_RETRAIN_STARTED_AT)
        client.delete_registered_model_tag(claim.model_name, TAG_RETRAIN_CLAIMED_BY)
    else:
        client.set_registered_model_tag(
            claim.model_name, TAG_RETRAIN_STARTED_AT, claim.last_started_at.isoformat()
        )
        client.set_registered_model_tag(
            claim.model_name, TAG_RETRAIN_CLAIMED_BY, claim.last_claimed_by or "unknown"
        )
    logger.info("Released the retrain claim of %s", claim.model_name)
    return True


@dataclass
class TrainingReference:
    """The training split of a model version, target included, with its lineage."""

    frame: pd.DataFrame
    model_name: str
    version: int
    run_id: str
    target: str
    features: list[str]
    source: str


def check_retrainable(
    model_name: str, *, alias: str = "champion", mlflow_config: MlflowConfig | None = None
) -> tuple[int, str]:
    """Check, without downloading data, that ``model_name@alias`` exists and recorded its training split.

    Returns:
        ``(version, run_id)`` of the aliased version.

    Raises:
        ModelNotFoundError: No such model or no version holds ``alias``.
        ReferenceDataNotFoundError: The version has no run or its run lacks ``reference/train.parquet``.

    Example:
        ```python
        version, run_id = check_retrainable("churn-classifier")
        ```
    """
    from mlops_tasks.monitoring import REFERENCE_ARTIFACT
    from mlops_tasks.registry import check_model_name, get_alias_version
    from mlops_tasks.tracking import connect

    check_model_name(model_name)
    _, client = connect(mlflow_config)
    mv = get_alias_version(client, model_name, alias)
    if mv is None:
        raise ModelNotFoundError(
            f"Model {model_name!r} has no version with alias {alias!r}, so there is no live model "
            "to retrain from; train and deploy one first (make demo, or the training and "
            "deployment pipelines), or set include_reference=False and pass fresh data."
        )
    label = f"model {model_name!r} version {mv.version}"
    if not mv.run_id:
        raise ReferenceDataNotFoundError(
            f"{label} has no MLflow run, so no training data was recorded; retrain from a dataset "
            "(dataset=..., include_reference=False)."
        )
    folder, name = REFERENCE_ARTIFACT.rsplit("/", 1)
    try:
        listed = {a.path for a in client.list_artifacts(mv.run_id, folder)}
    except Exception as exc:
        raise RegistryError(f"Listing the artifacts of run {mv.run_id} ({label}) failed: {exc}") from exc
    if REFERENCE_ARTIFACT not in listed:
        raise ReferenceDataNotFoundError(
            f"{label} (run {mv.run_id}) has no recorded training data ({REFERENCE_ARTIFACT} is "
            "missing: not trained by mlops_tasks.training.train_model, or deleted); retrain from a "
            "dataset instead (dataset=..., include_reference=False)."
        )
    return int(mv.version), str(mv.run_id)


def load_training_reference(
    model_name: str, *, alias: str = "champion", mlflow_config: MlflowConfig | None = None
) -> TrainingReference:
    """The training split recorded with ``model_name@alias``, target column included.

    Raises:
        ModelNotFoundError: No such model or alias.
        ReferenceDataNotFoundError: The version recorded no training split.

    Example:
        ```python
        ref = load_training_reference("churn-classifier")
        print(ref.version, len(ref.frame), ref.target)
        ```
    """
    from mlops_tasks.monitoring import REFERENCE_ARTIFACT, download_reference
    from mlops_tasks.tracking import connect
    from mlops_tasks.training import TAG_TARGET

    version, run_id = check_retrainable(model_name, alias=alias, mlflow_config=mlflow_config)
    _, client = connect(mlflow_config)
    run = client.get_run(run_id)
    label = f"model {model_name!r} version {version}"
    frame = download_reference(client, run_id, label)
    target = run.data.tags.get(TAG_TARGET)
    if not target or target not in frame.columns:
        raise ReferenceDataNotFoundError(
            f"The training split of {label} has no target column ({target!r}); retrain from a "
            "labelled dataset instead (dataset=..., include_reference=False)."
        )
    features = [
        f
        for key in ("numeric_features", "categorical_features")
        for f in run.data.params.get(key, "").split(",")
        if f
    ]
    return TrainingReference(
        frame=frame,
        model_name=model_name,
        version=version,
        run_id=run_id,
        target=target,
        features=features,
        source=f"models:/{model_name}/{version} (run {run_id}, {REFERENCE_ARTIFACT})",
    )


def label_prediction_log(
    log: pd.DataFrame, labels: pd.DataFrame, *, label_column: str, target: str
) -> pd.DataFrame:
    """Join prediction-log rows with their ground truth on ``request_id`` into training rows.

    A request of several rows logs them under one request id: the n-th label of an
    id (or the labels' own ``row`` column) goes with the n-th logged row of it.

    Args:
        log: Prediction-log rows (``request_id``, feature columns, ``prediction``...).
        labels: Ground truth with ``request_id`` and ``label_column``.
        label_column: Label column of ``labels``.
        target: Name the label gets in the result (the model's target).

    Returns:
        The features of the labelled rows plus ``target``; log bookkeeping
        columns and the prediction are dropped.

    Raises:
        SchemaError: A side lacks ``request_id`` or the label column.

    Example:
        ```python
        rows = label_prediction_log(log, labels, label_column="label", target="churned")
        ```
    """
    from mlops_tasks.monitoring import PREDICTION_COLUMN, UTILITY_COLUMNS

    if log.empty:
        return pd.DataFrame()
    if "request_id" not in log.columns:
        raise SchemaError("The prediction log has no request_id column; it cannot be joined with labels.")
    missing = [c for c in ("request_id", label_column) if c not in labels.columns]
    if missing:
        raise SchemaError(
            f"The labels dataset lacks column(s) {missing}; give request_id and the label column "
            f"(label_column={label_column!r})."
        )
    left = log.assign(_row=log.groupby("request_id", sort=False).cumcount())
    right = (
        labels[["request_id", label_column]]
        .assign(
            _row=labels["row"].to_numpy()
            if "row" in labels.columns
            else labels.groupby("request_id", sort=False).cumcount()
        )
        .drop_duplicates(["request_id", "_row"], keep="last")
    )
    joined = left.merge(right, on=["request_id", "_row"], how="inner")
    joined = joined[joined[label_column].notna()]
    drop = [c for c in (*UTILITY_COLUMNS, PREDICTION_COLUMN, "_row") if c in joined.columns]
    if label_column != target and target in joined.columns:
        drop.append(target)
    return joined.drop(columns=drop).rename(columns={label_column: target}).reset_index(drop=True)


def combine_training_data(
    parts: list[tuple[str, pd.DataFrame]], *, target: str, features: list[str] | None = None
) -> pd.DataFrame:
    """Stack reference and fresh rows into one training frame (common columns, target last).

    Args:
        parts: ``(label, frame)`` pairs; a frame without ``target`` is refused.
        target: The target column.
        features: Columns to keep; default: the columns every part has.

    Raises:
        DataError: No rows at all.
        SchemaError: A part lacks the target or a requested feature.

    Example:
        ```python
        frame = combine_training_data([("reference", ref), ("fresh", new)], target="churned")
        ```
    """
    if not parts or all(len(f) == 0 for _, f in parts):
        raise DataError("No training rows: the reference and the fresh data are all empty.")
    for label, frame in parts:
        if target not in frame.columns:
            raise SchemaError(f"The {label} data has no target column {target!r}.")
    if features:
        for label, frame in parts:
            lacking = [c for c in features if c not in frame.columns]
            if lacking:
                raise SchemaError(f"The {label} data lacks feature column(s) {lacking}.")
        columns = [c for c in features if c != target]
    else:
        common = set.intersection(*(set(f.columns) for _, f in parts))
        columns = [c for c in parts[0][1].columns if c in common and c != target]
    frames = [f[[*columns, target]] for _, f in parts if len(f)]
    combined = pd.concat(frames, ignore_index=True)
    if combined[target].isna().any():
        combined = combined[combined[target].notna()].reset_index(drop=True)
    return combined


class RetrainData(BaseModel):
    """The training data a retrain assembled and wrote."""

    uri: str = Field(..., description="Where the combined dataset was written (Parquet).")
    target: str
    rows: int
    reference_rows: int = Field(0, description="Rows from the live version's training split.")
    fresh_rows: int = Field(0, description="Labelled rows from the dataset and/or prediction log.")
    sources: list[str] = Field(default_factory=list, description="What went in, in order.")


def prepare_training_data(
    parts: list[tuple[str, pd.DataFrame]],
    *,
    target: str,
    location: str,
    features: list[str] | None = None,
    reference_label: str = "reference",
    min_fresh_rows: int = 1,
) -> RetrainData:
    """Combine reference and fresh labelled rows and write them as one Parquet dataset.

    Args:
        parts: ``(source, frame)`` pairs; the one labelled ``reference_label`` counts as reference.
        target: Target column.
        location: Parquet file to write (local path or ``s3://``).
        features: Columns to keep (default: those every part has).
        reference_label: Label of the reference part.
        min_fresh_rows: Fewest fresh (non-reference) labelled rows to retrain on.

    Returns:
        Where the data went and how many rows of each kind.

    Raises:
        DataError: Fewer fresh rows than ``min_fresh_rows`` (e.g. labels that join to nothing).
        SchemaError: A part lacks the target or a feature.

    Example:
        ```python
        data = prepare_training_data([("reference", ref), ("fresh.csv", new)], target="churned",
                                     location="/tmp/retrain.parquet")
        ```
    """
    from mlops_tasks.data import write_dataset

    fresh = sum(len(f) for label, f in parts if label != reference_label)
    if fresh < min_fresh_rows:
        described = ", ".join(f"{label}: {len(f)} rows" for label, f in parts) or "nothing"
        raise DataError(
            f"Only {fresh} fresh labelled rows ({described}), fewer than min_fresh_rows="
            f"{min_fresh_rows}: nothing new to learn from. Check the labels dataset joins the "
            "prediction log on request_id, widen the window, or pass a dataset."
        )
    combined = combine_training_data(parts, target=target, features=features)
    uri = write_dataset(combined, location)
    reference_rows = sum(len(f) for label, f in parts if label == reference_label)
    return RetrainData(
        uri=uri,
        target=target,
        rows=len(combined),
        reference_rows=reference_rows,
        fresh_rows=fresh,
        sources=[label for label, f in parts if len(f)],
    )


RANGE_EXPECTATIONS = frozenset(
    {
        "expect_column_values_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_stdev_to_be_between",
    }
)


def suite_without_ranges(source: str, destination: str) -> str | None:
    """Copy an expectation suite without its numeric-range expectations.

    Data that drifted is expected to leave the value ranges learnt from the old
    data, so a retrain checks columns, types, nulls and category sets but not the
    ranges (unless told to). The model's own suite file is left as it is.

    Args:
        source: The model's GX suite JSON.
        destination: Where to write the copy.

    Returns:
        ``destination``, or ``None`` when ``source`` does not exist (the training
        pipeline then suggests a suite).

    Raises:
        ConfigurationError: ``source`` is not a readable suite JSON.

    Example:
        ```python
        path = suite_without_ranges(".mlops/expectations/churn.json", "/tmp/churn-retrain.json")
        ```
    """
    import json
    from pathlib import Path

    src, dst = Path(source), Path(destination)
    if not src.exists():
        return None
    try:
        doc = json.loads(src.read_text())
        expectations = doc["expectations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"Expectation suite {src} is not a readable GX suite JSON: {exc}") from exc
    kept = [e for e in expectations if e.get("type") not in RANGE_EXPECTATIONS]
    doc = {**doc, "expectations": kept}
    doc.pop("id", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(doc, indent=2, sort_keys=True))
    logger.info("Suite %s without %d range expectations: %s", src, len(expectations) - len(kept), dst)
    return str(dst)
