"""Helpers of the orchestration tests: a real Prefect server, API polling."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from tests.conftest import free_port

PROJECT = Path(__file__).resolve().parent.parent
SERVER_SETTINGS = {
    # The scheduler and the "recent deployments" pass every second instead of every 60 s / 5 s.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
}


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """``prefect server start`` on a free loopback port (own SQLite and PREFECT_HOME in ``home``).

    The test process talks to it while the context is open; the server is stopped by PID
    at the end. Started from the project folder, so the server finds this project's
    Prefect collection (the log-only notification block) also before ``pip install -e .``
    refreshed the installed entry points.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_server import start_server

    api = start_server(home, "127.0.0.1", free_port(), extra_env=SERVER_SETTINGS, ui=False)
    try:
        with temporary_settings({PREFECT_API_URL: api.url}):
            yield api.url
    finally:
        api.stop()


def client():
    """A sync Prefect client of the current API."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def all_deployed(names) -> bool:
    """Whether every ``flow/deployment`` in ``names`` exists on the server."""
    from prefect.exceptions import ObjectNotFound

    with client() as api:
        try:
            for name in names:
                api.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def wait_final(flow_run_id: UUID, timeout: float = 180):
    """The flow run once its state is final."""

    def final():
        with client() as api:
            run = api.read_flow_run(flow_run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(final, timeout, f"flow run {flow_run_id} to finish", interval=1.0)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a child started with ``start_new_session=True`` and everything in its process group.

    SIGTERM first (a serving process pauses its schedules, a worker lets go of its runs),
    SIGKILL after 30 s, then SIGKILL to the group for flow-run subprocesses left behind.
    """
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_artifacts(key: str) -> list:
    """The Prefect artifacts stored under ``key``, newest first.

    Filtered and sorted by the server: an unfiltered read returns one page in id order,
    which is neither creation order nor complete once a session has stored many artifacts.
    """
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.CREATED_DESC,
            )

    return asyncio.run(read())


def wait_for_events(event: str, resource_id: str, count: int, timeout: float = 30.0) -> list:
    """The Prefect events named ``event`` about ``resource_id``, once ``count`` arrived (or at ``timeout``).

    Sends this process's pending events first; the server returns at most 50 per page.
    """
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    async def read() -> list:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[event]), resource=EventResourceFilter(id=[resource_id])
                ),
                limit=50,
            )
            return page.events

    EventsWorker.drain_all(timeout=10)
    deadline = time.monotonic() + timeout
    events = asyncio.run(read())
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        events = asyncio.run(read())
    return events
