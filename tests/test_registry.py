"""Registry: idempotent registration, aliases, promotion rules, one-step rollback."""

from __future__ import annotations

import pytest
from conftest import client_for
from test_training import SPEC, info_for

from mlops_tasks.data import split_dataset
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import (
    ConfigurationError,
    ModelNotFoundError,
    PromotionRefusedError,
)
from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
from mlops_tasks.registry import promote_model, register_model, rollback_model
from mlops_tasks.training import train_model

PASS = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
FAIL = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.999)])


def candidate(seed: int, mlflow_config, gate=PASS, model_name=None):
    frame = make_churn_data(800, seed=seed)
    train, holdout = split_dataset(frame, target="churned")
    trained = train_model(train, SPEC, data=info_for(frame), mlflow_config=mlflow_config)
    report = evaluate_model(
        trained,
        holdout,
        gate,
        model_name=model_name,
        compare_to_champion=False,
        fail_on_error=False,
        mlflow_config=mlflow_config,
    )
    return trained, report


def aliases(mlflow_config, name):

    model = client_for(mlflow_config).get_registered_model(name)
    return {alias: int(version) for alias, version in model.aliases.items()}


def test_register_is_idempotent_and_sets_challenger(mlflow_config, model_name):
    trained, report = candidate(1, mlflow_config)
    first = register_model(trained, report, model_name, mlflow_config=mlflow_config)
    again = register_model(trained, report, model_name, mlflow_config=mlflow_config)
    assert first.created and not again.created and first.version == again.version == 1
    assert first.gate_passed and "challenger" in first.aliases

    mv = client_for(mlflow_config).get_model_version(model_name, "1")
    assert mv.tags["mlops.gate.passed"] == "true"
    assert float(mv.tags["mlops.metric.accuracy"]) == pytest.approx(report.metrics["accuracy"], rel=1e-5)
    assert mv.tags["mlops.data_fingerprint"] == trained.data_fingerprint


def test_failed_gate_registers_without_alias_and_cannot_be_promoted(mlflow_config, model_name):
    trained, report = candidate(2, mlflow_config, gate=FAIL)
    version = register_model(trained, report, model_name, mlflow_config=mlflow_config)
    assert not version.gate_passed and version.aliases == []
    with pytest.raises(PromotionRefusedError, match="force=True"):
        promote_model(model_name, version.version, mlflow_config=mlflow_config)
    assert aliases(mlflow_config, model_name) == {}
    forced = promote_model(model_name, version.version, force=True, mlflow_config=mlflow_config)
    assert forced.forced and aliases(mlflow_config, model_name) == {"champion": version.version}


def test_promote_records_previous_and_rollback_is_one_step(mlflow_config, model_name):
    v1 = register_model(*candidate(3, mlflow_config), model_name, mlflow_config=mlflow_config)
    v2 = register_model(*candidate(4, mlflow_config), model_name, mlflow_config=mlflow_config)
    first = promote_model(model_name, v1.version, mlflow_config=mlflow_config)
    assert first.previous_version is None and first.changed
    second = promote_model(model_name, v2.version, mlflow_config=mlflow_config)
    assert second.previous_version == v1.version
    assert aliases(mlflow_config, model_name) == {"champion": v2.version}
    assert not promote_model(model_name, v2.version, mlflow_config=mlflow_config).changed
    back = rollback_model(model_name, mlflow_config=mlflow_config)
    assert (back.version, back.previous_version) == (v1.version, v2.version)
    assert aliases(mlflow_config, model_name)["champion"] == v1.version
    # v1 had no champion before it: nothing further to roll back to
    with pytest.raises(PromotionRefusedError, match="no recorded previous champion"):
        rollback_model(model_name, mlflow_config=mlflow_config)


def test_alias_only_rollback_is_refused_while_the_caller_says_the_model_serves(mlflow_config, model_name):
    # The registry imports nothing of the deploy layer: the caller says which endpoints serve.
    v1 = register_model(*candidate(7, mlflow_config), model_name, mlflow_config=mlflow_config)
    v2 = register_model(*candidate(8, mlflow_config), model_name, mlflow_config=mlflow_config)
    promote_model(model_name, v1.version, mlflow_config=mlflow_config)
    promote_model(model_name, v2.version, mlflow_config=mlflow_config)
    asked = []

    def serving(name):
        asked.append(name)
        return ["churn"]

    with pytest.raises(PromotionRefusedError, match=r"live on endpoint\(s\) churn.*rollback_deployment"):
        rollback_model(model_name, mlflow_config=mlflow_config, serving_endpoints=serving)
    assert asked == [model_name] and aliases(mlflow_config, model_name)["champion"] == v2.version
    back = rollback_model(model_name, mlflow_config=mlflow_config, serving_endpoints=lambda name: [])
    assert back.version == v1.version


def test_rollback_to_deleted_version_moves_nothing(mlflow_config, model_name):

    v1 = register_model(*candidate(5, mlflow_config), model_name, mlflow_config=mlflow_config)
    v2 = register_model(*candidate(6, mlflow_config), model_name, mlflow_config=mlflow_config)
    promote_model(model_name, v1.version, mlflow_config=mlflow_config)
    promote_model(model_name, v2.version, mlflow_config=mlflow_config)
    client_for(mlflow_config).delete_model_version(model_name, str(v1.version))
    with pytest.raises(ModelNotFoundError, match=f"no version {v1.version}"):
        rollback_model(model_name, mlflow_config=mlflow_config)
    assert aliases(mlflow_config, model_name)["champion"] == v2.version


def test_bad_names_and_versions(mlflow_config, model_name):
    trained, report = candidate(1, mlflow_config)
    with pytest.raises(ConfigurationError, match="name"):
        register_model(trained, report, " ", mlflow_config=mlflow_config)
    with pytest.raises(ModelNotFoundError, match="no version 42"):
        promote_model(model_name, 42, mlflow_config=mlflow_config)
    with pytest.raises(ModelNotFoundError, match="no champion"):
        rollback_model(model_name, mlflow_config=mlflow_config)
    other = report.model_copy(update={"run_id": "another-run"})
    with pytest.raises(ConfigurationError, match="another-run"):
        register_model(trained, other, model_name, mlflow_config=mlflow_config)
