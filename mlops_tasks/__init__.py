"""mlops-tasks: Prefect 3 tasks and flows from raw data to a monitored model endpoint."""

__all__: list[str] = []
