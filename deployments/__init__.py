"""Prefect deployments of the ready-made flows (schedules, tags, default parameters).

Importing this package turns the tools' usage telemetry off where the environment does not
say otherwise (``python -m deployments.serve`` runs flows and may start a Prefect server).
"""

from mlops_tasks.telemetry import quiet_telemetry

quiet_telemetry()

__all__: list[str] = []
