"""The flows' parameter models, importable without Prefect.

The flows (``flows/``), the command line (``mlops-tasks <stage>``, :mod:`mlops_tasks.cli`) and
the Airflow operators all take these same pydantic models, so a parameter set written for
one runs on the others. ``flows.training``, ``flows.deployment``, ``flows.monitoring`` and
``flows.batch`` re-export them under their old names.

The reusable flows carry no model of the churn demo: ``model_name`` is empty by default and
each stage asks for it with :func:`require_model_name`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from mlops_tasks.data import DatasetSpec
from mlops_tasks.demo import SEGMENT, TARGET
from mlops_tasks.deploy.models import EndpointSpec, RolloutSpec
from mlops_tasks.errors import ConfigurationError
from mlops_tasks.evaluation import MetricThreshold, QualityGate, SliceThreshold
from mlops_tasks.monitoring.models import DriftSettings
from mlops_tasks.settings import MlflowConfig, S3Config
from mlops_tasks.training import TrainingSpec

__all__ = [
    "DEFAULT_GATE",
    "BatchPredictParams",
    "DemoData",
    "DeploymentPipelineParams",
    "DriftCheckParams",
    "RollbackParams",
    "TrainingPipelineParams",
    "require_model_name",
]


def require_model_name(model_name: str | None, flow: str) -> str:
    """The registered model a flow or stage works on, or a clear error when it was not given.

    Args:
        model_name: The ``model_name`` parameter.
        flow: The flow's or stage's name, for the message.

    Returns:
        ``model_name``.

    Raises:
        ConfigurationError: ``model_name`` is empty.

    Example:
        ```python
        from mlops_tasks.stages.params import require_model_name
        assert require_model_name("churn-classifier", "training-pipeline") == "churn-classifier"
        ```
    """
    if not model_name:
        raise ConfigurationError(
            f"{flow}: give model_name, the registered MLflow model to work on "
            "(the demo's is 'churn-classifier': python -m flows.training uses it by default)."
        )
    return model_name


DEFAULT_GATE = QualityGate(
    thresholds=[
        MetricThreshold(metric="accuracy", min_value=0.7),
        MetricThreshold(metric="roc_auc", min_value=0.7, min_absolute_change=-0.02),
    ],
    slice_thresholds=[SliceThreshold(metric="accuracy", min_value=0.6)],
)


class DemoData(BaseModel):
    """Generated churn data, used when no dataset is given."""

    rows: int = Field(5000, ge=100, description="Rows to generate.")
    seed: int = Field(7, description="Random seed of the generator.")
    drift: float = Field(0.0, ge=0.0, le=1.0, description="0 = reference data, up to 1 = strongly drifted.")


class TrainingPipelineParams(BaseModel):
    """Parameters of :func:`training_pipeline` (one form in the Prefect UI)."""

    model_name: str | None = Field(
        None, description="Registered model name in MLflow (required; the demo's is churn-classifier)."
    )
    dataset: DatasetSpec | None = Field(
        None, description="CSV or Parquet to train on (local or s3://). Empty: generated demo data."
    )
    demo: DemoData = Field(default_factory=DemoData, description="Demo data, when no dataset is given.")
    training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(target=TARGET, params={"max_iter": 1000}),
        description="Estimator, params, features and optional hyper-parameter search.",
    )
    segment_column: str | None = Field(SEGMENT, description="Column whose values are evaluation slices.")
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
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Share of rows kept for evaluation.")
    split_seed: int = Field(42, description="Seed of the train/holdout split.")
    gate: QualityGate = Field(default_factory=lambda: DEFAULT_GATE, description="Quality gate.")
    compare_to_champion: bool = Field(True, description="Gate against the current champion.")
    promote_on_pass: bool = Field(
        False,
        description="Move alias champion right away when the gate passes. Off by default: "
        "champion moves when deployment_pipeline has put the version live.",
    )
    fail_on_gate: bool = Field(True, description="Fail the run when the gate fails (after registering).")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class DeploymentPipelineParams(BaseModel):
    """Parameters of :func:`deployment_pipeline` (one form in the Prefect UI).

    Example:
        ```python
        params = DeploymentPipelineParams(model_name="churn-classifier",
                                          endpoint=EndpointSpec(name="churn", port=8000))
        ```
    """

    model_name: str | None = Field(
        None, description="Registered model name in MLflow (required; the demo's is churn-classifier)."
    )
    version: int | None = Field(
        None, ge=1, description="Version to deploy. Empty: alias challenger, else champion."
    )
    endpoint: EndpointSpec = Field(
        default_factory=lambda: EndpointSpec(name="churn", port=8000),
        description="Endpoint name (keys ports, state and lock), host, port, preview port, replicas.",
    )
    rollout: RolloutSpec = Field(
        default_factory=lambda: RolloutSpec(strategy="canary", bake_seconds=10, termination_wait_s=10),
        description="Strategy (all_at_once, canary, linear, shadow), bake periods, guard, waits.",
    )
    target: str = Field(
        "local", description="Where slots and router run: local (processes) or docker (containers)."
    )
    target_block: str | None = Field(
        None,
        description="Name of a Deploy Target block (mlops_tasks.blocks.DeployTarget) giving the target "
        "kind and the endpoint; target and endpoint set here win over it.",
    )
    smoke_dataset: DatasetSpec | None = Field(
        None, description="Rows for the smoke test (CSV/Parquet). Empty: the demo data's holdout."
    )
    smoke_rows: int = Field(50, ge=1, description="Holdout rows sent through the preview port.")
    target_column: str | None = Field(
        None,
        description="Label column dropped from the smoke rows. Empty: the target the version was "
        "trained on (its run's mlops.target tag); the demo data's label for the demo data.",
    )
    force: bool = Field(False, description="Deploy a version whose quality gate did not pass.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class RollbackParams(BaseModel):
    """Parameters of :func:`rollback_deployment_flow`."""

    endpoint_name: str = Field("churn", description="Endpoint to roll back.")
    rollout: RolloutSpec | None = Field(
        None, description="Strategy when the previous slot is not warm (default all at once)."
    )
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class DriftCheckParams(BaseModel):
    """Parameters of :func:`drift_check` (one form in the Prefect UI).

    Example:
        ```python
        from mlops_tasks.stages.params import DriftCheckParams
        params = DriftCheckParams(model_name="churn-classifier", prediction_log="s3://logs/churn",
                                  last_hours=6)
        ```
    """

    model_name: str | None = Field(
        None, description="Registered model whose data is checked (required; the demo's is churn-classifier)."
    )
    alias: str = Field("champion", description="Alias of the version whose training data is the reference.")
    version: int | None = Field(None, description="Version instead of the alias.")
    reference: DatasetSpec | None = Field(
        None, description="Reference dataset instead of the version's recorded training split."
    )
    prediction_log: str | None = Field(
        None,
        description="Prediction log (local folder or s3://bucket/prefix) to read the window from. "
        "Empty (and no current dataset): the model server's default, <state dir>/prediction-log.",
    )
    current: DatasetSpec | None = Field(None, description="Current dataset instead of a log window.")
    start: datetime | None = Field(None, description="Window start (inclusive, UTC if naive).")
    end: datetime | None = Field(None, description="Window end (exclusive, UTC if naive); default now.")
    last_hours: float | None = Field(
        None,
        gt=0,
        description="Window of the last N hours up to `end` (default 24 when no start).",
    )
    labels: DatasetSpec | None = Field(
        None, description="Ground truth (request_id + label column) for performance drift."
    )
    label_column: str = Field("label", description="Label column of the labels dataset.")
    settings: DriftSettings = Field(
        default_factory=DriftSettings, description="Thresholds, per-column tests, min_rows, HTML sample."
    )
    report_location: str | None = Field(
        None, description="Folder or s3://prefix for the HTML report. Empty: <state dir>/monitoring."
    )
    s3: S3Config | None = Field(None, description="S3 endpoint and credentials for s3:// paths.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
    log_to_mlflow: bool = Field(True, description="Log a run in <experiment>-monitoring.")
    emit_event: bool = Field(True, description="Emit mlops.drift.detected when drift is found.")

    @model_validator(mode="after")
    def _one_current(self) -> DriftCheckParams:
        if self.prediction_log is not None and self.current is not None:
            raise ValueError("give either prediction_log (a window of it is read) or current, not both")
        if self.start is not None and self.last_hours is not None:
            raise ValueError("give either start or last_hours, not both")
        return self


class BatchPredictParams(BaseModel):
    """Parameters of :func:`batch_predict` (one form in the Prefect UI).

    Example:
        ```python
        from mlops_tasks.stages.params import BatchPredictParams
        from mlops_tasks.data import DatasetSpec
        params = BatchPredictParams(model_name="churn-classifier",
                                    dataset=DatasetSpec(uri="s3://data/churn/2026-11.parquet"))
        ```
    """

    model_name: str = Field(..., description="Registered model to score with.")
    alias: str = Field("champion", description="Alias of the version to score with.")
    version: int | None = Field(None, description="Version instead of the alias.")
    dataset: DatasetSpec = Field(..., description="CSV or Parquet to score (local or s3://).")
    output: str | None = Field(
        None,
        description="A .parquet/.csv file, or a log sink folder / s3:// prefix. "
        "Empty: <dataset folder>/<dataset stem>-predictions (a sink).",
    )
    id_column: str | None = Field(None, description="Column to use as request_id (default: generated).")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
