"""The deployment pipeline, rollback and stop flows on the local target (real Prefect runs)."""

from __future__ import annotations

import json

from mlops_tasks.deploy import EndpointSpec, RolloutSpec
from tests.conftest import client_for, free_port
from tests.deploy_support import features, make_pipeline, register_version


def test_deployment_pipeline_rollback_and_stop_flows(
    prefect_harness, mlflow_config, churn, model_name, tmp_path
):
    from flows.deployment import (
        DeploymentPipelineParams,
        RollbackParams,
        deployment_pipeline,
        rollback_deployment_flow,
        stop_endpoint_flow,
    )
    from mlops_tasks.data import DatasetSpec
    from mlops_tasks.demo import TARGET
    from mlops_tasks.deploy.targets.base import http_post_json
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.mlflow_support import fluent_mlflow

    x, y = features(churn), churn[TARGET]
    resolved = resolve_mlflow_config(mlflow_config)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v1 = register_version(client, exp, model_name, make_pipeline(1.0).fit(x, y), x)
        v2 = register_version(client, exp, model_name, make_pipeline(0.1).fit(x, y), x)
        client.set_registered_model_alias(model_name, "challenger", str(v1))
    data = tmp_path / "churn.csv"
    churn.to_csv(data, index=False)
    endpoint = EndpointSpec(name="flowtest", port=free_port(), preview_port=free_port())
    params = DeploymentPipelineParams(
        model_name=model_name,
        endpoint=endpoint,
        smoke_dataset=DatasetSpec(uri=str(data)),
        target_column=TARGET,  # versions logged here record no mlops.target tag
        rollout=RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
        mlflow=mlflow_config,
    )
    registry = client_for(mlflow_config)
    try:
        first = deployment_pipeline(params)  # no version given: the challenger
        assert first.outcome == "succeeded" and first.version == v1
        assert int(registry.get_model_version_by_alias(model_name, "champion").version) == v1
        second = deployment_pipeline(params.model_copy(update={"version": v2}))
        assert second.outcome == "succeeded" and second.previous_version == v1
        body = {"dataframe_split": json.loads(x.head(2).to_json(orient="split", index=False))}
        status, doc = http_post_json(f"127.0.0.1:{endpoint.port}", "/invocations", body)
        assert status == 200 and len(doc["predictions"]) == 2

        back = rollback_deployment_flow(RollbackParams(endpoint_name="flowtest", mlflow=mlflow_config))
        assert back.kind == "rollback" and back.version == v1
        assert int(registry.get_model_version_by_alias(model_name, "champion").version) == v1
    finally:
        assert stop_endpoint_flow("flowtest") is True
    status, _ = http_post_json(f"127.0.0.1:{endpoint.port}", "/invocations", {})
    assert status == 0  # nothing listens any more
