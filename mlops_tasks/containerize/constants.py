"""Names shared by the image build, the verifier and the deploy targets: labels, tags, port, user."""

from __future__ import annotations

__all__ = [
    "CONTENT_LABEL",
    "DEFAULT_BASE_IMAGE",
    "IMAGE_UID",
    "MANAGED_LABEL",
    "METADATA_FILE",
    "MODEL_LABEL",
    "SERVER_PORT",
    "STAGE_LABEL",
    "TAG_IMAGE_VERIFIED",
    "TAG_IMAGE_VERIFIED_AT",
    "VERIFY_LABEL",
    "model_label",
]

#: ``FROM`` image when :class:`~mlops_tasks.containerize.ImageSpec` names none.
DEFAULT_BASE_IMAGE = "python:3.11-slim"
#: ``true`` on every image, dependency stage and container the library makes.
MANAGED_LABEL = "org.mlops-tasks.managed"
#: Prefix of the model labels (``.name``, ``.version``, ``.run-id``, ...); see :func:`model_label`.
MODEL_LABEL = "org.mlops-tasks.model"
#: The build context's content hash (12 hex).
CONTENT_LABEL = "org.mlops-tasks.content-hash"
#: On verification containers: the verification run's id.
VERIFY_LABEL = "org.mlops-tasks.verify"
#: On the dependency stage kept as build cache (``deps``).
STAGE_LABEL = "org.mlops-tasks.stage"
#: MLflow model-version tag holding the id of the image that passed verification.
TAG_IMAGE_VERIFIED = "mlops.image.verified"
#: MLflow model-version tag holding when it passed (ISO 8601).
TAG_IMAGE_VERIFIED_AT = "mlops.image.verified_at"
#: Port of the model server inside the image.
SERVER_PORT = 8080
#: uid and gid of the image's user ``mlops``.
IMAGE_UID = 10001
#: File in the model folder naming the model version for the server.
METADATA_FILE = "serving-model.json"


def model_label(field: str) -> str:
    """The image label holding one fact about the model version.

    Args:
        field: ``name``, ``version``, ``run-id``, ``data-fingerprint`` or ``gate-passed``.

    Returns:
        The label key, ``org.mlops-tasks.model.<field>``.

    Example:
        ```python
        assert model_label("name") == "org.mlops-tasks.model.name"
        ```
    """
    return f"{MODEL_LABEL}.{field}"
