"""Find the Prefect API to talk to, or start a local ``prefect server start`` for it.

``make serve`` uses this: with ``PREFECT_API_URL`` set (environment or Prefect
profile) that server must answer; without it a Prefect server is started on
127.0.0.1:4200 with its own SQLite database and ``PREFECT_HOME`` under the state
folder (``<state dir>/prefect``), its log in ``<state dir>/prefect/server.log``.

Example:
    ```python
    from deployments.local_server import ensure_prefect_api
    api = ensure_prefect_api()          # starts a local server when none is configured
    print(api.url, api.ui_url)
    api.stop()                          # stops it again if this call started it
    ```
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_tasks.databases import check_database, is_postgres_uri
from mlops_tasks.errors import PrefectUnavailableError
from mlops_tasks.prefect_api import api_is_healthy, configured_api_url
from mlops_tasks.settings import state_dir

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200


def check_api(api_url: str, timeout: float = 5.0) -> None:
    """Raise a clear error when the Prefect API at ``api_url`` does not answer.

    Raises:
        PrefectUnavailableError: Nothing healthy answers at ``api_url``.
    """
    if not api_is_healthy(api_url, timeout=timeout):
        raise PrefectUnavailableError(
            f"The Prefect API at {api_url} does not answer (GET /health). Start that server "
            "(`prefect server start`), fix PREFECT_API_URL, or unset it so `make serve` starts a "
            "local server."
        )


@dataclass
class PrefectApi:
    """A Prefect API to use; ``process`` is set when this module started the server."""

    url: str
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def ui_url(self) -> str:
        """The UI's address (the API URL without ``/api``)."""
        return self.url.removesuffix("/api")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server this module started (by its PID); no-op for a configured server."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def server_environment(home: Path, host: str, port: int) -> dict[str, str]:
    """Environment of a local ``prefect server start``: own ``PREFECT_HOME`` and SQLite file."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def start_server(
    home: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    ui: bool = True,
) -> PrefectApi:
    """Start ``prefect server start`` in the background and wait until ``/api/health`` answers.

    Args:
        home: ``PREFECT_HOME`` of the server; its SQLite database and log go there.
        host: Address to bind (keep it on loopback unless you mean to expose it).
        port: Port to bind.
        timeout: Seconds to wait for the server to be healthy.
        extra_env: More settings for the server process (e.g. shorter service loops).
        ui: Serve the UI as well.

    Returns:
        The running API; call :meth:`PrefectApi.stop` to stop it.

    Raises:
        PrefectUnavailableError: The server exited or did not become healthy in time
            (the message names its log file).
        DatabaseUnavailableError: Its PostgreSQL database (``extra_env``'s
            ``PREFECT_SERVER_DATABASE_CONNECTION_URL``) does not answer.
        DatabaseAuthError: That database refused the user or password.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = server_environment(home, host, port)
    env.update(extra_env or {})
    database = env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    if is_postgres_uri(database):
        # a database that is down or refuses the password fails here, named, not as a server
        # that never became healthy
        check_database(database, service="Prefect server database")
    log_path = home / "server.log"
    url = f"http://{host}:{port}/api"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                host,
                "--port",
                str(port),
                "--ui" if ui else "--no-ui",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C on `make serve` reaches the serving process only, which
            # pauses its schedules on the server and then stops the server (PrefectApi.stop).
            start_new_session=True,
        )
    api = PrefectApi(url=url, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectUnavailableError(
                f"`prefect server start` on {host}:{port} exited with code {process.returncode}; "
                f"see {log_path} (is the port taken? pick another one)."
            )
        if api_is_healthy(url, timeout=1.0):
            logger.info("Prefect server up at %s (PID %s, home %s)", url, process.pid, home)
            return api
        time.sleep(0.3)
    api.stop()
    raise PrefectUnavailableError(
        f"`prefect server start` on {host}:{port} was not healthy after {timeout:.0f} s; see {log_path}."
    )


def ensure_prefect_api(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> PrefectApi:
    """The configured Prefect API, checked; or a local server started for this process.

    A server already healthy at ``host:port`` (started by an earlier ``make serve``) is
    reused rather than started twice.

    Raises:
        PrefectUnavailableError: ``PREFECT_API_URL`` is set but nothing answers there,
            or the local server did not start.
    """
    url = configured_api_url()
    if url:
        check_api(url)
        return PrefectApi(url=url)
    local = f"http://{host}:{port}/api"
    if api_is_healthy(local):
        return PrefectApi(url=local)
    return start_server(state_dir() / "prefect", host, port)


__all__ = [
    "PrefectApi",
    "api_is_healthy",
    "check_api",
    "configured_api_url",
    "ensure_prefect_api",
    "start_server",
]
