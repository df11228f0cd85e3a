"""Parameters of the stages that the training pipeline runs in one flow, one model per stage.

``mlops-tasks validate|train|evaluate|register|build-image`` (and the Airflow operators) run
the training pipeline's steps one at a time, each in its own process, so each stage takes the
result of the one before it as a field (``trained``, ``report``). The fields are those of
:class:`~mlops_tasks.stages.params.TrainingPipelineParams`, with the same models and defaults
(:class:`~mlops_tasks.data.DatasetSpec`, :class:`~mlops_tasks.training.TrainingSpec`,
:class:`~mlops_tasks.evaluation.QualityGate`, :class:`~mlops_tasks.settings.MlflowConfig`).

Evaluate splits the dataset again with the same ``holdout_fraction`` and ``split_seed`` as
train (the split is deterministic) and refuses a dataset whose fingerprint is not the one the
candidate was trained on.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mlops_tasks.containerize.models import ImageSpec
from mlops_tasks.data import DatasetSpec
from mlops_tasks.demo import SEGMENT, TARGET
from mlops_tasks.evaluation import EvaluationReport, QualityGate
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.stages.params import DEFAULT_GATE, DemoData
from mlops_tasks.training import TrainedModel, TrainingSpec

__all__ = [
    "BuildImageParams",
    "EvaluateParams",
    "RegisterParams",
    "StageData",
    "TrainParams",
    "ValidateParams",
]


class StageData(BaseModel):
    """The model and the data a training stage works on (shared fields)."""

    model_name: str | None = Field(
        None, description="Registered model name in MLflow (required; the demo's is churn-classifier)."
    )
    dataset: DatasetSpec | None = Field(
        None, description="CSV or Parquet to work on (local or s3://). Empty: generated demo data."
    )
    demo: DemoData = Field(default_factory=DemoData, description="Demo data, when no dataset is given.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class ValidateParams(StageData):
    """Parameters of the validate stage: the dataset against its Great Expectations suite.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import ValidateParams
        params = ValidateParams(model_name="churn-classifier")
        ```
    """

    expectation_suite: str | None = Field(
        None,
        description="Great Expectations suite JSON. Empty: <state dir>/expectations/<model_name>.json.",
    )
    suggest_suite_if_missing: bool = Field(
        True, description="Infer and write the suite from this data when the file does not exist."
    )
    suite_range_margin: float = Field(
        0.5, ge=0, description="Margin of suggested numeric ranges, as a share of the observed span."
    )


class TrainParams(StageData):
    """Parameters of the train stage: split the dataset, fit and log the candidate.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import TrainParams
        params = TrainParams(model_name="churn-classifier", holdout_fraction=0.25)
        ```
    """

    training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(target=TARGET, params={"max_iter": 1000}),
        description="Estimator, params, features and optional hyper-parameter search.",
    )
    segment_column: str | None = Field(SEGMENT, description="Column whose values are evaluation slices.")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Share of rows kept for evaluation.")
    split_seed: int = Field(42, description="Seed of the train/holdout split.")


class EvaluateParams(TrainParams):
    """Parameters of the evaluate stage: the candidate on the holdout, gated against the champion.

    Give the same dataset, training target, ``holdout_fraction`` and ``split_seed`` as the
    train stage, and its result as ``trained``.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import EvaluateParams
        params = EvaluateParams(model_name="churn-classifier", trained=trained)
        ```
    """

    trained: TrainedModel = Field(..., description="The train stage's result.")
    gate: QualityGate = Field(default_factory=lambda: DEFAULT_GATE, description="Quality gate.")
    compare_to_champion: bool = Field(True, description="Gate against the current champion.")


class RegisterParams(BaseModel):
    """Parameters of the register stage: the candidate with its verdict (``challenger`` if it passed).

    Example:
        ```python
        from mlops_tasks.stages.stage_params import RegisterParams
        params = RegisterParams(model_name="churn-classifier", trained=trained, report=report)
        ```
    """

    model_name: str | None = Field(None, description="Registered model name in MLflow (required).")
    trained: TrainedModel = Field(..., description="The train stage's result.")
    report: EvaluationReport = Field(..., description="The evaluate stage's result (gate verdict).")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class BuildImageParams(BaseModel):
    """Parameters of the build-image stage: the model-server image of a registered version.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import BuildImageParams
        params = BuildImageParams(model_name="churn-classifier", version=3)
        ```
    """

    model_name: str | None = Field(None, description="Registered model name in MLflow (required).")
    version: int | None = Field(
        None, ge=1, description="Version to build. Empty: alias challenger, else champion."
    )
    image: ImageSpec = Field(default_factory=ImageSpec, description="Base image, repository, labels...")
    docker_host: str | None = Field(None, description="Docker engine URL; empty: DOCKER_HOST or local.")
    force_rebuild: bool = Field(False, description="Build even when an image of the same content exists.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
