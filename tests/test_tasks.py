"""The Prefect layer: retries apply to transient failures only."""

from __future__ import annotations

import pytest
from prefect import flow, task

from mlops_tasks.errors import ConfigurationError, ServiceUnavailableError
from mlops_tasks.tasks._prefect import artifact_key, retry_transient


@pytest.mark.parametrize(("error", "attempts"), [(ServiceUnavailableError, 3), (ConfigurationError, 1)])
def test_only_transient_errors_are_retried(prefect_harness, error, attempts):
    calls = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
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
    assert artifact_key("evaluation", "Churn_Model v2") == "evaluation-churn-model-v2"


def test_check_drift_is_a_deprecated_alias_of_check_drift_and_report():
    import mlops_tasks.tasks

    with pytest.warns(DeprecationWarning, match="check_drift_and_report"):
        from mlops_tasks.tasks import check_drift
    assert check_drift is mlops_tasks.tasks.check_drift_and_report
    assert "check_drift" not in mlops_tasks.tasks.__all__
