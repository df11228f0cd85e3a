"""The public Prefect task library: thin ``@task`` wrappers over the core functions.

One module per stage (``data``, ``validation``, ``training``, ``evaluation``, ``registry``,
``containerize``, ``deploy``, ``monitoring``, ``scoring``, ``retrain``); every task is
re-exported here. Each task takes exactly the parameters of the core function it wraps
(the union of them when it composes several, plus a few Prefect-only options), logs
through ``get_run_logger()``, calls the core and returns its pydantic result; its
docstring points to the core function, whose documentation is the reference. Retries
apply only to transient failures (a server that did not answer:
:class:`~mlops_tasks.errors.ServiceUnavailableError`); a bad input fails at once with a
typed error. Gate tasks leave a Prefect artifact (validation result, evaluation tables)
before they raise.

``check_drift`` was renamed :func:`check_drift_and_report` (it does more than
:func:`mlops_tasks.monitoring.check_drift`); the old name still works and emits a
``DeprecationWarning``.

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

import warnings
from typing import Any

from mlops_tasks.tasks.abtest import evaluate_ab_test, start_ab_test
from mlops_tasks.tasks.access import (
    expire_api_keys,
    issue_api_key,
    revoke_api_key,
    rotate_certificate,
    update_client_crl,
)
from mlops_tasks.tasks.containerize import build_model_image, push_model_image, verify_model_image
from mlops_tasks.tasks.data import load_dataset, split_dataset
from mlops_tasks.tasks.deploy import (
    deploy_blue_green,
    describe_deployment,
    endpoint_source,
    rollback_deployment,
    stop_endpoint,
)
from mlops_tasks.tasks.evaluation import evaluate_model
from mlops_tasks.tasks.monitoring import (
    check_drift_and_report,
    check_drift_on_cluster_and_report,
    load_drift_reference,
    load_prediction_window,
    publish_drift_report,
)
from mlops_tasks.tasks.registry import promote_model, register_model, rollback_model
from mlops_tasks.tasks.retrain import (
    claim_retrain,
    load_training_reference,
    prepare_training_data,
    release_retrain_claim,
)
from mlops_tasks.tasks.scoring import score_batch, score_partitions
from mlops_tasks.tasks.training import train_model
from mlops_tasks.tasks.validation import suggest_expectations, validate_data

__all__ = [
    "build_model_image",
    "check_drift_and_report",
    "check_drift_on_cluster_and_report",
    "claim_retrain",
    "deploy_blue_green",
    "describe_deployment",
    "endpoint_source",
    "evaluate_ab_test",
    "evaluate_model",
    "expire_api_keys",
    "issue_api_key",
    "load_dataset",
    "load_drift_reference",
    "load_prediction_window",
    "load_training_reference",
    "prepare_training_data",
    "promote_model",
    "publish_drift_report",
    "push_model_image",
    "register_model",
    "release_retrain_claim",
    "rollback_deployment",
    "revoke_api_key",
    "rollback_model",
    "rotate_certificate",
    "update_client_crl",
    "score_batch",
    "score_partitions",
    "split_dataset",
    "start_ab_test",
    "stop_endpoint",
    "suggest_expectations",
    "train_model",
    "validate_data",
    "verify_model_image",
]

#: Old names still importable, each with a DeprecationWarning: old name -> (new name, why).
_DEPRECATED = {
    "check_drift": (
        "check_drift_and_report",
        "the task also saves the HTML report, logs an MLflow run, publishes artifacts and "
        "emits the drift event; mlops_tasks.monitoring.check_drift is the check alone",
    ),
}


def __getattr__(name: str) -> Any:
    """Serve deprecated names (PEP 562) with a ``DeprecationWarning``."""
    if name in _DEPRECATED:
        new, why = _DEPRECATED[name]
        warnings.warn(
            f"mlops_tasks.tasks.{name} is deprecated and will be removed in the next minor release; "
            f"use mlops_tasks.tasks.{new} ({why}).",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
