"""What the automations send to the Prefect server, read as the Prefect UI reads it (no server)."""

from __future__ import annotations

from uuid import uuid4

from deployments import automations
from deployments.definitions import by_name
from mlops_tasks.monitoring import EVENT_DRIFT_DETECTED

FLOW_RUN = "prefect.flow-run."


def _sent() -> tuple[dict[str, dict], automations.Resolved]:
    """Each automation as ``client.create_automation`` posts it (``model_dump(mode="json")``)."""
    retrain, deploy = by_name("retrain-pipeline"), by_name("deployment-pipeline")
    resolved = automations.Resolved(
        deployment_ids={retrain.full_name: uuid4(), deploy.full_name: uuid4()},
        deployment_parameters={retrain.full_name: {"params": {"model_name": None}}},  # as on the server
        notify_block_id=uuid4(),
        flow_ids={retrain.flow_name: uuid4(), deploy.flow_name: uuid4()},
    )
    return {
        spec.name: spec.build(resolved).model_dump(mode="json") for spec in automations.AUTOMATIONS
    }, resolved


def _as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _ui_template(trigger: dict) -> str:
    """The trigger template Prefect 3.9's UI (V2, ``trigger-utils``) picks to describe a trigger;
    "custom" is shown as the bare words "A custom trigger"."""
    ids = _as_list(trigger["match"].get("prefect.resource.id"))

    def run_event(event: str) -> bool:
        state = event.removeprefix(FLOW_RUN)
        return event == f"{FLOW_RUN}*" or (event.startswith(FLOW_RUN) and state and "*" not in state)

    related = trigger["match_related"]
    related = related if isinstance(related, list) else [related]
    related_ok = all(
        set(r) <= {"prefect.resource.id", "prefect.resource.role"}
        and r.get("prefect.resource.role") == "flow"
        and all(i.startswith("prefect.flow.") for i in _as_list(r.get("prefect.resource.id")))
        for r in related
        if r
    )
    if (
        trigger["type"] == "event"
        and ids
        and all(i.startswith("prefect.flow-run") for i in ids)
        and all(f.startswith("prefect.resource.id") for f in trigger["for_each"])
        and all(run_event(e) for e in trigger["after"])
        and all(run_event(e) for e in trigger["expect"])
        and related_ok
        and trigger["threshold"] == 1
    ):
        return "flow-run-state"
    return "custom"


def test_failure_notification_trigger_names_its_flow_and_states_in_the_ui():
    sent, resolved = _sent()
    trigger = sent[automations.NOTIFY_DEPLOYMENT_FAILED]["trigger"]
    assert _ui_template(trigger) == "flow-run-state"
    flow_id = resolved.flow_ids["deployment-pipeline"]
    assert trigger["match_related"]["prefect.resource.id"] == f"prefect.flow.{flow_id}"
    assert sorted(trigger["expect"]) == ["prefect.flow-run.Crashed", "prefect.flow-run.Failed"]


def test_drift_automation_names_its_event():
    """A custom event has no UI template (and triggers have no name field in Prefect 3.9): the
    event is in the trigger and first in the description the automations page shows."""
    sent, _ = _sent()
    automation = sent[automations.RETRAIN_ON_DRIFT]
    assert automation["trigger"]["expect"] == [EVENT_DRIFT_DETECTED]
    assert automation["description"].startswith(f"When event {EVENT_DRIFT_DETECTED} ")


def test_the_old_trigger_shape_was_custom_to_the_ui():
    """The check above can fail: related by flow name (the previous shape) is "A custom trigger"."""
    sent, _ = _sent()
    trigger = dict(sent[automations.NOTIFY_DEPLOYMENT_FAILED]["trigger"])
    trigger["match_related"] = {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "deployment-pipeline",
    }
    assert _ui_template(trigger) == "custom"
