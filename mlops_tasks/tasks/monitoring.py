"""Tasks of the monitoring stage: load the reference and the prediction window, check drift and report it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from mlops_tasks import monitoring as _monitoring
from mlops_tasks import training as _training
from mlops_tasks.drift_events import emit_drift_event
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.stages.monitoring import drift_on_cluster
from mlops_tasks.stages.params import DriftCheckParams
from mlops_tasks.tasks._prefect import IO_RETRIES, artifact_key, resolves_blocks

__all__ = [
    "check_drift_and_report",
    "check_drift_on_cluster_and_report",
    "load_drift_reference",
    "load_prediction_window",
    "publish_drift_report",
]


@task(name="load-drift-reference", timeout_seconds=1800, **IO_RETRIES)
@resolves_blocks
def load_drift_reference(
    model_name: str,
    *,
    version: int | str | None = None,
    alias: str = "champion",
    mlflow_config: MlflowConfig | None = None,
    with_predictions: bool = True,
) -> _monitoring.ReferenceData:
    """Load the training split recorded for a model version.

    Task form of :func:`mlops_tasks.monitoring.load_reference`.

    Retried on transient failures.

    Example:
        ```python
        reference = load_drift_reference("churn-classifier")
        ```
    """
    reference = _monitoring.load_reference(
        model_name,
        version=version,
        alias=alias,
        mlflow_config=mlflow_config,
        with_predictions=with_predictions,
    )
    get_run_logger().info(
        "Reference of %s v%s: %d rows x %d features (%s)",
        model_name,
        reference.model_version,
        len(reference.frame),
        reference.frame.shape[1],
        reference.source,
    )
    return reference


@task(name="load-prediction-window", timeout_seconds=1800, **IO_RETRIES)
@resolves_blocks
def load_prediction_window(
    sink: str,
    window: _monitoring.DriftWindow | None = None,
    *,
    model_name: str | None = None,
    s3_endpoint_url: str | None = None,
    s3: S3Config | None = None,
) -> pd.DataFrame:
    """Read the prediction log for a time window.

    Task form of :func:`mlops_tasks.monitoring.load_current`.

    Retried on transient failures.

    Example:
        ```python
        current = load_prediction_window("/var/log/predictions", resolve_window(last_hours=24))
        ```
    """
    frame = _monitoring.load_current(
        sink, window, model_name=model_name, s3_endpoint_url=s3_endpoint_url, s3=s3
    )
    get_run_logger().info(
        "Read %d logged predictions from %s in %s",
        len(frame),
        sink,
        (window or _monitoring.DriftWindow()).describe(),
    )
    return frame


@task(name="check-drift-and-report", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def check_drift_and_report(  # noqa: D417 (the composed core functions document the other parameters)
    reference: _monitoring.ReferenceData | pd.DataFrame,
    current: pd.DataFrame,
    *,
    settings: _monitoring.DriftSettings | None = None,
    model_name: str | None = None,
    model_version: str | int | None = None,
    window: _monitoring.DriftWindow | None = None,
    current_source: str | None = None,
    target: str | None = None,
    reference_predictions: pd.Series | None = None,
    labels: pd.DataFrame | None = None,
    label_column: str = "label",
    task: _training.TaskType | None = None,
    training_metrics: dict[str, float] | None = None,
    report_location: str | None = None,
    s3: S3Config | None = None,
    mlflow_config: MlflowConfig | None = None,
    log_to_mlflow: bool = True,
    emit_event: bool = True,
) -> _monitoring.DriftReport:
    """Check drift, save the HTML report, log a monitoring run, publish artifacts, emit the event.

    Composes :func:`mlops_tasks.monitoring.check_drift` (with the HTML report saved under
    ``report_location``, or :func:`~mlops_tasks.monitoring.default_report_location` when
    it is ``None``), :func:`~mlops_tasks.monitoring.log_drift_run`,
    :func:`publish_drift_report` and :func:`~mlops_tasks.drift_events.emit_drift_event`;
    their parameters are this task's. Retried on transient failures.

    Args:
        log_to_mlflow: Log the report on a run of ``<experiment>-monitoring`` (not when
            the status is ``not_enough_data``).
        emit_event: Emit ``mlops.drift.detected`` when the status is ``drift``.

    Example:
        ```python
        report = check_drift_and_report(reference, current, window=window,
                                        report_location="s3://reports/drift")
        ```
    """
    report = _monitoring.check_drift(
        reference,
        current,
        settings=settings,
        model_name=model_name,
        model_version=model_version,
        window=window,
        current_source=current_source,
        target=target,
        reference_predictions=reference_predictions,
        labels=labels,
        label_column=label_column,
        task=task,
        training_metrics=training_metrics,
        report_location=report_location or _monitoring.default_report_location(),
        s3=s3,
    )
    return _record(report, mlflow_config, log_to_mlflow=log_to_mlflow, emit_event=emit_event)


@task(name="check-drift-on-cluster-and-report", timeout_seconds=3600, **IO_RETRIES)
@resolves_blocks
def check_drift_on_cluster_and_report(
    params: DriftCheckParams,
    reference: _monitoring.ReferenceData,
    window: _monitoring.DriftWindow | None,
) -> _monitoring.DriftReport:
    """Check drift on the cluster ``params.cluster`` names, log the run, publish artifacts, emit the event.

    Composes :func:`mlops_tasks.stages.monitoring.drift_on_cluster` (per-column statistics
    computed where the window's Parquet files are read, merged; the HTML from a sample drawn on
    the workers), :func:`mlops_tasks.monitoring.log_drift_run` (when ``params.log_to_mlflow``)
    and :func:`mlops_tasks.drift_events.emit_drift_event` (when ``params.emit_event``), as
    :func:`check_drift_and_report` does in memory. Retried on transient failures.

    Example:
        ```python
        params, window = resolve_drift_inputs(params)  # params.cluster: DaskClusterSpec(address=...)
        report = check_drift_on_cluster_and_report(params, reference, window)
        ```
    """
    report = drift_on_cluster(params, reference, window)
    return _record(report, params.mlflow, log_to_mlflow=params.log_to_mlflow, emit_event=params.emit_event)


def _record(
    report: _monitoring.DriftReport,
    mlflow_config: MlflowConfig | None,
    *,
    log_to_mlflow: bool,
    emit_event: bool,
) -> _monitoring.DriftReport:
    """Log the monitoring run, publish the artifacts, emit the drift event, log the verdict."""
    logger = get_run_logger()
    if log_to_mlflow and report.status != "not_enough_data":
        report.mlflow_run_id = _monitoring.log_drift_run(
            report, mlflow_config=mlflow_config, html_path=report.html_uri
        )
    publish_drift_report(report)
    if emit_event:
        event_id = emit_drift_event(report)
        if event_id:
            logger.warning(
                "Emitted %s (event %s) for %s v%s",
                _monitoring.EVENT_DRIFT_DETECTED,
                event_id,
                report.model_name,
                report.model_version,
            )
    log = logger.warning if report.status == "drift" else logger.info
    log("%s", report.reason)
    return report


def publish_drift_report(report: _monitoring.DriftReport) -> None:
    """Publish the report as Prefect artifacts: markdown summary table and a link to the HTML.

    Args:
        report: A drift report, also the error report of a check that failed.

    Example:
        ```python
        publish_drift_report(report)
        ```
    """
    key = artifact_key("drift", report.model_name or "data")
    create_markdown_artifact(markdown=report.to_markdown(), key=key, description=report.reason[:500])
    if report.html_uri:
        link = report.html_uri if report.html_uri.startswith("s3://") else Path(report.html_uri).as_uri()
        create_link_artifact(
            link=link,
            link_text="Evidently drift report",
            key=artifact_key("drift-html", report.model_name or "data"),
            description=f"Evidently DataDriftPreset on a sample of {report.html_sample_rows} rows per side; "
            "verdicts in the summary use all rows.",
        )
