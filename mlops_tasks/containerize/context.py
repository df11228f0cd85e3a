"""The build context: a folder you can read, holding everything the image build needs.

``Dockerfile``, ``.dockerignore``, ``requirements.txt`` (the model's own MLflow
requirements without MLflow, plus the server's minimal set), ``slim.py``, ``wheels/``
(see :mod:`mlops_tasks.containerize.wheelhouse`), the server code in ``server/`` (the
``mlops_tasks.serving`` package, copied recursively, with ``mlops_tasks/errors.py``)
and the model in ``model/`` with ``serving-model.json``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
from pathlib import Path
from typing import Any

from mlops_tasks.containerize.constants import CONTENT_LABEL, MANAGED_LABEL, model_label
from mlops_tasks.containerize.dockerfile import dockerignore_text, render_dockerfile, slim_script
from mlops_tasks.containerize.model_source import download_model, resolve_model_source
from mlops_tasks.containerize.models import BuildContext, ImageSpec, ModelSource
from mlops_tasks.containerize.progress import LogFn, emit_progress
from mlops_tasks.containerize.requirements import read_model_requirements, resolve_requirements
from mlops_tasks.containerize.wheelhouse import fill_wheelhouse
from mlops_tasks.settings import MlflowConfig, state_dir

__all__ = ["default_repository", "image_labels", "prepare_build_context", "server_files"]


def default_repository(model_name: str) -> str:
    """The local repository of a model's images: ``mlops-tasks/<sanitized name>``.

    Example:
        ```python
        assert default_repository("Churn Classifier") == "mlops-tasks/churn-classifier"
        ```
    """
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"mlops-tasks/{slug}"


def server_files() -> dict[str, Path]:
    """The model server's source files, taken from the installed package.

    The whole ``mlops_tasks.serving`` package, recursively (sub-packages and data files
    included, ``__pycache__`` left out), plus ``mlops_tasks/__init__.py`` and
    ``mlops_tasks/errors.py``, the only other module the server imports.

    Returns:
        Path inside ``server/`` (``mlops_tasks/serving/app.py``) -> file on this machine.

    Example:
        ```python
        assert "mlops_tasks/serving/cli.py" in server_files()
        ```
    """
    import mlops_tasks

    root = Path(mlops_tasks.__file__).parent
    files = {"mlops_tasks/__init__.py": root / "__init__.py", "mlops_tasks/errors.py": root / "errors.py"}
    for path in sorted((root / "serving").rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
            files[f"mlops_tasks/{rel.as_posix()}"] = path
    return files


def image_labels(source: ModelSource, spec: ImageSpec) -> dict[str, str]:
    """The labels of a model image: OCI annotations, the model's facts, then ``spec.labels``.

    Args:
        source: The model version.
        spec: The image spec (its ``labels`` win).

    Returns:
        Label key -> value (without the content hash, added once it is known).

    Example:
        ```python
        labels = image_labels(ModelSource(name="churn", version=3), ImageSpec())
        assert labels["org.mlops-tasks.model.version"] == "3"
        ```
    """
    try:
        tool_version = importlib.metadata.version("mlops-tasks")
    except importlib.metadata.PackageNotFoundError:
        tool_version = "unknown"
    labels = {
        "org.opencontainers.image.title": f"{source.name} model server",
        "org.opencontainers.image.description": f"mlops-tasks model server for {source.name} version "
        f"{source.version}",
        "org.opencontainers.image.version": str(source.version),
        "org.opencontainers.image.revision": source.run_id or "",
        "org.opencontainers.image.created": source.created or "",
        "org.opencontainers.image.vendor": "mlops-tasks",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.base.name": spec.base_image,
        MANAGED_LABEL: "true",
        "org.mlops-tasks.builder-version": tool_version,
        model_label("name"): source.name,
        model_label("version"): str(source.version),
        model_label("run-id"): source.run_id or "",
        model_label("data-fingerprint"): source.data_fingerprint or "",
        model_label("gate-passed"): "" if source.gate_passed is None else str(source.gate_passed).lower(),
    }
    labels.update(spec.labels)
    return labels


def _hash_tree(digest: Any, root: Path, prefix: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{prefix}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def _content_hash(root: Path, source: ModelSource, spec: ImageSpec, labels: dict[str, str]) -> str:
    """Hash of what decides the image: Dockerfile, requirements, slim.py, platform, server, model."""
    digest = hashlib.sha256()
    digest.update(render_dockerfile(source, spec, labels).encode())
    digest.update((root / "requirements.txt").read_bytes())
    digest.update(slim_script().encode())
    digest.update(" ".join(spec.wheel_platforms).encode())
    _hash_tree(digest, root / "server", "server")
    _hash_tree(digest, root / "model", "model")
    return digest.hexdigest()


def _context_root(
    spec: ImageSpec, repository: str, version: int, context_dir: str | os.PathLike[str] | None
) -> Path:
    if context_dir:
        return Path(context_dir)
    return (spec.build_dir or state_dir() / "images") / repository.replace("/", "_") / f"v{version}"


def _copy_server(dst: Path) -> None:
    for rel, path in server_files().items():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def prepare_build_context(
    model_name: str,
    version: int | str,
    *,
    spec: ImageSpec | None = None,
    mlflow_config: MlflowConfig | None = None,
    context_dir: str | os.PathLike[str] | None = None,
    with_wheels: bool = True,
    log: LogFn | None = None,
) -> BuildContext:
    """Write the build context of a model version to a folder.

    Args:
        model_name: Registered model name.
        version: Version number, or an alias such as ``"champion"``.
        spec: Image options (default :class:`ImageSpec`).
        mlflow_config: Where MLflow lives (argument > environment > default).
        context_dir: Folder to write; default ``<build_dir>/<repository>/v<version>``
            (emptied first).
        with_wheels: Also download the wheelhouse (False leaves ``wheels/`` empty).
        log: Callback receiving progress lines (e.g. a Prefect run logger's ``info``).

    Returns:
        The context, with its content hash and labels.

    Raises:
        ModelNotFoundError: The model, version or alias does not exist.
        WheelhouseError: A requirement has no wheel for the target platform.
        ConfigurationError: Bad name, version or spec.

    Example:
        ```python
        from mlops_tasks.containerize import prepare_build_context
        ctx = prepare_build_context("churn", 3)
        print(ctx.path, ctx.requirements)
        ```
    """
    spec = spec or ImageSpec()
    source, resolved = resolve_model_source(model_name, version, mlflow_config)
    repository = spec.repository or default_repository(model_name)
    root = _context_root(spec, repository, source.version, context_dir)
    if root.exists():
        shutil.rmtree(root)
    (root / "wheels").mkdir(parents=True)
    download_model(source, resolved, root / "model")
    requirements = resolve_requirements(read_model_requirements(root / "model"), spec)
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    _copy_server(root / "server")
    labels = image_labels(source, spec)
    content_hash = _content_hash(root, source, spec, labels)
    labels[CONTENT_LABEL] = content_hash[:12]
    (root / "Dockerfile").write_text(render_dockerfile(source, spec, labels), encoding="utf-8")
    (root / ".dockerignore").write_text(dockerignore_text(), encoding="utf-8")
    (root / "slim.py").write_text(slim_script(), encoding="utf-8")
    ctx = BuildContext(
        path=root.resolve(),
        model=source,
        repository=repository,
        requirements=requirements,
        content_hash=content_hash,
        labels=labels,
    )
    if with_wheels:
        ctx = fill_wheelhouse(ctx, spec, log=log)
    emit_progress(
        log, f"Build context for {model_name} v{source.version} in {root} ({len(requirements)} requirements)"
    )
    return ctx
