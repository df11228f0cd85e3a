"""Helpers for tests and benchmarks that need real services (a Docker engine, a registry)."""

__all__: list[str] = []
