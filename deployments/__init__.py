"""Prefect deployments of the ready-made flows (schedules, tags, default parameters)."""

__all__: list[str] = []
