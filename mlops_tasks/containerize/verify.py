"""Verify a model image before rollout: run it, probe ``/health``, compare its predictions.

In the spirit of TFX's InfraValidator. The steps, each a function below: find the image
and the model version it holds, take the holdout rows, predict them in-process, start
the container on a free loopback port, wait until ``/health`` answers 200, send the rows
to ``/invocations`` and compare, remove the container, record the verdict as the MLflow
version tag ``mlops.image.verified=<image id>`` (read back with :func:`image_verified`).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_tasks.containerize.constants import (
    MANAGED_LABEL,
    SERVER_PORT,
    TAG_IMAGE_VERIFIED,
    TAG_IMAGE_VERIFIED_AT,
    VERIFY_LABEL,
    model_label,
)
from mlops_tasks.containerize.engine import DockerEngine, engine_client, find_image
from mlops_tasks.containerize.models import ImageRef, VerificationReport
from mlops_tasks.containerize.progress import LogFn, emit_progress
from mlops_tasks.errors import ConfigurationError, ImageVerificationError
from mlops_tasks.registry import get_model_version
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tracking import get_client, load_sklearn_model, resolve_and_check

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["image_verified", "verify_model_image"]

logger = logging.getLogger(__name__)


# --- small helpers ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _container_logs(container: Any, lines: int = 30) -> str:
    try:
        text: str = container.logs(tail=lines).decode("utf-8", "replace")
        return text
    except Exception:  # the container may be gone already
        return ""


def _predictions_match(expected: Any, got: Any, rtol: float) -> int:
    """How many rows differ (numbers within ``rtol``, labels exactly); all when the shapes differ."""
    import numpy as np

    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return max(len(expected), len(got))
    if expected.dtype.kind in "fc" or got.dtype.kind in "fc":
        ok = np.isclose(expected.astype(float), got.astype(float), rtol=rtol, atol=1e-9)
    else:
        ok = expected.astype(str) == got.astype(str)
    ok = ok.reshape(len(expected), -1).all(axis=1) if ok.ndim > 1 else ok
    return int((~ok).sum())


# --- the steps --------------------------------------------------------------------------


def _model_identity(local: Any, ref: str, model_name: str | None, version: int | None) -> tuple[str, int]:
    """The model version the image holds: the arguments, else the image's model labels."""
    labels = local.labels or {}
    name = model_name or labels.get(model_label("name"))
    ver = version or (int(labels[model_label("version")]) if labels.get(model_label("version")) else None)
    if not name or ver is None:
        raise ConfigurationError(f"Image {ref} has no model labels; pass model_name and version.")
    return name, ver


def _holdout_rows(holdout: pd.DataFrame, target: str | None, max_rows: int) -> pd.DataFrame:
    frame = holdout.drop(columns=[target]) if target and target in holdout.columns else holdout
    frame = frame.head(max_rows)
    if frame.empty:
        raise ConfigurationError("The holdout has no rows to send.")
    return frame


def _expected_predictions(resolved: Any, name: str, version: int, frame: pd.DataFrame) -> Any:
    """Predictions of the registered model loaded in-process with ``mlflow.sklearn``."""
    return load_sklearn_model(resolved, f"models:/{name}/{version}").predict(frame)


def _start_container(client: Any, local: Any, name: str, port: int, log: LogFn | None) -> Any:
    run_label = uuid.uuid4().hex[:12]
    container = client.containers.run(
        local.id,
        detach=True,
        name=f"mlops-verify-{run_label}",
        ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", port)},
        labels={MANAGED_LABEL: "true", VERIFY_LABEL: run_label, model_label("name"): name},
        environment={"MLOPS_SERVE_INSTANCE": f"verify-{run_label}"},
    )
    emit_progress(log, f"Verifying {local.short_id} on 127.0.0.1:{port} (container {container.short_id})")
    return container


def _wait_healthy(
    container: Any, port: int, report: VerificationReport, load_timeout_s: float, tries: int
) -> bool:
    """Poll ``/health`` up to ``tries`` times within ``load_timeout_s``; stop early if the container exits."""
    started = time.monotonic()
    interval = load_timeout_s / tries
    for attempt in range(1, tries + 1):
        report.health_tries = attempt
        container.reload()
        if container.status in ("exited", "dead"):
            report.detail = f"container exited ({container.attrs['State'].get('ExitCode')})"
            return False
        try:
            status, _ = _http(f"http://127.0.0.1:{port}/health", timeout=max(interval, 1.0))
            healthy = status == 200
        except OSError:
            healthy = False
        if healthy:
            report.health_seconds = round(time.monotonic() - started, 3)
            return True
        if time.monotonic() - started > load_timeout_s:
            return False
        time.sleep(interval)
    return False


def _compare_predictions(
    port: int, frame: pd.DataFrame, expected: Any, rtol: float, report: VerificationReport, short_id: str
) -> None:
    """Send the rows to ``/invocations``; raise unless every prediction equals the in-process one."""
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    status, answer = _http(f"http://127.0.0.1:{port}/invocations", body.encode(), timeout=60)
    if status != 200:
        report.detail = f"/invocations answered {status}: {answer[:500].decode('utf-8', 'replace')}"
        raise ImageVerificationError(f"Image {short_id}: {report.detail}", report=report)
    got = json.loads(answer)["predictions"]
    report.mismatches = _predictions_match(expected, got, rtol)
    if report.mismatches:
        report.detail = f"{report.mismatches} of {len(frame)} predictions differ from in-process ones"
        raise ImageVerificationError(
            f"Image {short_id} ({report.model_name} v{report.model_version}): {report.detail}", report=report
        )


def _remove_container(container: Any) -> None:
    import docker

    try:
        container.remove(force=True)
    except docker.errors.APIError:
        logger.warning("Could not remove verification container %s", container.short_id)


def _probe_image(
    client: Any,
    local: Any,
    frame: pd.DataFrame,
    expected: Any,
    report: VerificationReport,
    *,
    load_timeout_s: float,
    tries: int,
    rtol: float,
    log: LogFn | None,
) -> None:
    """Run the image, wait for health, compare predictions; the container is removed in every case."""
    import docker

    port = _free_port()
    container = None
    try:
        container = _start_container(client, local, report.model_name, port, log)
        if not _wait_healthy(container, port, report, load_timeout_s, tries):
            report.detail = report.detail or f"/health did not answer 200 within {load_timeout_s:.0f}s"
            raise ImageVerificationError(
                f"Image {local.short_id} ({report.model_name} v{report.model_version}) is not healthy: "
                f"{report.detail}. "
                f"Container log:\n{_container_logs(container)}",
                report=report,
            )
        _compare_predictions(port, frame, expected, rtol, report, local.short_id)
        report.passed = True
        report.detail = f"healthy after {report.health_seconds}s; {len(frame)} predictions equal"
    except docker.errors.APIError as exc:
        raise ImageVerificationError(
            f"Running image {local.short_id} failed: {exc.explanation or exc}", report=report
        ) from exc
    finally:
        if container is not None:
            _remove_container(container)


def _record_verdict(resolved: Any, name: str, version: int, image_id: str) -> None:
    """Write ``mlops.image.verified`` (and ``..._at``) on the model version in the MLflow registry."""
    mlclient = get_client(resolved)
    get_model_version(mlclient, name, version)
    mlclient.set_model_version_tag(name, str(version), TAG_IMAGE_VERIFIED, image_id)
    mlclient.set_model_version_tag(
        name, str(version), TAG_IMAGE_VERIFIED_AT, datetime.now(UTC).isoformat(timespec="seconds")
    )


# --- public -----------------------------------------------------------------------------


def verify_model_image(
    image: ImageRef | str,
    holdout: pd.DataFrame,
    *,
    model_name: str | None = None,
    version: int | None = None,
    target: str | None = None,
    max_rows: int = 200,
    load_timeout_s: float = 120.0,
    tries: int = 60,
    rtol: float = 1e-6,
    record: bool = True,
    engine: DockerEngine | Any | None = None,
    mlflow_config: MlflowConfig | None = None,
    log: LogFn | None = None,
) -> VerificationReport:
    """Infra check before rollout: run the image, probe it, compare its predictions.

    The container runs on a free loopback port with the managed label, must answer
    ``/health`` with 200 within ``load_timeout_s`` (polled at most ``tries``
    times), and must return for up to ``max_rows`` holdout rows the same
    predictions as the registered model loaded in-process with
    :func:`mlops_tasks.tracking.load_sklearn_model`. The container is removed in every case. A pass
    is recorded as the version tag ``mlops.image.verified=<image id>``.

    Args:
        image: :class:`ImageRef` or an image id/reference carrying the model labels.
        holdout: Real rows (the target column, if present, is dropped).
        model_name: Default: the image's ``org.mlops-tasks.model.name`` label.
        version: Default: the image's version label.
        target: Target column to drop from ``holdout``.
        max_rows: Rows sent.
        load_timeout_s: Time allowed for ``/health`` to answer 200.
        tries: Health polls within that time.
        rtol: Relative tolerance for numeric predictions.
        record: Write the MLflow version tag on success.
        engine: Docker engine.
        mlflow_config: Where MLflow lives.
        log: Progress callback.

    Returns:
        The report (``passed`` is True).

    Raises:
        ImageVerificationError: Not healthy in time, exited, or predictions differ
            (``report`` holds the details, the message the container's log tail).
        DockerUnavailableError: No engine answers.
        ConfigurationError: Bad limits, the image is not on the engine or has no model
            labels, or the holdout has no rows.

    Example:
        ```python
        report = verify_model_image(ref, holdout, target="churned")
        print(report.health_seconds, report.rows)
        ```
    """
    if tries < 1 or load_timeout_s <= 0 or max_rows < 1:
        raise ConfigurationError("tries, load_timeout_s and max_rows must be positive.")
    client = engine_client(engine)
    ref = image.image_id if isinstance(image, ImageRef) else image
    local = find_image(client, ref)
    if local is None:
        raise ConfigurationError(f"Image {ref} is not on the engine; build it first.")
    name, ver = _model_identity(local, ref, model_name, version)
    frame = _holdout_rows(holdout, target, max_rows)
    resolved = resolve_and_check(mlflow_config)
    expected = _expected_predictions(resolved, name, ver, frame)
    report = VerificationReport(
        image_id=local.id, model_name=name, model_version=ver, passed=False, rows=len(frame), mismatches=0
    )
    _probe_image(
        client, local, frame, expected, report, load_timeout_s=load_timeout_s, tries=tries, rtol=rtol, log=log
    )
    if record:
        _record_verdict(resolved, name, ver, local.id)
        report.recorded = True
    if isinstance(image, ImageRef):
        report.image = image.model_copy(update={"verified": True})
    emit_progress(log, f"Verified {local.short_id}: {report.detail}")
    return report


def image_verified(
    image: ImageRef | str,
    model_name: str,
    version: int,
    *,
    mlflow_config: MlflowConfig | None = None,
) -> bool:
    """Whether ``image`` is the one recorded as verified for the model version.

    The deploy flow calls this and refuses an unverified image unless forced.

    Args:
        image: :class:`ImageRef` or image id (``sha256:...``).
        model_name: Registered model name.
        version: Model version.
        mlflow_config: Where MLflow lives.

    Returns:
        True when the version tag ``mlops.image.verified`` holds this image id.

    Example:
        ```python
        if not image_verified(ref, "churn", 3):
            raise RuntimeError("verify the image first")
        ```
    """
    image_id = image.image_id if isinstance(image, ImageRef) else image
    mv = get_model_version(get_client(resolve_and_check(mlflow_config)), model_name, version)
    tags: dict[str, str] = mv.tags
    return tags.get(TAG_IMAGE_VERIFIED) == image_id
