"""A throwaway PostgreSQL (Debian's ``postgresql`` package) for the integration tests.

PostgreSQL refuses to run as root, so when the tests run as root ``initdb`` and ``postgres``
run as the unprivileged user ``nobody``, with a temporary data folder that user owns (made
under /tmp, which every user can traverse). The server listens on a free loopback port only,
with password (scram-sha-256) authentication, and is stopped by its PID at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

__all__ = ["Postgres", "pg_binary", "postgres_server"]

SUPERUSER = "postgres"


def pg_binary(name: str) -> str | None:
    """Path of a PostgreSQL server program (newest installed major version), or ``None``."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else None


@dataclass
class Postgres:
    """A running throwaway server: its port and superuser password."""

    port: int
    password: str

    def url(self, database: str, driver: str = "psycopg2", password: str | None = None) -> str:
        """``postgresql+<driver>://postgres:<password>@127.0.0.1:<port>/<database>``."""
        secret = self.password if password is None else password
        return f"postgresql+{driver}://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def execute(self, database: str, *statements: str) -> None:
        """Run statements as the superuser (autocommit: CREATE DATABASE needs it)."""
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname=database
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()


def _as_user() -> dict[str, object]:
    """Popen arguments that drop root to ``nobody`` (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "nobody", "group": pwd.getpwnam("nobody").pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server(password: str = "pg-test-secret") -> Iterator[Postgres]:
    """Start a PostgreSQL server on a free loopback port; yield it; stop it and delete its data."""
    initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
    if initdb is None or postgres is None:
        raise RuntimeError("PostgreSQL is not installed: run `bash scripts/ensure-system.sh`.")
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    (root / "pwfile").write_text(password + "\n")
    user = _as_user()
    if user:
        nobody = pwd.getpwnam("nobody")
        for path in (root, sockets, root / "pwfile"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    log = root / "postgres.log"
    process = None
    try:
        subprocess.run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
                f"--pwfile={root / 'pwfile'}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
            **user,  # type: ignore[arg-type]
        )
        port = free_port()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    postgres,
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(sockets),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **user,  # type: ignore[arg-type]
            )
        server = Postgres(port=port, password=password)
        deadline = time.monotonic() + 120
        while True:
            try:
                server.execute("postgres", "SELECT 1")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield server
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
