"""Reading an endpoint's secrets (key files, Prefect Secret blocks) and writing them privately.

The deploy core does not import Prefect: the Prefect layer registers a reader of Secret
blocks (:func:`register_secret_reader`, done by :mod:`mlops_tasks.tasks.deploy`), and a
Secret block named without one registered is a configuration error that says so.
Everything written from a secret is written with mode 600 through a temporary file in
the same folder (never readable by others, not even for a moment).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlops_tasks.errors import EndpointSecurityError, SecretBlockNotFoundError

__all__ = ["read_private_file", "read_secret", "register_secret_reader", "write_private"]

SecretReader = Callable[[str], str]
_readers: list[SecretReader] = []


def register_secret_reader(reader: SecretReader) -> None:
    """Use ``reader(name) -> text`` for Secret blocks (it raises ``ValueError`` for a missing block).

    Example:
        ```python
        register_secret_reader(lambda name: Secret.load(name).get())
        ```
    """
    _readers[:] = [reader]


def read_secret(name: str, what: str) -> str:
    """The text of Secret block ``name`` (``what`` says what it holds, for messages).

    Raises:
        SecretBlockNotFoundError: The block does not exist.
        EndpointSecurityError: No reader is registered (Prefect layer not loaded), or the
            block is empty or unreadable.

    Example:
        ```python
        pem = read_secret("churn-tls", "the endpoint's certificate and key")
        ```
    """
    if not _readers:
        raise EndpointSecurityError(
            f"Secret block {name!r} ({what}) cannot be read: no Secret reader is registered. "
            "Run through the Prefect flow or import mlops_tasks.tasks.deploy first, or use files."
        )
    try:
        value = _readers[0](name)
    except (ValueError, LookupError) as exc:
        raise SecretBlockNotFoundError(
            f"Secret block {name!r} ({what}) does not exist or cannot be loaded: {exc}. "
            f"Create it (prefect.blocks.system.Secret(value=...).save({name!r})) or fix the name."
        ) from exc
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise EndpointSecurityError(f"Secret block {name!r} ({what}) is empty.")
    return text


def read_private_file(path: str | os.PathLike[str], what: str) -> str:
    """The text of a key or certificate file, with a clear error when it cannot be read.

    Raises:
        EndpointSecurityError: The file is missing, unreadable or empty.

    Example:
        ```python
        text = read_private_file("/etc/mlops/churn.keys", "API keys")
        ```
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EndpointSecurityError(f"{what} file {p} does not exist; create it or fix the path.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EndpointSecurityError(
            f"{what} file {p} cannot be read ({exc}); make it readable by this user (mode 600)."
        ) from exc
    if not text.strip():
        raise EndpointSecurityError(f"{what} file {p} is empty.")
    return text


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600 (temporary file in the same folder, then rename).

    Example:
        ```python
        write_private(folder / "apikeys.map", lines)
        ```
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
