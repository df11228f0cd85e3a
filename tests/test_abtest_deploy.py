"""A/B tests on the in-memory target: start, split, refusals, end for A or B, faults."""

from __future__ import annotations

import itertools
import json

import pytest

from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green
from mlops_tasks.deploy.ab import end_ab_test, start_ab_test
from mlops_tasks.deploy.ab_state import ab_test_history, running_ab_test
from mlops_tasks.deploy.endpoint_ops import rollback_deployment
from mlops_tasks.deploy.memory import MemoryRegistryAccess, MemoryTarget
from mlops_tasks.deploy.models import AbSplit
from mlops_tasks.errors import (
    AbTestError,
    AbTestNotFoundError,
    AbTestRunningError,
    CandidateUnhealthyError,
    ConfigurationError,
    ModelNotFoundError,
    PromotionRefusedError,
)

MODEL = "m"
_names = itertools.count()
BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).encode()


@pytest.fixture
def world():
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"ab-{next(_names)}"))
    registry = MemoryRegistryAccess({MODEL: [1, 2, 3]}, failed_gate={MODEL: [9]})
    deploy_blue_green(MODEL, 1, target=target, registry=registry, rollout=RolloutSpec(strategy="all_at_once"))
    return target, registry


def _start(world, version: int = 2, **kw):
    target, registry = world
    return start_ab_test(MODEL, version, target=target, registry=registry, **kw)


def _served(target, subject: str | None) -> tuple[str, str]:
    headers = {"X-Subject-Id": subject} if subject else {}
    reply = target.traffic.send("live", "POST", "/invocations", BODY, headers)
    assert reply.status == 200
    return reply.header("X-Variant"), reply.header("X-Served-By")


def test_start_splits_by_subject_and_keeps_the_champion_alias(world):
    target, registry = world
    test = _start(world, percent_a=30)
    assert test.versions == {"A": 1, "B": 2} and running_ab_test(target.endpoint.name) == test
    assert registry.champion(MODEL) == 1  # starting a test never moves the alias
    split = target.traffic.split()
    assert split is not None and split.percent_a == 30
    for i in range(100):
        subject = f"s{i}"
        variant, served_by = _served(target, subject)
        assert variant == split.variant_of(subject)
        assert served_by.endswith(f"-{split.colors[variant]}-1")
        assert _served(target, subject)[0] == variant  # sticky
    assert _served(target, None)[0] == "A"  # no subject header: the champion


def test_refusals_while_a_test_runs(world):
    target, registry = world
    _start(world)
    with pytest.raises(AbTestRunningError, match="A/B test"):
        _start(world, 3)
    with pytest.raises(AbTestRunningError, match="deploying m version 3"):
        deploy_blue_green(MODEL, 3, target=target, registry=registry)
    with pytest.raises(AbTestRunningError):
        rollback_deployment(target.endpoint.name, registry=registry)
    assert target.serving_version() in (1, 2)  # still serving


@pytest.mark.parametrize(
    ("version", "kw", "error"),
    [(7, {}, ModelNotFoundError), (9, {}, PromotionRefusedError), (2, {"percent_a": 0}, ConfigurationError),
     (2, {"percent_a": 100}, ConfigurationError), (1, {}, ConfigurationError)],
)  # fmt: skip
def test_bad_starts_are_typed_and_leave_the_champion_serving(world, version, kw, error):
    target, _ = world
    with pytest.raises(error):
        _start(world, version, **kw)
    assert running_ab_test(target.endpoint.name) is None
    assert target.serving_version() == 1 and target.traffic.split() is None


def test_no_champion_serving_is_an_ab_error():
    MemoryTarget.forget_all()
    target = MemoryTarget(EndpointSpec(name=f"ab-empty-{next(_names)}"))
    with pytest.raises(AbTestError, match="serves nothing"):
        start_ab_test(MODEL, 2, target=target, registry=MemoryRegistryAccess({MODEL: [1, 2]}))


def test_end_for_b_promotes_through_blue_green(world):
    target, registry = world
    test = _start(world)
    ended = end_ab_test(target.endpoint.name, "B", "B_better", target=target, registry=registry)
    assert ended.winner == "B" and ended.status == "ended"
    assert target.traffic.split() is None
    assert target.weighted_slots() == [test.split.colors["B"]]
    assert target.serving_version() == 2 and registry.champion(MODEL) == 2
    assert not target.runner.slot_status(test.split.colors["A"]).running  # the loser stopped
    assert running_ab_test(target.endpoint.name) is None
    assert ab_test_history(target.endpoint.name)[-1].winner == "B"
    deploy_blue_green(MODEL, 3, target=target, registry=registry)  # deployments work again


def test_end_for_a_stops_the_challenger(world):
    target, registry = world
    test = _start(world)
    end_ab_test(target.endpoint.name, "A", "guardrail: 5xx", target=target, registry=registry)
    assert target.traffic.split() is None and target.serving_version() == 1
    assert registry.champion(MODEL) == 1
    assert not target.runner.slot_status(test.split.colors["B"]).running


def test_b_dead_at_promotion_goes_back_to_a(world):
    target, registry = world
    test = _start(world)
    target.kill(test.split.colors["B"])
    with pytest.raises(CandidateUnhealthyError):
        end_ab_test(target.endpoint.name, "B", "B_better", target=target, registry=registry)
    assert target.serving_version() == 1 and registry.champion(MODEL) == 1
    assert target.traffic.split() is None
    assert ab_test_history(target.endpoint.name)[-1].winner == "A"


def test_end_without_a_test_and_split_model_checks(world):
    target, registry = world
    with pytest.raises(AbTestNotFoundError):
        end_ab_test(target.endpoint.name, "A", "x", target=target, registry=registry)
    with pytest.raises(ValueError, match="different slots"):
        AbSplit(colors={"A": "blue", "B": "blue"})
    assert AbSplit.bucket_of("alice") == 35  # zlib.crc32, as HAProxy's crc32 converter


def test_deployment_and_retrain_flows_refuse_during_a_test(world):
    """The flows' bodies refuse before building, training or claiming anything."""
    from flows.deployment import DeploymentPipelineParams, deployment_pipeline
    from flows.retrain import RetrainParams, retrain_pipeline
    from mlops_tasks.data import DatasetSpec

    target, _ = world
    test = _start(world)
    endpoint = EndpointSpec(name=target.endpoint.name)
    with pytest.raises(AbTestRunningError, match=test.id):
        deployment_pipeline.fn(DeploymentPipelineParams(model_name=MODEL, version=3, endpoint=endpoint))
    with pytest.raises(AbTestRunningError, match="a retrain of m"):
        retrain_pipeline.fn(
            RetrainParams(model_name=MODEL, dataset=DatasetSpec(uri="fresh.csv"), endpoint=endpoint)
        )
    assert target.serving_version() in (1, 2) and running_ab_test(target.endpoint.name) == test
