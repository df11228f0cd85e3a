"""What every ``python -m mlops_tasks.flows.<module>`` command does first: find the Prefect API to talk to.

With ``PREFECT_API_URL`` set (environment or Prefect profile) the runs go to that server,
which must answer (else the command stops at once and says how to fix it, instead of
timing out deep inside Prefect). Without it Prefect starts a temporary server for the one
run, which costs ~10-15 s: the command says so on stderr and how to avoid it (start one
server, ``make serve`` or ``prefect server start``, and export its URL).

Example:
    ```python
    from mlops_tasks.flows.entry import prepare_prefect_api
    prepare_prefect_api("mlops_tasks.flows.training")
    ```
"""

from __future__ import annotations

import sys
from typing import TextIO

from mlops_tasks.errors import PrefectUnavailableError
from mlops_tasks.prefect_api import api_is_healthy, configured_api_url

__all__ = ["LOCAL_API", "prepare_command", "prepare_prefect_api"]

#: Where ``make serve`` (``deployments.serve``) starts its Prefect server.
LOCAL_API = "http://127.0.0.1:4200/api"


def prepare_prefect_api(command: str, stream: TextIO | None = None) -> str | None:
    """Check the configured Prefect API, or say that a temporary one will start and how to skip it.

    Args:
        command: The command's name, for the messages (e.g. ``flows.training``).
        stream: Where the notice goes (default stderr).

    Returns:
        The configured API URL, or ``None`` when Prefect will start a temporary server.

    Raises:
        PrefectUnavailableError: ``PREFECT_API_URL`` is set but no Prefect server answers there.

    Example:
        ```python
        prepare_prefect_api("mlops_tasks.flows.monitoring")
        ```
    """
    out = stream or sys.stderr
    url = configured_api_url()
    if url:
        if not api_is_healthy(url, timeout=5.0):
            raise PrefectUnavailableError(
                f"{command}: PREFECT_API_URL is {url}, but no Prefect server answers there (GET /health). "
                "Start it (`make serve` or `prefect server start`), or unset PREFECT_API_URL to run on a "
                "temporary server."
            )
        return url
    if api_is_healthy(LOCAL_API, timeout=0.5):
        hint = (
            f"a Prefect server answers at {LOCAL_API} (make serve?): `export PREFECT_API_URL={LOCAL_API}` "
            "to run there and see the runs in its UI"
        )
    else:
        hint = (
            "to skip that, start one server once (`make serve`, or `prefect server start`) and "
            f"`export PREFECT_API_URL={LOCAL_API}`"
        )
    print(
        f"{command}: no Prefect server configured (PREFECT_API_URL), so Prefect starts a temporary one "
        f"for this run (~10-15 s); {hint}.",
        file=out,
    )
    return None


def prepare_command(command: str) -> None:
    """:func:`prepare_prefect_api` for a command line: a server that does not answer ends it (exit 1).

    Raises:
        SystemExit: ``PREFECT_API_URL`` is set but nothing answers there (the message says what to do).

    Example:
        ```python
        prepare_command("python -m mlops_tasks.flows.training")
        ```
    """
    try:
        prepare_prefect_api(command)
    except PrefectUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from exc
