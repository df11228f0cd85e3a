"""HAProxy configuration: the layout every target renders, server names, the mirror script.

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
- A/B tests (when ``ab_map`` is set): the frontend reads a runtime map (``mode``
  ``off``/``sticky``/``request``, ``threshold``, the slot of ``A`` and ``B``), gives each
  request a bucket (``crc32`` of ``X-Subject-Id`` mod 100, or ``rand(100)``) and sends
  buckets below the threshold to backend ``ab_<A's color>``, the rest to ``ab_<B's>``;
  those backends hold one slot each, so retries and redispatch never cross variants.
  The variant goes to the server as ``X-Ab-Variant`` and back to the caller as
  ``X-Variant``. The map changes at runtime (``set map``) and is also written to its
  file, so a reload keeps the split;
- an admin socket (mode 600: its owner only) with ``expose-fd listeners`` for seamless
  reloads in master-worker mode.

The mirror Lua script is a package template (``templates/mirror.lua``), read with
:mod:`importlib.resources` (:data:`MIRROR_LUA`).
"""

from __future__ import annotations

from importlib.resources import files

from pydantic import BaseModel, Field

from mlops_tasks.deploy.haproxy.security import (
    SecurityLayout,
    bind_line,
    global_lines,
    key_rules,
    rate_table,
    redirect_frontend,
)
from mlops_tasks.deploy.models import COLORS, Color
from mlops_tasks.errors import RouterError

__all__ = [
    "AB_BACKENDS",
    "AB_MAP_DEFAULT",
    "BACKENDS",
    "BACKUP_SUFFIX",
    "LIVE",
    "MIRROR_LUA",
    "PARKED",
    "PREVIEW",
    "SHADOW",
    "RouterConfig",
    "backup_names",
    "color_of",
    "mirror_lua",
    "render_config",
    "server_names",
    "with_server_state",
]

LIVE = "live"
PREVIEW = "preview"
SHADOW = "shadow"
BACKENDS = (LIVE, PREVIEW, SHADOW)
#: Address given to a server whose slot does not run (it stays in maintenance).
PARKED = ("127.0.0.1", 9)
#: Suffix of the backup twin a slot server has in backend ``live``.
BACKUP_SUFFIX = "_b"
#: The one-slot backends of an A/B test, by slot color.
AB_BACKENDS: dict[Color, str] = {c: f"ab_{c}" for c in COLORS}
#: The A/B map's content when no test runs.
AB_MAP_DEFAULT = "mode off\nthreshold 100\nA blue\nB green\n"


def mirror_lua() -> str:
    """The shadow-traffic Lua script HAProxy loads (``lua-load``)."""
    return files("mlops_tasks.deploy.haproxy").joinpath("templates/mirror.lua").read_text(encoding="utf-8")


#: The mirror script's text (read once from the package template).
MIRROR_LUA = mirror_lua()


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
    ab_map: str | None = Field(
        None, description="Path of the A/B runtime map, as HAProxy sees it (None: no A/B rules)."
    )
    security: SecurityLayout | None = Field(
        None, description="TLS, API keys, rate limits and access log (None: plain HTTP, no keys)."
    )
    idle_close_on_response: bool = Field(
        False,
        description="HAProxy >= 2.7: on reload, close idle client connections only after one "
        "more answer with 'Connection: close' (2.6 closes them at once).",
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
    return color


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
        *global_lines(cfg.security),
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
        bind_line(cfg.bind_host, cfg.port, cfg.security),
        "    option http-buffer-request",
        *key_rules(cfg.security),
        "    http-request set-header X-Request-Id %[uuid()] unless { req.hdr(x-request-id) -m found }",
        "    http-request lua.mirror if METH_POST { path /invocations } { nbsrv(shadow) gt 0 }",
        *_ab_rules(cfg.ab_map),
        f"    default_backend {LIVE}",
        "",
        "frontend preview_in",
        bind_line(cfg.bind_host, cfg.preview_port, cfg.security),
        "    option http-buffer-request",
        *key_rules(cfg.security),
        f"    default_backend {PREVIEW}",
        *redirect_frontend(cfg.bind_host, cfg.security),
        *rate_table(cfg.security),
    ]
    lines += _backend_lines(cfg)
    return "\n".join(lines) + "\n"


def _backend_lines(cfg: RouterConfig) -> list[str]:
    """The ``live``/``preview``/``shadow`` backends (with backup twins) and the A/B backends."""
    lines: list[str] = []
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
    if cfg.ab_map:
        for color, backend in AB_BACKENDS.items():
            lines += ["", f"backend {backend}", "    balance roundrobin"]
            for name in server_names(color, cfg.replicas):
                host, port = cfg.servers.get(name, PARKED)
                state = "" if name in cfg.servers else " disabled"
                lines.append(f"    server {name} {host}:{port} weight 100 check{state}")
    return lines


def _ab_rules(ab_map: str | None) -> list[str]:
    """Frontend rules of the A/B split (see the module docstring); none without a map."""
    if not ab_map:
        return []
    found = "{ var(txn.ab_variant) -m found }"
    return [
        "    http-request del-header x-ab-variant",
        f"    http-request set-var(txn.ab_mode) str(mode),map({ab_map},off)",
        f"    http-request set-var(txn.ab_thr) str(threshold),map({ab_map},100)",
        "    http-request set-var(txn.ab_bucket) req.hdr(x-subject-id),crc32,mod(100) "
        "if { var(txn.ab_mode) -m str sticky } { req.hdr(x-subject-id) -m len gt 0 }",
        "    http-request set-var(txn.ab_bucket) rand(100) if { var(txn.ab_mode) -m str request }",
        "    http-request set-var(txn.ab_diff) var(txn.ab_bucket),sub(txn.ab_thr) "
        "if { var(txn.ab_bucket) -m found }",
        "    http-request set-var(txn.ab_variant) str(A) if { var(txn.ab_diff) -m int lt 0 }",
        "    http-request set-var(txn.ab_variant) str(B) if { var(txn.ab_diff) -m int ge 0 }",
        # sticky, but no subject: the champion answers (outside the experiment)
        f"    http-request set-var(txn.ab_variant) str(A) if {{ var(txn.ab_mode) -m str sticky }} !{found}",
        f"    http-request set-header X-Ab-Variant %[var(txn.ab_variant)] if {found}",
        f"    http-request set-var(txn.ab_slot) var(txn.ab_variant),map({ab_map}) if {found}",
        f"    http-response set-header X-Variant %[var(txn.ab_variant)] if {found}",
        *(
            f"    use_backend {backend} if {{ var(txn.ab_slot) -m str {color} }}"
            for color, backend in AB_BACKENDS.items()
        ),
    ]


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
