"""The old import path of the ready-made flows, now :mod:`mlops_tasks.flows` (in the wheel).

``flows.<module>`` is the module :mod:`mlops_tasks.flows.<module>` itself (same object, so
imports, attributes and ``python -m flows.<module>`` work as before). Importing this package
turns the tools' usage telemetry off, as :mod:`mlops_tasks.flows` does.
"""

from mlops_tasks.telemetry import quiet_telemetry

quiet_telemetry()

__all__: list[str] = []
