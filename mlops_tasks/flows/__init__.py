"""Ready-made Prefect flows composed from :mod:`mlops_tasks.tasks`.

Importing this package (every ``python -m mlops_tasks.flows.<module>`` does, before Prefect or MLflow is
imported) turns the tools' usage telemetry off where the environment does not say otherwise.
"""

from mlops_tasks.telemetry import quiet_telemetry

quiet_telemetry()

__all__: list[str] = []
