"""Usage telemetry off for the tools this package drives, in every entry point.

MLflow, Prefect (its temporary server's analytics), Great Expectations and Evidently each
send usage telemetry unless told not to; on a machine without internet access a failed send
prints an ERROR line. The project's commands (``python -m flows.*``, ``python -m
deployments.*``, ``mlops-serve``) call :func:`quiet_telemetry` before those tools are
imported. Only defaults are set: a variable already in the environment wins, so a user who
wants telemetry sets it (e.g. ``MLFLOW_DISABLE_TELEMETRY=false``).

Example:
    ```python
    from mlops_tasks.telemetry import quiet_telemetry
    quiet_telemetry()          # before importing prefect / mlflow in your own script
    ```
"""

from __future__ import annotations

import os

__all__ = ["TELEMETRY_OFF", "quiet_telemetry"]

#: Each tool's own switch (MLflow reads ``DO_NOT_TRACK`` only as "true", so it has its own).
TELEMETRY_OFF: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def quiet_telemetry() -> None:
    """Set the telemetry switches of MLflow, Prefect, GX and Evidently to off, where unset.

    Example:
        ```python
        quiet_telemetry()
        assert os.environ["MLFLOW_DISABLE_TELEMETRY"] in ("true", os.environ["MLFLOW_DISABLE_TELEMETRY"])
        ```
    """
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
