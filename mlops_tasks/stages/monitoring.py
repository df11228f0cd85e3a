"""The drift-check stage without Prefect: reference of a model version vs a window of its traffic.

:func:`run_drift_check` is what ``mlops-tasks drift-check`` (and the Airflow drift-check
operator through it) runs; the Prefect flow :func:`flows.monitoring.drift_check` does the same
steps through its tasks, and both decide the window with :func:`resolve_drift_inputs`. The
drift verdict is the report's ``status``; nothing is emitted here (the Prefect flow emits
``mlops.drift.detected``, the command line exits with its own code for drift).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_tasks.data import load_dataset
from mlops_tasks.deploy.monitored import EndpointSource, endpoint_source
from mlops_tasks.errors import ConfigurationError
from mlops_tasks.monitoring import (
    DriftReport,
    DriftWindow,
    ReferenceData,
    check_drift,
    default_report_location,
    load_current,
    load_reference,
    log_drift_run,
    resolve_window,
)
from mlops_tasks.monitoring.distributed import check_drift_on_cluster, check_log_drift_on_cluster
from mlops_tasks.scoring import is_partitioned
from mlops_tasks.settings import state_dir
from mlops_tasks.stages.params import DriftCheckParams, require_model_name

__all__ = ["drift_on_cluster", "follow_endpoint", "no_log_yet", "resolve_drift_inputs", "run_drift_check"]

logger = logging.getLogger(__name__)


def follow_endpoint(params: DriftCheckParams, source: EndpointSource) -> tuple[DriftCheckParams, bool]:
    """Fill model name, version and prediction log from the endpoint the check follows.

    The version is the one live on the endpoint unless a version or an alias was chosen;
    the log is the endpoint's own unless a log or a dataset was given.

    Args:
        params: The drift check's parameters (``params.endpoint`` names the endpoint).
        source: What :func:`mlops_tasks.deploy.monitored.endpoint_source` found for it.

    Returns:
        The parameters filled in, and whether the log is the endpoint's own (a missing folder
        then means "no traffic yet", not an error).

    Raises:
        ConfigurationError: ``params.model_name`` names another model than the endpoint serves.

    Example:
        ```python
        params, own_log = follow_endpoint(DriftCheckParams(endpoint="churn"), endpoint_source("churn"))
        ```
    """
    if params.model_name and params.model_name != source.model_name:
        raise ConfigurationError(
            f"Endpoint {source.endpoint!r} serves model {source.model_name!r}, not {params.model_name!r}: "
            "leave model_name empty to follow the endpoint, or give the model without the endpoint."
        )
    update: dict[str, object] = {"model_name": source.model_name}
    if params.version is None and "alias" not in params.model_fields_set and source.version is not None:
        update["version"] = source.version
    own_log = params.prediction_log is None and params.current is None
    if own_log:
        update["prediction_log"] = source.prediction_log
    return params.model_copy(update=update), own_log


def no_log_yet(path: str | None, own_log: bool) -> bool:
    """Whether the endpoint's own log folder does not exist yet (no traffic logged so far)."""
    return own_log and path is not None and not path.startswith("s3://") and not Path(path).exists()


def resolve_drift_inputs(params: DriftCheckParams) -> tuple[DriftCheckParams, DriftWindow | None]:
    """The log to read and the window: the defaults a drift check fills in before it reads anything.

    With neither ``prediction_log`` nor ``current`` (nor an endpoint, see
    :func:`follow_endpoint`) the model server's default log (``<state dir>/prediction-log``)
    is read; a log window defaults to the last 24 hours.

    Args:
        params: The drift check's parameters.

    Returns:
        The parameters with the log filled in, and the window (``None``: a whole dataset).

    Raises:
        ConfigurationError: The window bounds contradict each other.

    Example:
        ```python
        params, window = resolve_drift_inputs(DriftCheckParams(model_name="churn-classifier"))
        ```
    """
    if params.prediction_log is None and params.current is None:
        params = params.model_copy(update={"prediction_log": str(state_dir() / "prediction-log")})
    window = None
    if params.prediction_log is not None:
        hours = params.last_hours if params.last_hours is not None or params.start else 24.0
        window = resolve_window(params.start, params.end, hours)
    elif params.start or params.end:
        window = resolve_window(params.start, params.end, params.last_hours)
    return params, window


def drift_on_cluster(
    params: DriftCheckParams, reference: ReferenceData, window: DriftWindow | None
) -> DriftReport:
    """The drift check of ``params`` on its Dask cluster: the log window, or a partitioned dataset.

    Args:
        params: With ``cluster``, and the log or current dataset :func:`resolve_drift_inputs` filled.
        reference: The model version's reference (its lineage names model, version, target).
        window: The log window (None with a ``current`` dataset).

    Returns:
        The report, its HTML saved under ``report_location`` (default: the state folder).

    Raises:
        ConfigurationError: ``current`` is one file (a cluster reads a folder or ``s3://`` prefix).
        PredictionLogError: The log window holds JSON-lines files.
        ClusterUnavailableError: The Dask scheduler did not answer.

    Example:
        ```python
        params, window = resolve_drift_inputs(params)
        report = drift_on_cluster(params, load_reference("churn-classifier"), window)
        ```
    """
    assert params.cluster is not None
    common: dict[str, Any] = {
        "settings": params.settings,
        "model_name": reference.model_name or params.model_name,
        "model_version": reference.model_version,
        "s3": params.s3,
        "cluster": params.cluster,
        "report_location": params.report_location or default_report_location(),
    }
    if params.prediction_log is not None:
        return check_log_drift_on_cluster(reference, params.prediction_log, window, **common)
    assert params.current is not None  # resolve_drift_inputs fills one of the two
    if not is_partitioned(params.current.uri):
        raise ConfigurationError(
            f"Drift check on a Dask cluster: current dataset {params.current.uri!r} is one file; the "
            "cluster reads a folder or s3:// prefix of Parquet files. Give the folder, or no cluster."
        )
    report = check_drift_on_cluster(reference, params.current.uri, **common)
    if window is not None:
        report.window = window
    return report


def run_drift_check(params: DriftCheckParams) -> DriftReport:
    """Compare the model version's training data with a window of what it saw; log the report.

    Args:
        params: Model, data window, thresholds, outputs (blocks are not resolved here: give
            plain MLflow and S3 settings).

    Returns:
        The report; ``status`` is ``ok``, ``drift`` or ``not_enough_data``.

    Raises:
        NoCommonColumnsError: Reference and current share no feature column.
        ReferenceDataNotFoundError: The model version recorded no reference data.
        ModelNotFoundError: Unknown model, version or alias.
        ConfigurationError: No model name, or a block name in the settings.

    Example:
        ```python
        from mlops_tasks.stages.monitoring import run_drift_check
        from mlops_tasks.stages.params import DriftCheckParams
        report = run_drift_check(DriftCheckParams(model_name="churn-classifier", last_hours=1))
        print(report.status)
        ```
    """
    own_log = False
    if params.endpoint:
        params, own_log = follow_endpoint(params, endpoint_source(params.endpoint))
    model_name = require_model_name(params.model_name, "drift-check")
    params, window = resolve_drift_inputs(params)
    version = None if params.version is None else str(params.version)
    if params.reference is not None:
        reference = ReferenceData(
            frame=load_dataset(params.reference).frame,
            source=params.reference.uri,
            model_name=model_name,
            model_version=version,
        )
    else:
        reference = load_reference(
            model_name,
            version=params.version,
            alias=params.alias,
            mlflow_config=params.mlflow,
            with_predictions=params.settings.check_prediction,
        )
        version = reference.model_version
    if params.cluster is not None and not no_log_yet(params.prediction_log, own_log):
        report = drift_on_cluster(params, reference, window)
        return _log_run(params, report)
    if params.prediction_log is not None:
        if no_log_yet(params.prediction_log, own_log):
            current = pd.DataFrame()  # an endpoint that has logged nothing yet: no traffic
        else:
            current = load_current(params.prediction_log, window, model_name=model_name, s3=params.s3)
        source = params.prediction_log
    else:
        assert params.current is not None  # resolve_drift_inputs fills one of the two
        current = load_dataset(params.current).frame
        source = params.current.uri
    report = check_drift(
        reference,
        current,
        settings=params.settings,
        model_name=model_name,
        model_version=version,
        window=window,
        current_source=source,
        labels=load_dataset(params.labels).frame if params.labels is not None else None,
        label_column=params.label_column,
        report_location=params.report_location or default_report_location(),
        s3=params.s3,
    )
    return _log_run(params, report)


def _log_run(params: DriftCheckParams, report: DriftReport) -> DriftReport:
    if params.log_to_mlflow and report.status != "not_enough_data":
        report.mlflow_run_id = log_drift_run(report, mlflow_config=params.mlflow, html_path=report.html_uri)
    logger.log(logging.WARNING if report.status == "drift" else logging.INFO, "%s", report.reason)
    return report
