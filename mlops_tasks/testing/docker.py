"""Real Docker for tests and benchmarks: engine check, offline base images, a loopback registry.

No image registry is reachable from the project's machines, so base images are
made locally: ``debootstrap --variant=minbase`` of Debian bookworm with Python,
imported with ``docker import``. The tag carries a hash of the recipe, so an
image is reused across runs until the recipe changes.

Everything made here carries the label :data:`TEST_LABEL` so it can be found and
removed; base images are kept on purpose (they are the reusable cache).

Example:
    ```python
    from mlops_tasks.testing.docker import docker_client, ensure_base_image
    client = docker_client()
    base = ensure_base_image(client)       # e.g. "mlops-tasks-test/bookworm-python:3f2a9c1d7e4b"
    ```
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_LABEL",
    "BASE_RECIPES",
    "DEBIAN_MIRROR",
    "HOW_TO_START",
    "LocalRegistry",
    "TEST_LABEL",
    "TEST_NAMESPACE",
    "base_image_tag",
    "docker_client",
    "ensure_base_image",
    "local_registry",
    "recipe_hash",
    "remove_labelled",
]

TEST_LABEL = "org.mlops-tasks.test"
#: Label of the kept base images (not inherited under TEST_LABEL, so cleaning a test run keeps them).
BASE_LABEL = "org.mlops-tasks.test-base"
TEST_NAMESPACE = "mlops-tasks-test"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOW_TO_START = (
    "No Docker engine answers. Install and start one with `sudo scripts/ensure-system.sh` "
    "(apt-get install docker.io, then dockerd), or point DOCKER_HOST at a running engine."
)

#: Recipe of the base images: name -> debootstrap packages. The tag is a hash of it.
BASE_RECIPES: dict[str, dict[str, Any]] = {
    "bookworm-python": {
        "suite": "bookworm",
        "variant": "minbase",
        "include": ["python3", "python3-venv", "ca-certificates"],
        "changes": ["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'],
    },
    # The router of the docker deploy target: Debian's HAProxy (2.6, with Lua) standing in
    # for the official haproxy:lts image, which cannot be pulled here.
    "bookworm-haproxy": {
        "suite": "bookworm",
        "variant": "minbase",
        "include": ["haproxy"],
        "changes": ['CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]'],
    },
}


def docker_client(base_url: str | None = None, timeout: int = 120) -> Any:
    """A Docker SDK client that answers, or an ``AssertionError`` saying how to start one.

    Tests call this so that a machine without an engine fails (never skips) with
    instructions.

    Args:
        base_url: Engine address; default ``$DOCKER_HOST`` or the local socket.
        timeout: API timeout in seconds.

    Returns:
        A connected ``docker.DockerClient``.

    Example:
        ```python
        client = docker_client()
        print(client.version()["Version"])
        ```
    """
    import docker

    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=timeout)
            if base_url
            else docker.from_env(timeout=timeout)
        )
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise AssertionError(f"{HOW_TO_START} ({exc})") from exc
    return client


def recipe_hash(name: str) -> str:
    """The 12-hex hash of a base-image recipe (the image tag).

    Example:
        ```python
        assert len(recipe_hash("bookworm-python")) == 12
        ```
    """
    recipe = BASE_RECIPES[name]
    text = repr(sorted(recipe.items())) + DEBIAN_MIRROR
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_image_tag(name: str = "bookworm-python") -> str:
    """``mlops-tasks-test/<name>:<recipe hash>``.

    Example:
        ```python
        print(base_image_tag())
        ```
    """
    return f"{TEST_NAMESPACE}/{name}:{recipe_hash(name)}"


def ensure_base_image(client: Any, name: str = "bookworm-python") -> str:
    """Return the tag of a local base image, building it with debootstrap when missing.

    Args:
        client: Docker SDK client.
        name: Key of :data:`BASE_RECIPES`.

    Returns:
        The image tag, usable as ``FROM``.

    Raises:
        RuntimeError: debootstrap is missing or failed.

    Example:
        ```python
        tag = ensure_base_image(docker_client())
        ```
    """
    tag = base_image_tag(name)
    if _image_exists(client, tag):
        return tag
    # Two test processes (xdist workers, a benchmark) may need the same base at once: one builds,
    # the other waits on the lock and then finds the image.
    lock_path = Path(tempfile.gettempdir()) / f"mlops-tasks-base-{name}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _image_exists(client, tag):
            _build_base_image(client, name, tag)
    client.images.get(tag)
    return tag


def _image_exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _build_base_image(client: Any, name: str, tag: str) -> None:
    recipe = BASE_RECIPES[name]
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise RuntimeError(
            "debootstrap is missing: run scripts/ensure-system.sh (apt-get install debootstrap)."
        )
    with tempfile.TemporaryDirectory(prefix="mlops-base-") as tmp:
        root = Path(tmp) / "root"
        cmd = [
            debootstrap,
            f"--variant={recipe['variant']}",
            f"--include={','.join(recipe['include'])}",
            recipe["suite"],
            str(root),
            DEBIAN_MIRROR,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"debootstrap failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}"
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tarball = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
        repository, _, version = tag.partition(":")
        changes = [*recipe["changes"], f"LABEL {BASE_LABEL}={name}:{version}"]
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=changes)


def remove_labelled(client: Any, label: str, value: str | None = None) -> int:
    """Remove every container, network and image carrying ``label`` (``=value`` if given).

    Returns:
        How many objects were removed.

    Example:
        ```python
        remove_labelled(docker_client(), "org.mlops-tasks.test", "run-1234")
        ```
    """
    import docker

    selector = f"{label}={value}" if value is not None else label
    removed = 0
    for container in client.containers.list(all=True, filters={"label": selector}):
        container.remove(force=True)
        removed += 1
    for network in client.networks.list(filters={"label": selector}):
        network.remove()
        removed += 1
    for image in client.images.list(filters={"label": selector}):
        try:
            client.images.remove(image.id, force=True)
            removed += 1
        except docker.errors.APIError:  # already gone with a parent, or in use
            pass
    return removed


@dataclass
class LocalRegistry:
    """A running Debian ``docker-registry`` on loopback.

    Attributes:
        host: ``127.0.0.1:<port>``, the registry part of image names.
        username: User accepted when the registry was started with auth.
        password: Its password.
        pid: Process id (the fixture kills exactly this process).
        root: Folder holding its config, htpasswd file, log and blobs.

    Example:
        ```python
        with local_registry(tmp_path, username="ci", password="pw") as reg:
            push_model_image(ref, reg.host, credentials=RegistryCredentials(username="ci", password="pw"))
        ```
    """

    host: str
    username: str | None
    password: str | None
    pid: int
    root: Path


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))


@contextmanager
def local_registry(
    root: Path, *, username: str | None = None, password: str | None = None
) -> Iterator[LocalRegistry]:
    """Run Debian's ``docker-registry`` on a free loopback port, optionally with htpasswd auth.

    Docker treats 127.0.0.0/8 registries as insecure-allowed, so pushes need no TLS.
    The process is killed by its PID on exit.

    Args:
        root: Folder for the config and the stored blobs.
        username: With ``password``, turns on htpasswd (bcrypt) authentication.
        password: The user's password.

    Yields:
        The running registry.

    Example:
        ```python
        with local_registry(tmp_path) as reg:
            print(reg.host)            # 127.0.0.1:40123
        ```
    """
    import urllib.error
    import urllib.request

    binary = "/usr/bin/docker-registry"
    if not Path(binary).exists():
        raise RuntimeError(
            "docker-registry is missing: run scripts/ensure-system.sh (apt-get install docker-registry)."
        )
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if username and password:
        htpasswd = root / "htpasswd"
        htpasswd.write_text(f"{username}:{_bcrypt(password)}\n")
        lines += ["auth:", "  htpasswd:", "    realm: mlops-test", f"    path: {htpasswd}"]
    config = root / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:  # 401 with auth: it answers
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"docker-registry did not start: {(root / 'registry.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield LocalRegistry(f"127.0.0.1:{port}", username, password, proc.pid, root)
    finally:
        os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
        log.close()


if __name__ == "__main__":
    # `python -m mlops_tasks.testing.docker`: build every missing base image now (make test starts
    # it in the background while the checks run; tests needing a base wait on its lock).
    engine = docker_client()
    for recipe_name in BASE_RECIPES:
        print(ensure_base_image(engine, recipe_name), flush=True)
