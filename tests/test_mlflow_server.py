"""Integration: the same core functions against a real `mlflow server` process over HTTP."""

from __future__ import annotations

import os

import httpx
import pytest
from conftest import client_for, start_mlflow_server
from test_training import SPEC, info_for

from mlops_tasks.data import split_dataset
from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model, plot_urls
from mlops_tasks.registry import promote_model, register_model
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.training import train_model


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(root, artifacts_destination=str(root / "artifacts")) as url:
        yield url, root


def test_train_evaluate_register_promote_over_http(mlflow_server, churn, model_name):
    url, root = mlflow_server
    config = MlflowConfig(tracking_uri=url, experiment_name="over-http")
    train, holdout = split_dataset(churn, target="churned")
    trained = train_model(train, SPEC, data=info_for(churn), segment_column="country", mlflow_config=config)
    gate = QualityGate(thresholds=[MetricThreshold(metric="roc_auc", min_value=0.6)])
    report = evaluate_model(
        trained, holdout, gate, model_name=model_name, segment_column="country", mlflow_config=config
    )
    version = register_model(trained, report, model_name, mlflow_config=config)
    promoted = promote_model(model_name, version.version, mlflow_config=config)
    assert version.version == 1 and promoted.changed
    client = client_for(config)
    assert int(client.get_model_version_by_alias(model_name, "champion").version) == 1
    assert client.get_run(trained.run_id).data.tags["mlops.gate.passed"] == "true"
    # the server stored the artifacts in its own destination (proxied artifact access)
    stored = {p.name for p in (root / "artifacts").rglob("*")}
    assert {"MLmodel", "train.parquet", "report.json"} <= stored
    # the environment stays untouched by the library's MLflow sessions
    assert "MLFLOW_TRACKING_URI" not in os.environ
    # the plots are served by the tracking server at lasting addresses (Prefect image artifacts)
    assert "roc.png" in stored and "plots/roc.png" in report.plots
    urls = plot_urls(report, config)
    assert set(urls) == set(report.plots)
    answer = httpx.get(urls["plots/roc.png"], timeout=30)
    assert answer.status_code == 200 and answer.content[:4] == b"\x89PNG"
    # a local store has no such address: the task names the run and the paths instead
    assert plot_urls(report.model_copy(update={"plots": []}), config) == {}
