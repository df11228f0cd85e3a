"""``python -m mlops_tasks.cli <stage>``: the same as the ``mlops-tasks`` console script."""

from __future__ import annotations

from mlops_tasks.cli.main import run

__all__: list[str] = []

run()
