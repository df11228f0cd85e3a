"""The HAProxy executable: where it is, its version, and checked configuration writes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlops_tasks.errors import RouterConfigError, RouterError

__all__ = ["check_config", "haproxy_binary", "haproxy_version", "write_checked"]


def haproxy_binary() -> str:
    """Path of the ``haproxy`` executable (``$MLOPS_HAPROXY_BIN`` or the PATH, then /usr/sbin).

    Raises:
        RouterError: HAProxy is not installed.
    """
    explicit = os.environ.get("MLOPS_HAPROXY_BIN")
    found = (
        explicit
        or shutil.which("haproxy")
        or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    )
    if not found:
        raise RouterError(
            "HAProxy is not installed: install it (apt-get install haproxy, or "
            "scripts/ensure-system.sh) or set MLOPS_HAPROXY_BIN."
        )
    return found


def haproxy_version(binary: str | None = None) -> tuple[int, int]:
    """``(major, minor)`` of the installed HAProxy.

    Example:
        ```python
        assert haproxy_version() >= (2, 6)
        ```
    """
    cmd = [binary or haproxy_binary(), "-v"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def check_config(path: str | os.PathLike[str], binary: str | None = None) -> None:
    """Run ``haproxy -c`` on a configuration file.

    Raises:
        RouterConfigError: HAProxy rejected the file; its message is in the error.

    Example:
        ```python
        check_config("/var/lib/mlops/endpoints/churn/haproxy.cfg")
        ```
    """
    proc = subprocess.run(
        [binary or haproxy_binary(), "-c", "-q", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip()
        raise RouterConfigError(f"HAProxy rejected the configuration {path}: {detail}")


def write_checked(
    path: Path, text: str, binary: str | None = None, check: Callable[[Path], None] | None = None
) -> bool:
    """Check ``text`` with ``haproxy -c`` and only then put it at ``path`` (atomic rename).

    ``check`` replaces the local ``haproxy -c`` (the docker target runs it in the router
    image); it gets the temporary file, readable by all, in ``path``'s folder.

    Returns:
        True when the file changed.

    Raises:
        RouterConfigError: The text was rejected; ``path`` is left as it was.
    """
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".haproxy-", suffix=".cfg", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if check is not None:
            os.chmod(tmp, 0o644)
            check(Path(tmp))
        else:
            check_config(tmp, binary)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
