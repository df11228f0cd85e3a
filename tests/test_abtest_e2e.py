"""A/B tests end to end: real HAProxy, real model servers (local target), real MLflow and Prefect flows.

One endpoint and one set of registered versions for the whole module: the sticky split
and its logging, the refusals, the promotion path, then the guardrail path.
"""

from __future__ import annotations

import http.client
import time

import numpy as np
import pandas as pd
import pytest

from mlops_tasks.abtest.models import EVENT_ABTEST_CONCLUDED
from mlops_tasks.deploy import EndpointSpec, RolloutSpec
from tests.conftest import client_for, free_port
from tests.deploy_support import SpikeModel, body_for, features, make_pipeline, register_version
from tests.orchestration_support import wait_for_events

ENDPOINT = "abtest-e2e"


@pytest.fixture(scope="module")
def live(prefect_harness, mlflow_config, churn, tmp_path_factory):
    from mlops_tasks.demo import TARGET
    from mlops_tasks.deploy import deploy_blue_green
    from mlops_tasks.deploy.endpoint_ops import stop_endpoint
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.mlflow_support import fluent_mlflow

    name = "abtest-e2e-model"
    x, y = features(churn), churn[TARGET]
    resolved = resolve_mlflow_config(mlflow_config)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v1 = register_version(client, exp, name, make_pipeline(1.0).fit(x, y), x)
        v2 = register_version(client, exp, name, make_pipeline(0.1).fit(x, y), x)
        v3 = register_version(client, exp, name, SpikeModel(make_pipeline(0.5).fit(x, y)), x, pickled=True)
    endpoint = EndpointSpec(name=ENDPOINT, port=free_port(), preview_port=free_port())
    deploy_blue_green(
        name, v1, endpoint=endpoint, mlflow_config=mlflow_config, smoke_rows=x.head(20),
        rollout=RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
    )  # fmt: skip
    try:
        yield {"name": name, "versions": (v1, v2, v3), "endpoint": endpoint, "x": x,
               "tmp": tmp_path_factory.mktemp("abtest-e2e"), "mlflow": mlflow_config}  # fmt: skip
    finally:
        stop_endpoint(ENDPOINT)


def _send(port: int, x: pd.DataFrame, subjects: list[str]) -> list[dict[str, str]]:
    """One keep-alive connection; per request: status, variant, version, request id, subject."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for i, subject in enumerate(subjects):
        conn.request("POST", "/invocations", body=body_for(x.iloc[[i % len(x)]]),
                     headers={"Content-Type": "application/json", "X-Subject-Id": subject})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        out.append({"status": str(resp.status), "variant": resp.getheader("X-Variant", ""),
                    "version": resp.getheader("X-Model-Version", ""), "subject": subject,
                    "request_id": resp.getheader("X-Request-Id", "")})  # fmt: skip
    conn.close()
    return out


def _start(live, challenger: int, outcomes_name: str):
    from flows.abtest import AbTestParams, ab_test_pipeline
    from mlops_tasks.abtest import AbGuardrails
    from mlops_tasks.abtest.control import OutcomeSource

    return ab_test_pipeline(
        AbTestParams(
            model_name=live["name"], challenger=challenger, endpoint=live["endpoint"], primary_metric="rated",
            min_effect=0.1, min_samples=50, mlflow=live["mlflow"],
            guardrails=AbGuardrails(min_requests=20, max_p95_latency_ratio=50.0),
            outcomes=OutcomeSource(uri=str(live["tmp"] / outcomes_name), key="subject"),
        )
    )  # fmt: skip


def test_sticky_split_logging_promotion_and_guardrail(live):
    from flows.abtest import AbEvaluateParams, ab_evaluate
    from mlops_tasks.deploy import deploy_blue_green
    from mlops_tasks.deploy.ab_state import running_ab_test
    from mlops_tasks.deploy.models import AbSplit
    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.errors import AbTestRunningError
    from mlops_tasks.serving.predlog import read_prediction_log

    v1, v2, v3 = live["versions"]
    port, x = live["endpoint"].port, live["x"]
    test = _start(live, v2, "outcomes.csv")
    assert test.versions == {"A": v1, "B": v2}
    registry = client_for(live["mlflow"])
    assert int(registry.get_model_version_by_alias(live["name"], "champion").version) == v1  # unchanged

    subjects = [f"rider-{i}" for i in range(300)]
    answers = _send(port, x, subjects + subjects[:50])  # 50 subjects come back
    assert {a["status"] for a in answers} == {"200"}
    version_of = {"A": str(v1), "B": str(v2)}
    for a in answers:  # sticky, exact, and each answer names its variant
        assert a["variant"] == test.split.variant_of(a["subject"]), a
        assert a["version"] == version_of[a["variant"]]
    expected_a = sum(AbSplit.bucket_of(s) < 50 for s in subjects)
    assert sum(a["variant"] == "A" for a in answers[:300]) == expected_a

    with pytest.raises(AbTestRunningError, match=test.id):
        deploy_blue_green(live["name"], v3, endpoint=live["endpoint"], mlflow_config=live["mlflow"])

    sink, wanted = str(endpoint_dir(ENDPOINT) / "prediction-log"), {a["request_id"] for a in answers}
    deadline = time.monotonic() + 30  # the servers flush their prediction log every 0.5 s
    while True:
        log = read_prediction_log(sink, start=test.started_at)
        if wanted <= set(log.get("request_id", [])) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    logged = log.drop_duplicates("request_id").set_index("request_id")
    for a in answers:  # logged variant and subject match the answers
        assert logged.loc[a["request_id"], "variant"] == a["variant"]
        assert logged.loc[a["request_id"], "subject"] == a["subject"]

    # outcomes arrive: B is much better; the scheduled evaluation promotes it
    draws = np.random.default_rng(14).random(len(subjects))
    share = {"A": 0.2, "B": 0.8}
    rated = [
        {"subject": s, "rated": int(d < share[test.split.variant_of(s)])}
        for s, d in zip(subjects, draws, strict=True)
    ]
    pd.DataFrame(rated).to_csv(live["tmp"] / "outcomes.csv", index=False)
    state = ab_evaluate(AbEvaluateParams(endpoint_name=ENDPOINT, mlflow=live["mlflow"]), return_state=True)
    evaluation = state.result()
    assert evaluation.verdict.verdict == "B_better" and evaluation.action == "promoted_b", evaluation.reason
    assert int(registry.get_model_version_by_alias(live["name"], "champion").version) == v2
    after = _send(port, x, subjects[:40])
    assert {(a["status"], a["version"], a["variant"]) for a in after} == {("200", str(v2), "")}
    assert running_ab_test(ENDPOINT) is None

    # guardrail path: a challenger that answers 500 on live requests ends the test for A at once
    spiky = _start(live, v3, "outcomes-2.csv")
    answers = _send(port, x, [f"g-{i}" for i in range(120)])
    assert {a["status"] for a in answers if a["variant"] == "A"} == {"200"}
    assert {a["status"] for a in answers if a["variant"] == "B"} == {"500"}
    evaluation = ab_evaluate(AbEvaluateParams(endpoint_name=ENDPOINT, mlflow=live["mlflow"]))
    assert evaluation.action == "ended_for_a" and "guardrail" in evaluation.reason
    assert running_ab_test(ENDPOINT) is None and spiky.versions["A"] == v2
    after = _send(port, x, [f"g-{i}" for i in range(20)])
    assert {(a["status"], a["version"]) for a in after} == {("200", str(v2))}
    assert int(registry.get_model_version_by_alias(live["name"], "champion").version) == v2

    # each ending reached Prefect as mlops.abtest.concluded on the endpoint (automations can react)
    concluded = wait_for_events(EVENT_ABTEST_CONCLUDED, f"mlops.endpoint.{ENDPOINT}", 2)
    seen = sorted((e.payload["test_id"], e.payload["action"], e.payload["winner"]) for e in concluded)
    assert seen == sorted([(test.id, "promoted_b", "B"), (spiky.id, "ended_for_a", "A")]), seen
