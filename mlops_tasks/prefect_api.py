"""Which Prefect API the commands talk to, and whether it answers (shared by flows and deployments).

Example:
    ```python
    from mlops_tasks.prefect_api import api_is_healthy, configured_api_url
    url = configured_api_url()
    print(url, url and api_is_healthy(url))
    ```
"""

from __future__ import annotations

import os

import httpx

__all__ = ["api_is_healthy", "configured_api_url"]


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, else ``None``.

    Example:
        ```python
        print(configured_api_url() or "a temporary server will start")
        ```
    """
    from prefect.settings import get_current_settings

    url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def api_is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET <api_url>/health`` answers 200 (a Prefect server is up there).

    Example:
        ```python
        assert not api_is_healthy("http://127.0.0.1:9/api", timeout=0.2)
        ```
    """
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
