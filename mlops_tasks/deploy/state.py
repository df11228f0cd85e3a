"""Per-endpoint state folder: the deployment lock, the record history and small caches.

Layout of ``<state_dir()>/endpoints/<name>/``::

    lock                 flock'ed by the deployment in progress (released by the kernel
                         when its process dies, so a killed flow never leaves it stuck)
    supervise.lock       flock'ed around every start/stop of a slot or the router and
                         around each round of the watchdog (:func:`supervise_lock`)
    deployments.jsonl    one DeploymentRecord per line, newest last
    endpoint.json        the EndpointSpec and target kind last deployed with
    ...                  target files (router config, admin socket, slot files, logs)

Everything here except the lock and the history is a cache: what is live is read back
from the router and the slots at the start of every run.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops_tasks.deploy.models import DeploymentRecord, EndpointSpec
from mlops_tasks.errors import EndpointBusyError
from mlops_tasks.settings import state_dir

__all__ = [
    "EndpointLock",
    "append_record",
    "endpoint_dir",
    "endpoints_serving",
    "forget_endpoint",
    "last_record",
    "live_endpoints",
    "load_endpoint",
    "read_records",
    "save_endpoint",
    "supervise_lock",
]


def endpoint_dir(name: str) -> Path:
    """``<state_dir()>/endpoints/<name>`` (created, mode 700).

    Example:
        ```python
        print(endpoint_dir("churn"))  # /home/me/.mlops/endpoints/churn
        ```
    """
    path = state_dir() / "endpoints" / name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _flock_exclusive(path: str | Path, timeout_s: float, poll_s: float) -> tuple[int, bool]:
    """Open ``path`` and ``flock`` it exclusively, waiting up to ``timeout_s``: ``(fd, acquired)``.

    The caller closes ``fd`` when not acquired (after reading who holds it, if it wants).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return fd, False
            time.sleep(poll_s)


class EndpointLock:
    """An exclusive, process-wide lock on one endpoint (``flock`` on its ``lock`` file).

    Example:
        ```python
        with EndpointLock("churn").hold(timeout_s=10):
            ...  # deploy
        ```
    """

    def __init__(self, name: str) -> None:
        self.path = endpoint_dir(name) / "lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """This object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout_s: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout_s``.

        Raises:
            EndpointBusyError: Another deployment of this endpoint holds it.
        """
        fd, acquired = _flock_exclusive(self.path, timeout_s, poll_s=0.1)
        if not acquired:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise EndpointBusyError(
                f"Endpoint {self.path.parent.name!r} is being deployed by another run "
                f"({holder or 'unknown holder'}); wait for it to finish, then run again."
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (no-op when not held)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def hold(self, timeout_s: float = 0.0) -> Iterator[EndpointLock]:
        """Context manager around :meth:`acquire` / :meth:`release`."""
        self.acquire(timeout_s)
        try:
            yield self
        finally:
            self.release()


_SUPERVISE: dict[str, tuple[threading.RLock, list[int]]] = {}
_SUPERVISE_GUARD = threading.Lock()


@contextmanager
def supervise_lock(folder: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """Hold the endpoint's ``supervise.lock``: slots and router change under it only.

    The target takes it around every start and stop of a slot or the router, the
    watchdog around each check-and-restart round, so the watchdog never restarts a
    slot the target is stopping nor starts a second HAProxy while ``ensure_router``
    starts one. Re-entrant within a process (``start_slot`` calls ``stop_slot``).

    Raises:
        EndpointBusyError: Another process held it for ``timeout_s``.

    Example:
        ```python
        with supervise_lock(endpoint_dir("churn"), timeout_s=5):
            ...  # start or stop a slot
        ```
    """
    path = str(folder / "supervise.lock")
    with _SUPERVISE_GUARD:
        rlock, held = _SUPERVISE.setdefault(path, (threading.RLock(), [0, -1]))
    with rlock:
        if held[0] == 0:
            fd, acquired = _flock_exclusive(path, timeout_s, poll_s=0.02)
            if not acquired:
                os.close(fd)
                raise EndpointBusyError(
                    f"The slots and router of endpoint {folder.name!r} are being changed by "
                    f"another process (held {path} for {timeout_s:g} s); try again."
                )
            held[1] = fd
        held[0] += 1
        try:
            yield
        finally:
            held[0] -= 1
            if held[0] == 0:
                fcntl.flock(held[1], fcntl.LOCK_UN)
                os.close(held[1])
                held[1] = -1


def append_record(record: DeploymentRecord) -> None:
    """Append (or update, by id) a record in the endpoint's history."""
    path = endpoint_dir(record.endpoint) / "deployments.jsonl"
    records = read_records(record.endpoint)
    records = [r for r in records if r.id != record.id] + [record]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in records[-200:]), encoding="utf-8")
    os.replace(tmp, path)


def read_records(name: str) -> list[DeploymentRecord]:
    """Every deployment record of an endpoint, oldest first.

    Example:
        ```python
        last = read_records("churn")[-1]
        print(last.version, last.outcome)
        ```
    """
    path = state_dir() / "endpoints" / name / "deployments.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(DeploymentRecord.model_validate_json(line))
    return out


def last_record(name: str, outcome: str | None = None) -> DeploymentRecord | None:
    """The newest record of an endpoint (with this outcome, when given)."""
    for record in reversed(read_records(name)):
        if outcome is None or record.outcome == outcome:
            return record
    return None


def save_endpoint(spec: EndpointSpec, target: str, model_name: str) -> None:
    """Remember the endpoint's spec, target kind and model (for describe and stop)."""
    doc = {"spec": spec.model_dump(), "target": target, "model_name": model_name}
    (endpoint_dir(spec.name) / "endpoint.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


def load_endpoint(name: str) -> tuple[EndpointSpec, str, str] | None:
    """``(spec, target kind, model name)`` saved for an endpoint, or ``None``."""
    path = state_dir() / "endpoints" / name / "endpoint.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return EndpointSpec.model_validate(doc["spec"]), doc["target"], doc["model_name"]


def forget_endpoint(name: str) -> None:
    """Mark an endpoint as stopped (its history stays)."""
    (state_dir() / "endpoints" / name / "endpoint.json").unlink(missing_ok=True)


def endpoints_serving(model_name: str) -> list[str]:
    """Endpoints deployed (and not stopped) with ``model_name``: the registry's rollback hook.

    Example:
        ```python
        assert endpoints_serving("churn-classifier") == ["churn"]
        ```
    """
    out = []
    for name in live_endpoints():
        saved = load_endpoint(name)
        if saved is not None and saved[2] == model_name:
            out.append(name)
    return out


def live_endpoints() -> list[str]:
    """Names of endpoints that have a state folder."""
    root = state_dir() / "endpoints"
    return sorted(p.name for p in root.iterdir() if (p / "endpoint.json").exists()) if root.exists() else []
