"""HAProxy's runtime API over the admin socket: weights, addresses, states, the state file.

Weights, addresses and states change through the runtime API (:class:`RouterClient`),
never through a reload. After every slot-level change the client dumps
``show servers state`` to the router's server-state file, which a restarted HAProxy loads
(:func:`~mlops_tasks.deploy.haproxy.config.with_server_state`), so it comes back with the
current weights, ports and preview/shadow states.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from mlops_tasks.deploy.haproxy.config import (
    AB_BACKENDS,
    AB_MAP_DEFAULT,
    BACKENDS,
    BACKUP_SUFFIX,
    LIVE,
    PREVIEW,
    SHADOW,
    backup_names,
    server_names,
)
from mlops_tasks.deploy.models import COLORS, AbSplit, Color
from mlops_tasks.errors import RouterError

__all__ = ["RouterClient", "ServerState"]

logger = logging.getLogger(__name__)


class ServerState(BaseModel):
    """One server of one backend, from ``show stat``."""

    backend: str
    name: str
    status: str = Field(..., description="UP, DOWN, MAINT, DRAIN, 'UP 1/2', no check ...")
    weight: int
    current_sessions: int
    address: str
    responses: int = Field(0, description="HTTP responses the server has returned (all classes).")

    @property
    def up(self) -> bool:
        """HAProxy routes to it (up, not in maintenance or drain)."""
        return self.status.startswith("UP")


class RouterClient:
    """Client of HAProxy's runtime API over the admin UNIX socket.

    Example:
        ```python
        router = RouterClient("/var/lib/mlops/endpoints/churn/admin.sock")
        router.set_slot_weights({"blue": 90, "green": 10}, replicas=1)
        print(router.servers("live"))
        ```
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        timeout_s: float = 5.0,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.socket_path = str(socket_path)
        self.timeout_s = timeout_s
        #: Where slot-level changes are dumped for a restarted HAProxy (see :func:`with_server_state`).
        self.state_file = Path(state_file) if state_file is not None else None
        #: The A/B runtime map's file (beside the state file), rewritten on every split change.
        self.ab_map_file = self.state_file.parent / "ab.map" if self.state_file is not None else None

    def command(self, cmd: str) -> str:
        """Send one command line (several may be joined with ``;``) and return the answer.

        Raises:
            RouterError: The socket does not answer or HAProxy refused the command.
        """
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(self.socket_path)
                sock.sendall(cmd.encode() + b"\n")
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError as exc:
            raise RouterError(f"HAProxy admin socket {self.socket_path} does not answer: {exc}") from exc
        answer = b"".join(chunks).decode(errors="replace")
        lowered = answer.lower()
        for bad in ("unknown command", "no such", "require", "invalid", "not found", "error"):
            if bad in lowered and not cmd.startswith("show"):
                raise RouterError(f"HAProxy refused {cmd!r}: {answer.strip()}")
        return answer

    def alive(self) -> bool:
        """The admin socket answers."""
        try:
            return "Pid:" in self.command("show info")
        except RouterError:
            return False

    def info(self) -> dict[str, str]:
        """``show info`` as a dict (``Pid``, ``Uptime_sec``, ...)."""
        out = {}
        for line in self.command("show info").splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                out[key.strip()] = value.strip()
        return out

    def servers(self, backend: str | None = None) -> list[ServerState]:
        """Servers (all backends, or one) with status, weight, sessions and address."""
        text = self.command("show stat")
        rows = list(csv.DictReader(io.StringIO(text.lstrip("# "))))
        addrs = self._addresses()
        out = []
        for row in rows:
            if row.get("svname") in ("FRONTEND", "BACKEND") or not row.get("pxname"):
                continue
            if backend and row["pxname"] != backend:
                continue
            responses = sum(
                int(row.get(f"hrsp_{k}") or 0) for k in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
            )
            out.append(
                ServerState(
                    backend=row["pxname"],
                    name=row["svname"],
                    status=row.get("status", ""),
                    weight=int(row.get("weight") or 0),
                    current_sessions=int(row.get("scur") or 0),
                    address=addrs.get((row["pxname"], row["svname"]), ""),
                    responses=responses,
                )
            )
        return out

    def _addresses(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for line in self.command("show servers state").splitlines():
            parts = line.split()
            if len(parts) > 18 and not line.startswith("#") and parts[0].isdigit():
                out[(parts[1], parts[3])] = f"{parts[4]}:{parts[18]}"
        return out

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        """``set weight <backend>/<server> <weight>``."""
        self.command(f"set weight {backend}/{server} {int(weight)}")

    def set_addr(self, backend: str, server: str, host: str, port: int) -> None:
        """``set server <backend>/<server> addr <host> port <port>``."""
        self.command(f"set server {backend}/{server} addr {host} port {int(port)}")

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``set server <backend>/<server> state ready|drain|maint``."""
        if state not in ("ready", "drain", "maint"):
            raise RouterError(f"Unknown server state {state!r}.")
        self.command(f"set server {backend}/{server} state {state}")

    def save_state(self) -> None:
        """Dump ``show servers state`` to :attr:`state_file` (atomic; no-op without one).

        A failure is logged, not raised: the change itself is already live, only a
        router restart would miss it.
        """
        if self.state_file is None:
            return
        try:
            text = self.command("show servers state")
            fd, tmp = tempfile.mkstemp(prefix=".server-state-", dir=self.state_file.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # the docker router reads it as the deploying user
            os.replace(tmp, self.state_file)
        except (RouterError, OSError) as exc:
            logger.warning("Router state not saved to %s: %s", self.state_file, exc)

    # -- slot-level operations used by the strategy ------------------------------------

    def slot_weights(self, replicas: int) -> dict[Color, int]:
        """Weight of each slot color in backend ``live`` (0 when its servers are not usable)."""
        states = {s.name: s for s in self.servers(LIVE)}
        out: dict[Color, int] = {}
        for color in COLORS:
            names = server_names(color, replicas)
            usable = [states[n] for n in names if n in states and not states[n].status.startswith("MAINT")]
            out[color] = max((s.weight for s in usable), default=0)
        return out

    def attach_slot(self, color: Color, addresses: list[tuple[str, int]], replicas: int) -> None:
        """Point the slot's servers (every backend) at ``addresses``; the live weight stays 0.

        The servers of backend ``live`` leave maintenance with weight 0, so HAProxy health
        checks them but sends no traffic until :meth:`set_slot_weights`.
        """
        names = server_names(color, replicas)
        if len(addresses) != len(names):
            raise RouterError(f"Slot {color} has {len(addresses)} addresses for {len(names)} servers.")
        for name, (host, port) in zip(names, addresses, strict=True):
            self.set_weight(LIVE, name, 0)
            for backend in BACKENDS:
                self.set_state(backend, name, "maint")
                self.set_addr(backend, name, host, port)
            self.set_state(LIVE, name, "ready")
            twin = f"{name}{BACKUP_SUFFIX}"
            self.set_state(LIVE, twin, "maint")
            self.set_addr(LIVE, twin, host, port)
            self.set_state(LIVE, twin, "ready")
        if self.has_ab_backends():
            for name, (host, port) in zip(names, addresses, strict=True):
                self.set_state(AB_BACKENDS[color], name, "maint")
                self.set_addr(AB_BACKENDS[color], name, host, port)
                self.set_state(AB_BACKENDS[color], name, "ready")
        self.save_state()

    def set_preview(self, color: Color | None, replicas: int) -> None:
        """Make the preview port reach ``color`` only (``None``: nothing)."""
        for c in COLORS:
            for name in server_names(c, replicas):
                self.set_state(PREVIEW, name, "ready" if c == color else "maint")
        self.save_state()

    def set_shadow(self, color: Color | None, replicas: int) -> None:
        """Mirror live requests to ``color`` (``None`` stops mirroring)."""
        for c in COLORS:
            for name in server_names(c, replicas):
                self.set_state(SHADOW, name, "ready" if c == color else "maint")
        self.save_state()

    def set_slot_weights(self, weights: dict[Color, int], replicas: int) -> None:
        """Set live weights per slot; raised weights first so some server always has weight.

        Example:
            ```python
            router.set_slot_weights({"blue": 0, "green": 100}, replicas=1)
            ```
        """
        if sum(weights.values()) <= 0:
            raise RouterError("At least one slot must keep a weight above 0.")
        current = self.slot_weights(replicas)
        order = sorted(weights, key=lambda c: weights[c] <= current.get(c, 0))
        for color in order:
            for name in server_names(color, replicas):
                self.set_weight(LIVE, name, weights[color])
        self.save_state()

    def detach_slot(self, color: Color, replicas: int) -> None:
        """Put the slot's servers in maintenance in every backend (no traffic at all)."""
        for name in server_names(color, replicas):
            self.set_weight(LIVE, name, 0)
            for backend in BACKENDS:
                self.set_state(backend, name, "maint")
            self.set_state(LIVE, f"{name}{BACKUP_SUFFIX}", "maint")
            if self.has_ab_backends():
                self.set_state(AB_BACKENDS[color], name, "maint")
        self.save_state()

    def slot_servers(self, color: Color, replicas: int) -> list[ServerState]:
        """The slot's (non-backup) servers in backend ``live``, as HAProxy sees them now."""
        names = set(server_names(color, replicas))
        return [s for s in self.servers(LIVE) if s.name in names]

    def wait_idle(self, color: Color, replicas: int, timeout_s: float) -> bool:
        """Wait until no session is open to the slot's servers; False on timeout."""
        deadline = time.monotonic() + timeout_s
        names = set(server_names(color, replicas)) | set(backup_names(color, replicas))
        while True:
            busy = sum(s.current_sessions for s in self.servers() if s.name in names)
            if busy == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait_up(self, color: Color, replicas: int, timeout_s: float) -> bool:
        """Wait until HAProxy's own checks see every server of the slot UP in ``live``."""
        deadline = time.monotonic() + timeout_s
        names = set(server_names(color, replicas))
        while True:
            states = [s for s in self.servers(LIVE) if s.name in names]
            if states and all(s.up for s in states):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- A/B split (runtime map) -----------------------------------------------------------

    def has_ab_backends(self) -> bool:
        """The running configuration has the A/B backends (rendered with an A/B map)."""
        return AB_BACKENDS["blue"] in self.command("show backend").split()

    def _ab_map_ref(self) -> str:
        for line in self.command("show map").splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[0].lstrip("-").isdigit() and parts[1].rstrip(")").endswith("/ab.map"):
                return f"#{parts[0]}"
        raise RouterError(
            "This endpoint's HAProxy runs a configuration without the A/B map (started by an older "
            "version); redeploy the champion once so the router reloads with it, then start the test."
        )

    def ab_map(self) -> dict[str, str]:
        """The A/B map's entries as HAProxy holds them now."""
        out = {}
        for line in self.command(f"show map {self._ab_map_ref()}").splitlines():
            parts = line.split()
            if len(parts) >= 3:
                out[parts[1]] = parts[2]
        return out

    def set_split(self, split: AbSplit | None) -> None:
        """Turn the A/B split on (``split``) or off (``None``), at runtime and in the map file.

        Turning on sets the slots and threshold before the mode; turning off sets the mode
        first, so no request ever sees half a change.
        """
        ref = self._ab_map_ref()
        if split is None:
            entries = [("mode", "off")]
        else:
            entries = [
                ("A", split.colors["A"]),
                ("B", split.colors["B"]),
                ("threshold", str(split.percent_a)),
                ("mode", split.mode),
            ]
        for key, value in entries:
            self.command(f"set map {ref} {key} {value}")
        self._write_ab_map()

    def split(self) -> AbSplit | None:
        """The split in force (``None`` when the mode is off or there is no map)."""
        try:
            entries = self.ab_map()
        except RouterError:
            return None
        if entries.get("mode") not in ("sticky", "request"):
            return None
        return AbSplit(
            mode=entries["mode"],
            percent_a=int(entries.get("threshold", "50")),
            colors={"A": entries["A"], "B": entries["B"]},
        )

    def _write_ab_map(self) -> None:
        if self.ab_map_file is None:
            return
        entries = self.ab_map()
        text = "".join(f"{k} {entries[k]}\n" for k in ("mode", "threshold", "A", "B") if k in entries)
        fd, tmp = tempfile.mkstemp(prefix=".ab-map-", dir=self.ab_map_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text or AB_MAP_DEFAULT)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.ab_map_file)
