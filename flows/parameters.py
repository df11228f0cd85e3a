"""Checks the reusable flows share on their parameters.

The flows serve any registered model, so their parameter models carry no model of the
churn demo: ``model_name`` is empty by default and each flow asks for it here. The demo
entry points (``python -m flows.<module>``, ``make demo``, the deployments in
``deployments/definitions.py``) pass ``churn-classifier`` themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from mlops_tasks.errors import ConfigurationError

__all__ = ["FormParams", "plain_optional_inputs", "require_model_name"]

_SIMPLE_TYPES = ("string", "integer", "number", "boolean")


def plain_optional_inputs(schema: dict[str, Any]) -> None:
    """Show optional text and number fields as plain inputs in the Prefect UI's run form.

    Pydantic writes ``str | None`` as ``anyOf: [string, null]``, which the UI renders as
    type-switch buttons ("Property is type None") until one is clicked. Each such property
    becomes its simple type with its ``null`` default; an empty box still means "not set"
    (:class:`FormParams` reads ``""`` back as ``None``).

    Example:
        ```python
        schema = {"properties": {"log": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
        plain_optional_inputs(schema)
        assert schema["properties"]["log"] == {"type": "string"}
        ```
    """
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if not isinstance(options, list) or len(options) != 2:
            continue
        kinds = [o for o in options if o.get("type") != "null"]
        if len(kinds) == 1 and kinds[0].get("type") in _SIMPLE_TYPES:
            del prop["anyOf"]
            prop.update(kinds[0])


class FormParams(BaseModel):
    """Base of the flows' parameter models: one Prefect UI form with plain inputs.

    Example:
        ```python
        class MyParams(FormParams):
            prediction_log: str | None = None
        assert MyParams(prediction_log="").prediction_log is None
        ```
    """

    model_config = ConfigDict(json_schema_extra=plain_optional_inputs)

    @model_validator(mode="before")
    @classmethod
    def _empty_input_is_unset(cls, data: Any) -> Any:
        """An emptied text box of an optional field arrives as ``""``: it means "not set"."""
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if field.default is None}
        return {k: (None if v == "" and k in optional else v) for k, v in data.items()}


def require_model_name(model_name: str | None, flow: str) -> str:
    """The registered model a flow works on, or a clear error when it was not given.

    Args:
        model_name: The ``model_name`` parameter.
        flow: The flow's name, for the message.

    Returns:
        ``model_name``.

    Raises:
        ConfigurationError: ``model_name`` is empty.

    Example:
        ```python
        from flows.parameters import require_model_name
        assert require_model_name("churn-classifier", "training-pipeline") == "churn-classifier"
        ```
    """
    if not model_name:
        raise ConfigurationError(
            f"{flow}: give model_name, the registered MLflow model to work on "
            "(the demo's is 'churn-classifier': python -m flows.training uses it by default)."
        )
    return model_name
