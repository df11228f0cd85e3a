"""Ready-made Prefect flows composed from :mod:`mlops_tasks.tasks`."""
