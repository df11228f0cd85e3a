"""Checks the reusable flows share on their parameters.

The flows serve any registered model, so their parameter models carry no model of the
churn demo: ``model_name`` is empty by default and each flow asks for it here. The demo
entry points (``python -m flows.<module>``, ``make demo``, the deployments in
``deployments/definitions.py``) pass ``churn-classifier`` themselves.
"""

from __future__ import annotations

from mlops_tasks.errors import ConfigurationError

__all__ = ["require_model_name"]


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
