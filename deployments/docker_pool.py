"""The Docker work pool variant: the same deployments, run in an image built from this project.

    python -m deployments.docker_pool build                    # build (or reuse) the flow image
    prefect work-pool create mlops-docker --type docker        # once
    python -m deployments.docker_pool deploy                   # build/reuse, then deploy the table
    prefect worker start --pool mlops-docker                   # runs each flow run in a container

The image is built offline: the project's pinned requirements (``pyproject.toml`` with
``constraints.txt``) are downloaded on the host as wheels for the image platform
(:func:`mlops_tasks.containerize.cached_wheelhouse`, the same wheelhouse the model
images use) and installed with ``--no-index`` in a build stage; ``mlops_tasks/``,
``flows/`` and ``deployments/`` are copied to ``/opt/mlops-tasks``. The tag is a hash of
every input (base image id, requirements, constraints, Dockerfile, sources), so an
unchanged project reuses its image, and the deployments say ``image_pull_policy: Never``:
the worker never pulls it. Containers use the host network (the Prefect API and MLflow
on loopback answer as on the host) and mount the state folder at the same path.

Example:
    ```python
    from deployments.docker_pool import build_flow_image, deploy_to_docker_pool
    image = build_flow_image(base_image="python:3.11-slim")
    deploy_to_docker_pool(image.tag)
    ```
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deployments.definitions import DEPLOYMENTS, by_name
from mlops_tasks.errors import ImageBuildError, WorkPoolNotFoundError
from mlops_tasks.settings import state_dir

__all__ = [
    "CODE_DIR",
    "DOCKERFILE",
    "FlowImage",
    "IMAGE_EXTRA_REQUIREMENTS",
    "IMAGE_LABEL",
    "POOL",
    "PROJECT_ROOT",
    "REPOSITORY",
    "SOURCES",
    "build_flow_image",
    "check_docker_pool",
    "content_hash",
    "deploy_to_docker_pool",
    "job_variables",
    "main",
    "project_requirements",
    "prune_flow_images",
]

logger = logging.getLogger(__name__)

POOL = "mlops-docker"
REPOSITORY = "mlops-tasks-flows"
IMAGE_LABEL = "org.mlops-tasks.flow-image"
CODE_DIR = "/opt/mlops-tasks"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("mlops_tasks", "flows", "deployments")
# pip download resolves environment markers for "3.11" as a recent 3.11.x, but Debian
# bookworm's python3 is 3.11.2, where redis needs async-timeout (python_full_version < 3.11.3).
IMAGE_EXTRA_REQUIREMENTS = ("async-timeout>=4.0.3",)

DOCKERFILE = """\
FROM {base} AS build
COPY requirements.txt constraints.txt /build/
COPY wheels /build/wheels
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /build/wheels \\
      -r /build/requirements.txt -c /build/constraints.txt

FROM {base}
COPY --from=build /opt/venv /opt/venv
COPY src/ {code}/
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH={code} PYTHONUNBUFFERED=1 \\
    DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true GX_ANALYTICS_ENABLED=false
WORKDIR {code}
LABEL {label}={content}
"""


class FlowImage(BaseModel):
    """The flow image: its tag, content hash, and whether it was reused or built now."""

    tag: str
    content_hash: str
    reused: bool
    build_seconds: float | None = None


def project_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """The runtime requirements of ``pyproject.toml`` (``[project].dependencies``)."""
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def _source_files(root: Path) -> list[Path]:
    files = []
    for top in SOURCES:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def content_hash(base_image_id: str, requirements: Iterable[str], root: Path = PROJECT_ROOT) -> str:
    """Hash of every input of the flow image (base image id, requirements, constraints, sources)."""
    digest = hashlib.sha256()
    for part in (base_image_id, DOCKERFILE, *requirements, (root / "constraints.txt").read_text()):
        digest.update(part.encode())
        digest.update(b"\0")
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_flow_image(
    base_image: str = "python:3.11-slim",
    *,
    client: Any | None = None,
    root: Path = PROJECT_ROOT,
    labels: dict[str, str] | None = None,
    wheel_cache_dir: Path | None = None,
    keep_images: int = 3,
) -> FlowImage:
    """Build the flow image offline, or reuse the one whose inputs are unchanged.

    Args:
        base_image: A local image with ``python3`` and its ``venv`` module (CPython 3.11);
            it is never pulled.
        client: Docker SDK client (default: from the environment).
        root: Project folder.
        labels: More image labels.
        wheel_cache_dir: Wheelhouse cache (default ``<state dir>/wheelhouse``); Docker's
            layer cache then reuses the dependency stage when only sources changed.
        keep_images: Flow images kept after a build (older tags are removed; they share
            the dependency layers, so each costs only its sources).

    Returns:
        The image tag ``mlops-tasks-flows:<12 hex of the inputs>``.

    Raises:
        ImageBuildError: The base image is missing or the build failed (the message has
            the failing step's output).
        WheelhouseError: A requirement has no wheel for the image platform.
    """
    import docker

    from mlops_tasks.containerize import ImageSpec, cached_wheelhouse

    client = client or docker.from_env()
    try:
        base = client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(
            f"Base image {base_image!r} is not on the Docker engine and is never pulled here: load it "
            "(docker load / docker import) or pass another --base-image with python3 and venv."
        ) from None
    requirements = [*project_requirements(root / "pyproject.toml"), *IMAGE_EXTRA_REQUIREMENTS]
    digest = content_hash(base.id, requirements, root)
    tag = f"{REPOSITORY}:{digest[:12]}"
    try:
        client.images.get(tag)
        logger.info("Flow image %s is up to date (reused)", tag)
        return FlowImage(tag=tag, content_hash=digest, reused=True)
    except docker.errors.ImageNotFound:
        pass
    started = time.monotonic()
    context = state_dir() / "images" / f"flows-{digest[:12]}"
    shutil.rmtree(context, ignore_errors=True)
    (context / "wheels").mkdir(parents=True)
    (context / "requirements.txt").write_text("\n".join(requirements) + "\n")
    shutil.copyfile(root / "constraints.txt", context / "constraints.txt")
    spec = ImageSpec(wheel_cache_dir=wheel_cache_dir)
    wheels = cached_wheelhouse(
        requirements, context / "requirements.txt", spec, constraints=[root / "constraints.txt"]
    )
    for wheel in wheels.glob("*.whl"):
        try:
            os.link(wheel, context / "wheels" / wheel.name)
        except OSError:
            shutil.copyfile(wheel, context / "wheels" / wheel.name)
    for path in _source_files(root):
        target = context / "src" / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (context / "Dockerfile").write_text(
        DOCKERFILE.format(base=base_image, code=CODE_DIR, label=IMAGE_LABEL, content=digest[:12])
    )
    try:
        client.images.build(
            path=str(context), tag=tag, labels=labels or {}, rm=True, forcerm=True, pull=False
        )
    except docker.errors.BuildError as exc:
        output = "".join(str(line.get("stream") or line.get("error") or "") for line in exc.build_log)
        raise ImageBuildError(f"Building flow image {tag} failed: {exc.msg}\n{output[-3000:]}") from exc
    finally:
        shutil.rmtree(context, ignore_errors=True)
    seconds = time.monotonic() - started
    logger.info("Built flow image %s in %.0f s", tag, seconds)
    prune_flow_images(client, keep_images)
    return FlowImage(tag=tag, content_hash=digest, reused=False, build_seconds=seconds)


def prune_flow_images(client: Any, keep: int = 3) -> list[str]:
    """Remove all but the ``keep`` newest ``mlops-tasks-flows`` images; returns the removed tags.

    An image a container still uses is kept (Docker refuses to remove it).
    """
    import docker

    images = sorted(
        client.images.list(name=REPOSITORY), key=lambda image: image.attrs["Created"], reverse=True
    )
    removed = []
    for image in images[keep:]:
        for tag in image.tags:
            try:
                client.images.remove(tag)
                removed.append(tag)
            except docker.errors.APIError as exc:
                logger.info("Keeping flow image %s: %s", tag, exc)
    return removed


def job_variables(state: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker job variables: never pull, host network, the state folder mounted at its own path."""
    state = (state or state_dir()).resolve()
    variables: dict[str, Any] = {
        "image_pull_policy": "Never",
        "network_mode": "host",
        "env": {"MLOPS_STATE_DIR": str(state)},
        "volumes": [f"{state}:{state}"],
        "auto_remove": True,
    }
    variables.update(extra or {})
    return variables


def check_docker_pool(client, pool: str, api_url: str) -> None:
    """Raise a clear error unless ``pool`` exists on the server and is a Docker pool.

    Raises:
        WorkPoolNotFoundError: No such pool, or it is not of type ``docker``.
    """
    from prefect.exceptions import ObjectNotFound

    try:
        work_pool = client.read_work_pool(pool)
    except ObjectNotFound:
        raise WorkPoolNotFoundError(
            f"Work pool {pool!r} does not exist on {api_url}: create it with "
            f"`prefect work-pool create {pool} --type docker` (needs prefect-docker), or pass --pool."
        ) from None
    if work_pool.type != "docker":
        raise WorkPoolNotFoundError(
            f"Work pool {pool!r} on {api_url} is of type {work_pool.type!r}, not 'docker': pick a Docker "
            "pool, or deploy to it with `prefect deploy --all` instead."
        )


def deploy_to_docker_pool(
    image: str,
    pool: str = POOL,
    *,
    only: Iterable[str] | None = None,
    state: Path | None = None,
    extra_job_variables: dict[str, Any] | None = None,
) -> list[str]:
    """Create or update the table's deployments on a Docker work pool, running ``image``.

    Returns:
        ``flow/deployment`` names deployed.

    Raises:
        PrefectUnavailableError: The Prefect API does not answer.
        WorkPoolNotFoundError: ``pool`` does not exist or is not a Docker pool.
    """
    from prefect.client.orchestration import get_client

    from deployments.local_server import check_api, configured_api_url

    url = configured_api_url() or "(PREFECT_API_URL unset)"
    check_api(url)
    with get_client(sync_client=True) as client:
        check_docker_pool(client, pool, url)
    specs = [by_name(name) for name in only] if only else list(DEPLOYMENTS)
    variables = job_variables(state, extra_job_variables)
    for spec in specs:
        deployment = spec.load_flow().to_deployment(
            name=spec.name,
            description=spec.description,
            tags=list(spec.tags),
            parameters=spec.parameters(),
            schedules=[spec.schedule.to_prefect()] if spec.schedule else None,
            job_variables=variables,
        )
        deployment.apply(image=image, work_pool_name=pool)
    return [spec.full_name for spec in specs]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build`` the flow image, or ``deploy`` the table to a Docker pool."""
    from mlops_tasks.errors import MLOpsError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "deploy"])
    parser.add_argument("--base-image", default="python:3.11-slim")
    parser.add_argument("--pool", default=POOL)
    parser.add_argument("--only", action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        image = build_flow_image(args.base_image)
        print(f"{'reused' if image.reused else 'built'} {image.tag}")
        if args.command == "deploy":
            for name in deploy_to_docker_pool(image.tag, args.pool, only=args.only):
                print(f"deployed {name} on {args.pool}")
    except MLOpsError as exc:
        print(f"docker pool {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
