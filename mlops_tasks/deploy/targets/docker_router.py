"""The docker target's router container: the HAProxy image, its config check, start, reload, stop.

A mixin of :class:`~mlops_tasks.deploy.targets.docker.DockerTarget` (it uses the target's
engine client, names, labels, network and router folder); the configuration itself is
rendered by the target, so a test can swap ``render_config`` in that one module.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_tasks.deploy.haproxy.binary import write_checked
from mlops_tasks.deploy.haproxy.runtime import RouterClient
from mlops_tasks.deploy.state import supervise_lock
from mlops_tasks.deploy.targets.docker_options import (
    ROLE_LABEL,
    ROUTER_LIVE_PORT,
    ROUTER_MOUNT,
    ROUTER_PREVIEW_PORT,
    ROUTER_REDIRECT_PORT,
    DockerTargetOptions,
    engine_errors,
)
from mlops_tasks.errors import EndpointDeployError, EndpointPortError, RouterConfigError, RouterError

__all__ = ["DockerRouterContainer"]

logger = logging.getLogger(__name__)


class DockerRouterContainer:
    """Runs an endpoint's HAProxy as a container (mixed into the docker target)."""

    # Provided by DockerTarget (and its base Target). Declared for the type checker only: at
    # run time a definition here would shadow the target's own in the method resolution order.
    endpoint: Any
    folder: Path
    options: DockerTargetOptions
    _router_version: tuple[int, int] | None

    if TYPE_CHECKING:

        @property
        def client(self) -> Any: ...
        @property
        def router(self) -> RouterClient: ...
        @property
        def router_dir(self) -> Path: ...
        @property
        def cfg_path(self) -> Path: ...
        @property
        def socket_path(self) -> Path: ...
        def _containers(self, **labels: str) -> list[Any]: ...
        def _labels(self, **extra: str) -> dict[str, str]: ...
        def _name(self, part: str) -> str: ...
        def _ensure_network(self) -> Any: ...
        def _remove_network_if_unused(self) -> None: ...
        @staticmethod
        def _restart_policy() -> dict[str, Any]: ...
        def stop_watchdog(self) -> None: ...

    def _router_container(self) -> Any | None:
        found = [c for c in self._containers(**{ROLE_LABEL: "router"})]
        return found[0] if found else None

    def router_running(self) -> bool:
        try:
            container = self._router_container()
        except EndpointDeployError:
            return False
        return (
            container is not None
            and container.status == "running"
            and self.socket_path.exists()
            and self.router.alive()
        )

    def _router_volumes(self) -> dict[str, dict[str, str]]:
        """The router folder (read-write) and the endpoint folder (read-only, at its own path).

        The endpoint folder holds what a secured router reads (``apikeys.map``,
        ``tls/endpoint.pem``, the client CA and CRL); mounted at the path it has on the host,
        every path in the configuration and every runtime-API reference to those files
        (``add map <path>``, ``set ssl cert <path>``) is the same on both sides.
        """
        folder = str(self.folder)
        return {
            str(self.router_dir): {"bind": ROUTER_MOUNT, "mode": "rw"},
            folder: {"bind": folder, "mode": "ro"},
        }

    def _published_ports(self) -> dict[str, tuple[str, int]]:
        """Container port -> (host, port): live, preview and the optional plain-HTTP redirect."""
        host = self.endpoint.host
        ports = {
            f"{ROUTER_LIVE_PORT}/tcp": (host, self.endpoint.port),
            f"{ROUTER_PREVIEW_PORT}/tcp": (host, self.endpoint.preview),
        }
        redirect = self.endpoint.security.http_redirect_port
        if redirect is not None and self.endpoint.security.tls:
            ports[f"{ROUTER_REDIRECT_PORT}/tcp"] = (host, redirect)
        return ports

    def _run_router_image(self, args: list[str], what: str) -> tuple[int, str]:
        """Run the router image once with ``args`` (router folder mounted); exit code and output."""
        with engine_errors(what, RouterError):
            container = self.client.containers.run(
                self._router_image(),
                entrypoint=["haproxy"],
                command=args,
                detach=True,
                user=f"{os.getuid()}:{os.getgid()}",
                network_mode="none",
                volumes=self._router_volumes(),
                labels=self._labels(**{ROLE_LABEL: "check"}),
            )
            try:
                code = int(container.wait(timeout=60).get("StatusCode", 1))
                return code, container.logs().decode(errors="replace")
            finally:
                container.remove(force=True)

    def _router_image(self) -> str:
        import docker

        image = self.options.router_image
        with engine_errors(f"find router image {image}", RouterError):
            try:
                self.client.images.get(image)
                return image
            except docker.errors.ImageNotFound:
                pass
            if self.options.pull:
                try:
                    self.client.images.pull(image)
                    return image
                except docker.errors.APIError as exc:
                    detail = exc.explanation or str(exc)
                else:  # pragma: no cover - pull returned
                    detail = ""
            else:
                detail = "pulling is off"
        raise RouterError(
            f"Router image {image!r} is not on the Docker engine and cannot be pulled ({detail}). "
            "Pull or build it (offline: mlops_tasks.testing.docker.ensure_base_image(client, "
            "'bookworm-haproxy')), or set MLOPS_DOCKER_ROUTER_IMAGE to an HAProxy image you have."
        )

    def router_version(self) -> tuple[int, int]:
        """``(major, minor)`` of HAProxy in the router image."""
        if self._router_version is None:
            self.router_dir.mkdir(parents=True, exist_ok=True)
            _, out = self._run_router_image(["-v"], "read the router image's HAProxy version")
            found = re.search(r"version (\d+)\.(\d+)", out)
            self._router_version = (int(found[1]), int(found[2])) if found else (0, 0)
        return self._router_version

    def check_config(self, path: Path) -> None:
        """``haproxy -c`` on ``path`` (inside the router folder), run in the router image.

        Raises:
            RouterConfigError: HAProxy rejected the file.
        """
        code, out = self._run_router_image(
            ["-c", "-q", "-f", f"{ROUTER_MOUNT}/{path.name}"], "check the router configuration"
        )
        if code != 0:
            raise RouterConfigError(f"HAProxy rejected the configuration {path}: {out.strip()}")

    def write_checked(self, text: str) -> bool:
        """Check ``text`` in the router image, then put it in place (atomic rename)."""
        return write_checked(self.cfg_path, text, check=self.check_config)

    def _start_router(self) -> RouterClient:
        import docker

        network = self._ensure_network()
        self.socket_path.unlink(missing_ok=True)
        image = self._router_image()
        host = self.endpoint.host
        name = self._name("router")
        container = None
        try:
            with engine_errors(f"start router container {name}", RouterError):
                container = self.client.containers.create(
                    image,
                    entrypoint=["haproxy"],
                    command=["-W", "-db", "-f", f"{ROUTER_MOUNT}/haproxy.cfg"],
                    name=name,
                    network=network.name,
                    user=f"{os.getuid()}:{os.getgid()}",
                    labels=self._labels(**{ROLE_LABEL: "router"}),
                    volumes=self._router_volumes(),
                    restart_policy=self._restart_policy(),
                    ports=self._published_ports(),
                )
                try:
                    container.start()
                except docker.errors.APIError as exc:
                    text = (exc.explanation or str(exc)).lower()
                    if "address already in use" in text or "port is already allocated" in text:
                        raise EndpointPortError(
                            f"One of ports {sorted(p for _, p in self._published_ports().values())} on "
                            f"{host} is taken, so "
                            f"the router of endpoint {self.endpoint.name!r} cannot publish it: "
                            f"{exc.explanation or exc}. Stop that program or choose other ports."
                        ) from exc
                    raise
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with engine_errors(f"watch router container {name}", RouterError):
                    container.reload()
                if container.status in ("exited", "dead", "restarting"):
                    tail = container.logs(tail=10).decode(errors="replace")
                    raise RouterError(f"The router container {name} exited at start: {tail}")
                if self.socket_path.exists() and self.router.alive():
                    return self.router
                time.sleep(0.05)
            raise RouterError(f"The router container {name} did not open its admin socket within 20 s.")
        except Exception:
            if container is not None:
                try:
                    container.remove(force=True)
                except Exception:  # the engine may be gone; the next run removes it
                    logger.warning("Could not remove router container %s", name)
            raise

    def reload_router(self, timeout_s: float = 10.0) -> None:
        """Seamless reload: SIGUSR2 to the master (PID 1 of the router container).

        The master re-reads ``haproxy.cfg`` (already checked), the new worker takes the
        listening sockets over and the old one finishes its requests. Returns once the old
        worker has exited (at most ``hard-stop-after``).
        """
        container = self._router_container()
        if container is None or container.status != "running":
            raise RouterError("The router does not run; nothing to reload.")
        before = self.router.info().get("Pid")
        with engine_errors("signal the router to reload", RouterError):
            container.kill(signal="SIGUSR2")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.router.info().get("Pid") not in (None, before):
                    stop_by = time.monotonic() + 35  # hard-stop-after 30 s
                    while time.monotonic() < stop_by:
                        with engine_errors("list the router's processes", RouterError):
                            procs = container.top().get("Processes") or []
                        if len(procs) <= 2:  # the master and the new worker
                            return
                        time.sleep(0.1)
                    return
            except RouterError:
                pass
            time.sleep(0.05)
        raise RouterError(f"HAProxy did not reload within {timeout_s:g} s; see docker logs {container.name}.")

    def _remove_router(self) -> None:
        for container in self._containers(**{ROLE_LABEL: "router"}):
            with engine_errors(f"remove router container {container.name}", RouterError):
                container.remove(force=True)

    def stop_router(self) -> None:
        with supervise_lock(self.folder):
            self.stop_watchdog()  # first, so it never reports or re-points what is being stopped
            self._stop_router()

    def _stop_router(self) -> None:
        self._remove_router()
        self.socket_path.unlink(missing_ok=True)
        if not self._containers(**{ROLE_LABEL: "slot"}):
            self._remove_network_if_unused()
