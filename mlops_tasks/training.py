"""Training: a typed spec becomes a scikit-learn Pipeline, fitted and tracked in MLflow.

The pipeline is ``ColumnTransformer`` (numeric: impute + scale; categorical:
impute + one-hot, unknown categories ignored) followed by the estimator named
by import path. An optional grid or randomized search with cross-validation
tunes it. Each run logs params, metrics, the model with signature and input
example, the training data as a dataset input (lineage), the training split as
``reference/train.parquet`` (the reference for drift checks) and tags for the
data fingerprint, code version and package version.

A run is keyed by a hash of the data fingerprint and the spec: training again
on the same data with the same spec reuses the finished run instead of
creating a new one, so a rerun registers nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_tasks.cluster import DaskClusterSpec, open_dask_client
from mlops_tasks.data import DatasetInfo, require_columns
from mlops_tasks.errors import ConfigurationError, EstimatorError, TrainingError
from mlops_tasks.metrics import TaskType, compute_metrics
from mlops_tasks.settings import MlflowConfig, get_settings
from mlops_tasks.tracking import connect, ensure_experiment, log_sklearn_model

__all__ = [
    "REFERENCE_ARTIFACT",
    "TAG_DATA_URI",
    "TAG_FINGERPRINT",
    "TAG_GIT_SHA",
    "TAG_PACKAGE_VERSION",
    "TAG_SEGMENT",
    "TAG_TARGET",
    "TAG_TASK",
    "TAG_TRAINING_KEY",
    "SearchSpec",
    "TaskType",
    "TrainedModel",
    "TrainingSpec",
    "build_estimator",
    "build_pipeline",
    "check_target",
    "fit_pipeline",
    "git_sha",
    "import_estimator",
    "resolve_features",
    "skops_trusted_types",
    "train_model",
    "training_key",
]

logger = logging.getLogger(__name__)


TAG_TRAINING_KEY = "mlops.training_key"
TAG_FINGERPRINT = "mlops.data_fingerprint"
TAG_DATA_URI = "mlops.data_uri"
TAG_GIT_SHA = "mlops.git_sha"
TAG_PACKAGE_VERSION = "mlops.package_version"
TAG_TARGET = "mlops.target"
TAG_TASK = "mlops.task"
TAG_SEGMENT = "mlops.segment_column"
REFERENCE_ARTIFACT = "reference/train.parquet"


class SearchSpec(BaseModel):
    """Hyper-parameter search with cross-validation.

    Parameter names are the estimator's own (``C``, ``max_depth``); they are
    routed to the pipeline's estimator step automatically.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["grid", "random"] = Field("grid", description="GridSearchCV or RandomizedSearchCV.")
    param_grid: dict[str, list[Any]] = Field(..., description="Estimator params to candidate values.")
    cv: int = Field(3, ge=2, description="Cross-validation folds.")
    n_iter: int = Field(10, ge=1, description="Candidates drawn by a random search.")
    scoring: str | None = Field(None, description="sklearn scorer name; default: estimator's score.")

    @field_validator("param_grid")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not value or any(not isinstance(v, list) or not v for v in value.values()):
            raise ValueError("param_grid needs at least one parameter, each with a non-empty list")
        return value


class TrainingSpec(BaseModel):
    """What to train and how.

    Example:
        ```python
        from mlops_tasks.training import TrainingSpec
        spec = TrainingSpec(
            target="churned",
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 200, "max_depth": 8},
        )
        ```
    """

    model_config = ConfigDict(frozen=True)

    target: str = Field(..., description="Column to predict.")
    task: TaskType = Field("classification", description="classification or regression.")
    estimator: str = Field(
        "sklearn.linear_model.LogisticRegression",
        description="Import path of a scikit-learn compatible estimator class.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Estimator parameters.")
    numeric_features: list[str] | None = Field(
        None, description="Numeric columns; default: every numeric column but target/excluded."
    )
    categorical_features: list[str] | None = Field(
        None, description="Categorical columns; default: every non-numeric column but target/excluded."
    )
    exclude_features: list[str] = Field(
        default_factory=list, description="Columns never used as features (ids, timestamps)."
    )
    scale_numeric: bool = Field(True, description="Standard-scale numeric columns.")
    search: SearchSpec | None = Field(None, description="Optional hyper-parameter search.")
    seed: int = Field(42, description="Seed for the estimator (random_state) and the search.")


class TrainedModel(BaseModel):
    """A fitted candidate logged to MLflow: what the evaluation and registry need."""

    run_id: str
    experiment_id: str
    model_uri: str = Field(..., description="MLflow URI of the logged model (models:/m-...).")
    model_id: str | None = None
    task: TaskType
    target: str
    features: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    training_key: str
    data_fingerprint: str
    data_uri: str
    reference_uri: str = Field(..., description="Artifact URI of the training split (Parquet).")
    params: dict[str, Any]
    metrics: dict[str, float]
    reused: bool = Field(False, description="True when an identical finished run was reused.")


def import_estimator(path: str) -> type:
    """Import an estimator class from its dotted path.

    Raises:
        EstimatorError: The module or class does not exist, or it has no ``fit``.
    """
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise EstimatorError(
            f"Estimator {path!r} is not a dotted import path; use e.g. "
            "'sklearn.ensemble.RandomForestClassifier'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EstimatorError(
            f"Estimator module {module_name!r} (from {path!r}) does not import: {exc}; "
            "check the spelling or install the package."
        ) from exc
    estimator = getattr(module, class_name, None)
    if estimator is None or not isinstance(estimator, type) or not hasattr(estimator, "fit"):
        raise EstimatorError(f"{path!r} is not an estimator class with a fit method; check the class name.")
    return estimator


def build_estimator(spec: TrainingSpec) -> Any:
    """Instantiate the spec's estimator with its params, checking them before any fit.

    Raises:
        EstimatorError: Unknown parameters or values the estimator rejects.
    """
    cls = import_estimator(spec.estimator)
    params = dict(spec.params)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise EstimatorError(f"{spec.estimator} rejected params {params}: {exc}") from exc
    if "random_state" in estimator.get_params() and "random_state" not in params:
        estimator.set_params(random_state=spec.seed)
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):  # scikit-learn's own parameter constraints (>= 1.2)
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise EstimatorError(f"{spec.estimator} rejected params {params}: {exc}") from exc
    return estimator


def resolve_features(frame: pd.DataFrame, spec: TrainingSpec) -> tuple[list[str], list[str]]:
    """Decide numeric and categorical feature columns from the spec and the data.

    Raises:
        SchemaError: A named column is missing from the data.
        ConfigurationError: No feature column is left.
    """
    excluded = set(spec.exclude_features) | {spec.target}
    if spec.numeric_features is not None:
        require_columns(frame, spec.numeric_features, what="numeric_features")
        numeric = list(spec.numeric_features)
    else:
        numeric = [
            c
            for c in frame.columns
            if c not in excluded
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]
    if spec.categorical_features is not None:
        require_columns(frame, spec.categorical_features, what="categorical_features")
        categorical = list(spec.categorical_features)
    else:
        categorical = [c for c in frame.columns if c not in excluded and c not in numeric]
    if not numeric and not categorical:
        raise ConfigurationError(
            f"No feature columns left after excluding {sorted(excluded)}; check the spec."
        )
    return [str(c) for c in numeric], [str(c) for c in categorical]


def build_pipeline(spec: TrainingSpec, numeric: list[str], categorical: list[str]) -> Any:
    """The preprocessing + estimator Pipeline for ``spec`` (unfitted)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if spec.scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    estimator = build_estimator(spec)
    if spec.search is not None:
        valid = estimator.get_params()
        unknown = [k for k in spec.search.param_grid if k not in valid]
        if unknown:
            raise EstimatorError(
                f"Search parameters {unknown} are not parameters of {spec.estimator}; "
                f"valid ones: {sorted(valid)}."
            )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator)])


def check_target(frame: pd.DataFrame, spec: TrainingSpec) -> None:
    """Refuse targets that cannot be learnt (missing, nulls, a single class).

    Raises:
        SchemaError: The target column is missing.
        TrainingError: The target has nulls, one class, or is not numeric for regression.
    """
    require_columns(frame, [spec.target], what="Training")
    y = frame[spec.target]
    if y.isna().any():
        raise TrainingError(
            f"Target {spec.target!r} has {int(y.isna().sum())} missing values; drop or fill them first."
        )
    if spec.task == "classification":
        classes = y.nunique()
        if classes < 2:
            raise TrainingError(
                f"Target {spec.target!r} has a single class ({y.iloc[0]!r}) in {len(y)} rows; "
                "a classifier needs at least two: check the data window or the target column."
            )
    elif not pd.api.types.is_numeric_dtype(y):
        raise TrainingError(
            f"Target {spec.target!r} is {y.dtype}, not numeric; use task='classification' "
            "or convert the column."
        )


def training_key(spec: TrainingSpec, fingerprint: str) -> str:
    """Hash of everything that decides the fitted model: data, spec, library version."""
    import sklearn

    payload = json.dumps(
        {"spec": spec.model_dump(mode="json"), "data": fingerprint, "sklearn": sklearn.__version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def git_sha() -> str | None:
    """The code version: ``$MLOPS_GIT_SHA`` or ``git rev-parse HEAD`` here, if either exists."""
    configured = get_settings().git_sha
    if configured:
        return configured
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlops-tasks")
    except PackageNotFoundError:
        return "unknown"


def _training_metrics(task: TaskType, model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    return {f"train_{k}": v for k, v in compute_metrics(task, model, x, y).items()}


def _find_reusable_run(client: Any, experiment_id: str, key: str) -> Any | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_TRAINING_KEY}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _logged_model_uri(client: Any, run: Any) -> tuple[str, str | None]:
    """The model URI logged by ``run`` (MLflow 3 LoggedModel, else runs:/ path)."""
    outputs = getattr(run, "outputs", None)
    model_outputs = getattr(outputs, "model_outputs", None) or []
    if model_outputs:
        model_id = model_outputs[0].model_id
        return f"models:/{model_id}", model_id
    return f"runs:/{run.info.run_id}/model", None


def train_model(
    train: pd.DataFrame,
    spec: TrainingSpec,
    *,
    data: DatasetInfo,
    segment_column: str | None = None,
    mlflow_config: MlflowConfig | None = None,
    reuse_existing: bool = True,
    cluster: DaskClusterSpec | None = None,
) -> TrainedModel:
    """Fit the spec's pipeline on ``train`` and log everything to MLflow.

    Args:
        train: Training rows (features and target).
        spec: What to train.
        data: Lineage of the full dataset the split came from.
        segment_column: Column recorded as the evaluation segment (it stays a feature
            unless listed in ``spec.exclude_features``).
        mlflow_config: Where MLflow lives; ``None`` uses environment, then defaults.
        reuse_existing: Reuse a finished run with the same data and spec.
        cluster: Evaluate the search's candidates in parallel on this Dask cluster (scikit-learn's
            joblib backend for Dask): the same best model and scores as the local search for the
            same seed, so the run is reused across both. Ignored without ``spec.search``.

    Returns:
        The logged candidate.

    Raises:
        SchemaError: Feature or target columns are missing.
        TrainingError: The target cannot be learnt or the fit failed.
        EstimatorError: The estimator does not import or rejects its params.
        ServiceUnavailableError: The MLflow tracking server did not answer.
        ClusterUnavailableError: ``cluster`` names a Dask scheduler that does not answer.

    Example:
        ```python
        from mlops_tasks.data import DatasetInfo, fingerprint_frame
        from mlops_tasks.demo import make_churn_data
        from mlops_tasks.training import TrainingSpec, train_model
        df = make_churn_data(500)
        info = DatasetInfo(uri="memory", name="demo", format="csv", rows=len(df),
                           columns=list(df.columns), fingerprint=fingerprint_frame(df))
        trained = train_model(df, TrainingSpec(target="churned"), data=info)
        print(trained.run_id, trained.metrics["train_accuracy"])
        ```
    """
    # Validate everything that can be checked before touching MLflow.
    check_target(train, spec)
    numeric, categorical = resolve_features(train, spec)
    pipeline = build_pipeline(spec, numeric, categorical)
    if segment_column is not None:
        require_columns(train, [segment_column], what="segment_column")
    key = training_key(spec, data.fingerprint)

    resolved, client = connect(mlflow_config)
    experiment_id = ensure_experiment(client, resolved)
    common: dict[str, Any] = {
        "experiment_id": experiment_id,
        "task": spec.task,
        "target": spec.target,
        "features": numeric + categorical,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "training_key": key,
        "data_fingerprint": data.fingerprint,
        "data_uri": data.uri,
    }
    previous = _find_reusable_run(client, experiment_id, key) if reuse_existing else None
    if previous is not None:
        model_uri, model_id = _logged_model_uri(client, previous)
        logger.info(
            "Reusing run %s: same data (%s) and spec already trained",
            previous.info.run_id,
            data.fingerprint[:12],
        )
        return TrainedModel(
            **common,
            run_id=previous.info.run_id,
            model_uri=model_uri,
            model_id=model_id,
            reference_uri=f"{previous.info.artifact_uri}/{REFERENCE_ARTIFACT}",
            params=dict(previous.data.params),
            metrics={k: float(v) for k, v in previous.data.metrics.items()},
            reused=True,
        )
    return _fit_and_log(client, train, spec, pipeline, data, segment_column, common, cluster)


def _run_tags(spec: TrainingSpec, data: DatasetInfo, segment_column: str | None, key: str) -> dict[str, str]:
    """The run's tags: MLflow's context tags (user, source) and ours."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = {
        TAG_TRAINING_KEY: key,
        TAG_FINGERPRINT: data.fingerprint,
        TAG_DATA_URI: data.uri,
        TAG_PACKAGE_VERSION: _package_version(),
        TAG_TARGET: spec.target,
        TAG_TASK: spec.task,
    }
    if segment_column:
        tags[TAG_SEGMENT] = segment_column
    sha = git_sha()
    if sha:
        tags[TAG_GIT_SHA] = sha
    resolved: dict[str, str] = resolve_tags(tags)
    return resolved


def _run_params(
    spec: TrainingSpec, best_params: dict[str, Any], common: dict[str, Any], rows: int
) -> dict[str, Any]:
    return {
        "estimator": spec.estimator,
        **{f"model.{k}": v for k, v in {**spec.params, **best_params}.items()},
        "numeric_features": ",".join(common["numeric_features"]),
        "categorical_features": ",".join(common["categorical_features"]),
        "scale_numeric": spec.scale_numeric,
        "seed": spec.seed,
        "search": spec.search.kind if spec.search else "none",
        "train_rows": rows,
    }


#: How SQLite and PostgreSQL report a broken unique key (MLflow passes their message on).
_DUPLICATE_KEY = re.compile(r"UNIQUE constraint failed|duplicate key value violates unique constraint")


def _log_training_data(
    client: Any, run_id: str, train: pd.DataFrame, spec: TrainingSpec, data: DatasetInfo
) -> None:
    """The training data as the run's dataset input (lineage) and as the drift reference."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    dataset = from_pandas(
        train, source=data.uri, targets=spec.target, name=data.name, digest=data.fingerprint[:32]
    )
    inputs = [DatasetInput(Dataset(**dataset.to_dict()), tags=[InputTag("mlflow.data.context", "training")])]
    try:
        client.log_inputs(run_id, inputs)
    except MlflowException as exc:
        # MLflow's SQL store looks the dataset up, then inserts it: two runs of one process logging
        # the same data at once can both miss it, and the second insert breaks the unique key
        # (experiment, name, digest). Its transaction was rolled back; now the lookup finds the row.
        if not _DUPLICATE_KEY.search(str(exc)):
            raise
        client.log_inputs(run_id, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        train.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))


def _fit_and_log(
    client: Any,
    train: pd.DataFrame,
    spec: TrainingSpec,
    pipeline: Any,
    data: DatasetInfo,
    segment_column: str | None,
    common: dict[str, Any],
    cluster: DaskClusterSpec | None = None,
) -> TrainedModel:
    """Fit and log one run through ``client`` (no fluent run, no global MLflow state)."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.models import infer_signature

    x, y = train[common["features"]], train[spec.target]
    tags = _run_tags(spec, data, segment_column, common["training_key"])
    run = client.create_run(common["experiment_id"], tags=tags)
    run_id = run.info.run_id
    try:
        model, search_metrics, best_params = fit_pipeline(pipeline, spec, x, y, cluster)
        params = _run_params(spec, best_params, common, len(train))
        metrics = {**_training_metrics(spec.task, model, x, y), **search_metrics}
        example = x.head(5)
        model_id = log_sklearn_model(
            client,
            model,
            experiment_id=common["experiment_id"],
            run_id=run_id,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            skops_trusted_types=skops_trusted_types(model),
        )
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0, model_id=model_id) for k, v in metrics.items()],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        )
        _log_training_data(client, run_id, train, spec, data)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    model_uri = f"models:/{model_id}"
    logger.info("Trained %s in run %s (%s)", spec.estimator, run_id, model_uri)
    return TrainedModel(
        **common,
        run_id=run_id,
        model_uri=model_uri,
        model_id=model_id,
        reference_uri=f"{run.info.artifact_uri}/{REFERENCE_ARTIFACT}",
        params={k: str(v) for k, v in params.items()},
        metrics=metrics,
        reused=False,
    )


def skops_trusted_types(model: Any) -> list[str]:
    """Types in ``model`` that skops does not trust by default.

    MLflow saves scikit-learn models with skops (no arbitrary pickle code on
    load) and refuses types skops does not know; the pipeline was built here
    from the spec, so the types it holds (``numpy.dtype`` in encoders, the
    estimator's own class) are the ones to trust.
    """
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


@contextlib.contextmanager
def _search_backend(cluster: DaskClusterSpec | None) -> Iterator[None]:
    """Run joblib's work (the search's candidate x fold fits) on ``cluster``, or locally."""
    if cluster is None:
        yield
        return
    from joblib import parallel_config

    with open_dask_client(cluster) as client, parallel_config(backend="dask", n_jobs=-1):
        logger.info("Hyper-parameter search on Dask (%d workers)", len(client.scheduler_info()["workers"]))
        yield


def fit_pipeline(
    pipeline: Any, spec: TrainingSpec, x: pd.DataFrame, y: pd.Series, cluster: DaskClusterSpec | None = None
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Fit ``pipeline``, through the spec's hyper-parameter search when it has one.

    Args:
        pipeline: From :func:`build_pipeline`.
        spec: The training spec (its ``search`` and ``seed``).
        x: Feature columns.
        y: Target.
        cluster: Fit the search's candidates on this Dask cluster (joblib's Dask backend); the
            candidates, folds and seeds are the local search's, so the result is the same.

    Returns:
        The fitted estimator, the search's metrics (``cv_best_score``) and its best parameters
        (estimator parameter names).

    Raises:
        TrainingError: The fit failed.
        ClusterUnavailableError: ``cluster`` names a scheduler that does not answer.

    Example:
        ```python
        numeric, categorical = resolve_features(frame, spec)
        model, metrics, best = fit_pipeline(build_pipeline(spec, numeric, categorical), spec,
                                            frame[numeric + categorical], frame[spec.target])
        ```
    """
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    try:
        if spec.search is None:
            return pipeline.fit(x, y), {}, {}
        grid = {f"model__{k}": v for k, v in spec.search.param_grid.items()}
        if spec.search.kind == "grid":
            search = GridSearchCV(pipeline, grid, cv=spec.search.cv, scoring=spec.search.scoring)
        else:
            search = RandomizedSearchCV(
                pipeline,
                grid,
                n_iter=spec.search.n_iter,
                cv=spec.search.cv,
                scoring=spec.search.scoring,
                random_state=spec.seed,
            )
        with _search_backend(cluster):
            search.fit(x, y)
        best = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
        return search.best_estimator_, {"cv_best_score": float(search.best_score_)}, best
    except (TypeError, ValueError) as exc:
        raise TrainingError(
            f"Fitting {spec.estimator} failed: {exc}; check the params and the feature columns' types."
        ) from exc
