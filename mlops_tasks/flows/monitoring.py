"""The drift check: reference of the live model vs a prediction-log window (or any dataset).

Run it from the Prefect UI (its parameters are one form), from Python, or from
the command line. Given an endpoint (``--endpoint churn``, the default of the command line
and of the daily deployment), it checks the version live on that endpoint against the
endpoint's own prediction log; ``python -m mlops_tasks.flows.monitoring`` alone checks the demo
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

import pandas as pd
from prefect import flow, get_run_logger
from prefect.states import Completed

from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.data import DatasetSpec
from mlops_tasks.errors import MLOpsError
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.monitoring import (
    DriftReport,
    DriftSettings,
    ReferenceData,
    error_report,
)
from mlops_tasks.stages.monitoring import follow_endpoint, no_log_yet, resolve_drift_inputs
from mlops_tasks.stages.params import DriftCheckParams, require_model_name

__all__ = ["DEMO_ENDPOINT", "DriftCheckParams", "drift_check", "main"]

#: What ``python -m mlops_tasks.flows.monitoring`` checks without arguments: the endpoint
#: ``make demo`` deploys.
DEMO_ENDPOINT = "churn"
DEMO_MODEL = "churn-classifier"


@flow(name="drift-check", log_prints=False)
@typed_failure_message
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
        from mlops_tasks.flows.monitoring import DriftCheckParams, drift_check
        report = drift_check(DriftCheckParams(model_name="churn-classifier",
                                             prediction_log=".mlops/prediction-log", last_hours=1))
        print(report.status, report.html_uri)
        ```
    """
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    logger = get_run_logger()
    own_log = False
    if params.endpoint:
        params, own_log = follow_endpoint(params, tasks.endpoint_source(params.endpoint))
    require_model_name(params.model_name, "drift-check")
    params, window = resolve_drift_inputs(params)
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
        if params.cluster is not None and not no_log_yet(params.prediction_log, own_log):
            # a window larger than memory: statistics where the files are read, merged here
            report = tasks.check_drift_on_cluster_and_report(params, reference, window)
            return Completed(message=report.reason[:1000], data=report)  # type: ignore[return-value]  # as below
        if params.prediction_log is not None:
            if no_log_yet(params.prediction_log, own_log):
                logger.info("Endpoint %s logged nothing yet (%s)", params.endpoint, params.prediction_log)
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
    prepare_command("python -m mlops_tasks.flows.monitoring")
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
