"""What the Prefect UI's run forms show: descriptions it does not strip, plain inputs for optional fields."""

from __future__ import annotations

import json
import re

import pytest
from prefect.utilities.callables import parameter_schema

from deployments.definitions import DEPLOYMENTS


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.full_name)
def test_form_descriptions_have_no_placeholders_the_ui_strips(spec):
    schema = parameter_schema(spec.load_flow()).model_dump()
    descriptions = re.findall(r'"description": "((?:[^"\\]|\\.)*)"', json.dumps(schema))
    stripped = [d for d in descriptions if re.search(r"<[^<>]*>", d)]
    assert stripped == [], "the UI renders <...> as HTML and drops it: write {state dir} instead"


@pytest.mark.parametrize("spec", [s for s in DEPLOYMENTS if s.params_model], ids=lambda s: s.full_name)
def test_optional_text_and_number_fields_are_plain_inputs(spec):
    schema = parameter_schema(spec.load_flow()).model_dump()
    params = schema["definitions"][spec.params_model.split(":")[1]]
    switches = [
        name
        for name, prop in params["properties"].items()
        if any(o.get("type") in ("string", "integer", "number") for o in prop.get("anyOf", []))
    ]
    assert switches == [], f"type-switch buttons instead of inputs: {switches}"


def test_an_emptied_text_box_means_not_set():
    from flows.monitoring import DriftCheckParams

    params = DriftCheckParams.model_validate({"prediction_log": "", "endpoint": "", "model_name": "m"})
    assert params.prediction_log is None and params.endpoint is None


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.full_name)
def test_the_server_accepts_each_deployments_own_parameters(spec):
    """What the Prefect server checks when a deployment is applied (enforce_parameter_schema)."""
    from prefect._internal.schemas.validators import validate_values_conform_to_schema

    schema = parameter_schema(spec.load_flow()).model_dump()
    # the server's own check on create (DeploymentCreate), which does not treat a field
    # without a default as nullable: unset fields are left out of the parameters instead
    validate_values_conform_to_schema(spec.parameters(), schema, ignore_required=True)
