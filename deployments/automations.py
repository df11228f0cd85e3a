"""This project's Prefect automations, as code, applied by one command.

    python -m deployments.automations apply      # create or update (by name), idempotent
    python -m deployments.automations check      # every applied automation still points at something
    python -m deployments.automations show       # the automations as JSON

Two automations:

- ``mlops-retrain-on-drift``: the event ``mlops.drift.detected`` (resource
  ``mlops.model.<name>``, emitted by the drift check) runs the retrain deployment with
  the default parameters it has on the server when you apply (edit them in the UI or
  ``prefect.yaml`` -- where fresh labelled data comes from -- then apply again) and
  ``model_name`` taken from the event (``{{ event.resource['mlops.model.name'] }}``).
  The retrain flow keeps its own cool-down: a run inside it ends at once as
  Completed/"Skipped".
- ``mlops-notify-deployment-failed``: a deployment-pipeline flow run that ends Failed or
  Crashed sends a notification (its trigger has the shape of the UI's flow-run-state
  template, the flow named by id, so the UI reads "When any flow run of flow
  deployment-pipeline enters Failed, Crashed" instead of "A custom trigger") through a
  notification block named ``<type slug>/<name>``
  (``--notify slack-webhook/ops``). Default: ``mlops-log-notification/mlops-failures``,
  a :class:`~mlops_tasks.notifications.LogNotification` that logs (and appends to
  ``<state dir>/notifications.jsonl``), created on first apply.

Prefect's UI (V1 and V2 alike, Prefect 3.9) describes any event trigger outside its templates
as "A custom trigger" and has no name or description field on a trigger, so the drift
automation's description starts with the event it waits for, which the automations page
shows under its name.

The deployments and the block are resolved to ids when applying; apply the deployments
first (``make serve`` or ``prefect deploy --all``). ``check`` names what to fix when one
was deleted since.

Example:
    ```python
    from deployments import automations
    for line in automations.apply(notify="mlops-log-notification/mlops-failures"):
        print(line)
    ```
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.automations import AutomationCore, EventTrigger, RunDeployment, SendNotification

from deployments.definitions import DeploymentSpec, by_name
from mlops_tasks.errors import BlockNotFoundError, OrchestrationError, PrefectDeploymentNotFoundError
from mlops_tasks.monitoring import EVENT_DRIFT_DETECTED
from mlops_tasks.settings import state_dir

__all__ = [
    "AUTOMATIONS",
    "AutomationSpec",
    "DEFAULT_NOTIFY",
    "DEPLOYMENTS_USED",
    "FAILURE_BODY",
    "MODEL_NAME_FROM_EVENT",
    "NOTIFY_DEPLOYMENT_FAILED",
    "RETRAIN_ON_DRIFT",
    "Resolved",
    "apply",
    "build",
    "check",
    "main",
    "resolve_deployment",
    "resolve_notify_block",
    "retrain_parameters",
]

RETRAIN_ON_DRIFT = "mlops-retrain-on-drift"
NOTIFY_DEPLOYMENT_FAILED = "mlops-notify-deployment-failed"
DEFAULT_NOTIFY = "mlops-log-notification/mlops-failures"
MODEL_NAME_FROM_EVENT = "{{ event.resource['mlops.model.name'] }}"

FAILURE_BODY = (
    "Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\nSee {{ flow_run|ui_url }}"
)


@dataclass(frozen=True)
class Resolved:
    """Ids the automations point at, looked up on the Prefect server."""

    deployment_ids: dict[str, UUID]
    deployment_parameters: dict[str, dict[str, Any]]
    notify_block_id: UUID
    #: Flow ids by flow name (the flows of DEPLOYMENTS_USED), for triggers on their runs.
    flow_ids: dict[str, UUID] = field(default_factory=dict)


@dataclass(frozen=True)
class AutomationSpec:
    """One automation: its name and how to build it from resolved ids."""

    name: str
    build: Callable[[Resolved], AutomationCore]


def retrain_parameters(spec: DeploymentSpec, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The retrain deployment's defaults, with ``model_name`` templated from the event.

    Prefect merges run parameters into the deployment's only one level deep, so the
    whole ``params`` object is passed: ``parameters`` (the deployment's defaults as the
    server has them; default: the table's) with ``model_name`` replaced.

    Example:
        ```python
        from deployments.definitions import by_name
        params = retrain_parameters(by_name("retrain-pipeline"))
        assert params["params"]["model_name"] == MODEL_NAME_FROM_EVENT
        ```
    """
    parameters = spec.parameters() if parameters is None else parameters
    inner = dict(parameters.get(spec.parameter_name, {}))
    inner["model_name"] = MODEL_NAME_FROM_EVENT
    return {**parameters, spec.parameter_name: inner}


def _retrain_on_drift(resolved: Resolved) -> AutomationCore:
    spec = by_name("retrain-pipeline")
    return AutomationCore(
        name=RETRAIN_ON_DRIFT,
        description=f"When event {EVENT_DRIFT_DETECTED} arrives for a model (resource mlops.model.*, "
        "emitted by the drift check) -> run the retrain deployment for that model; the retrain flow's "
        "cool-down skips runs that come too soon.",
        enabled=True,
        trigger=EventTrigger(
            expect={EVENT_DRIFT_DETECTED},
            match={"prefect.resource.id": "mlops.model.*"},
            posture="Reactive",
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=resolved.deployment_ids[spec.full_name],
                parameters=retrain_parameters(spec, resolved.deployment_parameters.get(spec.full_name)),
            )
        ],
    )


def _notify_deployment_failed(resolved: Resolved) -> AutomationCore:
    spec = by_name("deployment-pipeline")
    return AutomationCore(
        name=NOTIFY_DEPLOYMENT_FAILED,
        description=f"When a {spec.flow_name} flow run ends Failed or Crashed "
        "(prefect.flow-run.Failed/Crashed) -> send a notification.",
        enabled=True,
        # The UI's flow-run-state template (a flow named by id, one event per flow run): the
        # UI then names the flow and the states instead of "A custom trigger".
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.role": "flow",
                "prefect.resource.id": f"prefect.flow.{resolved.flow_ids[spec.flow_name]}",
            },
            for_each={"prefect.resource.id"},
            posture="Reactive",
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=resolved.notify_block_id,
                subject="mlops: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
                body=FAILURE_BODY,
            )
        ],
    )


AUTOMATIONS: tuple[AutomationSpec, ...] = (
    AutomationSpec(RETRAIN_ON_DRIFT, _retrain_on_drift),
    AutomationSpec(NOTIFY_DEPLOYMENT_FAILED, _notify_deployment_failed),
)
#: The deployments the automations need on the server (retrain runs; deployment-pipeline's flow).
DEPLOYMENTS_USED = ("retrain-pipeline", "deployment-pipeline")


def _client():
    from prefect.client.orchestration import get_client

    from deployments.local_server import check_api, configured_api_url

    url = configured_api_url()
    if not url:
        from mlops_tasks.errors import PrefectUnavailableError

        raise PrefectUnavailableError(
            "PREFECT_API_URL is not set: automations live on a Prefect server. Start one "
            "(`make serve` or `prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    check_api(url)
    return get_client(sync_client=True), url


def _split_block_name(name: str) -> tuple[str, str]:
    slug, _, block_name = name.partition("/")
    if not slug or not block_name:
        raise BlockNotFoundError(
            f"Notification block {name!r} must be given as <block type slug>/<block name>, "
            f"e.g. {DEFAULT_NOTIFY} or slack-webhook/ops."
        )
    return slug, block_name


def resolve_notify_block(client, name: str, api_url: str) -> UUID:
    """The id of the notification block ``<type slug>/<name>``; creates the default one if missing.

    Raises:
        BlockNotFoundError: No such block (other than the default), or it cannot notify.
    """
    from prefect.exceptions import ObjectNotFound

    slug, block_name = _split_block_name(name)
    try:
        document = client.read_block_document_by_name(block_name, block_type_slug=slug)
    except ObjectNotFound:
        if name != DEFAULT_NOTIFY:
            raise BlockNotFoundError(
                f"Notification block {name!r} does not exist on {api_url}: create it in the UI "
                f"(Blocks) or with `prefect block create {slug}`, or leave --notify out to use "
                f"{DEFAULT_NOTIFY} (logs only)."
            ) from None
        from mlops_tasks.notifications import LogNotification

        return LogNotification(path=str(state_dir() / "notifications.jsonl")).save(block_name, overwrite=True)
    capabilities = document.block_schema.capabilities if document.block_schema else []
    if "notify" not in capabilities:
        raise BlockNotFoundError(
            f"Block {name!r} is not a notification block (capabilities {capabilities}); pick a "
            "notification block such as slack-webhook, custom-webhook or mlops-log-notification."
        )
    return document.id


def resolve_deployment(client, full_name: str, api_url: str, automation: str):
    """Deployment ``flow/name`` as the server has it (id, default parameters).

    Raises:
        PrefectDeploymentNotFoundError: It does not exist on the server.
    """
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(full_name)
    except ObjectNotFound:
        raise PrefectDeploymentNotFoundError(
            f"Automation {automation!r} runs deployment {full_name!r}, which does not exist on "
            f"{api_url}: create the deployments first (`make serve` or `prefect deploy --all`), "
            "then apply the automations again."
        ) from None


def build(notify: str = DEFAULT_NOTIFY) -> list[AutomationCore]:
    """The automations with ids resolved on the configured Prefect server (nothing is written).

    Raises:
        PrefectUnavailableError: No Prefect API configured or it does not answer.
        PrefectDeploymentNotFoundError: A deployment an automation runs does not exist.
        BlockNotFoundError: The notification block does not exist or cannot notify.
    """
    client, url = _client()
    with client:
        specs = [by_name(name) for name in DEPLOYMENTS_USED]
        users = {"retrain-pipeline": RETRAIN_ON_DRIFT, "deployment-pipeline": NOTIFY_DEPLOYMENT_FAILED}
        found = {s.full_name: resolve_deployment(client, s.full_name, url, users[s.flow_name]) for s in specs}
        resolved = Resolved(
            deployment_ids={n: d.id for n, d in found.items()},
            deployment_parameters={n: d.parameters for n, d in found.items()},
            notify_block_id=resolve_notify_block(client, notify, url),
            flow_ids={s.flow_name: found[s.full_name].flow_id for s in specs},
        )
    return [spec.build(resolved) for spec in AUTOMATIONS]


def apply(notify: str = DEFAULT_NOTIFY) -> list[str]:
    """Create or update (by name) every automation; returns one line per automation.

    Idempotent: an automation with the same name is updated in place (duplicates of
    that name are deleted), so applying twice changes nothing.

    Raises:
        PrefectUnavailableError: No Prefect API configured or it does not answer.
        PrefectDeploymentNotFoundError: A deployment an automation runs does not exist.
        BlockNotFoundError: The notification block does not exist or cannot notify.

    Example:
        ```python
        from deployments.automations import apply
        print(apply())
        ```
    """
    automations = build(notify)
    client, _ = _client()
    lines = []
    with client:
        for automation in automations:
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, automation)
                for duplicate in existing[1:]:
                    client.delete_automation(duplicate.id)
                lines.append(f"updated {automation.name} ({existing[0].id})")
            else:
                new_id = client.create_automation(automation)
                lines.append(f"created {automation.name} ({new_id})")
    return lines


def check() -> list[str]:
    """Verify every automation of this project is applied and its targets still exist.

    Returns:
        One line per automation when all is well.

    Raises:
        OrchestrationError: An automation is not applied.
        PrefectDeploymentNotFoundError: An automation runs a deployment that was deleted (the
            message names it and says how to re-create it).
        BlockNotFoundError: An automation's notification block was deleted.
    """
    from prefect.exceptions import ObjectNotFound

    client, url = _client()
    lines = []
    with client:
        for spec in AUTOMATIONS:
            found = client.read_automations_by_name(spec.name)
            if not found:
                raise OrchestrationError(
                    f"Automation {spec.name!r} is not applied on {url}: run "
                    "`python -m deployments.automations apply`."
                )
            automation = found[0]
            for action in automation.actions:
                if isinstance(action, RunDeployment) and action.deployment_id is not None:
                    try:
                        client.read_deployment(action.deployment_id)
                    except ObjectNotFound:
                        names = ", ".join(by_name(name).full_name for name in DEPLOYMENTS_USED)
                        raise PrefectDeploymentNotFoundError(
                            f"Automation {spec.name!r} runs deployment {action.deployment_id}, which no "
                            f"longer exists on {url}: re-create {names} (`make serve` or `prefect deploy "
                            "--all`), then run `python -m deployments.automations apply`."
                        ) from None
                if isinstance(action, SendNotification):
                    try:
                        client.read_block_document(action.block_document_id)
                    except ObjectNotFound:
                        raise BlockNotFoundError(
                            f"Automation {spec.name!r} notifies through block {action.block_document_id}, "
                            f"which no longer exists on {url}: create the block again and run "
                            "`python -m deployments.automations apply --notify <type>/<name>`."
                        ) from None
            state = "enabled" if automation.enabled else "disabled"
            lines.append(f"ok {spec.name} ({automation.id}, {state})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line: ``apply``, ``check`` or ``show`` the automations."""
    from mlops_tasks.errors import MLOpsError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["apply", "check", "show"])
    parser.add_argument(
        "--notify",
        default=DEFAULT_NOTIFY,
        help=f"notification block <type slug>/<name> (default {DEFAULT_NOTIFY})",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "apply":
            lines = apply(args.notify)
        elif args.command == "check":
            lines = check()
        else:
            lines = [json.dumps([a.model_dump(mode="json") for a in build(args.notify)], indent=2)]
    except MLOpsError as exc:
        print(f"automations {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
