"""The training pipeline's stages one at a time, without Prefect: train, evaluate, register.

Validation is :mod:`mlops_tasks.stages.validation` (so these stages never import Great
Expectations, a 3 s import in every process the command line or an Airflow task starts).

Each is a plain function of its parameter model (:mod:`mlops_tasks.stages.stage_params`)
returning the result model the next stage takes, so a scheduler that runs each step in its
own process (``mlops-tasks <stage>``, the Airflow operators) passes results as JSON. The
Prefect flow :func:`flows.training.training_pipeline` runs the same core functions through
its tasks in one process.
"""

from __future__ import annotations

import logging

import pandas as pd

from mlops_tasks.data import split_dataset
from mlops_tasks.errors import ConfigurationError
from mlops_tasks.evaluation import EvaluationReport, evaluate_model
from mlops_tasks.registry import RegisteredVersion, register_model
from mlops_tasks.stages.inputs import load_stage_data
from mlops_tasks.stages.params import require_model_name
from mlops_tasks.stages.stage_params import (
    EvaluateParams,
    RegisterParams,
    TrainParams,
)
from mlops_tasks.training import TrainedModel, train_model

__all__ = ["run_evaluate", "run_register", "run_train"]

logger = logging.getLogger(__name__)


def _split(params: TrainParams, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_dataset(
        frame,
        target=params.training.target,
        holdout_fraction=params.holdout_fraction,
        seed=params.split_seed,
        stratify=params.training.task == "classification",
    )


def run_train(params: TrainParams) -> TrainedModel:
    """Split the dataset and train the candidate, tracked in MLflow (an identical run is reused).

    Args:
        params: Model, dataset, training spec and split.

    Returns:
        The candidate (run id, model URI, features, data fingerprint).

    Raises:
        TrainingError: The estimator or its parameters are unusable, or the target is bad.
        ServiceUnavailableError: The MLflow server does not answer.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import TrainParams
        from mlops_tasks.stages.training import run_train
        trained = run_train(TrainParams(model_name="churn-classifier"))
        ```
    """
    require_model_name(params.model_name, "train")
    loaded = load_stage_data(params)
    train, _ = _split(params, loaded.frame)
    trained = train_model(
        train,
        params.training,
        data=loaded.info,
        segment_column=params.segment_column,
        mlflow_config=params.mlflow,
    )
    logger.info("Trained run %s (%s)", trained.run_id, "reused" if trained.reused else "new")
    return trained


def run_evaluate(params: EvaluateParams) -> EvaluationReport:
    """Evaluate the candidate on the holdout (the same split as train) and apply the gate.

    Args:
        params: The train stage's parameters, its result as ``trained``, the gate.

    Returns:
        The report of a candidate that passed.

    Raises:
        QualityGateError: The candidate failed its gate; ``exc.report`` holds the report.
        ConfigurationError: The dataset is not the one the candidate was trained on.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import EvaluateParams
        from mlops_tasks.stages.training import run_evaluate
        report = run_evaluate(EvaluateParams(model_name="churn-classifier", trained=trained))
        ```
    """
    model_name = require_model_name(params.model_name, "evaluate")
    if params.trained.target != params.training.target:
        raise ConfigurationError(
            f"evaluate: training.target is {params.training.target!r} but the candidate "
            f"(run {params.trained.run_id}) predicts {params.trained.target!r}; give the train stage's "
            "training spec."
        )
    loaded = load_stage_data(params)
    if loaded.info.fingerprint != params.trained.data_fingerprint:
        raise ConfigurationError(
            f"evaluate: dataset {loaded.info.uri} has fingerprint {loaded.info.fingerprint[:12]}, but the "
            f"candidate (run {params.trained.run_id}) was trained on {params.trained.data_uri} with "
            f"fingerprint {params.trained.data_fingerprint[:12]}; give the train stage's dataset."
        )
    _, holdout = _split(params, loaded.frame)
    report = evaluate_model(
        params.trained,
        holdout,
        params.gate,
        model_name=model_name,
        segment_column=params.segment_column,
        compare_to_champion=params.compare_to_champion,
        fail_on_error=True,
        mlflow_config=params.mlflow,
    )
    logger.info("Gate passed for run %s: %s", report.run_id, report.metrics)
    return report


def run_register(params: RegisterParams) -> RegisteredVersion:
    """Register the candidate with its gate verdict; alias ``challenger`` when it passed.

    ``champion`` moves when the deploy stage has put the version live.

    Args:
        params: Model name, the train stage's and the evaluate stage's results.

    Returns:
        The registered version (``created`` is false when the run was registered before).

    Raises:
        ConfigurationError: The report is not the candidate's (another run id).
        RegistryError: The registry refused the version.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import RegisterParams
        from mlops_tasks.stages.training import run_register
        version = run_register(RegisterParams(model_name="churn-classifier", trained=trained,
                                              report=report))
        ```
    """
    model_name = require_model_name(params.model_name, "register")
    if params.report.run_id != params.trained.run_id:
        raise ConfigurationError(
            f"register: the evaluation report is of run {params.report.run_id}, the candidate is run "
            f"{params.trained.run_id}; give the evaluate stage's result for this candidate."
        )
    version = register_model(params.trained, params.report, model_name, mlflow_config=params.mlflow)
    logger.info(
        "registered version %s of %s (gate %s)",
        version.version,
        model_name,
        "passed" if version.gate_passed else "failed",
    )
    return version
