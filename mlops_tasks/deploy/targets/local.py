"""The ``local`` target: model-server processes on loopback ports behind an HAProxy process.

Files under ``<state_dir()>/endpoints/<name>/``:

==========================  ========================================================
``haproxy.cfg``             the router's configuration (checked before every write)
``mirror.lua``              the shadow-traffic Lua action
``admin.sock``              HAProxy's admin socket (mode 600)
``haproxy.pid``             pid of the HAProxy master process
``slots/<color>.json``      pids, ports, argv, version and ``supervised`` flag of each
                            slot's servers (a cache; the watchdog restarts from it)
``server-state``            the router's last runtime state (loaded by a restarted HAProxy)
``watchdog.pid``            pid of the endpoint's watchdog (:mod:`mlops_tasks.deploy.watchdog`)
``events.jsonl``            the watchdog's unhealthy/recovered events
``models/<name>-v<n>/``     the downloaded model folders the servers run
``logs/``                   router and server output
``prediction-log/``         the servers' prediction log
==========================  ========================================================

Servers and router run in their own sessions, so they keep running after the flow
that started them ends; :func:`~mlops_tasks.deploy.strategy.stop_endpoint` stops them.
Every start and stop happens under the endpoint's ``supervise.lock``
(:func:`~mlops_tasks.deploy.state.supervise_lock`), shared with the watchdog.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlops_tasks.deploy.endpoint_security import prepare_security
from mlops_tasks.deploy.haproxy.binary import haproxy_binary, haproxy_version, write_checked
from mlops_tasks.deploy.haproxy.config import (
    AB_MAP_DEFAULT,
    MIRROR_LUA,
    RouterConfig,
    render_config,
    with_server_state,
)
from mlops_tasks.deploy.haproxy.runtime import RouterClient
from mlops_tasks.deploy.haproxy.security import SecurityLayout
from mlops_tasks.deploy.models import Color, SlotStatus
from mlops_tasks.deploy.processes import cmdline, pid_alive, session_members, terminate
from mlops_tasks.deploy.state import supervise_lock
from mlops_tasks.deploy.targets.base import Target
from mlops_tasks.errors import EndpointPortError, ModelLoadError, RouterError, SlotStartError
from mlops_tasks.settings import MlflowConfig

__all__ = [
    "LocalTarget",
    "cmdline",
    "pick_port",
    "pid_alive",
    "port_free",
    "terminate",
    "write_json_atomic",
]


def port_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` (a bind test with SO_REUSEADDR, like HAProxy's)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` by rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


class LocalTarget(Target):
    """Slots are ``mlops-serve`` processes on loopback; the router an HAProxy process.

    Example:
        ```python
        from mlops_tasks.deploy import EndpointSpec, deploy_blue_green
        deploy_blue_green("churn", 3, endpoint=EndpointSpec(name="churn", port=8000),
                          target="local")
        ```
    """

    kind = "local"

    @property
    def cfg_path(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def socket_path(self) -> Path:
        return self.folder / "admin.sock"

    @property
    def pid_path(self) -> Path:
        return self.folder / "haproxy.pid"

    @property
    def state_path(self) -> Path:
        return self.folder / "server-state"

    @property
    def router(self) -> RouterClient:
        return RouterClient(self.socket_path, state_file=self.state_path)

    def _slot_file(self, color: Color) -> Path:
        return self.folder / "slots" / f"{color}.json"

    def _log(self, name: str) -> Path:
        path = self.folder / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- models -----------------------------------------------------------------------

    def prepare(self, model_name: str, version: int, mlflow_config: MlflowConfig | None) -> str:
        """Download the version once into ``models/<name>-v<n>/``; return the model folder."""
        from mlops_tasks.serving.model import download_model
        from mlops_tasks.tracking import connect

        root = self.folder / "models" / f"{model_name}-v{version}"
        marker = root / "folder.txt"
        if marker.exists() and (Path(marker.read_text().strip()) / "MLmodel").exists():
            return marker.read_text().strip()
        resolved, _ = connect(mlflow_config)  # records the credentials for the auth provider
        try:
            local = download_model(
                f"models:/{model_name}/{version}",
                root / "download",
                tracking_uri=resolved.tracking_uri,
                registry_uri=resolved.registry_uri,
            )
        except ModelLoadError as exc:
            raise SlotStartError(f"Cannot fetch {model_name!r} version {version}: {exc}") from exc
        marker.write_text(str(local), encoding="utf-8")
        return str(local)

    # -- slots ------------------------------------------------------------------------

    def _spawn_server(self, args: list[str], env: dict[str, str], log_name: str) -> int:
        """Start one model server in its own session; return its pid once it has exec'd."""
        with open(self._log(log_name), "ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                cwd=self.folder,
            )
        # Until the child has exec'd, /proc shows the parent's command line; wait for it
        # so the slot's pids are recognised as model servers from now on.
        deadline = time.monotonic() + 10
        while "mlops_tasks.serving" not in cmdline(proc.pid) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return proc.pid

    def start_slot(self, color: Color, model_name: str, version: int, handle: str) -> SlotStatus:
        with supervise_lock(self.folder):
            self.stop_slot(color)
            pids: list[int] = []
            ports: list[int] = []
            argvs: list[list[str]] = []
            env = {"MLOPS_MODEL_NAME": model_name, "MLOPS_MODEL_VERSION": str(version)}
            for i in range(1, self.endpoint.replicas + 1):
                port = pick_port()
                args = [
                    sys.executable,
                    "-m",
                    "mlops_tasks.serving.cli",
                    "--model-uri",
                    handle,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--instance-name",
                    f"{self.endpoint.name}-{color}-{i}",
                    "--log-sink",
                    str(self.folder / "prediction-log"),
                    "--log-flush-interval",
                    "0.5",
                    "--graceful-timeout",
                    "10",
                ]
                pids.append(self._spawn_server(args, env, f"{color}-{i}.log"))
                ports.append(port)
                argvs.append(args)
            # New slots start unsupervised: a candidate that dies must be seen dying.
            doc = {
                "model_name": model_name,
                "version": version,
                "pids": pids,
                "ports": ports,
                "handle": handle,
                "started": time.time(),
                "argv": argvs,
                "env": env,
                "supervised": False,
            }
            write_json_atomic(self._slot_file(color), doc)
        return self.slot_status(color)

    def set_supervised(self, color: Color, supervised: bool) -> None:
        """Mark the slot's servers for the watchdog to restart (or not) when they die."""
        with supervise_lock(self.folder):
            doc = self.read_slot(color)
            if doc is None or bool(doc.get("supervised")) == supervised:
                return
            doc.update(supervised=supervised, supervised_at=time.time())
            write_json_atomic(self._slot_file(color), doc)

    def revive_replica(self, color: Color, replica: int) -> int:
        """Start replica ``replica`` (1-based) of the slot again with its recorded argv and port.

        The watchdog calls it (holding ``supervise.lock``); the slot file gets the new pid.

        Raises:
            SlotStartError: The slot has no recorded command line (started by an older version).
        """
        doc = self.read_slot(color)
        if doc is None or not doc.get("argv"):
            raise SlotStartError(f"Slot {color} of endpoint {self.endpoint.name!r} has no recorded argv.")
        pid = self._spawn_server(doc["argv"][replica - 1], doc.get("env") or {}, f"{color}-{replica}.log")
        doc["pids"][replica - 1] = pid
        write_json_atomic(self._slot_file(color), doc)
        return pid

    def read_slot(self, color: Color) -> dict[str, Any] | None:
        """The slot file (pids, ports, argv, ``supervised``), or ``None``."""
        path = self._slot_file(color)
        if not path.exists():
            return None
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return doc
        except ValueError:
            return None

    def slot_status(self, color: Color) -> SlotStatus:
        doc = self.read_slot(color)
        if doc is None:
            return SlotStatus(color=color)
        alive = [
            (pid, port)
            for pid, port in zip(doc["pids"], doc["ports"], strict=True)
            if pid_alive(pid) and "mlops_tasks.serving" in cmdline(pid)
        ]
        addresses = [f"127.0.0.1:{port}" for _, port in alive]
        name, version, healthy = self.probe_servers(addresses, bool(alive) and len(alive) == len(doc["pids"]))
        weight, rstate = self.router_view(color)
        return SlotStatus(
            color=color,
            version=version,
            model_name=name,
            addresses=[f"127.0.0.1:{p}" for p in doc["ports"]],
            pids=[p for p, _ in alive],
            running=len(alive),
            healthy=healthy,
            weight=weight,
            router_state=rstate,
        )

    def stop_slot(self, color: Color, grace_s: float = 10.0) -> None:
        with supervise_lock(self.folder):
            doc = self.read_slot(color)
            if doc is None:
                return
            pids = [p for p in doc["pids"] if "mlops_tasks.serving" in cmdline(p)]
            terminate(pids, grace_s)
            self._slot_file(color).unlink(missing_ok=True)

    def slot_log_tail(self, color: Color, lines: int = 20) -> str:
        out = []
        for i in range(1, self.endpoint.replicas + 1):
            path = self.folder / "logs" / f"{color}-{i}.log"
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # -- router -----------------------------------------------------------------------

    def _router_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) and "haproxy" in cmdline(pid) else None

    def router_running(self) -> bool:
        return self._router_pid() is not None and self.socket_path.exists() and self.router.alive()

    def _render(
        self, slots: dict[Color, SlotStatus], live: Color | None, security: SecurityLayout | None
    ) -> str:
        servers, weights, idle = self.initial_servers(slots, live)
        return with_server_state(
            render_config(
                RouterConfig(
                    bind_host=self.endpoint.host,
                    port=self.endpoint.port,
                    preview_port=self.endpoint.preview,
                    admin_socket=str(self.socket_path),
                    lua_path=str(self.folder / "mirror.lua"),
                    ab_map=str(self.folder / "ab.map"),
                    pidfile=str(self.pid_path),
                    replicas=self.endpoint.replicas,
                    servers=servers,
                    weights=weights,
                    preview_color=idle,
                    security=security,
                    idle_close_on_response=haproxy_version() >= (2, 7),
                )
            ),
            str(self.state_path),
        )

    def _signature(self) -> str:
        spec = self.endpoint
        sec = spec.security.signature()
        where = f"{spec.host}:{spec.port} preview {spec.preview}"
        return f"# endpoint {where} replicas {spec.replicas} security {sec} ab-map"

    def ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> RouterClient:
        with supervise_lock(self.folder):
            self._ensure_router(slots, live)
            self.start_watchdog()
        return self.router

    def _ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> None:
        (self.folder / "mirror.lua").write_text(MIRROR_LUA, encoding="utf-8")
        if not (self.folder / "ab.map").exists():  # it holds the A/B split across reloads
            (self.folder / "ab.map").write_text(AB_MAP_DEFAULT, encoding="utf-8")
        running = self.router_running()
        # Keys and certificate are checked before anything changes; a running router gets
        # them through its runtime API (no reload for a key or certificate change).
        layout = prepare_security(self.folder, self.endpoint, self.router.command if running else None)
        text = self._signature() + "\n" + self._render(slots, live, layout)
        if running:
            current = self.cfg_path.read_text(encoding="utf-8") if self.cfg_path.exists() else ""
            if current.splitlines()[:1] == [self._signature()]:
                return
            # Ports or replicas changed: check the new file, then reload seamlessly.
            for port in (self.endpoint.port, self.endpoint.preview):
                if f":{port}" not in current and not port_free(self.endpoint.host, port):
                    raise EndpointPortError(
                        f"Port {port} on {self.endpoint.host} is taken by another program; "
                        f"choose other ports for endpoint {self.endpoint.name!r}."
                    )
            write_checked(self.cfg_path, text)
            self.state_path.unlink(missing_ok=True)  # the new file is rendered from what runs
            self.reload_router()
            self.router.save_state()
            return
        self._kill_stale_router()
        for port in (self.endpoint.port, self.endpoint.preview):
            if not port_free(self.endpoint.host, port):
                raise EndpointPortError(
                    f"Port {port} on {self.endpoint.host} is taken by another program, so the "
                    f"router of endpoint {self.endpoint.name!r} cannot listen there; stop that "
                    "program or give the endpoint other ports (EndpointSpec.port/preview_port)."
                )
        write_checked(self.cfg_path, text)
        # A fresh router starts from the file rendered from what runs now, not from the
        # state a previous router left.
        self.state_path.unlink(missing_ok=True)
        self._spawn_router()

    def _spawn_router(self) -> None:
        """Start HAProxy (master-worker) from ``haproxy.cfg``; return once its admin socket answers."""
        self.socket_path.unlink(missing_ok=True)
        log = self._log("router.log")
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [haproxy_binary(), "-W", "-f", str(self.cfg_path)],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.folder,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
                if "bind" in tail.lower():
                    raise EndpointPortError(
                        f"The router of endpoint {self.endpoint.name!r} cannot listen on its ports "
                        f"({self.endpoint.port}, {self.endpoint.preview}): {tail}"
                    )
                raise RouterError(f"HAProxy exited at start (code {proc.returncode}): {tail}")
            if self.socket_path.exists() and self.router.alive():
                self.pid_path.write_text(str(proc.pid), encoding="utf-8")
                return
            time.sleep(0.05)
        terminate([proc.pid], 2)
        raise RouterError(f"HAProxy did not open its admin socket within 10 s; see {log}.")

    def router_master_pid(self) -> int | None:
        """The HAProxy master pid the pid file names (alive or not); ``None`` when stopped."""
        try:
            return int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def revive_router(self) -> None:
        """Start a dead router again from the same ``haproxy.cfg`` (the watchdog's restart).

        Checked on HAProxy 2.6: the workers of a SIGKILLed master exit by themselves (they
        watch the master through a pipe); any still in its session are killed first, and
        the ports must be free before the new master binds them. The new process loads
        ``server-state``, so weights and states are the ones last set at runtime.

        Raises:
            EndpointPortError: The ports stayed taken.
            RouterError: HAProxy did not start.
        """
        old = self.router_master_pid()
        if old is not None:
            terminate([p for p in session_members(old) if "haproxy" in cmdline(p)], 2)
        deadline = time.monotonic() + 5
        while not all(port_free(self.endpoint.host, p) for p in (self.endpoint.port, self.endpoint.preview)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._spawn_router()

    def reload_router(self, timeout_s: float = 10.0) -> None:
        """Seamless reload: the master re-reads ``haproxy.cfg`` (already checked) on SIGUSR2.

        The new worker takes the listening sockets over (``expose-fd listeners``) and the
        old one finishes its requests, so no connection is refused. Returns once the old
        worker has exited, so later connections all reach the new one. HAProxy 2.6 closes
        the old worker's *idle* keep-alive client connections at once (2.7+ gets
        ``idle-close-on-response``), which is why deployments never reload.
        """
        pid = self._router_pid()
        if pid is None:
            raise RouterError("The router does not run; nothing to reload.")
        before = self.router.info().get("Pid")
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.router.info().get("Pid") not in (None, before):
                    old = int(before) if before and before.isdigit() else None
                    stop_by = time.monotonic() + 35  # hard-stop-after 30 s
                    while old is not None and pid_alive(old) and time.monotonic() < stop_by:
                        time.sleep(0.05)
                    return
            except RouterError:
                pass
            time.sleep(0.05)
        raise RouterError(f"HAProxy did not reload within {timeout_s:g} s; see {self.folder / 'logs'}.")

    def _kill_stale_router(self) -> None:
        pid = self._router_pid()
        if pid is not None:
            terminate([pid], 5)
        self.pid_path.unlink(missing_ok=True)

    def stop_router(self) -> None:
        with supervise_lock(self.folder):
            self.stop_watchdog()  # first, so it never restarts what is being stopped
            self._kill_stale_router()
            self.socket_path.unlink(missing_ok=True)
