"""The public Prefect task library: thin ``@task`` wrappers over the core functions.

Each task logs through ``get_run_logger()``, calls one core function and
returns its pydantic result. Retries apply only to transient failures (a
server that did not answer: :class:`~mlops_tasks.errors.ServiceUnavailableError`);
a bad input fails at once with a typed error. Gate tasks leave a Prefect
artifact (validation result, evaluation tables) before they raise.

Example:
    ```python
    from prefect import flow
    from mlops_tasks.data import DatasetSpec
    from mlops_tasks.evaluation import MetricThreshold, QualityGate
    from mlops_tasks.tasks import (
        evaluate_model, load_dataset, register_model, split_dataset, train_model,
    )
    from mlops_tasks.training import TrainingSpec

    @flow
    def my_training(uri: str = "data/houses.parquet") -> int:
        ds = load_dataset(DatasetSpec(uri=uri))
        train, holdout = split_dataset(ds.frame, target="price", stratify=False)
        spec = TrainingSpec(target="price", task="regression",
                            estimator="sklearn.ensemble.RandomForestRegressor")
        trained = train_model(train, spec, data=ds.info)
        gate = QualityGate(thresholds=[MetricThreshold(metric="r2", min_value=0.6)])
        report = evaluate_model(trained, holdout, gate, model_name="houses")
        return register_model(trained, report, "houses").version
    ```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from mlops_tasks import data as _data
from mlops_tasks import evaluation as _evaluation
from mlops_tasks import registry as _registry
from mlops_tasks import training as _training
from mlops_tasks import validation as _validation
from mlops_tasks.errors import DataValidationError, ImageVerificationError, QualityGateError, is_transient
from mlops_tasks.settings import MlflowConfig, S3Config

__all__ = [
    "build_model_image",
    "evaluate_model",
    "load_dataset",
    "promote_model",
    "push_model_image",
    "register_model",
    "rollback_model",
    "split_dataset",
    "suggest_expectations",
    "train_model",
    "validate_data",
    "verify_model_image",
    "check_drift",
    "load_drift_reference",
    "load_prediction_window",
    "score_batch",
]


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only when the failure is a transient one (a server not answering)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself may re-raise
        exc = error
    return isinstance(exc, BaseException) and is_transient(exc)


_IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _retry_transient,
}


def _artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")[:100]


@task(name="load-dataset", timeout_seconds=1800, **_IO_RETRIES)
def load_dataset(spec: _data.DatasetSpec) -> _data.LoadedDataset:
    """Read a CSV or Parquet dataset (local or ``s3://``) with its fingerprint.

    Args:
        spec: Where the dataset is and how to read it.

    Returns:
        The frame and its lineage.

    Raises:
        DatasetNotFoundError: The file, bucket or key does not exist.
        EmptyDatasetError: The file holds no rows.
        StorageError: S3 refused the request.

    Example:
        ```python
        from prefect import flow
        from mlops_tasks.data import DatasetSpec
        from mlops_tasks.tasks import load_dataset

        @flow
        def peek(uri: str) -> int:
            return load_dataset(DatasetSpec(uri=uri)).info.rows
        ```
    """
    loaded = _data.load_dataset(spec)
    get_run_logger().info(
        "Loaded %s: %d rows x %d columns, fingerprint %s",
        spec.uri, loaded.info.rows, len(loaded.info.columns), loaded.info.fingerprint[:12],
    )
    return loaded


@task(name="split-dataset")
def split_dataset(
    frame: pd.DataFrame,
    *,
    target: str,
    holdout_fraction: float = 0.2,
    seed: int = 42,
    stratify: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split deterministically into train and holdout (stratified for classification).

    Args:
        frame: Full dataset.
        target: Target column.
        holdout_fraction: Share kept out for evaluation.
        seed: Random seed.
        stratify: Keep class proportions.

    Returns:
        ``(train, holdout)``.

    Raises:
        SchemaError: The target column is missing.
        DataError: Too few rows or a class too small to stratify.

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


@task(name="suggest-expectations")
def suggest_expectations(
    reference: pd.DataFrame,
    suite_path: str | Path,
    *,
    suite_name: str | None = None,
    exclude_columns: list[str] | None = None,
    range_margin: float = 0.1,
    null_margin: float = 0.05,
) -> Path:
    """Infer a Great Expectations suite from reference data and write it as JSON.

    Args:
        reference: Data that is known to be good.
        suite_path: Where to write the ``ExpectationSuite`` JSON file.
        suite_name: Suite name; defaults to the file's stem.
        exclude_columns: Columns to leave out of the suite.
        range_margin: Numeric ranges widened by this share of their span.
        null_margin: Allowed null rate above the observed one.

    Returns:
        The path written.

    Raises:
        EmptyDatasetError: The reference has no rows.

    Example:
        ```python
        suggest_expectations(reference_frame, "expectations/churn.json")
        ```
    """
    path = Path(suite_path)
    suite = _validation.suggest_expectations(
        reference,
        suite_name or path.stem,
        exclude_columns=tuple(exclude_columns or ()),
        range_margin=range_margin,
        null_margin=null_margin,
    )
    written = _validation.write_suite(suite, path)
    get_run_logger().info(
        "Wrote suite %s with %d expectations to %s", suite.name, len(suite.expectations), written
    )
    return written


@task(name="validate-data", timeout_seconds=3600)
def validate_data(
    frame: pd.DataFrame,
    suite_path: str | Path,
    *,
    dataset_name: str = "dataset",
    fail_on_error: bool = True,
) -> _validation.ValidationReport:
    """Validate a frame with Great Expectations against a suite file; fail fast.

    The report is published as a Prefect markdown artifact whether or not the
    data passed.

    Args:
        frame: Data to check.
        suite_path: ``ExpectationSuite`` JSON file.
        dataset_name: Name shown in the report.
        fail_on_error: Raise :class:`DataValidationError` when an expectation fails.

    Returns:
        The validation report.

    Raises:
        DataValidationError: Expectations failed and ``fail_on_error`` is True.
        ConfigurationError: The suite file is missing or unreadable.

    Example:
        ```python
        report = validate_data(frame, "expectations/churn.json", dataset_name="churn")
        ```
    """
    suite = _validation.load_suite(suite_path)
    try:
        report = _validation.validate_dataframe(
            frame, suite, dataset_name=dataset_name, fail_on_error=fail_on_error
        )
    except DataValidationError as exc:
        _publish_validation(exc.report, dataset_name)
        raise
    _publish_validation(report, dataset_name)
    return report


def _publish_validation(report: _validation.ValidationReport, dataset_name: str) -> None:
    create_markdown_artifact(
        markdown=report.to_markdown(),
        key=_artifact_key("validation", dataset_name),
        description=report.summary(),
    )
    get_run_logger().info("%s", report.summary())


@task(name="train-model", **_IO_RETRIES)
def train_model(
    train: pd.DataFrame,
    spec: _training.TrainingSpec,
    *,
    data: _data.DatasetInfo,
    segment_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    reuse_existing: bool = True,
) -> _training.TrainedModel:
    """Fit the spec's scikit-learn pipeline and track it in MLflow.

    Args:
        train: Training rows.
        spec: Estimator, params, features, optional search.
        data: Lineage of the dataset.
        segment_column: Segment column recorded for evaluation.
        mlflow_config: Where MLflow lives (argument > environment > default).
        reuse_existing: Reuse a finished run with the same data and spec.

    Returns:
        The logged candidate.

    Raises:
        TrainingError: The target cannot be learnt or the fit failed.
        EstimatorError: Estimator import path or params unusable.
        ServiceUnavailableError: MLflow did not answer (retried).

    Example:
        ```python
        trained = train_model(train, TrainingSpec(target="churned"), data=ds.info)
        ```
    """
    trained = _training.train_model(
        train, spec, data=data, segment_column=segment_column,
        mlflow_config=mlflow_config, reuse_existing=reuse_existing,
    )
    get_run_logger().info(
        "%s run %s (%s)", "Reused" if trained.reused else "Trained", trained.run_id, trained.model_uri
    )
    return trained


@task(name="evaluate-model", timeout_seconds=3600, **_IO_RETRIES)
def evaluate_model(
    trained: _training.TrainedModel,
    holdout: pd.DataFrame,
    gate: _evaluation.QualityGate,
    *,
    model_name: str | None = None,
    segment_column: str | None = None,
    compare_to_champion: bool = True,
    fail_on_error: bool = True,
    mlflow_config: MlflowConfig | None = None,
) -> _evaluation.EvaluationReport:
    """Evaluate on the holdout, per slice, against the champion; apply the gate.

    Publishes a table artifact of the gate checks and a markdown artifact of
    the metrics (candidate vs champion, slices).

    Args:
        trained: The candidate.
        holdout: Holdout rows.
        gate: Thresholds.
        model_name: Registered model whose champion is the baseline.
        segment_column: Column defining slices.
        compare_to_champion: False applies absolute thresholds only.
        fail_on_error: Raise :class:`QualityGateError` when the gate fails.
        mlflow_config: Where MLflow lives.

    Returns:
        The evaluation report with the verdict and its reasons.

    Raises:
        QualityGateError: The gate failed and ``fail_on_error`` is True.
        ModelNotFoundError: The champion alias points at a deleted version.
        EvaluationError: The candidate or champion cannot score the holdout.

    Example:
        ```python
        report = evaluate_model(trained, holdout, gate, model_name="churn", fail_on_error=False)
        ```
    """
    try:
        report = _evaluation.evaluate_model(
            trained, holdout, gate, model_name=model_name, segment_column=segment_column,
            compare_to_champion=compare_to_champion, fail_on_error=fail_on_error,
            mlflow_config=mlflow_config,
        )
    except QualityGateError as exc:
        _publish_evaluation(exc.report, model_name)
        raise
    _publish_evaluation(report, model_name)
    return report


def _publish_evaluation(report: _evaluation.EvaluationReport, model_name: str | None) -> None:
    create_markdown_artifact(
        markdown=report.to_markdown(), key=_artifact_key("evaluation", model_name or "model")
    )
    if report.checks:
        create_table_artifact(
            table=[c.model_dump() for c in report.checks],
            key=_artifact_key("gate", model_name or "model"),
            description=f"Quality gate {'passed' if report.passed else 'FAILED'}",
        )
    get_run_logger().info(
        "Gate %s for run %s%s", "passed" if report.passed else "FAILED", report.run_id,
        "" if report.passed else f": {'; '.join(report.failed_reasons)}",
    )


@task(name="register-model", timeout_seconds=600, **_IO_RETRIES)
def register_model(
    trained: _training.TrainedModel,
    report: _evaluation.EvaluationReport,
    model_name: str,
    *,
    mlflow_config: MlflowConfig | None = None,
) -> _registry.RegisteredVersion:
    """Register the candidate with its verdict; alias ``challenger`` when it passed.

    Args:
        trained: The candidate.
        report: Its evaluation.
        model_name: Registered model name.
        mlflow_config: Where MLflow lives.

    Returns:
        The version (an existing one when this run was registered before).

    Raises:
        RegistryError: The registry refused the operation.

    Example:
        ```python
        version = register_model(trained, report, "churn-classifier")
        ```
    """
    version = _registry.register_model(trained, report, model_name, mlflow_config=mlflow_config)
    get_run_logger().info(
        "%s %s version %s (gate %s)",
        "Registered" if version.created else "Already registered:",
        model_name, version.version, "passed" if version.gate_passed else "failed",
    )
    return version


@task(name="promote-model", timeout_seconds=300, **_IO_RETRIES)
def promote_model(
    model_name: str,
    version: int,
    *,
    force: bool = False,
    mlflow_config: MlflowConfig | None = None,
) -> _registry.PromotionResult:
    """Move alias ``champion`` to a version whose gate passed (or ``force=True``).

    Args:
        model_name: Registered model name.
        version: Version to promote.
        force: Promote without a passed gate.
        mlflow_config: Where MLflow lives.

    Returns:
        What moved, with the previous champion.

    Raises:
        ModelNotFoundError: The version does not exist.
        PromotionRefusedError: The gate did not pass and ``force`` is False.

    Example:
        ```python
        promote_model("churn-classifier", 4)
        ```
    """
    result = _registry.promote_model(model_name, version, force=force, mlflow_config=mlflow_config)
    get_run_logger().info(
        "Champion of %s: %s -> %s%s", model_name, result.previous_version, result.version,
        "" if result.changed else " (unchanged)",
    )
    return result


@task(name="rollback-model", timeout_seconds=300, **_IO_RETRIES)
def rollback_model(
    model_name: str, *, mlflow_config: MlflowConfig | None = None
) -> _registry.PromotionResult:
    """Move ``champion`` back to the previous champion in one step.

    Args:
        model_name: Registered model name.
        mlflow_config: Where MLflow lives.

    Returns:
        What moved.

    Raises:
        ModelNotFoundError: No champion, or the previous one was deleted.
        PromotionRefusedError: No previous champion was recorded.

    Example:
        ```python
        rollback_model("churn-classifier")
        ```
    """
    result = _registry.rollback_model(model_name, mlflow_config=mlflow_config)
    get_run_logger().info(
        "Rolled back %s: champion %s -> %s", model_name, result.previous_version, result.version
    )
    return result


# --- containerize tasks ---

from mlops_tasks import containerize as _containerize  # noqa: E402


def _publish_image(image: _containerize.ImageRef, action: str) -> None:
    rows = [
        {"field": "image", "value": image.reference},
        {"field": "image id", "value": image.image_id},
        {"field": "tags", "value": ", ".join(image.tags)},
        {"field": "size (MB)", "value": f"{image.size_bytes / 1e6:.1f}"},
        {"field": "model", "value": f"{image.model_name} v{image.model_version}"},
        {"field": "reused", "value": str(image.reused)},
        {"field": "repo digest", "value": image.repo_digest or ""},
        {"field": "pushed", "value": ", ".join(image.pushed)},
        {"field": "build context", "value": str(image.build_context or "")},
    ]
    create_table_artifact(
        table=rows, key=_artifact_key("image", image.model_name, f"v{image.model_version}"),
        description=f"{action} {image.reference}",
    )


@task(name="build-model-image", timeout_seconds=3600, **_IO_RETRIES)
def build_model_image(
    model_name: str,
    version: int | str,
    *,
    spec: _containerize.ImageSpec | None = None,
    engine: _containerize.DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
    force_rebuild: bool = False,
) -> _containerize.ImageRef:
    """Build (or reuse) the offline model-server image of a registered version.

    The build log goes to the run logger; a table artifact describes the image.

    Args:
        model_name: Registered model name.
        version: Version number or alias (``"champion"``).
        spec: Image options (base image, platform, labels, ``keep_images``).
        engine: Docker engine (``DockerEngine`` or a prefect-docker ``DockerHost`` block).
        mlflow_config: Where MLflow lives.
        force_rebuild: Build even when an identical image exists.

    Returns:
        The image reference.

    Raises:
        ModelNotFoundError: The version does not exist.
        WheelhouseError: A requirement has no wheel for the platform.
        BaseImageNotFoundError: The base image is missing.
        ImageBuildError: A Dockerfile step failed.
        DockerUnavailableError: No engine answers (retried).

    Example:
        ```python
        ref = build_model_image("churn-classifier", 4)
        ```
    """
    logger = get_run_logger()
    image = _containerize.build_model_image(
        model_name, version, spec=spec, engine=engine, mlflow_config=mlflow_config,
        force_rebuild=force_rebuild, log=logger.info,
    )
    _publish_image(image, "Reused" if image.reused else "Built")
    return image


@task(name="push-model-image", timeout_seconds=3600, **_IO_RETRIES)
def push_model_image(
    image: _containerize.ImageRef,
    registry: str,
    *,
    credentials: _containerize.RegistryCredentials | Any | str | None = None,
    repository: str | None = None,
    engine: _containerize.DockerEngine | Any | None = None,
    ecr_endpoint_url: str | None = None,
) -> _containerize.ImageRef:
    """Push a model image to a registry (ECR logs in with a boto3 token).

    Args:
        image: From :func:`build_model_image`.
        registry: ``host[:port][/namespace]``.
        credentials: ``RegistryCredentials``, a Prefect block with ``username`` and
            ``password``, or a saved block's ``"slug/name"``.
        repository: Repository in the registry (default: the local one).
        engine: Docker engine.
        ecr_endpoint_url: ECR API endpoint for the token.

    Returns:
        The reference with its repository digest.

    Raises:
        RegistryUnreachableError: Unknown host or no answer (retried).
        RegistryAuthError: Credentials refused.
        RepositoryNotFoundError: No such repository.

    Example:
        ```python
        pushed = push_model_image(ref, "123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        ```
    """
    logger = get_run_logger()
    pushed = _containerize.push_model_image(
        image, registry, credentials=credentials, repository=repository, engine=engine,
        ecr_endpoint_url=ecr_endpoint_url, log=logger.info,
    )
    _publish_image(pushed, "Pushed")
    return pushed


@task(name="verify-model-image", timeout_seconds=1800)
def verify_model_image(
    image: _containerize.ImageRef | str,
    holdout: pd.DataFrame,
    *,
    target: str | None = None,
    max_rows: int = 200,
    load_timeout_s: float = 120.0,
    tries: int = 60,
    engine: _containerize.DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
) -> _containerize.VerificationReport:
    """Run the image on loopback, probe ``/health``, compare predictions; record the verdict.

    Publishes a markdown artifact with the verdict whether or not it passed.

    Args:
        image: Image reference or id (with model labels).
        holdout: Real rows to send.
        target: Target column dropped from ``holdout``.
        max_rows: Rows sent.
        load_timeout_s: Time allowed to become healthy.
        tries: Health polls in that time.
        engine: Docker engine.
        mlflow_config: Where MLflow lives.

    Returns:
        The passed verification report.

    Raises:
        ImageVerificationError: Not healthy in time or predictions differ.

    Example:
        ```python
        report = verify_model_image(ref, holdout, target="churned")
        ```
    """
    logger = get_run_logger()
    name = image.reference if isinstance(image, _containerize.ImageRef) else image
    try:
        report = _containerize.verify_model_image(
            image, holdout, target=target, max_rows=max_rows, load_timeout_s=load_timeout_s, tries=tries,
            engine=engine, mlflow_config=mlflow_config, log=logger.info,
        )
    except ImageVerificationError as exc:
        if exc.report is not None:
            _publish_verification(exc.report, name)
        raise
    _publish_verification(report, name)
    return report


def _publish_verification(report: _containerize.VerificationReport, name: str) -> None:
    verdict = "passed" if report.passed else "FAILED"
    markdown = (
        f"# Image verification {verdict}\n\n| | |\n|---|---|\n| image | `{name}` |\n"
        f"| image id | `{report.image_id}` |\n| model | {report.model_name} v{report.model_version} |\n"
        f"| rows compared | {report.rows} |\n| mismatches | {report.mismatches} |\n"
        f"| healthy after (s) | {report.health_seconds} |\n| detail | {report.detail} |\n"
    )
    create_markdown_artifact(
        markdown=markdown, key=_artifact_key("verify", report.model_name, f"v{report.model_version}"),
        description=f"Image verification {verdict}",
    )
# --- monitoring tasks ---

from mlops_tasks import monitoring as _monitoring  # noqa: E402


@task(name="load-drift-reference", timeout_seconds=1800, **_IO_RETRIES)
def load_drift_reference(
    model_name: str,
    *,
    version: int | None = None,
    alias: str = "champion",
    mlflow_config: MlflowConfig | None = None,
    with_predictions: bool = True,
) -> _monitoring.ReferenceData:
    """Load the training split recorded for a model version (``reference/train.parquet``).

    Args:
        model_name: Registered model name.
        version: Version; default: the one holding ``alias``.
        alias: Alias used when ``version`` is not given.
        mlflow_config: Where MLflow lives.
        with_predictions: Score the reference with the model (for prediction drift).

    Returns:
        The reference with its lineage (version, target, task, holdout metrics).

    Raises:
        ModelNotFoundError: No such model, version or alias.
        ReferenceDataNotFoundError: The version's run recorded no reference data.

    Example:
        ```python
        reference = load_drift_reference("churn-classifier")
        ```
    """
    reference = _monitoring.load_reference(
        model_name, version=version, alias=alias, mlflow_config=mlflow_config,
        with_predictions=with_predictions,
    )
    get_run_logger().info(
        "Reference of %s v%s: %d rows x %d features (%s)", model_name, reference.model_version,
        len(reference.frame), reference.frame.shape[1], reference.source,
    )
    return reference


@task(name="load-prediction-window", timeout_seconds=1800, **_IO_RETRIES)
def load_prediction_window(
    sink: str,
    window: _monitoring.DriftWindow | None = None,
    *,
    model_name: str | None = None,
    s3_endpoint_url: str | None = None,
    s3: S3Config | None = None,
) -> pd.DataFrame:
    """Read the prediction log (local folder or ``s3://``) for ``[start, end)``.

    Args:
        sink: The prediction log.
        window: Time window; ``None`` reads everything.
        model_name: Keep only this model's rows.
        s3_endpoint_url: S3 endpoint for ``s3://`` sinks.
        s3: :class:`~mlops_tasks.settings.S3Config` (endpoint, credentials or an
            ``AwsCredentials`` block name) for ``s3://`` sinks.

    Returns:
        The rows (possibly none).

    Raises:
        DatasetNotFoundError: The local sink folder does not exist.
        PredictionLogError: A log file cannot be read.

    Example:
        ```python
        current = load_prediction_window("/var/log/predictions", resolve_window(last_hours=24))
        ```
    """
    frame = _monitoring.load_current(sink, window, model_name=model_name, s3_endpoint_url=s3_endpoint_url,
                                     s3=s3)
    get_run_logger().info(
        "Read %d logged predictions from %s in %s", len(frame), sink,
        (window or _monitoring.DriftWindow()).describe(),
    )
    return frame


@task(name="check-drift", timeout_seconds=3600, **_IO_RETRIES)
def check_drift(
    reference: _monitoring.ReferenceData | pd.DataFrame,
    current: pd.DataFrame,
    *,
    settings: _monitoring.DriftSettings | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    window: _monitoring.DriftWindow | None = None,
    current_source: str | None = None,
    target: str | None = None,
    labels: pd.DataFrame | None = None,
    label_column: str = "label",
    report_location: str | None = None,
    s3: S3Config | None = None,
    mlflow_config: MlflowConfig | None = None,
    log_to_mlflow: bool = True,
    emit_event: bool = True,
) -> _monitoring.DriftReport:
    """Check drift, save the Evidently HTML, log a monitoring run, publish artifacts, emit the event.

    The verdicts come from all rows (:func:`mlops_tasks.monitoring.check_drift`);
    the HTML report (rendered from a sample) goes under ``report_location``
    (default ``<state dir>/monitoring``, or an ``s3://`` prefix) and is linked from
    a Prefect link artifact; a markdown artifact holds the summary table. With
    ``log_to_mlflow`` the report is logged on a run of ``<experiment>-monitoring``.
    When the status is ``drift`` (and a model name is known) the Prefect event
    ``mlops.drift.detected`` is emitted with resource ``mlops.model.<name>``.

    Args:
        reference: Reference rows or the :class:`~mlops_tasks.monitoring.ReferenceData`
            of a model version.
        current: Current rows (a prediction-log window or a dataset).
        settings: Tests, thresholds, minimum rows, HTML sample size.
        model_name: Model name (default: the reference's).
        model_version: Model version (default: the reference's).
        window: Time window of ``current``.
        current_source: Where ``current`` came from.
        target: Target column to leave out of the comparison.
        labels: Ground truth (``request_id``, ``label_column``) for performance drift.
        label_column: Label column of ``labels``.
        report_location: Local folder or ``s3://`` prefix for the HTML report.
        s3: :class:`~mlops_tasks.settings.S3Config` for an ``s3://`` location.
        mlflow_config: Where MLflow lives.
        log_to_mlflow: Log a monitoring run.
        emit_event: Emit ``mlops.drift.detected`` on drift.

    Returns:
        The report (status ``ok``, ``drift`` or ``not_enough_data``).

    Raises:
        NoCommonColumnsError: Reference and current share no feature column.
        EmptyDatasetError: The reference has no rows.

    Example:
        ```python
        report = check_drift(reference, current, window=window, report_location="s3://reports/drift")
        ```
    """
    logger = get_run_logger()
    report = _monitoring.check_drift(
        reference, current, settings=settings, model_name=model_name, model_version=model_version,
        window=window, current_source=current_source, target=target, labels=labels,
        label_column=label_column,
        report_location=report_location or _monitoring.default_report_location(), s3=s3,
    )
    if log_to_mlflow and report.status != "not_enough_data":
        report.mlflow_run_id = _monitoring.log_drift_run(
            report, mlflow_config=mlflow_config, html_path=report.html_uri
        )
    publish_drift_report(report)
    if emit_event:
        event_id = _monitoring.emit_drift_event(report)
        if event_id:
            logger.warning("Emitted %s (event %s) for %s v%s", _monitoring.EVENT_DRIFT_DETECTED,
                           event_id, report.model_name, report.model_version)
    log = logger.warning if report.status == "drift" else logger.info
    log("%s", report.reason)
    return report


def publish_drift_report(report: _monitoring.DriftReport) -> None:
    """Publish the report as Prefect artifacts: markdown summary table and a link to the HTML.

    Example:
        ```python
        publish_drift_report(report)
        ```
    """
    key = _artifact_key("drift", report.model_name or "data")
    create_markdown_artifact(markdown=report.to_markdown(), key=key, description=report.reason[:500])
    if report.html_uri:
        link = report.html_uri if report.html_uri.startswith("s3://") else Path(report.html_uri).as_uri()
        create_link_artifact(
            link=link, link_text="Evidently drift report",
            key=_artifact_key("drift-html", report.model_name or "data"),
            description=f"Evidently DataDriftPreset on a sample of {report.html_sample_rows} rows per side; "
            "verdicts in the summary use all rows.",
        )


@task(name="score-batch", timeout_seconds=3600, **_IO_RETRIES)
def score_batch(
    frame: pd.DataFrame,
    model_name: str,
    *,
    output: str,
    alias: str = "champion",
    version: int | None = None,
    id_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    s3: S3Config | None = None,
    served_by: str = "batch",
) -> _monitoring.BatchPredictions:
    """Score a frame with a registered model; write predictions in the prediction-log layout.

    Args:
        frame: Rows to score.
        model_name: Registered model.
        output: A ``.parquet``/``.csv`` file, or a sink folder / ``s3://`` prefix.
        alias: Alias scored with when ``version`` is not given.
        version: Version to score with.
        id_column: Column to use as ``request_id``.
        mlflow_config: Where MLflow lives.
        s3: :class:`~mlops_tasks.settings.S3Config` for ``s3://`` outputs.
        served_by: Written to the ``served_by`` column.

    Returns:
        Where the predictions went.

    Raises:
        ModelNotFoundError: No such model, version or alias.
        SchemaError: Feature columns are missing.

    Example:
        ```python
        out = score_batch(frame, "churn-classifier", output="data/churn-predictions")
        ```
    """
    out = _monitoring.score_batch(
        frame, model_name, output=output, alias=alias, version=version, id_column=id_column,
        mlflow_config=mlflow_config, s3=s3, served_by=served_by,
    )
    get_run_logger().info("Scored %d rows with %s v%s -> %s", out.rows, model_name, out.model_version,
                          out.output_uri)
    return out
# --- deploy tasks ---

from mlops_tasks.deploy import models as _deploy_models  # noqa: E402
from mlops_tasks.deploy import strategy as _deploy  # noqa: E402
from mlops_tasks.errors import DeploymentError  # noqa: E402

__all__ += [
    "deploy_blue_green",
    "describe_deployment",
    "rollback_deployment",
    "stop_endpoint",
]


def _publish_deployment(record: _deploy_models.DeploymentRecord) -> None:
    """A Prefect markdown artifact with the deployment record and its timeline."""
    rows = "\n".join(f"| {e.at} | {e.step} | {e.detail.replace('|', '/')} |" for e in record.timeline)
    text = (
        f"## {record.kind.capitalize()} of {record.model_name} version {record.version} "
        f"on endpoint `{record.endpoint}`: **{record.outcome}**\n\n"
        f"- target: {record.target}, strategy: {record.strategy}, by {record.who}\n"
        f"- previous version: {record.previous_version}, live slot: {record.live_color}\n"
        f"- switch: {'' if record.switch_ms is None else f'{record.switch_ms:.0f} ms'}\n"
        + (f"- error: {record.error}\n" if record.error else "")
        + (f"- guard: {record.guard}\n" if record.guard else "")
        + (f"- shadow: {record.shadow}\n" if record.shadow else "")
        + "\n| at | step | detail |\n|---|---|---|\n" + rows + "\n"
    )
    create_markdown_artifact(
        markdown=text, key=_artifact_key("deployment", record.endpoint),
        description=f"{record.kind} {record.model_name} v{record.version}: {record.outcome}",
    )


def _run_publishing(call: Any) -> _deploy_models.DeploymentRecord:
    try:
        record = call()
    except DeploymentError as exc:
        if exc.record is not None:
            _publish_deployment(exc.record)
        raise
    _publish_deployment(record)
    return record


@task(name="deploy-blue-green", timeout_seconds=3600)
def deploy_blue_green(
    model_name: str,
    version: int,
    *,
    endpoint: _deploy_models.EndpointSpec | None = None,
    rollout: _deploy_models.RolloutSpec | None = None,
    target: str = "local",
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
    force: bool = False,
) -> _deploy_models.DeploymentRecord:
    """Deploy a registered version blue-green; ``champion`` moves to it on success.

    See :func:`mlops_tasks.deploy.strategy.deploy_blue_green`. The deployment record is
    published as a Prefect artifact (also when the deployment fails or rolls back).
    Not retried: a failed rollout is never repeated blindly.

    Raises:
        SlotStartError: Green crashed on start or never became healthy.
        SmokeTestError: Green's predictions differ from the registered model's.
        GuardBreachError: The bake guard fired; all traffic went back to blue.
        CandidateUnhealthyError: The candidate died, hung, was marked DOWN or was not found
            serving the live port; all traffic went back to the old slot.
        RolloutError: The shadow comparison failed.
        EndpointBusyError: Another deployment of the endpoint runs.
        EndpointPortError: A port the endpoint needs is taken.
        RouterConfigError: HAProxy rejected the rendered configuration.

    Example:
        ```python
        from mlops_tasks.deploy import EndpointSpec, RolloutSpec
        deploy_blue_green("churn-classifier", 4, endpoint=EndpointSpec(name="churn"),
                          rollout=RolloutSpec(strategy="canary", bake_seconds=60))
        ```
    """
    logger = get_run_logger()
    record = _run_publishing(lambda: _deploy.deploy_blue_green(
        model_name, version, endpoint=endpoint, rollout=rollout, target=target, smoke_rows=smoke_rows,
        mlflow_config=mlflow_config, force=force,
        listener=lambda r: logger.info("%s %s", r.timeline[-1].step, r.timeline[-1].detail),
    ))
    logger.info("%s version %s on %s: %s", model_name, version, record.endpoint, record.outcome)
    return record


@task(name="rollback-deployment", timeout_seconds=1800)
def rollback_deployment(
    endpoint_name: str = "default",
    *,
    rollout: _deploy_models.RolloutSpec | None = None,
    smoke_rows: pd.DataFrame | None = None,
    mlflow_config: MlflowConfig | None = None,
) -> _deploy_models.DeploymentRecord:
    """Put the previous version back at 100 % (weights only when its slot is warm).

    Raises:
        RollbackError: Nothing to roll back to.

    Example:
        ```python
        rollback_deployment("churn")
        ```
    """
    logger = get_run_logger()
    record = _run_publishing(lambda: _deploy.rollback_deployment(
        endpoint_name, rollout=rollout, smoke_rows=smoke_rows, mlflow_config=mlflow_config,
        listener=lambda r: logger.info("%s %s", r.timeline[-1].step, r.timeline[-1].detail),
    ))
    logger.info("Endpoint %s rolled back to version %s", endpoint_name, record.version)
    return record


@task(name="describe-deployment")
def describe_deployment(endpoint_name: str = "default") -> _deploy_models.EndpointDescription:
    """What serves where right now (router weights, slots, versions).

    Example:
        ```python
        print(describe_deployment("churn").live_version)
        ```
    """
    info = _deploy.describe_deployment(endpoint_name)
    get_run_logger().info(
        "%s: %s version %s live in slot %s", info.url, info.model_name, info.live_version, info.live_color
    )
    return info


@task(name="stop-endpoint", timeout_seconds=300)
def stop_endpoint(endpoint_name: str = "default") -> bool:
    """Stop the endpoint's router and slots (the deployment history stays).

    Example:
        ```python
        stop_endpoint("churn")
        ```
    """
    stopped = _deploy.stop_endpoint(endpoint_name)
    get_run_logger().info("Endpoint %s %s", endpoint_name, "stopped" if stopped else "was not running")
    return stopped
# --- retrain tasks ---

from mlops_tasks import retrain as _retrain  # noqa: E402

__all__ += ["claim_retrain", "load_training_reference", "prepare_training_data", "release_retrain_claim"]


@task(name="claim-retrain", timeout_seconds=300, **_IO_RETRIES)
def claim_retrain(
    model_name: str,
    *,
    cooldown_minutes: float,
    claimant: str,
    mlflow_config: MlflowConfig | None = None,
) -> _retrain.RetrainClaim:
    """Claim the right to retrain a model now, or learn that its cool-down runs (atomic across runs).

    Args:
        model_name: Registered model name.
        cooldown_minutes: Shortest time between two retrains (0 = off).
        claimant: Who claims (the flow run id).
        mlflow_config: Where MLflow lives.

    Returns:
        The claim: ``claimed`` or the reason and end of the cool-down.

    Raises:
        ModelNotFoundError: The model is not registered.

    Example:
        ```python
        claim = claim_retrain("churn-classifier", cooldown_minutes=1440, claimant="manual")
        ```
    """
    claim = _retrain.claim_retrain(
        model_name, cooldown_minutes=cooldown_minutes, claimant=claimant, mlflow_config=mlflow_config
    )
    get_run_logger().info("Retrain of %s: %s", model_name, claim.reason)
    return claim


@task(name="release-retrain-claim", timeout_seconds=300)
def release_retrain_claim(
    claim: _retrain.RetrainClaim, claimant: str, *, mlflow_config: MlflowConfig | None = None
) -> bool:
    """Give back a cool-down claim when the retrain stopped before training.

    Example:
        ```python
        release_retrain_claim(claim, "manual")
        ```
    """
    released = _retrain.release_retrain_claim(claim, claimant, mlflow_config=mlflow_config)
    get_run_logger().info("Retrain claim of %s %s", claim.model_name,
                          "released" if released else "kept (claimed by someone else since)")
    return released


@task(name="load-training-reference", timeout_seconds=1800, **_IO_RETRIES)
def load_training_reference(
    model_name: str, *, alias: str = "champion", mlflow_config: MlflowConfig | None = None
) -> _retrain.TrainingReference:
    """Load the training split (target included) recorded with ``model_name@alias``.

    Raises:
        ModelNotFoundError: The model has no version holding ``alias``.
        ReferenceDataNotFoundError: Its run lacks ``reference/train.parquet``.

    Example:
        ```python
        split = load_training_reference("churn-classifier").frame
        ```
    """
    ref = _retrain.load_training_reference(model_name, alias=alias, mlflow_config=mlflow_config)
    get_run_logger().info("Training split of %s v%s: %d rows (%s)", model_name, ref.version,
                          len(ref.frame), ref.source)
    return ref


@task(name="prepare-training-data", timeout_seconds=1800)
def prepare_training_data(
    parts: list[tuple[str, pd.DataFrame]],
    *,
    target: str,
    location: str,
    features: list[str] | None = None,
    min_fresh_rows: int = 1,
) -> _retrain.RetrainData:
    """Combine the reference and fresh labelled rows into one Parquet dataset.

    Raises:
        DataError: Too few fresh labelled rows.
        SchemaError: A part lacks the target or a feature.

    Example:
        ```python
        data = prepare_training_data([("reference", ref), ("new.csv", new)], target="churned",
                                     location="/tmp/retrain.parquet")
        ```
    """
    data = _retrain.prepare_training_data(
        parts, target=target, location=location, features=features, min_fresh_rows=min_fresh_rows
    )
    get_run_logger().info("Retrain data %s: %d rows (%d reference, %d fresh)", data.uri, data.rows,
                          data.reference_rows, data.fresh_rows)
    return data
