"""The ``mlops-tasks`` command line: one sub-command per pipeline stage, without Prefect.

See :mod:`mlops_tasks.cli.main` for the usage and :mod:`mlops_tasks.cli.exit_codes` for the
exit codes; ``python -m mlops_tasks.cli`` is the same command.
"""

from __future__ import annotations

from mlops_tasks.cli.exit_codes import ExitCode
from mlops_tasks.cli.main import main, run

__all__ = ["ExitCode", "main", "run"]
