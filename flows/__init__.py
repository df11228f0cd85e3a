"""Ready-made Prefect flows composed from :mod:`mlops_tasks.tasks`."""

__all__: list[str] = []
