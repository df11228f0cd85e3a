"""The stages the command line runs: name, parameter model, function (imported when used)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["STAGES", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One ``mlops-tasks <stage>``: where its parameter model and its function live.

    Attributes:
        name: The sub-command.
        params: ``module:Class`` of the parameter model.
        run: ``module:function`` of the stage.
        summary: One line for ``--help``.
    """

    name: str
    params: str
    run: str
    summary: str

    def params_model(self) -> type[BaseModel]:
        """The parameter model class."""
        model: type[BaseModel] = _load(self.params)
        return model

    def function(self) -> Any:
        """The stage function (takes the parameter model, returns a pydantic result)."""
        return _load(self.run)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_P = "mlops_tasks.stages.params"
_SP = "mlops_tasks.stages.stage_params"

#: Every stage of ``mlops-tasks``, in pipeline order.
STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "validate",
            f"{_SP}:ValidateParams",
            "mlops_tasks.stages.validation:run_validate",
            "validate the dataset with its Great Expectations suite (exit 3 when it fails)",
        ),
        Stage(
            "train",
            f"{_SP}:TrainParams",
            "mlops_tasks.stages.training:run_train",
            "split the dataset and train the candidate, tracked in MLflow",
        ),
        Stage(
            "evaluate",
            f"{_SP}:EvaluateParams",
            "mlops_tasks.stages.training:run_evaluate",
            "evaluate the candidate on the holdout against the gate (exit 4 when it fails)",
        ),
        Stage(
            "register",
            f"{_SP}:RegisterParams",
            "mlops_tasks.stages.training:run_register",
            "register the candidate with its verdict (alias challenger when it passed)",
        ),
        Stage(
            "build-image",
            f"{_SP}:BuildImageParams",
            "mlops_tasks.stages.endpoint:run_build_image",
            "build (or reuse) the model-server image of a version",
        ),
        Stage(
            "deploy",
            f"{_P}:DeploymentPipelineParams",
            "mlops_tasks.stages.endpoint:run_deploy",
            "deploy a version blue-green behind HAProxy (exit 12 when it rolled back)",
        ),
        Stage(
            "rollback",
            f"{_P}:RollbackParams",
            "mlops_tasks.stages.endpoint:run_rollback",
            "put the previous version back at 100%% of the traffic",
        ),
        Stage(
            "drift-check",
            f"{_P}:DriftCheckParams",
            "mlops_tasks.stages.monitoring:run_drift_check",
            "compare the live version's training data with its traffic (exit 10 on drift)",
        ),
        Stage(
            "batch-score",
            f"{_P}:BatchPredictParams",
            "mlops_tasks.stages.scoring:run_batch_score",
            "score a dataset with a registered version, in the prediction-log layout",
        ),
    )
}
