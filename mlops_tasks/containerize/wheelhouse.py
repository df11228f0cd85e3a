"""The offline wheelhouse: the image's requirements as wheels for its platform, downloaded on the host.

Wheels are cached in a folder keyed by a hash of the requirements, constraints,
platform and Python version (:func:`cached_wheelhouse`), so a new model version with
the same requirements downloads nothing; :func:`fill_wheelhouse` links them into a
build context's ``wheels/``. The image installs them with ``pip install --no-index``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_tasks.containerize.models import BuildContext, ImageSpec
from mlops_tasks.containerize.progress import LogFn, emit_progress
from mlops_tasks.errors import WheelhouseError
from mlops_tasks.settings import state_dir

__all__ = ["cached_wheelhouse", "fill_wheelhouse"]

_MISSING_PACKAGE = re.compile(
    r"(?:No matching distribution found for|satisfies the requirement)\s+([A-Za-z0-9_.\-\[\],=<>!~]+)"
)


def _pip_download_cmd(
    spec: ImageSpec, platforms: list[str], dest: Path, requirements_file: Path, constraints: list[Path]
) -> list[str]:
    abi = "cp" + spec.python_version.replace(".", "")
    # pip gets the platform tags in reverse order (the command line this module always ran).
    platform_args = [arg for platform in reversed(platforms) for arg in ("--platform", platform)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        *platform_args,
        "--no-input",
        "--only-binary=:all:",
        "--python-version",
        spec.python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(dest),
        "-r",
        str(requirements_file),
    ]
    for path in constraints:
        cmd += ["-c", str(path)]
    return cmd


def _wheelhouse_error(output: str, spec: ImageSpec, platforms: list[str]) -> WheelhouseError:
    """Name the requirement pip could not resolve into wheels, with pip's last lines."""
    match = _MISSING_PACKAGE.search(output)
    package = match.group(1) if match else None
    tail = "\n".join(output.splitlines()[-15:])
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    summary = errors[-1] if errors else (tail.splitlines()[-1] if tail else "pip download failed")
    return WheelhouseError(
        f"Requirement {package or '(see log)'!r} cannot be resolved into wheels for "
        f"{spec.platform} / CPython {spec.python_version} ({', '.join(platforms)}): "
        f"{summary}. Pin a version that "
        "publishes such a wheel, or drop the requirement.",
        package=package,
        log_tail=tail,
    )


def cached_wheelhouse(
    requirements: list[str],
    requirements_file: Path,
    spec: ImageSpec,
    *,
    constraints: list[Path] | None = None,
    log: LogFn | None = None,
) -> Path:
    """Download ``requirements_file`` as wheels for the image platform into a shared cache folder.

    The folder is keyed by a hash of the requirements, constraints files, platform and
    Python version (``<wheel cache>/<key>``), so the same inputs download nothing again.

    Args:
        requirements: The requirement lines (part of the cache key).
        requirements_file: The same lines as a file for ``pip download -r``.
        spec: Platform, Python version and cache folder.
        constraints: pip constraints files (``-c``) pinning exact versions.
        log: Progress callback.

    Returns:
        The cache folder holding the wheels.

    Raises:
        WheelhouseError: pip found no wheel for a requirement; the message names it.

    Example:
        ```python
        folder = cached_wheelhouse(["pyyaml>=6"], Path("requirements.txt"), ImageSpec())
        ```
    """
    constraints = constraints or []
    platforms = spec.wheel_platforms
    pinned = [Path(path).read_text() for path in constraints]
    key_text = "\n".join([*requirements, *platforms, spec.python_version, *pinned])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    cache_root = spec.wheel_cache_dir or state_dir() / "wheelhouse"
    cache = cache_root / key
    if (cache / ".complete").exists():
        return cache
    started = time.monotonic()
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_root))
    cmd = _pip_download_cmd(spec, platforms, tmp, requirements_file, constraints)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _wheelhouse_error((done.stdout + done.stderr).strip(), spec, platforms)
    (tmp / ".complete").write_text(key_text + "\n")
    if cache.exists():  # another build filled it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(cache)
    emit_progress(log, f"Wheelhouse {key}: downloaded in {time.monotonic() - started:.1f}s")
    return cache


def fill_wheelhouse(
    ctx: BuildContext, spec: ImageSpec | None = None, *, log: LogFn | None = None
) -> BuildContext:
    """Download the context's requirements as wheels for the image platform into ``wheels/``.

    Wheels are cached under ``wheel_cache_dir`` keyed by a hash of the
    requirements, platform and Python version, so a new model version with the
    same requirements downloads nothing.

    Args:
        ctx: A context from :func:`~mlops_tasks.containerize.prepare_build_context`.
        spec: The image spec used for it.
        log: Progress callback.

    Returns:
        The context with its wheel names.

    Raises:
        WheelhouseError: pip found no wheel for a requirement; the message names it.

    Example:
        ```python
        ctx = fill_wheelhouse(prepare_build_context("churn", 3, with_wheels=False))
        ```
    """
    spec = spec or ImageSpec()
    cache = cached_wheelhouse(ctx.requirements, ctx.path / "requirements.txt", spec, log=log)
    wheels_dir = ctx.path / "wheels"
    names = []
    for wheel in sorted(cache.glob("*.whl")):
        target = wheels_dir / wheel.name
        if not target.exists():
            try:
                os.link(wheel, target)
            except OSError:
                shutil.copyfile(wheel, target)
        names.append(wheel.name)
    emit_progress(log, f"Wheelhouse {cache.name}: {len(names)} wheels")
    return ctx.model_copy(update={"wheels": names})
