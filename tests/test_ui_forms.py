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


def _type_switches(node, path=""):
    """Paths of the properties the UI renders as type-switch buttons with a "None" choice."""
    found = []
    if isinstance(node, dict):
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            other = [o for o in options if o != {"type": "null"}]
            simple = [o for o in other if o.get("type") in ("string", "integer", "number", "boolean")]
            refs = [o["$ref"].rsplit("/", 1)[1] for o in other if "$ref" in o]
            if simple or set(refs) & {"MlflowConfig", "S3Config"}:
                found.append(path)
        for key, value in node.items():
            found += _type_switches(value, f"{path}/{key}")
    return found


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.full_name)
def test_optional_fields_are_plain_inputs_at_every_depth(spec):
    """Optional text/number fields, in the params model and every model nested in it, are inputs;
    MLflow and S3 settings (None means their defaults) are inline cards, not a switch to "None"."""
    schema = parameter_schema(spec.load_flow()).model_dump()
    assert _type_switches(schema) == [], "type-switch buttons instead of inputs"
    # nested models did get the treatment (not only the top-level params model)
    defs = schema["definitions"]
    if "MlflowConfig" in defs:
        assert defs["MlflowConfig"]["properties"]["tracking_uri"]["type"] == "string"


def test_drift_check_form_prediction_log_is_a_text_box():
    from flows.monitoring import drift_check

    props = parameter_schema(drift_check).model_dump()["definitions"]["DriftCheckParams"]["properties"]
    assert props["prediction_log"]["type"] == "string" and "default" not in props["prediction_log"]
    assert props["mlflow"]["$ref"].endswith("/MlflowConfig") and "anyOf" not in props["mlflow"]
    # None of its own meaning (no dataset): the choice stays
    assert {"type": "null"} in props["current"]["anyOf"]


def test_what_the_form_sends_for_untouched_nested_cards_validates_and_means_not_set():
    """The UI sends a nested card's defaults ({"request_timeout_s": ...}) or blanks ({} / "");
    the server's validation accepts them and the flow reads them as not set."""
    from prefect.utilities.schema_tools import validate

    from flows.monitoring import DriftCheckParams, drift_check
    from mlops_tasks.settings import MlflowConfig

    schema = parameter_schema(drift_check).model_dump()
    timeout = MlflowConfig().request_timeout_s
    form = {
        "endpoint": "churn",
        "mlflow": {"request_timeout_s": timeout, "tracking_uri": ""},
        "s3": {},
        "reference": {"uri": "ref.csv", "s3": {"endpoint_url": ""}},
    }
    assert validate({"params": form}, schema, raise_on_error=True, ignore_required=True) == []
    params = DriftCheckParams.model_validate(form)
    assert params.mlflow is None and params.s3 is None
    assert params.reference is not None and params.reference.s3 is None
    changed = DriftCheckParams.model_validate({**form, "mlflow": {"request_timeout_s": timeout + 1}})
    assert changed.mlflow == MlflowConfig(request_timeout_s=timeout + 1)


def test_a_cluster_card_left_at_its_defaults_still_means_a_cluster():
    """DaskClusterSpec's None means "no cluster", so its defaults are not read as None."""
    from flows.batch import BatchPredictParams

    params = BatchPredictParams.model_validate(
        {"model_name": "m", "dataset": {"uri": "d.csv"}, "cluster": {"address": ""}}
    )
    assert params.cluster is not None and params.cluster.address is None


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
