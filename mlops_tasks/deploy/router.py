"""The HAProxy router: one config template for every target, and its runtime API client.

Layout of the rendered configuration (one HAProxy process per endpoint):

- frontend ``live_in`` on the endpoint port → backend ``live`` (servers ``blue_1..n``
  and ``green_1..n``), balanced per request by weight;
- frontend ``preview_in`` on the preview port → backend ``preview`` (the same
  servers, only the idle slot enabled) for smoke tests;
- backend ``shadow`` (the same servers, normally all in maintenance): when a slot is
  enabled there, the Lua action ``mirror`` copies each live ``POST /invocations`` to it
  from a separate Lua task, so the client never waits for the copy;
- HAProxy's own HTTP health checks (``GET /health`` expecting 200) on every server, so a
  slot that is down never gets traffic; a connection error marks a server down at once
  (``observe layer4``) and the request is retried on another server;
- a ``backup`` twin of every slot server in backend ``live`` (``blue_1_b`` ...): when no
  weighted server is UP (the live slot crashed while the candidate still had weight 0, or
  the candidate died after the last shift), HAProxy sends traffic to whichever attached
  slot is UP instead of answering 503, until the strategy or the watchdog has acted;
- an admin socket (mode 600: its owner only) with ``expose-fd listeners`` for seamless
  reloads in master-worker mode.

Weights, addresses and states change through the runtime API
(:class:`RouterClient`), never through a reload. After every slot-level change the
client dumps ``show servers state`` to the router's server-state file, which a restarted
HAProxy loads (:func:`with_server_state`), so it comes back with the current weights,
ports and preview/shadow states rather than the ones first rendered. When the file itself must change it is
checked with ``haproxy -c`` first (:func:`check_config`), so an invalid configuration
never replaces a working one.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from mlops_tasks.deploy.models import COLORS, Color
from mlops_tasks.errors import RouterConfigError, RouterError

logger = logging.getLogger(__name__)

LIVE = "live"
PREVIEW = "preview"
SHADOW = "shadow"
BACKENDS = (LIVE, PREVIEW, SHADOW)
#: Address given to a server whose slot does not run (it stays in maintenance).
PARKED = ("127.0.0.1", 9)
#: Suffix of the backup twin a slot server has in backend ``live``.
BACKUP_SUFFIX = "_b"

MIRROR_LUA = r"""
-- Shadow traffic for mlops-tasks: copy each live POST /invocations to the servers of
-- backend "shadow" that are UP. The copy is sent by a separate Lua task with HAProxy's
-- own HTTP client, so the client's request goes on at once and never sees the
-- shadow's answer (discarded). Copies are dropped while too many are in flight.
local MAX_IN_FLIGHT = 64
local in_flight = 0
local rr = 0

core.register_action("mirror", {"http-req"}, function(txn)
  local body = txn.sf:req_body()
  if body == nil or #body == 0 then return end
  local targets = {}
  for _, srv in pairs(core.backends["shadow"].servers) do
    local status = srv:get_stats()["status"] or ""
    if status:sub(1, 2) == "UP" then targets[#targets + 1] = srv:get_addr() end
  end
  if #targets == 0 or in_flight >= MAX_IN_FLIGHT then return end
  rr = rr + 1
  local addr = targets[(rr % #targets) + 1]
  local ctype = "application/json"
  local hdrs = txn.http:req_get_headers()
  if hdrs["content-type"] ~= nil and hdrs["content-type"][0] ~= nil then
    ctype = hdrs["content-type"][0]
  end
  local rid = ""
  if hdrs["x-request-id"] ~= nil and hdrs["x-request-id"][0] ~= nil then
    rid = hdrs["x-request-id"][0]
  end
  in_flight = in_flight + 1
  core.register_task(function()
    local ok = pcall(function()
      local hc = core.httpclient()
      hc:post{url = "http://" .. addr .. "/invocations", body = body, timeout = 10000,
              headers = {["content-type"] = {ctype}, ["x-request-id"] = {rid},
                         ["x-shadow"] = {"1"}}}
    end)
    in_flight = in_flight - 1
  end)
end)
"""


class RouterConfig(BaseModel):
    """Everything the template needs; the same for the local and the docker target.

    Example:
        ```python
        cfg = RouterConfig(port=8000, preview_port=8001, admin_socket="/run/ep/admin.sock",
                           lua_path="/run/ep/mirror.lua", replicas=1)
        text = render_config(cfg)
        ```
    """

    bind_host: str = Field("127.0.0.1", description="Interface of both frontends.")
    port: int = Field(..., description="Endpoint port.")
    preview_port: int = Field(..., description="Preview port (idle slot).")
    admin_socket: str = Field(..., description="Path of the admin UNIX socket (mode 600).")
    lua_path: str = Field(..., description="Path of the mirror Lua script, as HAProxy sees it.")
    pidfile: str | None = Field(None, description="Pid file of the master process.")
    replicas: int = Field(1, ge=1, description="Servers per slot color.")
    servers: dict[str, tuple[str, int]] = Field(
        default_factory=dict, description="Server name (blue_1 ...) -> address; missing ones are parked."
    )
    weights: dict[str, int] = Field(default_factory=dict, description="Slot color -> weight 0..100.")
    preview_color: Color | None = Field(None, description="Slot reachable through the preview port.")
    shadow_color: Color | None = Field(None, description="Slot that live requests are mirrored to.")
    check_interval_ms: int = Field(300, ge=50, description="Health-check interval.")
    hard_stop_after_s: int = Field(30, ge=1, description="How long an old worker may finish requests.")
    idle_close_on_response: bool = Field(
        False, description="HAProxy >= 2.7: on reload, close idle client connections only after one "
        "more answer with 'Connection: close' (2.6 closes them at once)."
    )


def server_names(color: Color, replicas: int) -> list[str]:
    """HAProxy server names of a slot: ``blue_1 .. blue_n``.

    Example:
        ```python
        assert server_names("green", 2) == ["green_1", "green_2"]
        ```
    """
    return [f"{color}_{i}" for i in range(1, replicas + 1)]


def backup_names(color: Color, replicas: int) -> list[str]:
    """Names of the slot's backup twins in backend ``live``: ``blue_1_b .. blue_n_b``.

    Example:
        ```python
        assert backup_names("blue", 1) == ["blue_1_b"]
        ```
    """
    return [f"{name}{BACKUP_SUFFIX}" for name in server_names(color, replicas)]


def color_of(server: str) -> Color:
    """The slot color of a server name (``green_2`` -> ``green``)."""
    color = server.split("_", 1)[0]
    if color not in COLORS:
        raise RouterError(f"Server {server!r} is not a blue or green slot server.")
    return color  # type: ignore[return-value]


def render_config(cfg: RouterConfig) -> str:
    """The HAProxy configuration text of one endpoint.

    Args:
        cfg: Ports, socket, servers and the weights to start with.

    Returns:
        The configuration; check it with :func:`check_config` before use.

    Example:
        ```python
        text = render_config(RouterConfig(port=8000, preview_port=8001,
                                          admin_socket="/tmp/a.sock", lua_path="/tmp/m.lua"))
        assert "backend live" in text
        ```
    """
    lines = [
        "# Rendered by mlops_tasks.deploy.router; weights and addresses change at runtime.",
        "global",
        "    master-worker",
        f"    stats socket {cfg.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    hard-stop-after {cfg.hard_stop_after_s}s",
        "    tune.lua.maxmem 64",
        *(["    idle-close-on-response"] if cfg.idle_close_on_response else []),
        f"    lua-load {cfg.lua_path}",
    ]
    if cfg.pidfile:
        lines.append(f"    pidfile {cfg.pidfile}")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    timeout http-keep-alive 120s",
        "    timeout queue 10s",
        "    timeout check 2s",
        # A request whose connection to a server failed (or got no answer at all) goes to
        # another server: the router retries, never the client.
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "    option httpchk",
        "    http-check send meth GET uri /health",
        "    http-check expect status 200",
        # A refused or reset connection marks the server down at once, so the retry above
        # goes to a server that answers instead of waiting for two failed health checks.
        f"    default-server inter {cfg.check_interval_ms}ms fastinter {cfg.check_interval_ms}ms "
        f"downinter {cfg.check_interval_ms}ms rise 1 fall 2 observe layer4 error-limit 1 "
        "on-error mark-down",
        "",
        "frontend live_in",
        f"    bind {cfg.bind_host}:{cfg.port}",
        "    option http-buffer-request",
        "    http-request set-header X-Request-Id %[uuid()] unless { req.hdr(x-request-id) -m found }",
        "    http-request lua.mirror if METH_POST { path /invocations } { nbsrv(shadow) gt 0 }",
        f"    default_backend {LIVE}",
        "",
        "frontend preview_in",
        f"    bind {cfg.bind_host}:{cfg.preview_port}",
        "    option http-buffer-request",
        f"    default_backend {PREVIEW}",
    ]
    for backend in BACKENDS:
        lines += ["", f"backend {backend}", "    balance roundrobin"]
        if backend == LIVE:
            lines.append("    option allbackups")
        for color in COLORS:
            weight = cfg.weights.get(color, 0) if backend == LIVE else 100
            for name in server_names(color, cfg.replicas):
                host, port = cfg.servers.get(name, PARKED)
                enabled = name in cfg.servers and (
                    (backend == LIVE)
                    or (backend == PREVIEW and cfg.preview_color == color)
                    or (backend == SHADOW and cfg.shadow_color == color)
                )
                state = "" if enabled else " disabled"
                lines.append(f"    server {name} {host}:{port} weight {weight} check{state}")
        if backend == LIVE:
            for color in COLORS:
                for name in server_names(color, cfg.replicas):
                    host, port = cfg.servers.get(name, PARKED)
                    state = "" if name in cfg.servers else " disabled"
                    lines.append(
                        f"    server {name}{BACKUP_SUFFIX} {host}:{port} weight 1 backup check{state}"
                    )
    return "\n".join(lines) + "\n"


def with_server_state(text: str, state_file: str) -> str:
    """``text`` (a rendered configuration) that loads its servers' last state at start.

    Adds ``server-state-file`` to ``global`` and ``load-server-state-from-file global``
    to ``defaults``. Checked on HAProxy 2.6: weights, ports and admin states (ready,
    maint, drain, per backend) come back from the file; addresses do not when the
    configuration gives an IP literal (``init-addr`` applies to hostnames only), so
    the docker target's watchdog re-points servers whose container address changed.
    A missing file is only a warning (the rendered values apply).

    Example:
        ```python
        text = with_server_state(render_config(cfg), "/run/ep/server-state")
        assert "load-server-state-from-file global" in text
        ```
    """
    out = []
    for line in text.splitlines():
        out.append(line)
        if line == "global":
            out.append(f"    server-state-file {state_file}")
        elif line == "defaults":
            out.append("    load-server-state-from-file global")
    return "\n".join(out) + "\n"


def haproxy_binary() -> str:
    """Path of the ``haproxy`` executable (``$MLOPS_HAPROXY_BIN`` or the PATH, then /usr/sbin).

    Raises:
        RouterError: HAProxy is not installed.
    """
    explicit = os.environ.get("MLOPS_HAPROXY_BIN")
    found = explicit or shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
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
        capture_output=True, text=True, timeout=30,
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
        self, socket_path: str | os.PathLike[str], timeout_s: float = 5.0,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.socket_path = str(socket_path)
        self.timeout_s = timeout_s
        #: Where slot-level changes are dumped for a restarted HAProxy (see :func:`with_server_state`).
        self.state_file = Path(state_file) if state_file is not None else None

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
            responses = sum(int(row.get(f"hrsp_{k}") or 0) for k in ("1xx", "2xx", "3xx", "4xx", "5xx",
                                                                      "other"))
            out.append(ServerState(
                backend=row["pxname"], name=row["svname"], status=row.get("status", ""),
                weight=int(row.get("weight") or 0), current_sessions=int(row.get("scur") or 0),
                address=addrs.get((row["pxname"], row["svname"]), ""), responses=responses,
            ))
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
