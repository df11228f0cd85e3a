"""Exit codes of ``mlops-tasks <stage>``, as the operators read them.

A copy of ``mlops_tasks.cli.exit_codes.ExitCode`` (this package cannot import mlops-tasks: the two
live in separate environments); ``tests/test_cli_exit_codes_match.py`` in the main repository
keeps both in step.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """How ``mlops-tasks <stage>`` ended (see docs/cli.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    VALIDATION_FAILED = 3
    GATE_FAILED = 4
    UNAVAILABLE = 5
    DRIFT = 10
    NOT_ENOUGH_DATA = 11
    ROLLED_BACK = 12
