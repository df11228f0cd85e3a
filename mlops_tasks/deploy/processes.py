"""Process helpers on Linux ``/proc``: is a pid alive, its command line, stop a group of pids.

Shared by the local target (:mod:`mlops_tasks.deploy.targets.local`, which re-exports
them) and the watchdog's start/stop helpers (:mod:`mlops_tasks.deploy.supervision`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["cmdline", "pid_alive", "session_members", "terminate"]


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (reaps it when it is our exited child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces (``""`` when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def session_members(sid: int) -> list[int]:
    """Pids of the processes in session ``sid`` (HAProxy's workers share their master's)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def _signal_and_wait(pids: list[int], sig: signal.Signals, wait_s: float) -> None:
    """Send ``sig`` to each live pid, then wait up to ``wait_s`` for all of them to exit."""
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + wait_s
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def terminate(pids: list[int], grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL what is left (by pid only)."""
    _signal_and_wait(pids, signal.SIGTERM, grace_s)
    _signal_and_wait(pids, signal.SIGKILL, 5)
