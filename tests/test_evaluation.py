"""Evaluation: metrics, the gate's arithmetic, slices, and the champion comparison."""

from __future__ import annotations

import json

import pytest
from conftest import client_for
from test_training import SPEC, info_for

from mlops_tasks.data import split_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import ModelNotFoundError, QualityGateError, SchemaError
from mlops_tasks.evaluation import (
    MetricThreshold,
    QualityGate,
    SliceThreshold,
    apply_gate,
    evaluate_model,
)
from mlops_tasks.registry import promote_model, register_model
from mlops_tasks.training import train_model

GATE = QualityGate(
    thresholds=[MetricThreshold(metric="roc_auc", min_value=0.6, min_absolute_change=-0.05)],
    slice_thresholds=[SliceThreshold(metric="accuracy", min_value=0.5)],
)


def test_absolute_bounds_and_direction():
    gate = QualityGate(
        thresholds=[
            MetricThreshold(metric="accuracy", min_value=0.8),
            MetricThreshold(metric="log_loss", max_value=0.5),
        ]
    )
    checks = apply_gate(gate, {"accuracy": 0.79, "log_loss": 0.4}, {}, {}, None)
    assert [c.passed for c in checks] == [False, True]
    assert "misses" in checks[0].reason and "0.7900" in checks[0].reason


def test_change_against_champion_respects_metric_direction():
    gate = QualityGate(
        thresholds=[
            MetricThreshold(metric="roc_auc", min_absolute_change=-0.01),
            MetricThreshold(metric="log_loss", min_relative_change=0.0),
        ]
    )
    # candidate auc 0.015 worse (fails -0.01), log loss lower = better (passes)
    checks = apply_gate(
        gate, {"roc_auc": 0.785, "log_loss": 0.40}, {}, {}, {"roc_auc": 0.80, "log_loss": 0.42}
    )
    assert [c.passed for c in checks] == [False, True]
    assert checks[0].observed == pytest.approx(-0.015)
    assert checks[1].observed == pytest.approx(0.02 / 0.42)
    # without a champion only absolute bounds apply: no change checks at all
    assert apply_gate(gate, {"roc_auc": 0.1, "log_loss": 9.0}, {}, {}, None) == []


def test_slices_below_min_rows_are_not_gated():
    gate = QualityGate(slice_thresholds=[SliceThreshold(metric="accuracy", min_value=0.7)], min_slice_rows=50)
    checks = apply_gate(
        gate,
        {},
        {"country=US": {"accuracy": 0.9}, "country=FR": {"accuracy": 0.2}},
        {"country=US": 100, "country=FR": 10},
        None,
    )
    assert len(checks) == 1 and checks[0].scope == "slice country=US" and checks[0].passed


def test_missing_metric_fails_the_check():
    gate = QualityGate(thresholds=[MetricThreshold(metric="roc_auc", min_value=0.5)])
    checks = apply_gate(gate, {"accuracy": 1.0}, {}, {}, None)
    assert not checks[0].passed and "could not be computed" in checks[0].reason


def test_threshold_validation():
    with pytest.raises(ValueError, match="unknown metric"):
        MetricThreshold(metric="precision_at_7", min_value=0.1)
    with pytest.raises(ValueError, match="sets no bound"):
        MetricThreshold(metric="accuracy")


@pytest.fixture(scope="module")
def candidate(churn, mlflow_config):
    train, holdout = split_dataset(churn, target="churned")
    trained = train_model(train, SPEC, data=info_for(churn), mlflow_config=mlflow_config)
    return trained, holdout


def test_first_model_has_only_absolute_checks_and_logs_report(candidate, mlflow_config, model_name):

    trained, holdout = candidate
    report = evaluate_model(
        trained, holdout, GATE, model_name=model_name, segment_column="country", mlflow_config=mlflow_config
    )
    assert report.passed and report.champion is None
    assert "no champion yet" in report.champion_note
    assert set(report.metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert set(report.slice_metrics) == {f"country={c}" for c in ["BR", "DE", "FR", "IN", "US"]}
    assert sum(report.slice_rows.values()) == len(holdout)
    assert all(c.scope != "champion" for c in report.checks)
    client = client_for(mlflow_config)
    run = client.get_run(trained.run_id)
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(report.metrics["roc_auc"])
    assert "holdout_country_US_accuracy" in run.data.metrics
    assert run.data.tags["mlops.gate.passed"] == "true"
    local = client.download_artifacts(trained.run_id, "evaluation/report.json")
    assert json.load(open(local))["passed"] is True
    assert "| roc_auc |" in report.to_markdown()
    # the plots are image artifacts of the training run the registered version will point to
    expected = {
        "roc.png",
        "precision-recall.png",
        "confusion-matrix.png",
        "calibration.png",
        "slices-accuracy.png",
    }
    assert {p.removeprefix("plots/") for p in report.plots} == expected
    logged = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert logged == {f"plots/{name}" for name in expected}
    png = client.download_artifacts(trained.run_id, "plots/roc.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_gate_against_champion_on_same_holdout(candidate, mlflow_config, model_name):
    trained, holdout = candidate
    first = evaluate_model(trained, holdout, GATE, model_name=model_name, mlflow_config=mlflow_config)
    promote_model(
        model_name,
        register_model(trained, first, model_name, mlflow_config=mlflow_config).version,
        mlflow_config=mlflow_config,
    )
    drifted = make_churn_data(2000, seed=11, drift=0.6)
    train2, holdout2 = split_dataset(drifted, target="churned")
    second = train_model(train2, SPEC, data=info_for(drifted), mlflow_config=mlflow_config)
    report = evaluate_model(second, holdout2, GATE, model_name=model_name, mlflow_config=mlflow_config)
    assert report.champion is not None and report.champion.version == 1
    assert report.champion.metrics["roc_auc"] != report.metrics["roc_auc"]
    assert "plots/roc.png" in report.plots  # drawn with the champion's curve beside
    assert any(c.scope == "champion" for c in report.checks)
    # a gate the candidate cannot meet raises with the report attached
    strict = QualityGate(thresholds=[MetricThreshold(metric="roc_auc", min_relative_change=0.5)])
    with pytest.raises(QualityGateError, match="relative change") as info:
        evaluate_model(second, holdout2, strict, model_name=model_name, mlflow_config=mlflow_config)
    assert info.value.report.passed is False and info.value.report.failed_reasons


def test_champion_pointing_at_deleted_version(candidate, mlflow_config, model_name):

    trained, holdout = candidate
    report = evaluate_model(trained, holdout, GATE, model_name=model_name, mlflow_config=mlflow_config)
    version = register_model(trained, report, model_name, mlflow_config=mlflow_config)
    promote_model(model_name, version.version, mlflow_config=mlflow_config)
    client = client_for(mlflow_config)
    client.delete_model_version(model_name, str(version.version))
    with pytest.raises(ModelNotFoundError, match="no longer exists"):
        evaluate_model(trained, holdout, GATE, model_name=model_name, mlflow_config=mlflow_config)
    assert client.search_model_versions(f"name = '{model_name}'") == []


def test_holdout_missing_a_feature(candidate, mlflow_config):
    trained, holdout = candidate
    with pytest.raises(SchemaError, match="tenure_months"):
        evaluate_model(trained, holdout.drop(columns=["tenure_months"]), GATE, mlflow_config=mlflow_config)
