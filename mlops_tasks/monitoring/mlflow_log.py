"""Logging a drift report as a run of the ``<experiment>-monitoring`` MLflow experiment."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from mlops_tasks.monitoring.models import (
    MONITORING_EXPERIMENT_SUFFIX,
    TAG_DRIFT_STATUS,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    DriftReport,
)
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig

__all__ = ["log_drift_run", "monitoring_experiment"]


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)[:250]


def monitoring_experiment(config: ResolvedMlflowConfig) -> ResolvedMlflowConfig:
    """The same MLflow settings with the experiment ``<experiment>-monitoring``."""
    name = config.experiment_name + MONITORING_EXPERIMENT_SUFFIX
    return config.model_copy(update={"experiment_name": name})


def log_drift_run(
    report: DriftReport, *, mlflow_config: MlflowConfig | None = None, html_path: str | None = None
) -> str:
    """Log the report on a run of the ``<experiment>-monitoring`` experiment; return its id.

    Metrics: ``drift_share``, ``drifted_columns``, ``checked_columns``, row counts
    and one ``drift.<column>`` value per column (``prediction_drift``, ``perf.<metric>``
    when checked). Tags: ``mlops.model_name``, ``mlops.model_version``,
    ``mlops.drift.status``. Artifacts: ``drift/report.json`` and the HTML report.

    Raises:
        ServiceUnavailableError: The MLflow server did not answer.

    Example:
        ```python
        run_id = log_drift_run(report, mlflow_config=MlflowConfig(tracking_uri="http://mlflow:5000"))
        ```
    """
    import time

    from mlflow.entities import Metric

    from mlops_tasks.tracking import ensure_experiment, get_client, resolve_and_check

    resolved = monitoring_experiment(resolve_and_check(mlflow_config))
    now = int(time.time() * 1000)
    values = _run_metrics(report)
    client = get_client(resolved)
    experiment_id = ensure_experiment(client, resolved)
    run = client.create_run(experiment_id, tags=_run_tags(report), run_name=_run_name(report))
    run_id: str = run.info.run_id
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if math.isfinite(float(v))],
        )
        client.log_text(run_id, json.dumps(report.model_dump(mode="json"), indent=2), "drift/report.json")
        if html_path and not html_path.startswith("s3://") and Path(html_path).is_file():
            client.log_artifact(run_id, html_path, artifact_path="drift")
        elif report.html_uri:
            client.set_tag(run_id, "mlops.drift.html_uri", report.html_uri)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def _run_metrics(report: DriftReport) -> dict[str, float]:
    values: dict[str, float] = {
        "drift_share": report.drifted_share,
        "drifted_columns": float(report.drifted_columns),
        "checked_columns": float(len(report.columns)),
        "dataset_drift": float(report.dataset_drift),
        "reference_rows": float(report.reference_rows),
        "current_rows": float(report.current_rows),
    }
    for c in report.columns:
        values[_metric_key(f"drift.{c.column}")] = c.value
    if report.prediction:
        values["prediction_drift"] = report.prediction.value
    if report.performance:
        values["labelled_rows"] = float(report.performance.labelled_rows)
        for p in report.performance.checks:
            values[_metric_key(f"perf.{p.metric}")] = p.current
    return values


def _run_tags(report: DriftReport) -> dict[str, str]:
    tags = {
        TAG_DRIFT_STATUS: report.status,
        "mlops.drift.dataset_drift": str(report.dataset_drift).lower(),
        "mlops.monitoring": "drift",
    }
    if report.model_name:
        tags[TAG_MODEL_NAME] = report.model_name
    if report.model_version:
        tags[TAG_MODEL_VERSION] = report.model_version
    if report.window and report.window.start:
        tags["mlops.window_start"] = report.window.start.isoformat()
    if report.window and report.window.end:
        tags["mlops.window_end"] = report.window.end.isoformat()
    return tags


def _run_name(report: DriftReport) -> str:
    name = f"drift-{report.model_name or 'data'}"
    if report.model_version:
        name += f"-v{report.model_version}"
    return name
