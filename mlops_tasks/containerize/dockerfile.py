"""The build context's fixed files, rendered from the package's ``templates/`` folder.

``templates/Dockerfile.template`` is the image's Dockerfile with ``{placeholders}``
(filled with :meth:`str.format`, so the template holds no other braces),
``templates/slim.py`` the program run in the dependency stage and
``templates/dockerignore`` the context's ``.dockerignore``. They are package data,
read with :mod:`importlib.resources`.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files

from mlops_tasks.containerize.constants import IMAGE_UID, MANAGED_LABEL, SERVER_PORT, STAGE_LABEL
from mlops_tasks.containerize.models import ImageSpec, ModelSource

__all__ = ["dockerignore_text", "render_dockerfile", "slim_script"]


@functools.cache
def _template(name: str) -> str:
    return (files("mlops_tasks.containerize") / "templates" / name).read_text(encoding="utf-8")


def slim_script() -> str:
    """The text of ``slim.py``, run in the dependency stage.

    It drops what a server never loads and, with ``ImageSpec.precompile``,
    byte-compiles only the modules the server imports at start.

    Returns:
        The Python program (``templates/slim.py``).

    Example:
        ```python
        assert "keep_extras" in slim_script()
        ```
    """
    return _template("slim.py")


def dockerignore_text() -> str:
    """The build context's ``.dockerignore``: only the files the Dockerfile copies reach the engine.

    Returns:
        The text of ``templates/dockerignore``.

    Example:
        ```python
        assert "!wheels/" in dockerignore_text()
        ```
    """
    return _template("dockerignore")


def _healthcheck_cmd() -> str:
    code = (
        "import os,urllib.request;"
        "urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLOPS_SERVE_PORT','8080'),"
        " timeout=4)"
    )
    return json.dumps(["/opt/venv/bin/python", "-c", code])


def render_dockerfile(source: ModelSource, spec: ImageSpec, labels: dict[str, str]) -> str:
    """The Dockerfile of a model image (multi-stage, offline, non-root).

    Args:
        source: The model version.
        spec: Base image and options.
        labels: Image labels (written last so a new version reuses every earlier layer).

    Returns:
        The Dockerfile text.

    Example:
        ```python
        text = render_dockerfile(ModelSource(name="churn", version=1), ImageSpec(), {})
        assert "pip install --no-index" in text
        ```
    """
    label_lines = " \\\n      ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    # The dependency stage stays on the engine as build cache: label it so it can be found.
    deps = {MANAGED_LABEL: "true", STAGE_LABEL: "deps", **spec.labels}
    deps_labels = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(deps.items()))
    slim_flags = ("" if spec.slim else " --keep-extras") + (" --precompile" if spec.precompile else "")
    return _template("Dockerfile.template").format(
        model_name=repr(source.name),
        model_version=source.version,
        base_image=spec.base_image,
        slim_flags=slim_flags,
        deps_labels=deps_labels,
        uid=IMAGE_UID,
        port=SERVER_PORT,
        healthcheck=_healthcheck_cmd(),
        labels=label_lines,
    )
