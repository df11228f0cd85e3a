"""Build (or reuse) a model image through the Docker SDK.

Layers go base -> dependencies -> server -> model, so a new version with the same
dependencies rebuilds in seconds; an image of identical content is reused; old images
of the model beyond ``ImageSpec.keep_images`` are pruned after a build.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops_tasks.containerize.context import prepare_build_context
from mlops_tasks.containerize.engine import DockerEngine, engine_client, find_image
from mlops_tasks.containerize.models import BuildContext, ImageRef, ImageSpec
from mlops_tasks.containerize.progress import LogFn, emit_progress
from mlops_tasks.containerize.prune import prune_model_images
from mlops_tasks.containerize.wheelhouse import fill_wheelhouse
from mlops_tasks.errors import BaseImageNotFoundError, DockerUnavailableError, ImageBuildError
from mlops_tasks.settings import MlflowConfig

__all__ = ["build_model_image"]

_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")


def _ensure_base_image(client: Any, spec: ImageSpec, log: LogFn | None) -> None:
    import docker

    if find_image(client, spec.base_image) is not None:
        return
    reason = "pulling is turned off (ImageSpec.pull_base=False)"
    if spec.pull_base:
        emit_progress(log, f"Base image {spec.base_image} is missing; pulling it")
        try:
            client.images.pull(spec.base_image)
            return
        except docker.errors.APIError as exc:
            reason = f"docker pull failed: {exc.explanation or exc}"
    raise BaseImageNotFoundError(
        f"Base image {spec.base_image!r} is not on the Docker engine and {reason}. Load it "
        "(docker pull / docker load / docker import) or set ImageSpec.base_image to an image "
        "that has python3 with the venv module.",
        step=f"FROM {spec.base_image}",
    )


def _image_ref(image: Any, ctx: BuildContext, *, reused: bool, seconds: float | None) -> ImageRef:
    return ImageRef(
        repository=ctx.repository,
        tags=[ctx.version_tag, ctx.content_tag],
        image_id=image.id,
        size_bytes=int(image.attrs.get("Size") or 0),
        labels=dict(image.labels or {}),
        model_name=ctx.model.name,
        model_version=ctx.model.version,
        reused=reused,
        build_context=ctx.path,
        build_seconds=seconds,
    )


def _make_readable(root: Path) -> None:
    """COPY keeps file modes: make the context readable for the image user."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | (0o755 if path.is_dir() else 0o644))


class _BuildLog:
    """Follows the engine's build stream: the current step, the lines so far, the image id."""

    def __init__(self, tag: str, log: LogFn | None) -> None:
        self.tag = tag
        self.log = log
        self.step: str | None = None
        self.lines: list[str] = []
        self.image_id: str | None = None

    def tail(self) -> str:
        return "\n".join(self.lines[-30:])

    def follow(self, stream: Iterable[dict[str, Any]]) -> None:
        for chunk in stream:
            if "stream" in chunk:
                self._lines(chunk["stream"])
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                self.image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                self.lines.append(message)
                raise ImageBuildError(
                    f"Building {self.tag} failed at {self.step or 'the start'}: {message.strip()}",
                    step=self.step,
                    log_tail=self.tail(),
                )

    def _lines(self, text: str) -> None:
        for line in text.splitlines():
            if not line.strip():
                continue
            self.lines.append(line)
            match = _STEP.match(line)
            if match:
                self.step = f"Step {match.group(1)}: {match.group(2)}"
            emit_progress(self.log, line)


def _run_build(client: Any, ctx: BuildContext, spec: ImageSpec, log: LogFn | None) -> Any:
    import docker

    tag = f"{ctx.repository}:{ctx.content_tag}"
    _make_readable(ctx.path)
    kwargs: dict[str, Any] = {}
    if spec.platform != "linux/amd64":
        kwargs["platform"] = spec.platform
    build_log = _BuildLog(tag, log)
    try:
        build_log.follow(
            client.api.build(
                path=str(ctx.path), tag=tag, rm=True, forcerm=True, pull=False, decode=True, **kwargs
            )
        )
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            f"The engine refused to build {tag}: {exc.explanation or exc}",
            step=build_log.step,
            log_tail=build_log.tail(),
        ) from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailableError(f"The Docker engine failed during the build of {tag}: {exc}") from exc
    return client.images.get(build_log.image_id or tag)


def build_model_image(
    model_name: str,
    version: int | str,
    *,
    spec: ImageSpec | None = None,
    engine: DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
    force_rebuild: bool = False,
    log: LogFn | None = None,
) -> ImageRef:
    """Build (or reuse) the server image of a registered model version.

    An image whose content hash (Dockerfile, requirements, server code, model
    files) matches is reused without building. After a build, images of the
    model beyond ``spec.keep_images`` are pruned.

    Args:
        model_name: Registered model name.
        version: Version number, or an alias such as ``"champion"``.
        spec: Image options.
        engine: Docker engine (``DockerEngine``, prefect-docker ``DockerHost`` or a client).
        mlflow_config: Where MLflow lives.
        force_rebuild: Build even when an identical image exists.
        log: Callback receiving the build log line by line.

    Returns:
        The image reference (tags ``v<version>`` and ``ctx-<hash>``).

    Raises:
        ModelNotFoundError: The model or version does not exist.
        WheelhouseError: A requirement has no wheel for the platform (names the package).
        BaseImageNotFoundError: The base image is missing and cannot be pulled.
        ImageBuildError: A Dockerfile step failed (``step`` and ``log_tail`` say which).
        DockerUnavailableError: No engine answers.

    Example:
        ```python
        from mlops_tasks.containerize import ImageSpec, build_model_image
        ref = build_model_image("churn", 3, spec=ImageSpec(keep_images=2))
        print(ref.reference, ref.size_bytes / 1e6, "MB")
        ```
    """
    spec = spec or ImageSpec()
    started = time.monotonic()
    client = engine_client(engine)
    ctx = prepare_build_context(
        model_name, version, spec=spec, mlflow_config=mlflow_config, with_wheels=False, log=log
    )
    existing = None if force_rebuild else find_image(client, f"{ctx.repository}:{ctx.content_tag}")
    if existing is not None:
        existing.tag(ctx.repository, ctx.version_tag)
        emit_progress(log, f"Reusing {ctx.repository}:{ctx.content_tag} ({existing.short_id}): same content")
        return _image_ref(existing, ctx, reused=True, seconds=time.monotonic() - started)
    _ensure_base_image(client, spec, log)
    ctx = fill_wheelhouse(ctx, spec, log=log)
    image = _run_build(client, ctx, spec, log)
    image.tag(ctx.repository, ctx.version_tag)
    image.reload()
    removed = prune_model_images(model_name, spec.keep_images, engine=client, keep_ids=[image.id])
    if removed:
        emit_progress(log, f"Pruned {len(removed)} old image(s) of {model_name}")
    seconds = time.monotonic() - started
    emit_progress(
        log,
        f"Built {ctx.repository}:{ctx.version_tag} {image.short_id} "
        f"({int(image.attrs.get('Size') or 0) / 1e6:.0f} MB) in {seconds:.1f}s",
    )
    return _image_ref(image, ctx, reused=False, seconds=seconds)
