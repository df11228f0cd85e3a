"""The drift check: reference of the live model vs a prediction-log window (or any dataset).

Run it from the Prefect UI (its parameters are one form), from Python, or from
the command line. Given an endpoint (``--endpoint churn``, the default of the command line
and of the daily deployment), it checks the version live on that endpoint against the
endpoint's own prediction log; ``python -m flows.monitoring`` alone checks the demo
endpoint's last 24 h. ``--model-name churn-classifier --model-alias challenger
--prediction-log some/folder`` checks any version on any log.

How each bad input ends (the run state and the report say why):

- empty window, or fewer rows than ``settings.min_rows`` (also an endpoint that has logged
  no traffic yet): **Completed**, status ``not_enough_data``, reason "Not enough traffic: ...",
  no event;
- columns on one side only: **Completed**, they are listed in the report and the
  common ones are checked; all-null columns are listed as skipped;
- labels that join to no request id: **Completed**, the performance section says so;
- no common feature column, a model version without recorded reference data, an
  unknown model or alias, an unreadable log: **Failed** with the typed error
  (:class:`~mlops_tasks.errors.NoCommonColumnsError`,
  :class:`~mlops_tasks.errors.ReferenceDataNotFoundError`, ...) whose message says
  what to do; a markdown artifact with status ``error`` carries the same reason.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.states import Completed
from pydantic import Field, model_validator

from flows.entry import prepare_command
from flows.parameters import FormParams, require_model_name
from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.data import DatasetSpec
from mlops_tasks.errors import ConfigurationError, MLOpsError
from mlops_tasks.monitoring import (
    DriftReport,
    DriftSettings,
    ReferenceData,
    error_report,
    resolve_window,
)
from mlops_tasks.settings import MlflowConfig, S3Config, state_dir

__all__ = ["DEMO_ENDPOINT", "DriftCheckParams", "drift_check", "main"]

#: What ``python -m flows.monitoring`` checks without arguments: the endpoint ``make demo`` deploys.
DEMO_ENDPOINT = "churn"
DEMO_MODEL = "churn-classifier"


class DriftCheckParams(FormParams):
    """Parameters of :func:`drift_check` (one form in the Prefect UI).

    Example:
        ```python
        from flows.monitoring import DriftCheckParams
        params = DriftCheckParams(model_name="churn-classifier", prediction_log="s3://logs/churn",
                                  last_hours=6)
        ```
    """

    endpoint: str | None = Field(
        None,
        description="Endpoint to follow (e.g. churn): the version live on it is checked against its own "
        "prediction log; model name, version and log default from it.",
    )
    model_name: str | None = Field(
        None,
        description="Registered model whose data is checked (required without an endpoint; the demo's is "
        "churn-classifier).",
    )
    alias: str = Field(
        "champion",
        description="Alias of the version whose training data is the reference "
        "(without an endpoint or version).",
    )
    version: int | None = Field(
        None, description="Version instead of the alias (or of the endpoint's live version)."
    )
    reference: DatasetSpec | None = Field(
        None, description="Reference dataset instead of the version's recorded training split."
    )
    prediction_log: str | None = Field(
        None,
        description="Prediction log (local folder or s3://bucket/prefix) to read the window from. "
        "Empty: the endpoint's log when an endpoint is given, else the model server's default "
        "(prediction-log in the state folder).",
    )
    current: DatasetSpec | None = Field(None, description="Current dataset instead of a log window.")
    start: datetime | None = Field(None, description="Window start (inclusive, UTC if naive).")
    end: datetime | None = Field(None, description="Window end (exclusive, UTC if naive); default now.")
    last_hours: float | None = Field(
        None,
        gt=0,
        description="Window of the last N hours up to `end` (default 24 when no start).",
    )
    labels: DatasetSpec | None = Field(
        None, description="Ground truth (request_id + label column) for performance drift."
    )
    label_column: str = Field("label", description="Label column of the labels dataset.")
    settings: DriftSettings = Field(
        default_factory=DriftSettings, description="Thresholds, per-column tests, min_rows, HTML sample."
    )
    report_location: str | None = Field(
        None, description="Folder or s3://prefix for the HTML report. Empty: {state dir}/monitoring."
    )
    s3: S3Config | None = Field(None, description="S3 endpoint and credentials for s3:// paths.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
    log_to_mlflow: bool = Field(True, description="Log a run in {experiment}-monitoring.")
    emit_event: bool = Field(True, description="Emit mlops.drift.detected when drift is found.")

    @model_validator(mode="after")
    def _one_current(self) -> DriftCheckParams:
        if self.prediction_log is not None and self.current is not None:
            raise ValueError("give either prediction_log (a window of it is read) or current, not both")
        if self.start is not None and self.last_hours is not None:
            raise ValueError("give either start or last_hours, not both")
        return self


@flow(name="drift-check", log_prints=False)
def drift_check(
    params: DriftCheckParams = DriftCheckParams(),  # noqa: B008 (frozen defaults)
) -> DriftReport:
    """Compare the live model's training data with what it saw; report, log, and signal drift.

    Args:
        params: Model, data window, thresholds, outputs.

    Returns:
        The :class:`~mlops_tasks.monitoring.DriftReport`; the run ends Completed
        with the report's reason as its message (also for ``not_enough_data``).

    Raises:
        NoCommonColumnsError: Reference and current share no feature column.
        ReferenceDataNotFoundError: The model version recorded no reference data.
        ModelNotFoundError: Unknown model, version or alias.

    Example:
        ```python
        from flows.monitoring import DriftCheckParams, drift_check
        report = drift_check(DriftCheckParams(model_name="churn-classifier",
                                             prediction_log=".mlops/prediction-log", last_hours=1))
        print(report.status, report.html_uri)
        ```
    """
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    logger = get_run_logger()
    params, missing_log_is_empty = _follow_endpoint(params)
    require_model_name(params.model_name, "drift-check")
    if params.prediction_log is None and params.current is None:
        params = params.model_copy(update={"prediction_log": str(state_dir() / "prediction-log")})
    window = None
    if params.prediction_log is not None:
        hours = params.last_hours if params.last_hours is not None or params.start else 24.0
        window = resolve_window(params.start, params.end, hours)
    elif params.start or params.end:
        window = resolve_window(params.start, params.end, params.last_hours)
    version = None if params.version is None else str(params.version)
    try:
        if params.reference is not None:
            loaded = tasks.load_dataset(params.reference)
            reference: ReferenceData = ReferenceData(
                frame=loaded.frame,
                source=params.reference.uri,
                model_name=params.model_name,
                model_version=version,
            )
        else:
            reference = tasks.load_drift_reference(
                params.model_name,
                version=params.version,
                alias=params.alias,
                mlflow_config=params.mlflow,
                with_predictions=params.settings.check_prediction,
            )
            version = reference.model_version
        if params.prediction_log is not None:
            if missing_log_is_empty and not Path(params.prediction_log).exists():
                # an endpoint that has logged nothing yet: no traffic, not a failure
                logger.info(
                    "Endpoint %s has no prediction log yet (%s)", params.endpoint, params.prediction_log
                )
                current = pd.DataFrame()
            else:
                current = tasks.load_prediction_window(
                    params.prediction_log,
                    window,
                    model_name=params.model_name,
                    s3=params.s3,
                )
            source = params.prediction_log
        else:
            assert params.current is not None
            current = tasks.load_dataset(params.current).frame
            source = params.current.uri
        labels = tasks.load_dataset(params.labels).frame if params.labels is not None else None
        report = tasks.check_drift_and_report(
            reference,
            current,
            settings=params.settings,
            model_name=params.model_name,
            model_version=version,
            window=window,
            current_source=source,
            labels=labels,
            label_column=params.label_column,
            report_location=params.report_location,
            s3=params.s3,
            mlflow_config=params.mlflow,
            log_to_mlflow=params.log_to_mlflow,
            emit_event=params.emit_event,
        )
    except MLOpsError as exc:
        failed = error_report(exc, model_name=params.model_name, model_version=version, window=window)
        tasks.publish_drift_report(failed)
        logger.error("Drift check of %s failed: %s", params.model_name, exc)
        raise
    return Completed(message=report.reason[:1000], data=report)  # type: ignore[return-value]  # a Prefect State: the run ends with its name/message, callers get .data


def _follow_endpoint(params: DriftCheckParams) -> tuple[DriftCheckParams, bool]:
    """Fill model name, version and prediction log from ``params.endpoint``.

    Returns the parameters and whether a missing log folder means "no traffic yet" (the
    endpoint's own log, not one the caller named).
    """
    if not params.endpoint:
        return params, False
    source = tasks.endpoint_source(params.endpoint)
    if params.model_name and params.model_name != source.model_name:
        raise ConfigurationError(
            f"Endpoint {params.endpoint!r} serves model {source.model_name!r}, not {params.model_name!r}: "
            "leave model_name empty to follow the endpoint, or give the model without the endpoint."
        )
    update: dict[str, object] = {"model_name": source.model_name}
    if params.version is None and "alias" not in params.model_fields_set and source.version is not None:
        update["version"] = source.version
    own_log = params.prediction_log is None and params.current is None
    if own_log:
        update["prediction_log"] = source.prediction_log
    return params.model_copy(update=update), own_log


def main(argv: list[str] | None = None) -> int:
    """Command line: run the drift check on a prediction-log window and print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint",
        default=None,
        help=f"endpoint to follow: its live version and its prediction log (default {DEMO_ENDPOINT!r} "
        "unless --model-name, --prediction-log or --current is given)",
    )
    parser.add_argument("--model-name", default=None, help="registered model (default: the endpoint's)")
    version = parser.add_mutually_exclusive_group()
    version.add_argument("--model-version", type=int, default=None, help="check this version")
    version.add_argument(
        "--model-alias",
        default=None,
        help="check the version holding this alias (default champion; e.g. challenger after register_model)",
    )
    parser.add_argument("--prediction-log", default=None)
    parser.add_argument("--current", default=None, help="a dataset instead of the log")
    parser.add_argument("--last-hours", type=float, default=None)
    parser.add_argument("--start", default=None)
    parser.add_argument("--end", default=None)
    parser.add_argument("--min-rows", type=int, default=100)
    args = parser.parse_args(argv)
    prepare_command("python -m flows.monitoring")
    endpoint = args.endpoint
    if endpoint is None and not (args.model_name or args.prediction_log or args.current):
        endpoint = DEMO_ENDPOINT
    chosen = {"alias": args.model_alias} if args.model_alias else {}  # else the endpoint's live version
    params = DriftCheckParams(
        **chosen,
        endpoint=endpoint,
        model_name=args.model_name or (None if endpoint else DEMO_MODEL),
        version=args.model_version,
        prediction_log=args.prediction_log if args.current is None else None,
        current=DatasetSpec(uri=args.current) if args.current else None,
        last_hours=args.last_hours,
        start=args.start,
        end=args.end,
        settings=DriftSettings(min_rows=args.min_rows),
    )
    try:
        report = drift_check(params)
    except MLOpsError as exc:
        print(f"drift check failed: {exc}", file=sys.stderr)
        return 1
    print(f"drift check: {report.status}: {report.reason}")
    if report.html_uri:
        print(f"Evidently report: {report.html_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
