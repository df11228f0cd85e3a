"""Example DAGs: the mlops-tasks pipeline on Airflow.

``mlops_training`` (run on demand): validate → train → evaluate → register → deploy_blue_green.
``mlops_drift_check`` (daily): drift_check → retrain (train → evaluate → register → deploy
on the new data) when drift is found, else no_drift.

Every task runs its stage in the mlops-tasks environment (``[mlops_tasks] python``, or
``MLOPS_TASKS_PYTHON`` here); results travel as XCom (``train.output`` → evaluate and register).
Each DAG's parameters are one object per stage group, shown in the trigger form: ``data`` (the
dataset or demo data and the model name), ``endpoint`` and ``rollout`` of the deployment, and
for the drift DAG ``drift_check`` (window or dataset) and ``retrain`` (the data to retrain on).
Without a dataset they run on the embedded defaults, like ``make demo``: generated churn data,
the MLflow store in the state folder, a local HAProxy on 127.0.0.1:8000.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TaskGroup

from mlops_tasks_airflow.operators import (
    MlopsDeployOperator,
    MlopsDriftCheckOperator,
    MlopsEvaluateOperator,
    MlopsRegisterOperator,
    MlopsTrainOperator,
    MlopsValidateOperator,
)

__all__ = ["drift_dag", "training_dag"]

MODEL = os.environ.get("MLOPS_DEMO_MODEL", "churn-classifier")
#: Stage options every task shares: the interpreter, and the connections when they are set.
COMMON: dict[str, Any] = {
    "python": os.environ.get("MLOPS_TASKS_PYTHON") or None,
    "mlflow_conn_id": os.environ.get("MLOPS_MLFLOW_CONN_ID") or None,
    "aws_conn_id": os.environ.get("MLOPS_AWS_CONN_ID") or None,
}
DATA = {"model_name": MODEL, "demo": {"rows": 2000, "seed": 7, "drift": 0.0}}
ENDPOINT = {
    "name": os.environ.get("MLOPS_DEMO_ENDPOINT", "churn"),
    "port": int(os.environ.get("MLOPS_DEMO_PORT", "8000")),
}
ROLLOUT = {"strategy": "canary", "bake_seconds": 5, "termination_wait_s": 0}
#: Train and evaluate options (TrainParams beyond the data: training, segment_column, holdout_fraction,
#: split_seed) and the gate (gate, compare_to_champion); empty: the stages' defaults.
TRAINING: dict[str, Any] = {"holdout_fraction": 0.2, "split_seed": 42}
GATE: dict[str, Any] = {"compare_to_champion": True}


def training_tasks(data: str, *, validate: bool = True) -> Any:
    """(validate →) train → evaluate → register → deploy_blue_green; returns the first task.

    Args:
        data: The DAG param holding the model name and the data (``data`` or ``retrain``); train
            also reads the param ``training``, evaluate ``training`` and ``gate``, the deployment
            ``endpoint`` and ``rollout``. The DAGs render templates as native objects, so
            ``"{{ params.data }}"`` becomes the dict itself.
        validate: Start with the validate task.
    """
    whole, name = "{{ params." + data + " }}", "{{ params." + data + ".model_name }}"
    training, gate = "{{ params.training }}", "{{ params.gate }}"
    train = MlopsTrainOperator(task_id="train", stage_params=[whole, training], **COMMON)
    evaluate = MlopsEvaluateOperator(
        task_id="evaluate", stage_params=[whole, training, gate], trained=train.output, **COMMON
    )
    register = MlopsRegisterOperator(
        task_id="register",
        stage_params={"model_name": name},
        trained=train.output,
        report=evaluate.output,
        **COMMON,
    )
    deploy = MlopsDeployOperator(
        task_id="deploy_blue_green",
        stage_params={
            "model_name": name,
            "endpoint": "{{ params.endpoint }}",
            "rollout": "{{ params.rollout }}",
        },
        **COMMON,
    )
    train >> evaluate >> register >> deploy
    if not validate:
        return train
    first = MlopsValidateOperator(task_id="validate", stage_params=whole, **COMMON)
    first >> train
    return first


with DAG(
    dag_id="mlops_training",
    description="validate → train → evaluate → register → deploy blue-green (mlops-tasks)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlops-tasks"],
    render_template_as_native_obj=True,
    params={
        "data": Param(DATA, type="object", description="Model name and dataset (or demo data)."),
        "training": Param(TRAINING, type="object", description="Training spec, segment column, split."),
        "gate": Param(GATE, type="object", description="Quality gate; compare_to_champion."),
        "endpoint": Param(ENDPOINT, type="object", description="Endpoint name, host and port."),
        "rollout": Param(ROLLOUT, type="object", description="Strategy, bake and waits."),
    },
) as training_dag:
    training_tasks("data")


with DAG(
    dag_id="mlops_drift_check",
    description="daily drift check of the live model; retrain and redeploy on drift (mlops-tasks)",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlops-tasks"],
    render_template_as_native_obj=True,
    params={
        "drift_check": Param(
            {"model_name": MODEL, "last_hours": 24},
            type="object",
            description="Drift check: the live version's prediction log (last_hours) or a current dataset.",
        ),
        "retrain": Param(
            DATA,
            type="object",
            description="Model name and the labelled data to retrain on when drift is found.",
        ),
        "training": Param(TRAINING, type="object", description="Training spec, segment column, split."),
        "gate": Param(GATE, type="object", description="Quality gate of the retrained version."),
        "endpoint": Param(ENDPOINT, type="object", description="Endpoint name, host and port."),
        "rollout": Param(ROLLOUT, type="object", description="Strategy, bake and waits."),
    },
) as drift_dag:
    check = MlopsDriftCheckOperator(
        task_id="drift_check",
        stage_params="{{ params.drift_check }}",
        drift_branch="retrain",
        no_drift_branch="no_drift",
        **COMMON,
    )
    with TaskGroup(group_id="retrain", tooltip="train → evaluate → register → deploy on the new data"):
        retrain = training_tasks("retrain", validate=False)
    check >> [retrain, EmptyOperator(task_id="no_drift")]
