"""The ``docker`` target: model-server containers behind an HAProxy container.

One user-defined bridge network per endpoint (``mlops-<endpoint>-<state hash>``) holds:

- the slot containers (``...-blue-1`` .. ``...-green-n``): the model image built by
  :func:`mlops_tasks.containerize.build_model_image` for the version, each server on
  port 8080 of its own address in the network;
- the router container: HAProxy from :attr:`DockerTargetOptions.router_image` (default
  ``haproxy:lts``), rendered from the same template as the local target's
  (:func:`mlops_tasks.deploy.router.render_config`), publishing the endpoint and preview
  ports on the endpoint's host.

Files under ``<state_dir()>/endpoints/<name>/``:

==========================  ========================================================
``router/``                 bind-mounted into the router at ``/run/mlops-router``:
                            ``haproxy.cfg``, ``mirror.lua``, ``admin.sock`` and
                            ``server-state`` (the runtime state a restarted router loads)
``docker.json``             the target's options (router image, base image, labels)
``models/<name>-v<n>/``     ``image.txt``: the image id prepared for the version
``prediction-log/``         bind-mounted into every slot: the servers' prediction log
                            (the same layout as the local target's, for the drift check)
==========================  ========================================================

The whole endpoint folder is also mounted read-only into the router at its own path, so a
secured endpoint's files (``apikeys.map``, ``tls/endpoint.pem``, the client CA and CRL,
all mode 600) have the same path in the configuration, in runtime-API commands and on
the host; the router's access log is the container's output (``docker logs``).

The router runs as the uid/gid of the deploying process, so its admin socket (mode
600) and the endpoint's mode-600 key and certificate files belong to that user: HAProxy
reads them and its runtime API is reachable from the host by their owner only. The host
reaches the slots on their network addresses (health checks, the bake guard's
``/metrics``); clients use the published ports.

Supervision: the router container has the restart policy ``on-failure`` (at most
:attr:`~mlops_tasks.deploy.supervision.SupervisionPolicy.max_restarts` restarts); a slot's
containers get it when the slot is supervised (:meth:`DockerTarget.set_supervised`,
through ``container.update``) and lose it before it is retired, so a candidate that
dies stays dead. The endpoint's watchdog (:mod:`mlops_tasks.deploy.watchdog`) reports
the restarts and re-points the router at a restarted container's new address.

What runs is read from the engine (containers carry labels naming endpoint, slot and
replica) and from the router, never only from a file. Every container and the network
carry ``org.mlops-tasks.endpoint=<name>``, plus :attr:`DockerTargetOptions.labels`
(tests add their run id). Slots and router keep running after the flow ends;
:func:`~mlops_tasks.deploy.strategy.stop_endpoint` removes them and the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from mlops_tasks.deploy.endpoint_security import prepare_security
from mlops_tasks.deploy.haproxy.config import (
    AB_BACKENDS,
    AB_MAP_DEFAULT,
    BACKENDS,
    BACKUP_SUFFIX,
    LIVE,
    MIRROR_LUA,
    RouterConfig,
    render_config,
    with_server_state,
)
from mlops_tasks.deploy.haproxy.runtime import RouterClient
from mlops_tasks.deploy.haproxy.security import SecurityLayout
from mlops_tasks.deploy.models import Color, SlotStatus
from mlops_tasks.deploy.state import supervise_lock
from mlops_tasks.deploy.targets.base import Target
from mlops_tasks.deploy.targets.docker_options import (
    ENDPOINT_LABEL,
    REPLICA_LABEL,
    ROLE_LABEL,
    ROUTER_LIVE_PORT,
    ROUTER_MOUNT,
    ROUTER_PREVIEW_PORT,
    ROUTER_REDIRECT_PORT,
    SLOT_COMMAND,
    SLOT_LABEL,
    SLOT_LOG_MOUNT,
    SLOT_PORT,
    STATE_LABEL,
    DockerTargetOptions,
    engine_errors,
)
from mlops_tasks.deploy.targets.docker_router import DockerRouterContainer
from mlops_tasks.deploy.targets.local import port_free
from mlops_tasks.errors import (
    EndpointDeployError,
    EndpointPortError,
    SlotStartError,
    UnverifiedImageError,
)
from mlops_tasks.settings import MlflowConfig

__all__ = ["ENDPOINT_LABEL", "DockerTarget", "DockerTargetOptions"]

logger = logging.getLogger(__name__)


class DockerTarget(DockerRouterContainer, Target):
    """Slots are model-server containers; the router an HAProxy container.

    Example:
        ```python
        from mlops_tasks.deploy import EndpointSpec, deploy_blue_green
        deploy_blue_green("churn", 3, endpoint=EndpointSpec(name="churn", port=8000),
                          target="docker")
        ```
    """

    kind = "docker"

    def __init__(self, endpoint: Any, options: DockerTargetOptions | None = None) -> None:
        super().__init__(endpoint)
        saved = None
        if options is None and self.options_path.exists():
            try:
                saved = json.loads(self.options_path.read_text(encoding="utf-8"))
            except ValueError:
                saved = None
        self.options = options or DockerTargetOptions.resolve(saved)
        self._client: Any = None
        self._router_version: tuple[int, int] | None = None

    # -- names, paths, labels ------------------------------------------------------------

    @property
    def options_path(self) -> Path:
        return self.folder / "docker.json"

    @property
    def router_dir(self) -> Path:
        return self.folder / "router"

    @property
    def cfg_path(self) -> Path:
        return self.router_dir / "haproxy.cfg"

    @property
    def socket_path(self) -> Path:
        return self.router_dir / "admin.sock"

    @property
    def state_path(self) -> Path:
        return self.router_dir / "server-state"

    @property
    def router(self) -> RouterClient:
        return RouterClient(self.socket_path, state_file=self.state_path)

    @property
    def state_key(self) -> str:
        """12 hex of the state folder: endpoints of the same name in other state folders differ."""
        return hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:12]

    @property
    def network_name(self) -> str:
        return f"mlops-{self.endpoint.name}-{self.state_key[:6]}"

    def _name(self, part: str) -> str:
        return f"{self.network_name}-{part}"

    def _labels(self, **extra: str) -> dict[str, str]:
        from mlops_tasks.containerize import MANAGED_LABEL

        return {
            **self.options.labels,
            MANAGED_LABEL: "true",
            ENDPOINT_LABEL: self.endpoint.name,
            STATE_LABEL: self.state_key,
            **extra,
        }

    def _filters(self, **extra: str) -> dict[str, Any]:
        want = {ENDPOINT_LABEL: self.endpoint.name, STATE_LABEL: self.state_key, **extra}
        return {"label": [f"{k}={v}" for k, v in want.items()]}

    @property
    def client(self) -> Any:
        from mlops_tasks.containerize import DockerEngine

        if self._client is None:
            self._client = DockerEngine(base_url=self.options.engine_url, timeout_s=120).client()
        return self._client

    def use_options(self, options: DockerTargetOptions) -> None:
        """Use ``options`` from now on and keep them for the endpoint's later runs."""
        self.options = options
        self._client = None
        self._save_options()

    def _save_options(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.options_path.write_text(self.options.model_dump_json(indent=2), encoding="utf-8")

    def _containers(self, **labels: str) -> list[Any]:
        with engine_errors("list the endpoint's containers", EndpointDeployError):
            found: list[Any] = self.client.containers.list(all=True, filters=self._filters(**labels))
            return found

    def _ensure_network(self) -> Any:
        with engine_errors(f"create network {self.network_name}"):
            found = [
                n for n in self.client.networks.list(names=[self.network_name]) if n.name == self.network_name
            ]
            if found:
                return found[0]
            return self.client.networks.create(
                self.network_name, driver="bridge", labels=self._labels(), check_duplicate=True
            )

    def _remove_network_if_unused(self) -> None:
        if self._containers():
            return
        with engine_errors(f"remove network {self.network_name}", EndpointDeployError):
            for net in self.client.networks.list(filters=self._filters()):
                net.remove()

    # -- models -------------------------------------------------------------------------

    def image_spec(self) -> Any:
        """The :class:`~mlops_tasks.containerize.ImageSpec` of this endpoint's model images.

        The deployment pipeline builds and verifies with it, so :meth:`prepare` finds the
        same (verified) image by its content hash.

        Example:
            ```python
            ref = build_model_image("churn", 3, spec=DockerTarget(endpoint).image_spec())
            ```
        """
        from mlops_tasks.containerize import ImageSpec

        spec_args: dict[str, Any] = {
            "labels": dict(self.options.labels),
            "pull_base": self.options.pull,
            "repository": self.options.repository,
        }
        if self.options.base_image:
            spec_args["base_image"] = self.options.base_image
        return ImageSpec(**spec_args)

    def prepare(self, model_name: str, version: int, mlflow_config: MlflowConfig | None) -> str:
        """Build (or reuse) the version's model image; return its id.

        The id is kept in ``models/<name>-v<n>/image.txt`` and reused while the engine has
        the image. The image must be the one recorded as verified for the version
        (:func:`~mlops_tasks.containerize.verify_model_image`) unless the deployment is
        forced or :attr:`DockerTargetOptions.allow_unverified` is set.

        Raises:
            UnverifiedImageError: The image did not pass verification.
            ImageBuildError: The image could not be built.
        """
        import docker

        from mlops_tasks.containerize import build_model_image, image_verified

        marker = self.folder / "models" / f"{model_name}-v{version}" / "image.txt"
        image_id = None
        if marker.exists():
            try:
                with engine_errors(f"look up image of {model_name} v{version}"):
                    image_id = self.client.images.get(marker.read_text().strip()).id
            except (SlotStartError, docker.errors.ImageNotFound):
                image_id = None
        if image_id is None:
            with engine_errors(f"build the image of {model_name} v{version}"):
                ref = build_model_image(
                    model_name,
                    version,
                    spec=self.image_spec(),
                    engine=self.client,
                    mlflow_config=mlflow_config,
                )
            image_id = ref.image_id
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(image_id, encoding="utf-8")
        if not (self.force or self.options.allow_unverified) and not image_verified(
            image_id, model_name, version, mlflow_config=mlflow_config
        ):
            raise UnverifiedImageError(
                f"Image {image_id[:19]} of {model_name!r} version {version} has not passed "
                "verify_model_image, so it is not deployed; verify it first (the deployment pipeline "
                "does: build, verify, deploy), or deploy with force=True."
            )
        return image_id

    # -- slots --------------------------------------------------------------------------

    def _log_dir(self) -> Path:
        from mlops_tasks.containerize import IMAGE_UID

        path = self.folder / "prediction-log"
        path.mkdir(parents=True, exist_ok=True)
        # The servers run as the image's user (uid IMAGE_UID) and write here.
        if os.geteuid() == 0:
            os.chown(path, IMAGE_UID, IMAGE_UID)
        elif path.stat().st_uid == os.geteuid():
            path.chmod(0o1777)
        return path

    def start_slot(self, color: Color, model_name: str, version: int, handle: str) -> SlotStatus:
        with supervise_lock(self.folder):
            self._start_slot(color, model_name, version, handle)
        return self.slot_status(color)

    def _start_slot(self, color: Color, model_name: str, version: int, handle: str) -> None:
        self.stop_slot(color, grace_s=5)
        self._save_options()
        network = self._ensure_network()
        log_dir = self._log_dir()
        for i in range(1, self.endpoint.replicas + 1):
            name = self._name(f"{color}-{i}")
            with engine_errors(f"start container {name} of slot {color}"):
                # No restart policy: a candidate that dies stays dead (see set_supervised).
                self.client.containers.run(
                    handle,
                    command=[*SLOT_COMMAND, "--graceful-timeout", "10"],
                    name=name,
                    detach=True,
                    network=network.name,
                    labels=self._labels(**{ROLE_LABEL: "slot", SLOT_LABEL: color, REPLICA_LABEL: str(i)}),
                    environment={
                        "MLOPS_MODEL_NAME": model_name,
                        "MLOPS_MODEL_VERSION": str(version),
                        "MLOPS_SERVE_INSTANCE": f"{self.endpoint.name}-{color}-{i}",
                        "MLOPS_PREDICTION_LOG_FLUSH_S": "0.5",
                        **self.options.slot_env,
                    },
                    volumes={str(log_dir): {"bind": SLOT_LOG_MOUNT, "mode": "rw"}},
                    stop_signal="SIGTERM",
                )

    def set_supervised(self, color: Color, supervised: bool) -> None:
        """Give the slot's containers the restart policy ``on-failure`` (or take it away)."""
        policy = self._restart_policy() if supervised else {"Name": "no", "MaximumRetryCount": 0}
        with supervise_lock(self.folder):
            for container in self._slot_containers(color):
                with engine_errors(f"set the restart policy of {container.name}", EndpointDeployError):
                    container.update(restart_policy=policy)

    @staticmethod
    def _restart_policy() -> dict[str, Any]:
        from mlops_tasks.deploy.supervision import SupervisionPolicy

        return {"Name": "on-failure", "MaximumRetryCount": SupervisionPolicy.from_env().max_restarts}

    @staticmethod
    def _supervision_view(container: Any) -> dict[str, Any]:
        attrs = container.attrs
        policy = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
        count = int(attrs.get("RestartCount") or 0)
        return {
            "id": container.id,
            "status": container.status,
            "restart_count": count,
            "exit_code": (attrs.get("State") or {}).get("ExitCode"),
            "supervised": policy.get("Name") in ("on-failure", "always", "unless-stopped"),
            "exhausted": policy.get("Name") == "on-failure"
            and count >= int(policy.get("MaximumRetryCount") or 0) > 0,
        }

    def slot_container_states(self, color: Color) -> list[dict[str, Any]]:
        """Status, restart count, policy and address of each container of the slot (the watchdog's view)."""
        return [
            {
                **self._supervision_view(c),
                "replica": int(c.labels.get(REPLICA_LABEL, "0")),
                "address": self._address(c) if c.status == "running" else None,
            }
            for c in self._slot_containers(color)
        ]

    def router_container_state(self) -> dict[str, Any] | None:
        """Status and restart count of the router container (``None`` when there is none)."""
        container = self._router_container()
        return None if container is None else self._supervision_view(container)

    def repoint(self, color: Color, replica: int, address: str) -> bool:
        """Point server ``<color>_<replica>`` (its backup twin, its A/B twin) at ``address`` where it differs.

        A server in maintenance in backend ``live`` (a detached slot) is left alone.
        Returns True when something changed (the router's state is saved then).
        """
        name = f"{color}_{replica}"
        twin = f"{name}{BACKUP_SUFFIX}"
        states = [s for s in self.router.servers() if s.name in (name, twin)]
        live = next((s for s in states if s.backend == LIVE and s.name == name), None)
        if live is None or live.status.startswith("MAINT") or all(s.address == address for s in states):
            return False
        host, port = address.rsplit(":", 1)
        for backend in BACKENDS:
            self.router.set_addr(backend, name, host, int(port))
        if any(s.name == twin for s in states):  # the backup twin in backend live follows it
            self.router.set_addr(LIVE, twin, host, int(port))
        if any(s.backend == AB_BACKENDS[color] for s in states):  # and the slot's A/B backend
            self.router.set_addr(AB_BACKENDS[color], name, host, int(port))
        self.router.save_state()
        logger.info("Endpoint %s: server %s re-pointed to %s", self.endpoint.name, name, address)
        return True

    def _slot_containers(self, color: Color) -> list[Any]:
        found = self._containers(**{ROLE_LABEL: "slot", SLOT_LABEL: color})
        return sorted(found, key=lambda c: int(c.labels.get(REPLICA_LABEL, "0")))

    def _address(self, container: Any) -> str | None:
        nets = container.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
        ip = (nets.get(self.network_name) or {}).get("IPAddress")
        return f"{ip}:{SLOT_PORT}" if ip else None

    def slot_status(self, color: Color) -> SlotStatus:
        containers = self._slot_containers(color)
        if not containers:
            return SlotStatus(color=color)
        alive = [c for c in containers if c.status == "running"]
        addresses = [a for a in (self._address(c) for c in alive) if a]
        name, version, healthy = self.probe_servers(
            addresses, bool(alive) and len(alive) == len(containers) == len(addresses)
        )
        weight, rstate = self.router_view(color)
        return SlotStatus(
            color=color,
            version=version,
            model_name=name,
            addresses=addresses,
            containers=[c.id for c in containers],
            running=len(alive),
            healthy=healthy,
            weight=weight,
            router_state=rstate,
        )

    def stop_slot(self, color: Color, grace_s: float = 10.0) -> None:
        with supervise_lock(self.folder):
            self._stop_slot(color, grace_s)

    def _stop_slot(self, color: Color, grace_s: float) -> None:
        for container in self._slot_containers(color):
            with engine_errors(f"stop container {container.name}", EndpointDeployError):
                try:
                    if container.status == "running":
                        container.stop(timeout=max(1, int(grace_s)))
                    container.remove(force=True)
                except Exception as exc:
                    import docker

                    if not isinstance(exc, docker.errors.NotFound):
                        raise
        self._remove_network_if_unused()

    def slot_log_tail(self, color: Color, lines: int = 20) -> str:
        out = []
        try:
            for container in self._slot_containers(color):
                with engine_errors(f"read the log of {container.name}"):
                    text = container.logs(tail=lines).decode(errors="replace")
                out.append(f"[{container.name}, {container.status}]\n{text.rstrip()}")
        except EndpointDeployError as exc:
            out.append(str(exc))
        return "\n".join(out)

    # -- router -------------------------------------------------------------------------

    def _render(
        self, slots: dict[Color, SlotStatus], live: Color | None, security: SecurityLayout | None
    ) -> str:
        servers, weights, idle = self.initial_servers(slots, live)
        return with_server_state(
            render_config(
                RouterConfig(
                    bind_host="0.0.0.0",
                    port=ROUTER_LIVE_PORT,
                    preview_port=ROUTER_PREVIEW_PORT,
                    admin_socket=f"{ROUTER_MOUNT}/admin.sock",
                    lua_path=f"{ROUTER_MOUNT}/mirror.lua",
                    ab_map=f"{ROUTER_MOUNT}/ab.map",
                    pidfile=None,
                    replicas=self.endpoint.replicas,
                    servers=servers,
                    weights=weights,
                    preview_color=idle,
                    security=security,
                    idle_close_on_response=self.router_version() >= (2, 7),
                )
            ),
            f"{ROUTER_MOUNT}/{self.state_path.name}",
        )

    def render(
        self, slots: dict[Color, SlotStatus], live: Color | None, security: SecurityLayout | None
    ) -> str:
        """The router's configuration file for ``slots`` with ``live`` at 100 % (signature first).

        A reload makes HAProxy forget what the runtime API changed, so the file written
        before a reload is always rendered from what runs now.
        """
        return self._signature() + "\n" + self._render(slots, live, security)

    def _publish_signature(self) -> str:
        """What a router container fixes when it is created: published ports, image, mounts.

        Every router gets the read-only endpoint-folder mount, but only a secured endpoint's
        signature names it: a plain router made before the mount existed is reloaded in place
        (no interruption), while securing it replaces the container, which then has it.
        """
        spec = self.endpoint
        redirect = spec.security.http_redirect_port if spec.security.tls else None
        plain = f" redirect {redirect}" if redirect is not None else ""
        mounts = " mounts endpoint-ro" if spec.security.enabled else ""
        return (
            f"# endpoint {spec.host}:{spec.port} preview {spec.preview}{plain} "
            f"image {self.options.router_image}{mounts}"
        )

    def _signature(self) -> str:
        spec = self.endpoint
        sec = spec.security.signature()
        return f"{self._publish_signature()} replicas {spec.replicas} security {sec} ab-map"

    def _security_layout(self, running: bool) -> SecurityLayout | None:
        """Check and write keys, certificate and client CA (:func:`prepare_security`); the layout.

        The endpoint folder is mounted read-only at its own path in the router container,
        so the paths are the host's; only the plain-HTTP redirect binds the container's
        own port (published on the configured one).
        """
        command = self.router.command if running else None
        return prepare_security(self.folder, self.endpoint, command, redirect_bind_port=ROUTER_REDIRECT_PORT)

    def _check_ports_free(self, signature: str = "") -> None:
        import re

        found = re.match(r"# endpoint .*:(\d+) preview (\d+) (?:redirect (\d+) )?", signature)
        mine = {int(p) for p in found.groups() if p} if found else set()
        for port in sorted(p for _, p in self._published_ports().values()):
            if port in mine:
                continue
            if not port_free(self.endpoint.host, port):
                raise EndpointPortError(
                    f"Port {port} on {self.endpoint.host} is taken by another program, so the router "
                    f"of endpoint {self.endpoint.name!r} cannot publish it; stop that program or give "
                    "the endpoint other ports (EndpointSpec.port/preview_port)."
                )

    def ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> RouterClient:
        with supervise_lock(self.folder):
            router = self._ensure_router(slots, live)
            self.start_watchdog()
        return router

    def _ensure_router(self, slots: dict[Color, SlotStatus], live: Color | None) -> RouterClient:
        self.router_dir.mkdir(parents=True, exist_ok=True)
        (self.router_dir / "mirror.lua").write_text(MIRROR_LUA, encoding="utf-8")
        os.chmod(self.router_dir / "mirror.lua", 0o644)
        if not (self.router_dir / "ab.map").exists():  # it holds the A/B split across reloads
            (self.router_dir / "ab.map").write_text(AB_MAP_DEFAULT, encoding="utf-8")
            os.chmod(self.router_dir / "ab.map", 0o644)
        running = self.router_running()
        # Keys and certificate are checked before anything changes; a running router gets
        # them through its runtime API (no reload for a key or certificate change).
        layout = self._security_layout(running)
        if running:
            current = self.cfg_path.read_text(encoding="utf-8") if self.cfg_path.exists() else ""
            first = current.splitlines()[:1]
            if first == [self._signature()]:
                return self.router
            text = self.render(slots, live, layout)
            if first and first[0].startswith(self._publish_signature() + " "):
                # Only the servers changed: check, then a seamless reload (USR2, master-worker).
                self.write_checked(text)
                self.state_path.unlink(missing_ok=True)  # the new file is rendered from what runs
                self.reload_router()
                self.router.save_state()
                return self.router
            # Published ports (or the router image) changed: a container's ports are fixed when
            # it is created, so the router is replaced (clients see a short interruption).
            self._check_ports_free(first[0] if first else "")
            self.write_checked(text)
            logger.warning(
                "Endpoint %s: ports or router image changed; replacing the router container",
                self.endpoint.name,
            )
            self._remove_router()
            self.state_path.unlink(missing_ok=True)
            return self._start_router()
        self._save_options()
        self._remove_router()
        self._check_ports_free()
        self.write_checked(self.render(slots, live, layout))
        # A fresh router starts from the file rendered from what runs now, not from the state
        # a previous router left.
        self.state_path.unlink(missing_ok=True)
        return self._start_router()
