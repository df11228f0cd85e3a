"""PostgreSQL behind the MLflow tracking server and the Prefect server: one bounded connection check.

A database that is down, or refuses the password, otherwise surfaces minutes later as a
server that never became healthy or an MLflow client retrying. :func:`check_database` connects
once with a short timeout and raises a typed error that names the service the database backs:

- :class:`~mlops_tasks.errors.DatabaseUnavailableError`: nothing answered at host:port (retry
  once it runs);
- :class:`~mlops_tasks.errors.DatabaseAuthError`: it answered but refused the user or password.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlparse

from mlops_tasks.errors import ConfigurationError, DatabaseAuthError, DatabaseUnavailableError

__all__ = ["check_database", "is_postgres_uri", "redact_uri"]

_AUTH_MARKERS = ("password authentication failed", "no password supplied", "role", "authentication")


def is_postgres_uri(uri: str) -> bool:
    """Whether ``uri`` is a PostgreSQL SQLAlchemy URL (``postgresql://``, ``postgresql+<driver>://``).

    Example:
        ```python
        assert is_postgres_uri("postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow")
        ```
    """
    return uri.split(":", 1)[0].split("+", 1)[0].lower() in {"postgresql", "postgres"}


def redact_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for messages and logs).

    Example:
        ```python
        assert redact_uri("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
        ```
    """
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def _connect_psycopg2(parsed: Any, timeout_s: float) -> None:
    import psycopg2

    try:
        connection = psycopg2.connect(
            host=parsed.hostname,
            port=parsed.port or 5432,
            user=unquote(parsed.username or ""),
            password=unquote(parsed.password or ""),
            dbname=parsed.path.lstrip("/") or "postgres",
            connect_timeout=max(1, int(timeout_s)),
        )
    except psycopg2.OperationalError as exc:
        raise _Refused(str(exc)) from exc
    connection.close()


def _connect_asyncpg(parsed: Any, timeout_s: float) -> None:
    import asyncpg

    async def attempt() -> None:
        connection = await asyncpg.connect(
            host=parsed.hostname,
            port=parsed.port or 5432,
            user=unquote(parsed.username or ""),
            password=unquote(parsed.password or ""),
            database=parsed.path.lstrip("/") or "postgres",
            timeout=timeout_s,
        )
        await connection.close()

    try:
        asyncio.run(attempt())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise _Refused(f"{type(exc).__name__}: {exc}") from exc


class _Refused(Exception):
    """A connection attempt failed; the message is the driver's."""


def check_database(uri: str, *, service: str, timeout_s: float = 5.0) -> None:
    """Connect once to the PostgreSQL database ``uri`` names, or raise a typed error naming ``service``.

    Args:
        uri: ``postgresql[+psycopg2|+asyncpg]://user:password@host:port/db``.
        service: What the database backs, for the message (e.g. ``"MLflow tracking store"``).
        timeout_s: Connect timeout.

    Raises:
        ConfigurationError: ``uri`` is not a PostgreSQL URL with a host.
        DatabaseAuthError: The server refused the user or password.
        DatabaseUnavailableError: Nothing answered, or the database does not exist.

    Example:
        ```python
        check_database("postgresql+psycopg2://mlflow:pw@db.internal:5432/mlflow",
                       service="MLflow tracking store")
        ```
    """
    parsed = urlparse(uri)
    if not is_postgres_uri(uri) or not parsed.hostname:
        raise ConfigurationError(
            f"{service}: {redact_uri(uri)!r} is not a PostgreSQL URL; use postgresql+psycopg2://user:pw@host:port/db."
        )
    shown = redact_uri(uri)
    driver = parsed.scheme.split("+", 1)[1] if "+" in parsed.scheme else "psycopg2"
    try:
        if driver == "asyncpg":
            _connect_asyncpg(parsed, timeout_s)
        else:
            _connect_psycopg2(parsed, timeout_s)
    except _Refused as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
        if any(marker in reason.lower() for marker in _AUTH_MARKERS) and "does not exist" not in reason:
            raise DatabaseAuthError(
                f"PostgreSQL of the {service} at {parsed.hostname}:{parsed.port or 5432} refused user "
                f"{parsed.username!r} ({reason}); fix the user or password in {shown}."
            ) from exc
        raise DatabaseUnavailableError(
            f"PostgreSQL of the {service} at {parsed.hostname}:{parsed.port or 5432} did not answer "
            f"within {timeout_s:g} s or refused the connection ({reason}); start it or fix {shown}."
        ) from exc
