"""What the image installs: the model's own pip requirements merged with the server's set."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from mlops_tasks.containerize.models import ImageSpec
from mlops_tasks.errors import ConfigurationError

__all__ = [
    "EXCLUDED_REQUIREMENTS",
    "S3_REQUIREMENTS",
    "SERVER_REQUIREMENTS",
    "read_model_requirements",
    "resolve_requirements",
]

logger = logging.getLogger(__name__)

#: What the model server imports (see ``mlops_tasks.serving``); pinned to the host's versions.
SERVER_REQUIREMENTS: tuple[str, ...] = (
    "numpy",
    "pandas",
    "scikit-learn",
    "pyarrow",
    "skops",
    "cloudpickle",
    "uvicorn",
    "httptools",
    "uvloop",
    "orjson",
    "pyyaml",
)
#: Added when ``ImageSpec.s3_prediction_log`` is true (the ``s3://`` prediction-log sink).
S3_REQUIREMENTS: tuple[str, ...] = ("boto3",)
#: Never installed into the image, even when the model's requirements name them.
EXCLUDED_REQUIREMENTS = frozenset({"mlflow", "mlflow-skinny", "mlflow-tracing"})


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_model_requirements(model_dir: Path) -> list[str]:
    """The lines of a downloaded MLflow model folder's ``requirements.txt``.

    Args:
        model_dir: The model folder.

    Returns:
        Its lines, or no line (with a warning) when the folder has no ``requirements.txt``.

    Example:
        ```python
        lines = read_model_requirements(ctx.path / "model")
        ```
    """
    path = model_dir / "requirements.txt"
    if not path.exists():
        logger.warning("%s has no requirements.txt; installing the server's set only", model_dir)
        return []
    return path.read_text(encoding="utf-8").splitlines()


def resolve_requirements(model_requirements: Iterable[str], spec: ImageSpec | None = None) -> list[str]:
    """Merge the model's pip requirements with the server's minimal set.

    The model's own pins win (it was trained with them); server packages it does
    not name are pinned to the versions installed on the host (the ones tested).
    MLflow is dropped: the server reads the model folder itself.

    Args:
        model_requirements: Lines of the model's ``requirements.txt``.
        spec: Image spec (``s3_prediction_log``, ``extra_requirements``).

    Returns:
        Requirement lines, sorted by package name.

    Raises:
        ConfigurationError: A line is not a valid requirement.

    Example:
        ```python
        reqs = resolve_requirements(["mlflow==3.1", "scikit-learn==1.5.2"])
        assert "scikit-learn==1.5.2" in reqs and not any(r.startswith("mlflow") for r in reqs)
        ```
    """
    from packaging.requirements import InvalidRequirement, Requirement

    spec = spec or ImageSpec()
    chosen: dict[str, str] = {}
    for raw in [*model_requirements, *spec.extra_requirements]:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ConfigurationError(f"Requirement {line!r} is not valid: {exc}") from exc
        key = _canonical(req.name)
        if key in EXCLUDED_REQUIREMENTS:
            continue
        chosen[key] = str(req)
    server = [*SERVER_REQUIREMENTS, *(S3_REQUIREMENTS if spec.s3_prediction_log else ())]
    for name in server:
        key = _canonical(name)
        if key in chosen:
            continue
        try:
            chosen[key] = f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            chosen[key] = name
    return [chosen[k] for k in sorted(chosen)]
