"""mlops-tasks for Airflow: one operator per pipeline stage, run in the mlops-tasks environment.

Airflow finds the provider through the ``apache_airflow_provider`` entry point
(:func:`get_provider_info`). The operators are in :mod:`mlops_tasks_airflow.operators`, the
example DAGs in :mod:`mlops_tasks_airflow.example_dags`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "get_provider_info"]

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager shows for this provider (its runtime schema)."""
    return {
        "package-name": "mlops-tasks-airflow",
        "name": "mlops-tasks",
        "description": "Operators running the mlops-tasks stages (validate, train, evaluate, register, "
        "build-image, deploy, rollback, drift-check, batch-score) in the mlops-tasks environment.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "mlops-tasks",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "mlops-tasks",
                "python-modules": ["mlops_tasks_airflow.operators"],
            }
        ],
        "config": {
            "mlops_tasks": {
                "description": "Where the mlops-tasks environment is.",
                "options": {
                    "python": {
                        "description": "The python interpreter of the environment where mlops-tasks is "
                        "installed; the operators run `<python> -m mlops_tasks.cli <stage>`.",
                        "version_added": None,
                        "type": "string",
                        "example": "/opt/mlops-tasks/.venv/bin/python",
                        "default": "",
                    }
                },
            }
        },
    }
