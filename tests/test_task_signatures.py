"""Every task takes exactly the parameters of the core function(s) it runs, with the same defaults.

A task is a thin Prefect wrapper: its parameters are those of the core function it calls
(the union of them when it composes several), plus only Prefect-specific options listed
here with the reason. Its docstring points to the core function(s) and documents none of
their parameters (the core docstrings are the reference), so it cannot document a
different default either. Where a task departs from that (an older public parameter name,
a value the task fills itself), the departure is listed below with its reason.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect import Task, task

import mlops_tasks.tasks

#: Core parameters every task fills itself rather than exposing.
FILLED_BY_EVERY_TASK = {
    "log": "the task passes the Prefect run logger",
    "listener": "the task logs each rollout step to the Prefect run logger",
}


@dataclass(frozen=True)
class Wraps:
    """What a task wraps and where it knowingly departs from the core signature."""

    cores: tuple[str, ...]  # "module:function", the public import path
    filled: Mapping[str, str] = field(default_factory=dict)  # core parameter -> why the task fills it
    renamed: Mapping[str, str] = field(default_factory=dict)  # core parameter -> task parameter
    extra: Mapping[str, str] = field(default_factory=dict)  # task-only parameter -> why
    differs: Mapping[str, str] = field(default_factory=dict)  # parameter with own default/kind -> why


TASKS: dict[str, Wraps] = {
    "load_dataset": Wraps(("mlops_tasks.data:load_dataset",)),
    "split_dataset": Wraps(("mlops_tasks.data:split_dataset",)),
    "suggest_expectations": Wraps(
        ("mlops_tasks.validation:suggest_expectations", "mlops_tasks.validation:write_suite"),
        filled={"suite": "made by suggest_expectations"},
        renamed={"path": "suite_path"},  # the task's public name since its first release
        differs={"suite_name": "keyword-only, defaults to the suite file's stem"},
    ),
    "validate_data": Wraps(
        (
            "mlops_tasks.validation:load_suite",
            "mlops_tasks.validation:validate_dataframe",
            "mlops_tasks.validation:save_validation_report",
        ),
        filled={"suite": "read by load_suite from suite_path", "report": "made by validate_dataframe"},
        renamed={"path": "suite_path", "df": "frame"},  # the task's public names since its first release
    ),
    "train_model": Wraps(("mlops_tasks.training:train_model",)),
    "evaluate_model": Wraps(("mlops_tasks.evaluation:evaluate_model",)),
    "register_model": Wraps(("mlops_tasks.registry:register_model",)),
    "promote_model": Wraps(("mlops_tasks.registry:promote_model",)),
    "rollback_model": Wraps(
        ("mlops_tasks.registry:rollback_model",),
        filled={"serving_endpoints": "the task asks the deploy layer (deploy.state.endpoints_serving)"},
    ),
    "build_model_image": Wraps(("mlops_tasks.containerize:build_model_image",)),
    "push_model_image": Wraps(("mlops_tasks.containerize:push_model_image",)),
    "verify_model_image": Wraps(("mlops_tasks.containerize:verify_model_image",)),
    "load_drift_reference": Wraps(("mlops_tasks.monitoring:load_reference",)),
    "load_prediction_window": Wraps(("mlops_tasks.monitoring:load_current",)),
    "check_drift_and_report": Wraps(
        (
            "mlops_tasks.monitoring:check_drift",
            "mlops_tasks.monitoring:log_drift_run",
            "mlops_tasks.drift_events:emit_drift_event",
        ),
        filled={"report": "made by check_drift", "html_path": "the HTML report check_drift saved"},
        extra={
            "log_to_mlflow": "whether the composition runs log_drift_run",
            "emit_event": "whether the composition runs emit_drift_event",
        },
    ),
    "check_drift_on_cluster_and_report": Wraps(
        (
            "mlops_tasks.stages.monitoring:drift_on_cluster",
            "mlops_tasks.monitoring:log_drift_run",
            "mlops_tasks.drift_events:emit_drift_event",
        ),
        filled={
            "report": "made by drift_on_cluster",
            "html_path": "the HTML report drift_on_cluster saved",
            "mlflow_config": "params.mlflow",
        },
    ),
    "score_batch": Wraps(("mlops_tasks.scoring:score_batch",)),
    "score_partitions": Wraps(
        ("mlops_tasks.scoring:score_partitions",),
        filled={"client": "the Dask worker's client when the task runs under prefect-dask's DaskTaskRunner"},
    ),
    "deploy_blue_green": Wraps(("mlops_tasks.deploy.strategy:deploy_blue_green",)),
    "rollback_deployment": Wraps(("mlops_tasks.deploy.strategy:rollback_deployment",)),
    "describe_deployment": Wraps(("mlops_tasks.deploy.strategy:describe_deployment",)),
    "stop_endpoint": Wraps(("mlops_tasks.deploy.strategy:stop_endpoint",)),
    "endpoint_source": Wraps(("mlops_tasks.deploy.monitored:endpoint_source",)),
    "issue_api_key": Wraps(
        ("mlops_tasks.deploy.access:issue_api_key",), filled={"emit": "the task sends Prefect events"}
    ),
    "revoke_api_key": Wraps(
        ("mlops_tasks.deploy.access:revoke_api_key",), filled={"emit": "the task sends Prefect events"}
    ),
    "expire_api_keys": Wraps(
        ("mlops_tasks.deploy.access:expire_api_keys",), filled={"emit": "the task sends Prefect events"}
    ),
    "rotate_certificate": Wraps(("mlops_tasks.deploy.access:rotate_certificate",)),
    "update_client_crl": Wraps(("mlops_tasks.deploy.access:update_client_crl",)),
    "claim_retrain": Wraps(
        ("mlops_tasks.retrain:claim_retrain",),
        filled={"lock": "the Prefect global concurrency limit (tasks.retrain.prefect_claim_lock)"},
    ),
    "release_retrain_claim": Wraps(("mlops_tasks.retrain:release_retrain_claim",)),
    "load_training_reference": Wraps(("mlops_tasks.retrain:load_training_reference",)),
    "prepare_training_data": Wraps(("mlops_tasks.retrain:prepare_training_data",)),
    "start_ab_test": Wraps(("mlops_tasks.abtest.control:start_test",)),
    "evaluate_ab_test": Wraps(("mlops_tasks.abtest.control:evaluate_test",)),
}


def _core(path: str) -> Callable[..., Any]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _documented_parameters(doc: str) -> set[str]:
    """Names listed in the Google-style ``Args:`` section of a cleaned (dedented) docstring."""
    match = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, flags=re.M)
    if not match:
        return set()
    return set(re.findall(r"^ {4}\**(\w+)(?: \(.*?\))?:", match.group(1), flags=re.M))


def signature_problems(fn: Callable[..., Any], wraps: Wraps) -> list[str]:
    """Every way ``fn`` (a task's function) departs from its core functions beyond ``wraps``."""
    problems: list[str] = []
    task_params = inspect.signature(fn).parameters
    matched: set[str] = set()
    for path in wraps.cores:
        for name, core in inspect.signature(_core(path)).parameters.items():
            if name.startswith("_") or core.kind in (core.VAR_POSITIONAL, core.VAR_KEYWORD):
                continue
            if name in wraps.filled or name in FILLED_BY_EVERY_TASK:
                if name in task_params:
                    problems.append(f"{name!r} is filled by the task but also a parameter")
                continue
            exposed = wraps.renamed.get(name, name)
            mine = task_params.get(exposed)
            if mine is None:
                problems.append(f"missing parameter {exposed!r} of {path}")
                continue
            matched.add(exposed)
            if exposed in wraps.differs:
                continue
            if mine.default is not core.default and mine.default != core.default:
                problems.append(
                    f"{exposed!r} defaults to {mine.default!r}, {path} to "
                    f"{'(required)' if core.default is core.empty else repr(core.default)}"
                )
            if mine.kind != core.kind:
                problems.append(f"{exposed!r} is {mine.kind.description}, in {path} {core.kind.description}")
    for name in task_params:
        if name not in matched and name not in wraps.extra:
            problems.append(f"parameter {name!r} is in no core function and not a declared task option")
    doc = inspect.getdoc(fn) or ""
    for path in wraps.cores:
        if path.replace(":", ".") not in doc:
            problems.append(f"the docstring does not point to {path.replace(':', '.')}")
    documented = _documented_parameters(doc) - set(wraps.extra)
    if documented:
        problems.append(f"the docstring documents core parameters {sorted(documented)} (copied docs)")
    return problems


def test_every_exported_task_is_listed():
    exported = {
        name for name in mlops_tasks.tasks.__all__ if isinstance(getattr(mlops_tasks.tasks, name), Task)
    }
    assert exported == set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_matches_its_core_functions(name):
    wraps = TASKS[name]
    for parameter in [*wraps.differs, *wraps.extra]:  # every departure names a real parameter
        assert parameter in inspect.signature(getattr(mlops_tasks.tasks, name).fn).parameters
    assert signature_problems(getattr(mlops_tasks.tasks, name).fn, wraps) == []


def test_the_check_finds_a_missing_parameter_a_changed_default_and_copied_docs():
    @task
    def push(image: Any, registry: str, *, credentials: Any = None, connect_timeout_s: float = 9.0) -> None:
        """Push: :func:`mlops_tasks.containerize.push_model_image`.

        Args:
            image: The image.
        """

    problems = signature_problems(push.fn, TASKS["push_model_image"])
    assert "missing parameter 'repository' of mlops_tasks.containerize:push_model_image" in problems
    assert any(p.startswith("'connect_timeout_s' defaults to 9.0") for p in problems)
    assert "the docstring documents core parameters ['image'] (copied docs)" in problems
