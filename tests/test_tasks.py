"""The Prefect layer: retries apply to transient failures only."""

from __future__ import annotations

import pytest
from prefect import flow, task

from mlops_tasks import tasks
from mlops_tasks.errors import ConfigurationError, ServiceUnavailableError


@pytest.mark.parametrize(("error", "attempts"), [(ServiceUnavailableError, 3), (ConfigurationError, 1)])
def test_only_transient_errors_are_retried(prefect_harness, error, attempts):
    calls = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=tasks._retry_transient)
    def flaky() -> None:
        calls.append(1)
        raise error("boom")

    @flow
    def run() -> None:
        flaky()

    with pytest.raises(error):
        run()
    assert len(calls) == attempts


def test_artifact_keys_are_valid():
    assert tasks._artifact_key("evaluation", "Churn_Model v2") == "evaluation-churn-model-v2"
