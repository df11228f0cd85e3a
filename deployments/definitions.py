"""The one table of this project's Prefect deployments.

Everything that deploys reads it: :mod:`deployments.serve` (one local process serving
them all), :mod:`deployments.yaml` (writes and checks ``prefect.yaml`` for
``prefect deploy``) and :mod:`deployments.automations` (which deployment an automation
runs, with which parameters). Parameters are written once, as the flows' own pydantic
models; the deployments carry them as JSON, so the UI's "Run" form opens pre-filled.

Example:
    ```python
    from deployments.definitions import DEPLOYMENTS, by_name
    spec = by_name("drift-check")
    print(spec.full_name, spec.schedule)
    ```
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

DEFAULT_WORK_POOL = "mlops-process"
"""The process work pool of ``prefect.yaml`` (``prefect work-pool create mlops-process --type process``)."""

TAGS = ["mlops"]
#: What the demo deployments fill in that the reusable flows leave to the caller.
DEMO_MODEL_NAME = "churn-classifier"
#: The endpoint ``make demo`` deploys (``ENDPOINT ?= churn`` in the Makefile).
DEMO_ENDPOINT = "churn"
DEMO: Mapping[str, Any] = {"model_name": DEMO_MODEL_NAME}


@dataclass(frozen=True)
class ScheduleSpec:
    """A cron or interval schedule of a deployment.

    Example:
        ```python
        daily = ScheduleSpec(cron="0 6 * * *")
        every_minute = ScheduleSpec(interval_s=60)
        ```
    """

    cron: str | None = None
    interval_s: float | None = None
    timezone: str = "UTC"
    active: bool = True

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("a schedule needs exactly one of cron and interval_s")
        if self.interval_s is not None and self.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")

    def to_prefect(self):
        """The ``prefect.schedules.Schedule`` for ``flow.to_deployment(schedules=[...])``."""
        from prefect.schedules import Cron, Interval

        if self.cron is not None:
            return Cron(self.cron, timezone=self.timezone, active=self.active)
        return Interval(self.interval_s, timezone=self.timezone, active=self.active)

    def to_yaml(self) -> dict[str, Any]:
        """The ``schedules:`` entry of ``prefect.yaml``."""
        if self.cron is not None:
            return {"cron": self.cron, "timezone": self.timezone, "active": self.active}
        return {"interval": self.interval_s, "timezone": self.timezone, "active": self.active}


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, its description, tags, default parameters, schedule.

    ``params_model`` names the flow's parameter model (``module:Class``, imported lazily so
    the table imports no flow); its defaults are the deployment's default parameters.
    ``None`` leaves the flow's own defaults (a required field is then asked by the form).
    ``demo_parameters`` fill what the reusable flows leave empty for the churn demo (its
    ``model_name``), so the served and ``prefect.yaml`` deployments run the demo as they are.
    """

    name: str
    flow_name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...]
    params_model: str | None = None
    schedule: ScheduleSpec | None = None
    parameter_name: str = "params"
    demo_parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``<flow name>/<deployment name>``, as ``run_deployment`` and the CLI name it."""
        return f"{self.flow_name}/{self.name}"

    @property
    def module(self) -> str:
        """The import path of the flow's module (``mlops_tasks/flows/training.py`` gives
        ``mlops_tasks.flows.training``)."""
        path, _ = self.entrypoint.split(":")
        return path.removesuffix(".py").replace("/", ".")

    def load_flow(self):
        """Import the flow object named by ``entrypoint``."""
        _, attr = self.entrypoint.split(":")
        return getattr(importlib.import_module(self.module), attr)

    def parameters(self) -> dict[str, Any]:
        """Default parameters as JSON (``{"params": {...}}``), or ``{}`` for the flow's defaults."""
        if self.params_model is None:
            return {}
        module, name = self.params_model.split(":")
        model: type[BaseModel] = getattr(importlib.import_module(module), name)
        # Unset (None) fields are left out: the server checks deployment parameters against the
        # form's schema, where optional plain inputs are typed without null (FormParams).
        return {self.parameter_name: model(**self.demo_parameters).model_dump(mode="json", exclude_none=True)}


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name="train",
        flow_name="training-pipeline",
        entrypoint="mlops_tasks/flows/training.py:training_pipeline",
        description="Validate the data, train, evaluate against the champion and register a model "
        "version (alias challenger when its quality gate passes).",
        tags=(*TAGS, "training"),
        params_model="mlops_tasks.flows.training:TrainingPipelineParams",
        demo_parameters=DEMO,
    ),
    DeploymentSpec(
        name="deploy",
        flow_name="deployment-pipeline",
        entrypoint="mlops_tasks/flows/deployment.py:deployment_pipeline",
        description="Deploy a registered version blue-green behind the endpoint's HAProxy router; "
        "champion moves when it is live.",
        tags=(*TAGS, "deployment"),
        params_model="mlops_tasks.flows.deployment:DeploymentPipelineParams",
        demo_parameters={**DEMO, "target_column": "churned"},  # the demo's label (mlops_tasks.demo.TARGET)
    ),
    DeploymentSpec(
        name="rollback",
        flow_name="rollback-deployment",
        entrypoint="mlops_tasks/flows/deployment.py:rollback_deployment_flow",
        description="Put the previous version of an endpoint back at 100 % and move champion back.",
        tags=(*TAGS, "deployment"),
        params_model="mlops_tasks.flows.deployment:RollbackParams",
    ),
    DeploymentSpec(
        name="daily",
        flow_name="drift-check",
        entrypoint="mlops_tasks/flows/monitoring.py:drift_check",
        description=f"Follow endpoint {DEMO_ENDPOINT!r}: compare the training data of the version live on it "
        "with the last 24 h of the endpoint's prediction log (Evidently); emits mlops.drift.detected on "
        "drift, ends Completed with a 'not enough traffic' verdict when the window is too small.",
        tags=(*TAGS, "monitoring"),
        params_model="mlops_tasks.flows.monitoring:DriftCheckParams",
        demo_parameters={"endpoint": DEMO_ENDPOINT},
        schedule=ScheduleSpec(cron="0 6 * * *"),
    ),
    DeploymentSpec(
        name="retrain",
        flow_name="retrain-pipeline",
        entrypoint="mlops_tasks/flows/retrain.py:retrain_pipeline",
        description="Retrain a model on fresh data and deploy it to endpoint "
        f"{DEMO_ENDPOINT!r}; runs inside the cool-down end at once as Skipped. Started by the drift "
        "automation; its weekly schedule is off by default. Fresh rows come from the endpoint's "
        "prediction log joined with labels, so set labels (a dataset of request_id and label) or a "
        "labelled dataset in its parameters first: without either a run fails and says so.",
        tags=(*TAGS, "training", "retrain"),
        params_model="mlops_tasks.flows.retrain:RetrainParams",
        demo_parameters=DEMO,
        schedule=ScheduleSpec(cron="0 3 * * 1", active=False),
    ),
    DeploymentSpec(
        name="start",
        flow_name="ab-test-pipeline",
        entrypoint="mlops_tasks/flows/abtest.py:ab_test_pipeline",
        description="Start an A/B test: a registered challenger beside the endpoint's champion, traffic "
        "split by subject or request; the champion alias stays (the form asks for the challenger).",
        tags=(*TAGS, "deployment", "abtest"),
    ),
    DeploymentSpec(
        name="hourly",
        flow_name="ab-evaluate",
        entrypoint="mlops_tasks/flows/abtest.py:ab_evaluate",
        description="Judge the endpoint's running A/B test (always-valid sequential test on the joined "
        "outcomes, guardrails); promote the winner blue-green or end it; emits mlops.abtest.concluded.",
        tags=(*TAGS, "deployment", "abtest"),
        params_model="mlops_tasks.flows.abtest:AbEvaluateParams",
        schedule=ScheduleSpec(cron="0 * * * *"),
    ),
    DeploymentSpec(
        name="score",
        flow_name="batch-predict",
        entrypoint="mlops_tasks/flows/batch.py:batch_predict",
        description="Score a dataset with the champion and write the predictions next to it, in the "
        "prediction log's layout (the form asks for the dataset).",
        tags=(*TAGS, "scoring"),
    ),
)


def by_name(name: str) -> DeploymentSpec:
    """The spec whose deployment name, flow name or ``flow/deployment`` is ``name``.

    Raises:
        KeyError: No such deployment (the message lists the known ones).
    """
    for spec in DEPLOYMENTS:
        if name in (spec.name, spec.flow_name, spec.full_name):
            return spec
    known = ", ".join(spec.full_name for spec in DEPLOYMENTS)
    raise KeyError(f"no deployment named {name!r}; known: {known}")


__all__ = [
    "DEFAULT_WORK_POOL",
    "DEMO",
    "DEMO_MODEL_NAME",
    "DEPLOYMENTS",
    "DeploymentSpec",
    "ScheduleSpec",
    "by_name",
]
