"""Prefect deployments of the ready-made flows (schedules, tags, default parameters)."""
