"""The training flow end to end under Prefect's test harness, and a user's own flow of tasks."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import client_for
from prefect import flow

from flows.training import DemoData, TrainingPipelineParams, training_pipeline
from mlops_tasks.data import DatasetSpec, write_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import DataValidationError, QualityGateError
from mlops_tasks.evaluation import MetricThreshold, QualityGate
from tests.orchestration_support import read_artifacts


@pytest.fixture
def params(mlflow_config, model_name, tmp_path):
    return TrainingPipelineParams(
        model_name=model_name,
        demo=DemoData(rows=1500, seed=21),
        expectation_suite=str(tmp_path / "suite.json"),
        mlflow=mlflow_config,
        promote_on_pass=True,  # no deployment in these tests: promote on the gate alone
    )


def test_pipeline_registers_then_reuses_then_gates_against_champion(
    prefect_harness, params, model_name, mlflow_config
):
    first = training_pipeline(params)
    assert first.version == 1 and first.created and first.gate_passed and first.promoted
    assert first.champion_version == 1

    again = training_pipeline(params)  # same data and spec: nothing new registered
    assert again.version == 1 and not again.created and again.run_id == first.run_id

    drifted = params.model_copy(update={"demo": DemoData(rows=1500, seed=22, drift=0.3)})
    second = training_pipeline(drifted)
    assert second.version == 2 and second.created
    client = client_for(mlflow_config)
    report_path = client.download_artifacts(second.run_id, "evaluation/report.json")
    report = pd.read_json(report_path, typ="series")
    assert report["champion"]["version"] == 1  # gated against the first version as champion
    assert int(client.get_model_version_by_alias(model_name, "champion").version) == 2

    validation = read_artifacts("validation-churn-demo")
    evaluation = read_artifacts(f"evaluation-{model_name}")
    assert validation and evaluation
    assert "roc_auc" in evaluation[0].data
    # GX Data Docs written next to the validation report, linked from the artifact
    assert "Great Expectations Data Docs" in validation[0].data
    docs = read_artifacts("data-docs-churn-demo")
    assert docs and "(file://" in docs[0].data and "data-docs.html)" in docs[0].data
    # the plots are on the training run the registered version points to, named on the run page
    version_run = client.get_model_version(model_name, "2").run_id
    assert {"plots/roc.png", "plots/confusion-matrix.png"} <= {
        a.path for a in client.list_artifacts(version_run, "plots")
    }
    plots = read_artifacts(f"plots-{model_name}")  # a local store: the run and paths, no image URL
    assert plots and "plots/roc.png" in plots[0].data and version_run in plots[0].data


def test_by_default_champion_waits_for_a_deployment(prefect_harness, params, mlflow_config, model_name):
    result = training_pipeline(params.model_copy(update={"promote_on_pass": False}))
    assert result.gate_passed and not result.promoted and result.champion_version is None
    aliases = dict(client_for(mlflow_config).get_registered_model(model_name).aliases)
    assert aliases == {"challenger": result.version}
    assert TrainingPipelineParams().promote_on_pass is False


def test_bad_data_stops_before_training(prefect_harness, params, tmp_path, mlflow_config, model_name):
    training_pipeline(params)  # writes the suite from good data and registers version 1
    bad = make_churn_data(1500, seed=23).rename(columns={"tenure_months": "tenure"})
    uri = write_dataset(bad, str(tmp_path / "bad.csv"))
    with pytest.raises(DataValidationError, match="tenure"):
        training_pipeline(params.model_copy(update={"dataset": DatasetSpec(uri=uri)}))
    versions = client_for(mlflow_config).search_model_versions(f"name = '{model_name}'")
    assert [int(v.version) for v in versions] == [1]


def test_failed_gate_fails_the_run_and_moves_no_alias(prefect_harness, params, mlflow_config, model_name):
    strict = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.999)])
    with pytest.raises(QualityGateError, match="accuracy"):
        training_pipeline(params.model_copy(update={"gate": strict}))
    client = client_for(mlflow_config)
    (version,) = client.search_model_versions(f"name = '{model_name}'")
    assert version.tags["mlops.gate.passed"] == "false"
    assert dict(client.get_registered_model(model_name).aliases) == {}


def test_user_flow_with_own_data_and_estimator(prefect_harness, mlflow_config, model_name, tmp_path):
    """A regression problem and estimator of the user's, composed from the public tasks."""
    from sklearn.datasets import make_regression

    from mlops_tasks import tasks
    from mlops_tasks.training import TrainingSpec

    x, y = make_regression(n_samples=600, n_features=5, noise=5.0, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)]).assign(region=["n", "s"] * 300, price=y)
    uri = write_dataset(frame, str(tmp_path / "houses.parquet"))

    @flow
    def my_training(path: str) -> int:
        ds = tasks.load_dataset(DatasetSpec(uri=path))
        tasks.suggest_expectations(ds.frame, tmp_path / "houses.json")
        tasks.validate_data(ds.frame, tmp_path / "houses.json", dataset_name="houses")
        train, holdout = tasks.split_dataset(ds.frame, target="price", stratify=False)
        spec = TrainingSpec(
            target="price",
            task="regression",
            estimator="sklearn.ensemble.RandomForestRegressor",
            params={"n_estimators": 30},
        )
        trained = tasks.train_model(train, spec, data=ds.info, mlflow_config=mlflow_config)
        gate = QualityGate(thresholds=[MetricThreshold(metric="r2", min_value=0.5)])
        report = tasks.evaluate_model(
            trained,
            holdout,
            gate,
            model_name=model_name,
            segment_column="region",
            mlflow_config=mlflow_config,
        )
        version = tasks.register_model(trained, report, model_name, mlflow_config=mlflow_config)
        tasks.promote_model(model_name, version.version, mlflow_config=mlflow_config)
        return version.version

    assert my_training(uri) == 1
    champion = client_for(mlflow_config).get_model_version_by_alias(model_name, "champion")
    assert champion.tags["mlops.gate.passed"] == "true"
    assert float(champion.tags["mlops.metric.r2"]) > 0.5


def test_training_deployment_has_a_typed_form():
    from prefect.utilities.callables import parameter_schema

    from deployments.serve import build_deployments

    (deployment,) = build_deployments(only=["training-pipeline"])
    assert (deployment.flow_name, deployment.name) == ("training-pipeline", "train")
    assert "training" in deployment.tags
    # the schema Prefect's UI renders as the "Run" form
    definitions = parameter_schema(training_pipeline).model_dump()["definitions"]
    form = definitions["TrainingPipelineParams"]["properties"]
    assert form["model_name"]["description"].startswith("Registered model name in MLflow (required")
    assert {"dataset", "demo", "training", "gate", "mlflow"} <= set(form)
