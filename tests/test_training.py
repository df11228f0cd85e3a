"""Training against a real MLflow SQLite store: what is logged, reuse, and bad inputs."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from conftest import client_for, free_port

from mlops_tasks.data import DatasetInfo, fingerprint_frame, split_dataset
from mlops_tasks.errors import EstimatorError, SchemaError, ServiceUnavailableError, TrainingError
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.training import SearchSpec, TrainingSpec, train_model


def info_for(frame: pd.DataFrame, uri: str = "file:///data/churn.csv") -> DatasetInfo:
    return DatasetInfo(
        uri=uri,
        name="churn",
        format="csv",
        rows=len(frame),
        columns=list(frame.columns),
        fingerprint=fingerprint_frame(frame),
    )


SPEC = TrainingSpec(target="churned", params={"max_iter": 500})


@pytest.fixture(scope="module")
def trained(churn, mlflow_config):
    train, _ = split_dataset(churn, target="churned")
    # its own spec, so no run from another test module is reused here
    spec = SPEC.model_copy(update={"params": {"max_iter": 500, "tol": 1e-4}})
    return train, train_model(
        train, spec, data=info_for(churn), segment_column="country", mlflow_config=mlflow_config
    )


def test_run_logs_params_metrics_model_lineage_and_reference(trained, mlflow_config, churn):
    import mlflow

    train, result = trained
    client = client_for(mlflow_config)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.params["model.max_iter"] == "500"
    assert run.data.params["categorical_features"] == "plan,contract,payment_method,country"
    assert 0.6 < run.data.metrics["train_accuracy"] <= 1.0
    assert "train_roc_auc" in run.data.metrics
    tags = run.data.tags
    assert tags["mlops.data_fingerprint"] == fingerprint_frame(churn)
    assert tags["mlops.data_uri"] == "file:///data/churn.csv"
    assert tags["mlops.package_version"]
    assert tags["mlops.segment_column"] == "country"
    # the training data is a dataset input of the run (lineage)
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "churn"
    assert inputs[0].tags[0].value == "training"
    # the model carries a signature naming every feature, and predicts
    mlflow.set_tracking_uri(mlflow_config.tracking_uri)
    info = mlflow.models.get_model_info(result.model_uri)
    assert {c.name for c in info.signature.inputs.inputs} == set(result.features)
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model(result.model_uri)
    assert len(model.predict(train[result.features].head(3))) == 3
    # the training split is kept as the drift reference
    local = mlflow.artifacts.download_artifacts(result.reference_uri)
    pd.testing.assert_frame_equal(pd.read_parquet(local), train)


def test_logged_model_requires_what_it_holds_pinned_to_this_environment(trained, mlflow_config):
    """requirements.txt names the model's packages only (no test runner or terminal library)."""
    import importlib.metadata

    import mlflow

    _, result = trained
    location = client_for(mlflow_config).get_logged_model(result.model_id).artifact_location
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/requirements.txt")
    lines = set(open(local, encoding="utf-8").read().split())
    version = importlib.metadata.version
    expected = {"mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops", "cloudpickle"}
    assert lines == {f"{name}=={version(name)}" for name in expected}


def test_model_requirements_follow_the_modules_the_model_references():
    import importlib.metadata

    import toolz
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from mlops_tasks.tracking import sklearn_model_requirements

    with_toolz = make_pipeline(FunctionTransformer(func=toolz.identity))
    assert f"toolz=={importlib.metadata.version('toolz')}" in (sklearn_model_requirements(with_toolz) or [])
    # a model pickle cannot save (a lambda): None, so that MLflow infers instead
    assert sklearn_model_requirements(make_pipeline(FunctionTransformer(func=lambda x: x))) is None


def test_same_data_and_spec_reuses_the_run(trained, mlflow_config, churn):
    train, first = trained
    spec = SPEC.model_copy(update={"params": {"max_iter": 500, "tol": 1e-4}})
    again = train_model(
        train, spec, data=info_for(churn), segment_column="country", mlflow_config=mlflow_config
    )
    assert again.reused and again.run_id == first.run_id and again.model_uri == first.model_uri
    changed = train_model(
        train,
        SPEC.model_copy(update={"params": {"max_iter": 501}}),
        data=info_for(churn),
        mlflow_config=mlflow_config,
    )
    assert not changed.reused and changed.run_id != first.run_id


def test_grid_search_logs_best_params(churn, mlflow_config):
    train, _ = split_dataset(churn, target="churned")
    spec = TrainingSpec(
        target="churned",
        estimator="sklearn.tree.DecisionTreeClassifier",
        search=SearchSpec(param_grid={"max_depth": [2, 4]}, cv=2),
    )
    result = train_model(train, spec, data=info_for(train), mlflow_config=mlflow_config)
    assert result.params["model.max_depth"] in {"2", "4"}
    assert 0.5 < result.metrics["cv_best_score"] <= 1.0


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (
            TrainingSpec(target="churned", estimator="sklearn.ensemble.NoSuchModel"),
            EstimatorError,
            "NoSuchModel",
        ),
        (TrainingSpec(target="churned", estimator="not_a_module.Model"), EstimatorError, "not_a_module"),
        (TrainingSpec(target="churned", params={"n_trees": 3}), EstimatorError, "n_trees"),
        (TrainingSpec(target="churned", params={"C": -1.0}), EstimatorError, "C"),
        (
            TrainingSpec(target="churned", search=SearchSpec(param_grid={"depth": [1]})),
            EstimatorError,
            "depth",
        ),
        (TrainingSpec(target="label"), SchemaError, "label"),
        (TrainingSpec(target="churned", numeric_features=["age", "income"]), SchemaError, "income"),
    ],
)
def test_bad_specs_fail_before_anything_is_logged(churn, mlflow_config, spec, error, match):

    client = client_for(mlflow_config)
    before = len(client.search_runs([client.get_experiment_by_name("tests").experiment_id]))
    with pytest.raises(error, match=match):
        train_model(churn, spec, data=info_for(churn), mlflow_config=mlflow_config)
    after = len(client.search_runs([client.get_experiment_by_name("tests").experiment_id]))
    assert after == before


def test_target_with_one_class(churn, mlflow_config):
    one_class = churn.assign(churned=0)
    with pytest.raises(TrainingError, match="single class"):
        train_model(one_class, SPEC, data=info_for(one_class), mlflow_config=mlflow_config)


def test_tracking_server_down_fails_fast(churn):
    config = MlflowConfig(tracking_uri=f"http://127.0.0.1:{free_port()}", request_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match="did not answer"):
        train_model(churn, SPEC, data=info_for(churn), mlflow_config=config)
    assert time.monotonic() - started < 30  # not MLflow's minutes of retries


def test_no_process_wide_mlflow_state_in_the_package():
    """The package reaches MLflow through explicit clients only: no fluent API, no global URIs."""
    import re
    from pathlib import Path

    import mlops_tasks.tracking

    assert not hasattr(mlops_tasks.tracking, "mlflow_session")  # the deprecated shim is gone
    fluent = re.compile(
        r"mlflow\.(set_tracking_uri|set_registry_uri|start_run|set_experiment|sklearn\.load_model"
        r"|pyfunc\.load_model|artifacts\.download_artifacts|sklearn\.log_model)\b|_tracking_uri\b"
    )
    root = Path(mlops_tasks.tracking.__file__).parent
    found = []
    for path in [
        *root.rglob("*.py"),
        *root.parent.joinpath("flows").glob("*.py"),
        *root.parent.joinpath("deployments").glob("*.py"),
    ]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if fluent.search(line) and path.name != "tracking.py" and path.parent.name != "serving":
                found.append(f"{path}:{number}: {line.strip()}")
    assert not found, found


class _RacingClient:
    """An MLflow client whose first ``log_inputs`` loses the dataset insert to another run."""

    def __init__(self, message: str) -> None:
        self.message, self.inputs, self.artifacts = message, [], []

    def log_inputs(self, run_id, inputs):
        from mlflow.exceptions import MlflowException

        if not self.inputs:
            self.inputs.append(None)
            raise MlflowException(self.message)
        self.inputs.append((run_id, inputs))

    def log_artifact(self, run_id, path, artifact_path=None):
        self.artifacts.append(artifact_path)


def test_a_dataset_logged_by_a_concurrent_run_is_reused_not_an_error(churn):
    """Two runs logging the same data at once: the loser of MLflow's insert logs again; other errors stay."""
    from mlflow.exceptions import MlflowException

    from mlops_tasks.training import _log_training_data

    for lost in (
        "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name",
        'duplicate key value violates unique constraint "datasets_pk"',
    ):
        client = _RacingClient(lost)
        _log_training_data(client, "run-1", churn.head(50), SPEC, info_for(churn))
        assert (
            len(client.inputs) == 2 and client.inputs[1][0] == "run-1" and client.artifacts == ["reference"]
        )
    with pytest.raises(MlflowException, match="database is locked"):
        _log_training_data(
            _RacingClient("database is locked"), "run-1", churn.head(50), SPEC, info_for(churn)
        )
