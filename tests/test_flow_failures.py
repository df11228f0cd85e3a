"""A failed flow run's state message is the typed error's text; its traceback stays in the logs."""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows.failures import typed_failure_message
from flows.monitoring import DriftCheckParams, drift_check
from mlops_tasks.errors import ConfigurationError, DataValidationError


def _server_view(flow_run_id):
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return run.state, [log.message for log in logs]


def test_a_real_flows_failed_run_has_the_errors_text_as_message(prefect_harness):
    """drift-check without a model or an endpoint: a ConfigurationError before any data is read."""
    state = drift_check(DriftCheckParams(), return_state=True)
    with pytest.raises(ConfigurationError) as raised:
        state.result()
    assert state.is_failed() and state.message == str(raised.value)
    assert state.message.startswith("drift-check: give model_name")
    on_server, logs = _server_view(state.state_details.flow_run_id)
    assert on_server.message == str(raised.value)  # what the UI shows, no "Flow run encountered..."
    assert "Traceback" not in on_server.message
    assert any("Traceback (most recent call last)" in line and "ConfigurationError" in line for line in logs)


@task
def _validate() -> None:
    raise DataValidationError("Dataset 'claims' failed: driver_age: 2 values outside [11.4, 90.6], e.g. -5")


@flow
@typed_failure_message
def _child() -> None:
    _validate()


@flow
@typed_failure_message
def _parent() -> None:
    _child()


def test_a_task_error_through_a_subflow_keeps_its_type_and_text(prefect_harness):
    with pytest.raises(DataValidationError, match="driver_age"):
        _parent()
    state = _parent(return_state=True)
    assert state.message == "Dataset 'claims' failed: driver_age: 2 values outside [11.4, 90.6], e.g. -5"


def test_other_exceptions_keep_prefects_message(prefect_harness):
    @flow
    @typed_failure_message
    def broken() -> None:
        raise KeyError("x")

    state = broken(return_state=True)
    assert state.is_failed() and state.message.startswith("Flow run encountered an exception: KeyError")
