"""Pruning: remove a model's oldest managed images beyond the number to keep."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mlops_tasks.containerize.constants import MANAGED_LABEL, model_label
from mlops_tasks.containerize.engine import DockerEngine, engine_client

__all__ = ["prune_model_images"]

logger = logging.getLogger(__name__)


def prune_model_images(
    model_name: str, keep: int, *, engine: DockerEngine | Any | None = None, keep_ids: Iterable[str] = ()
) -> list[str]:
    """Remove the oldest managed images of a model beyond ``keep`` (images a container uses are kept).

    Args:
        model_name: Registered model name (the ``org.mlops-tasks.model.name`` label).
        keep: How many of the newest images to keep.
        engine: Docker engine.
        keep_ids: Image ids never removed (e.g. the one just built).

    Returns:
        Ids of the images removed.

    Example:
        ```python
        removed = prune_model_images("churn", keep=2)
        ```
    """
    import docker

    client = engine_client(engine)
    images = client.images.list(
        filters={"label": [f"{MANAGED_LABEL}=true", f"{model_label('name')}={model_name}"]}
    )
    images.sort(key=lambda im: im.attrs.get("Created", ""), reverse=True)
    protected = set(keep_ids)
    kept = 0
    removed: list[str] = []
    for image in images:
        if image.id in protected or kept < keep:
            kept += 1
            continue
        try:
            users = client.containers.list(all=True, filters={"ancestor": image.id})
            if users:
                logger.warning(
                    "Kept image %s of %s: used by container(s) %s",
                    image.short_id,
                    model_name,
                    ", ".join(c.name for c in users),
                )
                continue
            # by id and forced: also drops registry tags and digest references (docker pull by digest)
            client.images.remove(image.id, force=True, noprune=False)
            removed.append(image.id)
        except docker.errors.APIError as exc:
            logger.warning("Kept image %s of %s: %s", image.short_id, model_name, exc.explanation or exc)
    return removed
