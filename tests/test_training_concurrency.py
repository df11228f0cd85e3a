"""Two training tasks in one process fit at the same time (no process-wide MLflow lock)."""

from __future__ import annotations

import uuid

from concurrency_support import FIT_BARRIER
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from mlops_tasks.data import DatasetInfo, fingerprint_frame, split_dataset
from mlops_tasks.tasks import train_model
from mlops_tasks.training import TrainingSpec


def test_two_training_tasks_fit_concurrently(churn, mlflow_config, prefect_harness):
    train, _ = split_dataset(churn, target="churned")
    info = DatasetInfo(
        uri="file:///data/churn.csv",
        name="churn",
        format="csv",
        rows=len(train),
        columns=list(train.columns),
        fingerprint=fingerprint_frame(train),
    )
    # a fresh experiment, so neither task reuses an earlier run (and skips its fit)
    config = mlflow_config.model_copy(update={"experiment_name": f"concurrent-{uuid.uuid4().hex[:8]}"})
    FIT_BARRIER.reset()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def two_trainings() -> list:
        futures = [
            train_model.submit(
                train,
                TrainingSpec(
                    target="churned", estimator="concurrency_support.BarrierClassifier", params={"tag": tag}
                ),
                data=info,
                mlflow_config=config,
            )
            for tag in (1, 2)
        ]
        return [future.result() for future in futures]

    # each fit waits on a Barrier(2, timeout=60): both return only if the two fits overlapped
    first, second = two_trainings()
    assert first.run_id != second.run_id
    assert not first.reused and not second.reused
    assert first.model_uri.startswith("models:/") and second.model_uri.startswith("models:/")
