"""Evaluating A/B tests on the in-memory target: outcomes join, verdicts, guardrails, the end."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pandas as pd
import pytest

from mlops_tasks.abtest import AbSpec
from mlops_tasks.abtest.control import OutcomeSource, evaluate_test, start_test
from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
from mlops_tasks.deploy.ab_state import ab_test_history, running_ab_test
from mlops_tasks.deploy.endpoint_ops import stop_endpoint
from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget
from mlops_tasks.errors import AbTestError, ConfigurationError, OutcomesJoinError, SchemaError
from mlops_tasks.serving.predlog import PredictionLogWriter

MODEL = "m"
_names = itertools.count()
SPEC = AbSpec(primary_metric="rated", min_effect=0.1, min_samples=50)
BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).encode()


@pytest.fixture
def world(tmp_path):
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"abc-{next(_names)}"))
    registry = MemoryRegistryAccess({MODEL: [1, 2]})
    deploy_blue_green(MODEL, 1, target=target, registry=registry, rollout=RolloutSpec(strategy="all_at_once"))
    return target, registry, tmp_path


def _start(world, spec=SPEC, **kw):
    target, registry, tmp = world
    source = OutcomeSource(uri=str(tmp / "outcomes.csv"), key=kw.pop("key", "subject"))
    return start_test(MODEL, 2, spec, source, target=target, registry=registry, **kw)


def _traffic(world, subjects: int, p_a: float, p_b: float, skew_b: float = 1.0, seed: int = 0) -> None:
    """Send each subject's request through the router, log it as the server would, write outcomes."""
    target, _, tmp = world
    rng = np.random.default_rng(seed)
    writer = PredictionLogWriter(str(tmp / "log"), ["x"], MODEL, "1", "sim")
    writer.start()
    outcomes = []
    for i in range(subjects):
        subject = f"rider-{i}"
        reply = target.traffic.send("live", "POST", "/invocations", BODY, {"X-Subject-Id": subject})
        variant = reply.header("X-Variant")
        if variant == "B" and rng.random() > skew_b:
            continue  # lost from the log (a broken logging path on B)
        writer.append([f"req-{i}"], [time.time()], np.array([[1.0]]), np.array([0]),
                      variants=[variant], subjects=[subject])  # fmt: skip
        outcomes.append({"subject": subject, "rated": int(rng.random() < (p_a if variant == "A" else p_b))})
    writer.close()
    pd.DataFrame(outcomes).to_csv(tmp / "outcomes.csv", index=False)


def _evaluate(world, **kw):
    target, registry, tmp = world
    return evaluate_test(
        target.endpoint.name, prediction_log=tmp / "log", target=target, registry=registry, **kw
    )


def test_no_outcome_yet_keeps_running(world):
    target, registry, tmp = world
    _start(world)
    evaluation = evaluate_test(
        target.endpoint.name, prediction_log=tmp / "nothing", target=target, registry=registry
    )
    assert evaluation.verdict.verdict == "keep_running" and evaluation.action == "none"
    assert running_ab_test(target.endpoint.name) is not None


def test_b_better_promotes_b(world):
    target, registry, _ = world
    _start(world)
    _traffic(world, 1500, 0.2, 0.5)
    evaluation = _evaluate(world)
    assert evaluation.verdict.verdict == "B_better", evaluation.verdict.reason
    assert evaluation.action == "promoted_b" and evaluation.winner == "B"
    assert target.serving_version() == 2 and registry.champion(MODEL) == 2
    assert running_ab_test(target.endpoint.name) is None


def test_guardrail_breach_ends_for_a_at_once(world):
    target, registry, _ = world
    test = _start(world)
    target.fail(test.split.colors["B"])  # B answers 500
    _traffic(world, 300, 0.2, 0.9)  # B would win on the outcome
    evaluation = _evaluate(world)
    assert evaluation.action == "ended_for_a" and "guardrail" in evaluation.reason
    assert target.serving_version() == 1 and registry.champion(MODEL) == 1


def test_sample_ratio_mismatch_ends_for_a_with_nothing_promoted(world):
    target, registry, _ = world
    _start(world)
    _traffic(world, 1500, 0.2, 0.5, skew_b=0.7)
    evaluation = _evaluate(world)
    assert evaluation.verdict.verdict == "invalid_sample_ratio"
    assert evaluation.action == "ended_for_a" and registry.champion(MODEL) == 1


def test_report_only_and_maximum_duration(world):
    target, _, _ = world
    _start(world, max_duration_h=1e-9)
    _traffic(world, 60, 0.2, 0.2)
    assert _evaluate(world, act=False).action == "none"
    evaluation = _evaluate(world)
    assert evaluation.action == "ended_for_a" and "maximum duration" in evaluation.reason


def test_bad_outcomes_are_typed_and_leave_the_test_running(world):
    target, _, tmp = world
    _start(world)
    _traffic(world, 100, 0.2, 0.2)
    pd.DataFrame({"subject": ["rider-1"], "stars": [5]}).to_csv(tmp / "outcomes.csv", index=False)
    with pytest.raises(SchemaError, match="rated"):
        _evaluate(world)
    pd.DataFrame({"subject": ["someone-else"], "rated": [1]}).to_csv(tmp / "outcomes.csv", index=False)
    with pytest.raises(OutcomesJoinError, match="someone-else"):
        _evaluate(world)
    assert running_ab_test(target.endpoint.name) is not None and target.serving_version() in (1, 2)


def test_bad_specs_are_refused_before_anything_starts(world):
    target, _, _ = world
    with pytest.raises(ConfigurationError, match="request_id"):
        _start(world, spec=SPEC.model_copy(update={"unit": "request"}))
    with pytest.raises(ConfigurationError, match="weights"):
        _start(world, spec=SPEC.model_copy(update={"weights": {"A": 60, "B": 60}}))
    assert running_ab_test(target.endpoint.name) is None and target.serving_version() == 1


def test_endpoint_stopped_during_a_test(world):
    target, _, _ = world
    _start(world)
    target.kill_router()
    with pytest.raises(AbTestError, match="does not run"):
        _evaluate(world)
    target.traffic.alive = True
    stop_endpoint(target.endpoint.name)
    assert running_ab_test(target.endpoint.name) is None
    assert "stopped" in (ab_test_history(target.endpoint.name)[-1].reason or "")


def test_outcomes_from_s3_keyed_by_request_id(world, s3_bucket):
    """Outcomes on the loopback S3 server, keyed by request id, for a per-request test."""
    from mlops_tasks.data import write_dataset

    target, registry, tmp = world
    config, bucket = s3_bucket
    uri = f"s3://{bucket}/outcomes/rides.parquet"
    spec = SPEC.model_copy(update={"unit": "request"})
    start_test(MODEL, 2, spec, OutcomeSource(uri=uri, key="request_id"), target=target, registry=registry)
    _traffic(world, 1500, 0.2, 0.5)
    by_subject = pd.read_csv(tmp / "outcomes.csv").set_index("subject")["rated"]
    outcomes = pd.DataFrame({"request_id": [f"req-{i}" for i in range(1500)],
                             "rated": [by_subject[f"rider-{i}"] for i in range(1500)]})  # fmt: skip
    write_dataset(outcomes, uri, s3=config)
    evaluation = evaluate_test(target.endpoint.name, prediction_log=tmp / "log", s3=config, target=target,
                               registry=registry)  # fmt: skip
    assert evaluation.verdict.samples["A"] + evaluation.verdict.samples["B"] == 1500
    assert evaluation.verdict.verdict == "B_better" and registry.champion(MODEL) == 2
