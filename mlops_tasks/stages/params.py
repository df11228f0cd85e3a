"""The flows' parameter models, importable without Prefect.

The flows (``flows/``), the command line (``mlops-tasks <stage>``, :mod:`mlops_tasks.cli`) and
the Airflow operators all take these same pydantic models, so a parameter set written for
one runs on the others. ``flows.training``, ``flows.deployment``, ``flows.monitoring`` and
``flows.batch`` re-export them under their old names.

The reusable flows carry no model of the churn demo: ``model_name`` is empty by default and
each stage asks for it with :func:`require_model_name`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, get_args

from pydantic import BaseModel, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from mlops_tasks.cluster import DaskClusterSpec
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
    "FormParams",
    "RollbackParams",
    "TrainingPipelineParams",
    "plain_optional_inputs",
    "require_model_name",
]

_SIMPLE_TYPES = ("string", "integer", "number", "boolean")

#: Resolves a ``{"$ref": ...}`` to the definition it names (pydantic's ``handler.resolve_ref_schema``).
RefResolver = Callable[[dict[str, Any]], dict[str, Any]]


def plain_optional_inputs(schema: dict[str, Any], resolve: RefResolver | None = None) -> None:
    """Show optional text and number fields as plain inputs in the Prefect UI's run form.

    Pydantic writes ``str | None`` as ``anyOf: [string, null]``, which the UI renders as
    type-switch buttons ("Property is type None") until one is clicked. Each such property
    becomes its simple type, without a ``null`` default (Prefect's parameter validation then
    accepts ``null`` for it, as for any optional field without a default); an empty box
    still means "not set" (:class:`FormParams` reads ``""`` back as ``None``). With
    ``resolve``, the models the properties refer to (``$ref``, also inside ``anyOf`` and
    ``items``) get the same treatment, at any depth, each once; and an optional MLflow or S3
    settings model, whose ``None`` means its defaults, shows its fields inline instead of a
    switch to "None". Other optional models (a dataset, a Dask cluster, a search) and
    optional lists keep the switch: their ``None`` means something of its own.

    Example:
        ```python
        schema = {"properties": {"log": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
        plain_optional_inputs(schema)
        assert schema["properties"]["log"] == {"type": "string"}
        ```
    """
    _plain_inputs(schema, resolve, seen=set())


def _plain_inputs(schema: dict[str, Any], resolve: RefResolver | None, seen: set[int]) -> None:
    if id(schema) in seen:
        return
    seen.add(id(schema))
    for prop in schema.get("properties", {}).values():
        if resolve is not None:
            for ref in _refs(prop):
                _plain_inputs(resolve(ref), resolve, seen)
        options = prop.get("anyOf")
        if not isinstance(options, list) or len(options) != 2:
            continue
        kinds = [o for o in options if o.get("type") != "null"]
        if len(kinds) != 1:
            continue
        if kinds[0].get("type") in _SIMPLE_TYPES:
            del prop["anyOf"]
            prop.update(kinds[0])
        elif resolve is not None and "$ref" in kinds[0] and prop.get("default", ...) is None:
            if resolve(kinds[0]).get("title") not in _NONE_IS_DEFAULTS:
                continue  # None means something of its own (no cluster, no dataset): keep the switch
            # Its fields inline: an untouched card sends nothing, one left at its defaults is
            # read back as None by FormParams.
            del prop["anyOf"]
            prop["$ref"] = kinds[0]["$ref"]
        if prop.get("default", ...) is None:
            # An optional field without a default is nullable to Prefect's parameter validation
            # (its pydantic-v1 rule); a `null` default next to a plain type would make the server
            # refuse the deployment's own parameters.
            del prop["default"]


#: Optional models whose ``None`` means "the model's defaults": the form shows their fields
#: inline rather than a switch between the model and "None".
_NONE_IS_DEFAULTS: dict[str, type[BaseModel]] = {"MlflowConfig": MlflowConfig, "S3Config": S3Config}


def _refs(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``$ref`` schemas a property points to, directly or through ``anyOf``/``allOf``/``items``."""
    found = [prop] if "$ref" in prop else []
    for key in ("anyOf", "allOf"):
        for option in prop.get(key, []):
            found.extend(_refs(option))
    items = prop.get("items")
    if isinstance(items, dict):
        found.extend(_refs(items))
    return found


def _blank_is_unset(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Blank optional fields are ``None``, in ``model`` and in the models nested in it.

    Blank: ``""`` (an emptied text box) or, for an optional model whose ``None`` means its
    defaults (``_NONE_IS_DEFAULTS``), a card of the form left at those defaults.
    """
    out = dict(data)
    for name, value in data.items():
        field = model.model_fields.get(name)
        if field is None or not (value == "" or isinstance(value, dict)):
            continue
        nested = [a for a in get_args(field.annotation) or (field.annotation,) if _is_model(a)]
        if isinstance(value, dict) and nested:
            value = out[name] = _blank_is_unset(nested[0], value)
        if field.default is None and (value == "" or _is_defaults(nested, value)):
            out[name] = None
    return out


def _is_defaults(models: list[type[BaseModel]], value: Any) -> bool:
    if not models or _NONE_IS_DEFAULTS.get(models[0].__name__) is not models[0]:
        return False
    try:
        return bool(models[0].model_validate(value) == models[0]())
    except ValueError:
        return False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class FormParams(BaseModel):
    """Base of the flows' parameter models: one Prefect UI form with plain inputs.

    Optional text and number fields are plain inputs in the run form, in this model and in
    every model nested in it (:func:`plain_optional_inputs`); an emptied box means "not set".

    Example:
        ```python
        class MyParams(FormParams):
            prediction_log: str | None = None
        assert MyParams(prediction_log="").prediction_log is None
        ```
    """

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The form's schema: optional simple fields as plain inputs, nested models included."""
        schema = handler(core_schema)
        plain_optional_inputs(handler.resolve_ref_schema(schema), resolve=handler.resolve_ref_schema)
        return schema

    @model_validator(mode="before")
    @classmethod
    def _empty_input_is_unset(cls, data: Any) -> Any:
        """An emptied text box of an optional field arrives as ``""``: it means "not set"."""
        if not isinstance(data, dict):
            return data
        return _blank_is_unset(cls, data)


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


class TrainingPipelineParams(FormParams):
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
        description="Great Expectations suite JSON. Empty: {state dir}/expectations/{model_name}.json.",
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
    search_cluster: DaskClusterSpec | None = Field(
        None,
        description="Dask cluster for the hyper-parameter search's candidates (same best model as "
        "local). Empty: search in this process.",
    )


class DeploymentPipelineParams(FormParams):
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


class RollbackParams(FormParams):
    """Parameters of :func:`rollback_deployment_flow`."""

    endpoint_name: str = Field("churn", description="Endpoint to roll back.")
    rollout: RolloutSpec | None = Field(
        None, description="Strategy when the previous slot is not warm (default all at once)."
    )
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")


class DriftCheckParams(FormParams):
    """Parameters of :func:`drift_check` (one form in the Prefect UI).

    Example:
        ```python
        from mlops_tasks.stages.params import DriftCheckParams
        params = DriftCheckParams(model_name="churn-classifier", prediction_log="s3://logs/churn",
                                  last_hours=6)
        ```
    """

    endpoint: str | None = Field(
        None,
        description="Endpoint to follow (e.g. churn): the version live on it is checked against its own "
        "prediction log; model name, version and log default from it.",
    )
    model_name: str | None = Field(
        None,
        description="Registered model whose data is checked (required without an endpoint; the demo's is "
        "churn-classifier).",
    )
    alias: str = Field(
        "champion",
        description="Alias of the version whose training data is the reference "
        "(without an endpoint or version).",
    )
    version: int | None = Field(
        None, description="Version instead of the alias (or of the endpoint's live version)."
    )
    reference: DatasetSpec | None = Field(
        None, description="Reference dataset instead of the version's recorded training split."
    )
    prediction_log: str | None = Field(
        None,
        description="Prediction log (local folder or s3://bucket/prefix) to read the window from. "
        "Empty: the endpoint's log when an endpoint is given, else the model server's default "
        "(prediction-log in the state folder).",
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
        None, description="Folder or s3://prefix for the HTML report. Empty: {state dir}/monitoring."
    )
    s3: S3Config | None = Field(None, description="S3 endpoint and credentials for s3:// paths.")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
    log_to_mlflow: bool = Field(True, description="Log a run in {experiment}-monitoring.")
    emit_event: bool = Field(True, description="Emit mlops.drift.detected when drift is found.")
    cluster: DaskClusterSpec | None = Field(
        None,
        description="Dask cluster for a window larger than memory (an address, or empty address: a "
        "local cluster of worker processes): per-column statistics computed where the Parquet files "
        "are read and merged, verdicts as in memory, the HTML from a sample. Empty: the window is "
        "read into this process.",
    )

    @model_validator(mode="after")
    def _one_current(self) -> DriftCheckParams:
        if self.prediction_log is not None and self.current is not None:
            raise ValueError("give either prediction_log (a window of it is read) or current, not both")
        if self.cluster is not None and self.labels is not None:
            raise ValueError(
                "the performance check joins labels with the window's rows in memory: give either "
                "cluster or labels (run the labelled check without a cluster on a window that fits)"
            )
        if self.start is not None and self.last_hours is not None:
            raise ValueError("give either start or last_hours, not both")
        return self


class BatchPredictParams(FormParams):
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
    dataset: DatasetSpec = Field(
        ...,
        description="CSV or Parquet file to score, or a folder / s3:// prefix of them (scored on Dask).",
    )
    output: str | None = Field(
        None,
        description="A .parquet/.csv file, or a log sink folder / s3:// prefix. "
        "Empty: {dataset folder}/{dataset stem}-predictions (a sink).",
    )
    id_column: str | None = Field(None, description="Column to use as request_id (default: generated).")
    mlflow: MlflowConfig | None = Field(None, description="MLflow server; empty: environment or local store.")
    cluster: DaskClusterSpec | None = Field(
        None,
        description="Dask cluster for a partitioned dataset (an address, or empty address: a local "
        "cluster of worker processes). Empty: a local cluster for a folder, this process for a file.",
    )
