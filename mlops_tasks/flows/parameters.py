"""Checks the reusable flows share on their parameters (now in :mod:`mlops_tasks.stages.params`).

The flows serve any registered model, so their parameter models carry no model of the
churn demo: ``model_name`` is empty by default and each flow asks for it. The demo
entry points (``python -m mlops_tasks.flows.<module>``, ``make demo``, the deployments in
``deployments/definitions.py``) pass ``churn-classifier`` themselves. The check lives with
the parameter models so the command line (``mlops-tasks``) uses it without Prefect; this
module keeps the old import path.
"""

from __future__ import annotations

from mlops_tasks.stages.params import FormParams, plain_optional_inputs, require_model_name

__all__ = ["FormParams", "plain_optional_inputs", "require_model_name"]
