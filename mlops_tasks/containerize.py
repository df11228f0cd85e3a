"""Containerize: a registered model version -> a small, offline-built server image.

The image holds the model server (:mod:`mlops_tasks.serving`, without Prefect,
Great Expectations, Evidently or MLflow), exactly the wheels the model needs and
the MLflow model folder. Stages:

1. :func:`prepare_build_context` writes a folder you can inspect: a readable
   ``Dockerfile``, ``.dockerignore``, ``requirements.txt`` (the model's own MLflow
   requirements without MLflow, plus the server's minimal set), ``wheels/`` (a
   wheelhouse downloaded on the host for the image's platform and Python), the
   server code in ``server/`` and the model in ``model/`` with
   ``serving-model.json`` (name, version, run id) for the server.
2. :func:`build_model_image` builds it through the Docker SDK (layers ordered
   base -> dependencies -> model, so a new version with the same dependencies
   rebuilds in seconds), reuses an image of identical content, and prunes old
   images of the model beyond ``keep_images``.
3. :func:`verify_model_image` runs the image on a free loopback port, waits for
   ``/health``, sends holdout rows to ``/invocations``, compares with in-process
   predictions and records the verdict as the MLflow version tag
   ``mlops.image.verified=<image id>`` (read back with :func:`image_verified`).
4. :func:`push_model_image` pushes to any registry (credentials from a Prefect
   block or explicit), logging in to Amazon ECR with a token from boto3.

Docker engine precedence: explicit ``DockerEngine(base_url=...)`` (or a
prefect-docker ``DockerHost`` block) > ``$DOCKER_HOST`` > the local socket.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mlops_tasks.errors import (
    BaseImageNotFoundError,
    ConfigurationError,
    DockerUnavailableError,
    ImageBuildError,
    ImageVerificationError,
    ModelNotFoundError,
    RegistryAuthError,
    RegistryError,
    RegistryPushError,
    RegistryUnreachableError,
    RepositoryNotFoundError,
    WheelhouseError,
)
from mlops_tasks.settings import MlflowConfig, state_dir

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "python:3.11-slim"
MANAGED_LABEL = "org.mlops-tasks.managed"
MODEL_LABEL = "org.mlops-tasks.model"
CONTENT_LABEL = "org.mlops-tasks.content-hash"
VERIFY_LABEL = "org.mlops-tasks.verify"
STAGE_LABEL = "org.mlops-tasks.stage"
TAG_IMAGE_VERIFIED = "mlops.image.verified"
TAG_IMAGE_VERIFIED_AT = "mlops.image.verified_at"
SERVER_PORT = 8080
IMAGE_UID = 10001
METADATA_FILE = "serving-model.json"

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

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_MISSING_PACKAGE = re.compile(
    r"(?:No matching distribution found for|satisfies the requirement)\s+([A-Za-z0-9_.\-\[\],=<>!~]+)"
)

LogFn = Callable[[str], None]


# --- models -------------------------------------------------------------------------


class DockerEngine(BaseModel):
    """Which Docker engine to talk to.

    ``base_url`` falls back to ``$DOCKER_HOST``, then to the local socket. A
    prefect-docker ``DockerHost`` block (anything with ``get_client()``) is
    accepted wherever a ``DockerEngine`` is.

    Example:
        ```python
        from mlops_tasks.containerize import DockerEngine
        client = DockerEngine(base_url="unix:///var/run/docker.sock").client()
        ```
    """

    model_config = ConfigDict(frozen=True)

    base_url: str | None = Field(None, description="Engine URL, e.g. unix:///var/run/docker.sock.")
    timeout_s: int = Field(600, gt=0, description="API timeout (a build streams within it).")

    def client(self) -> Any:
        """A connected ``docker.DockerClient``.

        Raises:
            DockerUnavailableError: No engine answers at the address.
        """
        import docker

        url = self.base_url or os.environ.get("DOCKER_HOST")
        try:
            client = (
                docker.DockerClient(base_url=url, timeout=self.timeout_s)
                if url
                else docker.from_env(timeout=self.timeout_s)
            )
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError
            raise DockerUnavailableError(
                f"No Docker engine answers at {url or 'the default socket'}: {exc}. Start one "
                "(scripts/ensure-system.sh installs docker.io and starts dockerd) or set DOCKER_HOST."
            ) from exc
        return client


class ImageSpec(BaseModel):
    """How to build a model image (everything but the model version).

    Example:
        ```python
        from mlops_tasks.containerize import ImageSpec
        spec = ImageSpec(base_image="python:3.11-slim", keep_images=5,
                         labels={"team": "risk"})
        ```
    """

    model_config = ConfigDict(frozen=True)

    repository: str | None = Field(
        None, description="Local image repository; default mlops-tasks/<model name>."
    )
    base_image: str = Field(DEFAULT_BASE_IMAGE, description="FROM image; must have python3 with venv.")
    platform: str = Field("linux/amd64", description="Target platform: linux/amd64 or linux/arm64.")
    python_version: str = Field("3.11", pattern=r"^3\.\d+$", description="Python of the base image.")
    glibc: str = Field("2.28", pattern=r"^2\.\d+$", description="Newest manylinux glibc the base supports.")
    s3_prediction_log: bool = Field(True, description="Install boto3 for an s3:// prediction log.")
    extra_requirements: list[str] = Field(default_factory=list, description="More pip requirements.")
    keep_images: int = Field(3, ge=1, description="Images of the model kept; older ones are pruned.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra image labels.")
    build_dir: Path | None = Field(None, description="Parent of build contexts; default <state dir>/images.")
    wheel_cache_dir: Path | None = Field(
        None, description="Wheelhouse cache keyed by requirements; default <state dir>/wheelhouse."
    )
    pull_base: bool = Field(True, description="Try docker pull when the base image is missing.")
    slim: bool = Field(
        True,
        description="Drop what a server never loads: pyarrow's Flight, headers and C++ tests, and "
        "botocore's models of AWS services other than S3/STS/SSO. Test folders, Cython sources "
        "and stubs are always dropped.",
    )
    precompile: bool = Field(
        False,
        description="Ship bytecode of the modules the server imports at start: about 45 MB more, "
        "and the model loads about 3 s sooner on a container's first start.",
    )

    @property
    def wheel_platforms(self) -> list[str]:
        """pip ``--platform`` tags (manylinux up to :attr:`glibc`, pip adds the older ones)."""
        arch = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}.get(self.platform)
        if arch is None:
            raise ConfigurationError(
                f"Platform {self.platform!r} is not supported: use linux/amd64 or linux/arm64."
            )
        minor = int(self.glibc.split(".")[1])
        return [f"manylinux_2_{minor}_{arch}", f"manylinux2014_{arch}"]


class ModelSource(BaseModel):
    """The registered version an image is built from.

    Example:
        ```python
        src = ModelSource(name="churn", version=3, run_id="abc", gate_passed=True)
        ```
    """

    name: str
    version: int
    run_id: str | None = None
    data_fingerprint: str | None = None
    gate_passed: bool | None = None
    created: str | None = Field(None, description="Version creation time (ISO 8601).")


class BuildContext(BaseModel):
    """A prepared build context folder.

    Example:
        ```python
        ctx = prepare_build_context("churn", 3)
        print((ctx.path / "Dockerfile").read_text())
        ```
    """

    path: Path
    model: ModelSource
    repository: str
    requirements: list[str]
    content_hash: str = Field(..., description="Hash of Dockerfile, requirements, server and model files.")
    labels: dict[str, str]
    wheels: list[str] = Field(default_factory=list, description="Wheel file names in wheels/.")

    @property
    def content_tag(self) -> str:
        """``ctx-<12 hex>``: the tag naming this exact content."""
        return f"ctx-{self.content_hash[:12]}"

    @property
    def version_tag(self) -> str:
        """``v<version>``."""
        return f"v{self.model.version}"


class ImageRef(BaseModel):
    """A built (and maybe pushed) model image.

    Example:
        ```python
        ref = build_model_image("churn", 3)
        print(ref.reference, ref.image_id, ref.size_bytes)
        ```
    """

    repository: str
    tags: list[str] = Field(..., description="Tags in the repository: v<version> and ctx-<hash>.")
    image_id: str
    repo_digest: str | None = Field(None, description="registry/repo@sha256:... once pushed.")
    pushed: list[str] = Field(default_factory=list, description="Full references pushed.")
    size_bytes: int
    labels: dict[str, str] = Field(default_factory=dict)
    model_name: str
    model_version: int
    verified: bool = False
    reused: bool = Field(False, description="True when an image of identical content already existed.")
    build_context: Path | None = None
    build_seconds: float | None = None

    @property
    def reference(self) -> str:
        """``repository:v<version>``."""
        return f"{self.repository}:{self.tags[0]}"


class RegistryCredentials(BaseModel):
    """Credentials for a registry (the password never appears in logs or reprs).

    A Prefect block with ``username`` and ``password`` fields (e.g. prefect-docker's
    ``DockerRegistryCredentials``) or the name of a saved one is accepted wherever
    these are.

    Example:
        ```python
        creds = RegistryCredentials(username="ci", password="s3cret")
        ```
    """

    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr


class VerificationReport(BaseModel):
    """What :func:`verify_model_image` saw.

    Example:
        ```python
        report = verify_model_image(ref, holdout.drop(columns="churned"))
        assert report.passed and report.mismatches == 0
        ```
    """

    image_id: str
    model_name: str
    model_version: int
    passed: bool
    rows: int
    mismatches: int
    health_seconds: float | None = Field(None, description="Seconds until /health answered 200.")
    health_tries: int = 0
    detail: str = ""
    recorded: bool = Field(False, description="True when the MLflow version tag was written.")
    image: ImageRef | None = Field(None, description="The verified image (verified=True), when given one.")


# --- helpers --------------------------------------------------------------------------


def _emit(log: LogFn | None, message: str) -> None:
    logger.info("%s", message)
    if log is not None:
        log(message)


def _engine_client(engine: DockerEngine | Any | None) -> Any:
    if engine is None:
        return DockerEngine().client()
    if isinstance(engine, DockerEngine):
        return engine.client()
    if hasattr(engine, "get_client"):  # prefect-docker DockerHost block
        try:
            client = engine.get_client()
            client.ping()
            return client
        except Exception as exc:
            raise DockerUnavailableError(f"No Docker engine answers for {engine!r}: {exc}") from exc
    if hasattr(engine, "ping") and hasattr(engine, "images"):  # a docker.DockerClient
        return engine
    raise ConfigurationError(
        f"engine must be a DockerEngine, a DockerHost block or a DockerClient, got {engine!r}"
    )


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def default_repository(model_name: str) -> str:
    """The local repository of a model's images: ``mlops-tasks/<sanitized name>``.

    Example:
        ```python
        assert default_repository("Churn Classifier") == "mlops-tasks/churn-classifier"
        ```
    """
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"mlops-tasks/{slug}"


def _label_key(field: str) -> str:
    return f"{MODEL_LABEL}.{field}"


def _model_source(
    model_name: str, version: int | str, mlflow_config: MlflowConfig | None
) -> tuple[ModelSource, Any]:
    from mlops_tasks.registry import check_model_name, get_alias_version, get_model_version
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    check_model_name(model_name)
    resolved = resolve_and_check(mlflow_config)
    with mlflow_session(resolved) as client:
        if isinstance(version, str) and not version.isdigit():
            mv = get_alias_version(client, model_name, version)
            if mv is None:
                raise ModelNotFoundError(f"Model {model_name!r} has no alias {version!r}.")
        else:
            if int(version) < 1:
                raise ConfigurationError(f"Model versions start at 1, got {version}.")
            mv = get_model_version(client, model_name, int(version))
        created = None
        if getattr(mv, "creation_timestamp", None):
            created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
        gate = mv.tags.get("mlops.gate.passed")
        source = ModelSource(
            name=model_name,
            version=int(mv.version),
            run_id=mv.run_id,
            data_fingerprint=mv.tags.get("mlops.data_fingerprint"),
            gate_passed=None if gate is None else gate == "true",
            created=created,
        )
    return source, resolved


def _download_model(source: ModelSource, resolved: Any, dst: Path) -> None:
    import mlflow.artifacts

    from mlops_tasks.tracking import mlflow_session

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if dst.exists():
        shutil.rmtree(dst)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp, mlflow_session(resolved):
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{source.name}/{source.version}", dst_path=tmp
                )
            )
        except Exception as exc:
            raise RegistryError(
                f"Downloading {source.name!r} version {source.version} failed: {exc}"
            ) from exc
        if not (local / "MLmodel").exists():
            raise RegistryError(f"{source.name!r} version {source.version} has no MLmodel file at {local}.")
        shutil.copytree(local, dst)
    meta = {"name": source.name, "version": str(source.version), "run_id": source.run_id}
    (dst / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


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


def _server_files() -> dict[str, Path]:
    """The server's source files (relative path -> file), taken from the installed package."""
    import mlops_tasks

    root = Path(mlops_tasks.__file__).parent
    files = {"mlops_tasks/__init__.py": root / "__init__.py", "mlops_tasks/errors.py": root / "errors.py"}
    for path in sorted((root / "serving").glob("*.py")):
        files[f"mlops_tasks/serving/{path.name}"] = path
    return files


def _hash_tree(digest: Any, root: Path, prefix: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{prefix}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())


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
    slim_flag = ("" if spec.slim else " --keep-extras") + (" --precompile" if spec.precompile else "")
    return f"""\
# Model server image for {source.name!r} version {source.version}, generated by mlops-tasks.
# Built offline: every Python package comes from ./wheels (pip --no-index); no network,
# no credentials. Layers go base -> dependencies -> server -> model, so a new model
# version with the same requirements reuses everything but the last layers.

# --- stage 1: install the wheelhouse into a virtualenv ---------------------------------
FROM {spec.base_image} AS deps
COPY requirements.txt slim.py /build/
COPY wheels/ /build/wheels/
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/python -m pip install --no-index --find-links /build/wheels \\
      --no-cache-dir --no-compile --disable-pip-version-check -r /build/requirements.txt \\
 && /opt/venv/bin/python -m pip uninstall -y --disable-pip-version-check pip setuptools wheel \\
 && env -u PYTHONDONTWRITEBYTECODE /opt/venv/bin/python /build/slim.py /opt/venv{slim_flag}
LABEL {deps_labels}

# --- stage 2: the runtime image ---------------------------------------------------------
FROM {spec.base_image}
RUN echo 'mlops:x:{IMAGE_UID}:{IMAGE_UID}:mlops model server:/home/mlops:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'mlops:x:{IMAGE_UID}:' >> /etc/group \\
 && mkdir -p /home/mlops /var/lib/mlops/prediction-log \\
 && chown -R {IMAGE_UID}:{IMAGE_UID} /home/mlops /var/lib/mlops
COPY --from=deps /opt/venv /opt/venv
COPY server/ /opt/mlops-server/
COPY model/ /opt/model/
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONPATH=/opt/mlops-server \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    HOME=/home/mlops \\
    MLOPS_STATE_DIR=/var/lib/mlops \\
    MLOPS_MODEL_URI=/opt/model \\
    MLOPS_SERVE_HOST=0.0.0.0 \\
    MLOPS_SERVE_PORT={SERVER_PORT} \\
    MLOPS_PREDICTION_LOG=/var/lib/mlops/prediction-log
USER {IMAGE_UID}:{IMAGE_UID}
WORKDIR /home/mlops
EXPOSE {SERVER_PORT}
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\
    CMD {_healthcheck_cmd()}
LABEL {label_lines}
CMD ["/opt/venv/bin/python", "-m", "mlops_tasks.serving.cli"]
"""


#: Run in the dependency stage: drop what a server never loads and, with
#: ``ImageSpec.precompile``, byte-compile only the modules it imports at start.
SLIM_SCRIPT = """\
\"\"\"Slim a virtualenv for serving (written by mlops-tasks; runs inside the image build).\"\"\"
import importlib
import os
import shutil
import sys
from pathlib import Path

venv = Path(sys.argv[1])
keep_extras = "--keep-extras" in sys.argv
precompile = "--precompile" in sys.argv
site = next(venv.glob("lib/python3*/site-packages"))
for path in sorted(site.rglob("*"), reverse=True):
    if not path.exists() or path.is_symlink():
        continue
    rel = path.relative_to(site).parts
    if path.is_dir():
        if path.name == "__pycache__" or (len(rel) > 1 and path.name in ("tests", "test")):
            shutil.rmtree(path)
        continue
    if path.suffix in (".pyx", ".pxd", ".pxi", ".pyi"):
        path.unlink()
if not keep_extras and (site / "pyarrow").is_dir():
    arrow = site / "pyarrow"
    for junk in ("include", "src"):
        shutil.rmtree(arrow / junk, ignore_errors=True)
    # Arrow Flight (RPC) and the C++ test module are never loaded by a model server.
    for lib in [*arrow.glob("libarrow_flight.so*"), *arrow.glob("libarrow_python_flight.so*"),
                *arrow.glob("_flight.*.so"), *arrow.glob("_pyarrow_cpp_tests.*.so")]:
        lib.unlink()
    # Wheels cannot hold symlinks: libfoo.so, libfoo.so.N and libfoo.so.N.M.P are copies.
    for lib in arrow.glob("lib*.so.*.*.*"):
        soname = lib.name.rsplit(".", 2)[0]
        plain = lib.name.split(".so")[0] + ".so"
        for twin_name in (soname, plain):
            twin = arrow / twin_name
            if twin.is_file() and not twin.is_symlink() and twin.read_bytes() == lib.read_bytes():
                twin.unlink()
                twin.symlink_to(lib.name)
if not keep_extras and (site / "botocore" / "data").is_dir():
    # boto3 is there for the s3:// prediction log: keep the models of S3 and of the
    # credential providers (STS, SSO), drop the ~400 other AWS services (~27 MB).
    for service in (site / "botocore" / "data").iterdir():
        if service.is_dir() and service.name not in ("s3", "sts", "sso", "sso-oidc"):
            shutil.rmtree(service)
if not precompile:
    print("slimmed", site)
    sys.exit(0)
WARM = ["numpy", "pandas", "scipy", "pyarrow", "pyarrow.parquet", "skops.io", "cloudpickle", "yaml", "orjson",
        "uvicorn", "uvicorn.protocols.http.httptools_impl", "uvicorn.loops.uvloop", "uvicorn.lifespan.on",
        "uvloop", "httptools", "boto3", "botocore.client", "sklearn", "sklearn.pipeline", "sklearn.compose",
        "sklearn.preprocessing", "sklearn.impute", "sklearn.linear_model", "sklearn.ensemble", "sklearn.tree",
        "sklearn.svm", "sklearn.neighbors"]
for name in WARM:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print("slimmed", site, "and compiled the modules imported at start")
"""


DOCKERIGNORE = """\
# Only these go to the engine: Dockerfile, requirements.txt, slim.py, wheels/, server/, model/.
*
!Dockerfile
!requirements.txt
!slim.py
!wheels/
!server/
!model/
**/__pycache__
**/*.pyc
"""


def _labels(source: ModelSource, spec: ImageSpec) -> dict[str, str]:
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
        _label_key("name"): source.name,
        _label_key("version"): str(source.version),
        _label_key("run-id"): source.run_id or "",
        _label_key("data-fingerprint"): source.data_fingerprint or "",
        _label_key("gate-passed"): "" if source.gate_passed is None else str(source.gate_passed).lower(),
    }
    labels.update(spec.labels)
    return labels


def _read_model_requirements(model_dir: Path) -> list[str]:
    path = model_dir / "requirements.txt"
    if not path.exists():
        logger.warning("%s has no requirements.txt; installing the server's set only", model_dir)
        return []
    return path.read_text(encoding="utf-8").splitlines()


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
    source, resolved = _model_source(model_name, version, mlflow_config)
    repository = spec.repository or default_repository(model_name)
    root = (
        Path(context_dir)
        if context_dir
        else (
            (spec.build_dir or state_dir() / "images") / repository.replace("/", "_") / f"v{source.version}"
        )
    )
    if root.exists():
        shutil.rmtree(root)
    (root / "wheels").mkdir(parents=True)
    _download_model(source, resolved, root / "model")
    requirements = resolve_requirements(_read_model_requirements(root / "model"), spec)
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    for rel, path in _server_files().items():
        target = root / "server" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    labels = _labels(source, spec)

    digest = hashlib.sha256()
    digest.update(render_dockerfile(source, spec, labels).encode())
    digest.update((root / "requirements.txt").read_bytes())
    digest.update(SLIM_SCRIPT.encode())
    digest.update(" ".join(spec.wheel_platforms).encode())
    _hash_tree(digest, root / "server", "server")
    _hash_tree(digest, root / "model", "model")
    content_hash = digest.hexdigest()
    labels[CONTENT_LABEL] = content_hash[:12]
    (root / "Dockerfile").write_text(render_dockerfile(source, spec, labels), encoding="utf-8")
    (root / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
    (root / "slim.py").write_text(SLIM_SCRIPT, encoding="utf-8")
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
    _emit(
        log, f"Build context for {model_name} v{source.version} in {root} ({len(requirements)} requirements)"
    )
    return ctx


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
    abi = "cp" + spec.python_version.replace(".", "")
    pinned = [Path(path).read_text() for path in constraints]
    key_text = "\n".join([*requirements, *platforms, spec.python_version, *pinned])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    cache_root = spec.wheel_cache_dir or state_dir() / "wheelhouse"
    cache = cache_root / key
    if not (cache / ".complete").exists():
        started = time.monotonic()
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_root))
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
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
            str(tmp),
            "-r",
            str(requirements_file),
        ]
        for path in constraints:
            cmd += ["-c", str(path)]
        for platform in platforms:
            cmd[5:5] = ["--platform", platform]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            output = (done.stdout + done.stderr).strip()
            match = _MISSING_PACKAGE.search(output)
            package = match.group(1) if match else None
            tail = "\n".join(output.splitlines()[-15:])
            errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
            summary = errors[-1] if errors else (tail.splitlines()[-1] if tail else "pip download failed")
            raise WheelhouseError(
                f"Requirement {package or '(see log)'!r} cannot be resolved into wheels for "
                f"{spec.platform} / CPython {spec.python_version} ({', '.join(platforms)}): "
                f"{summary}. Pin a version that "
                "publishes such a wheel, or drop the requirement.",
                package=package,
                log_tail=tail,
            )
        (tmp / ".complete").write_text(key_text + "\n")
        if cache.exists():  # another build filled it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(cache)
        _emit(log, f"Wheelhouse {key}: downloaded in {time.monotonic() - started:.1f}s")
    return cache


def fill_wheelhouse(
    ctx: BuildContext, spec: ImageSpec | None = None, *, log: LogFn | None = None
) -> BuildContext:
    """Download the context's requirements as wheels for the image platform into ``wheels/``.

    Wheels are cached under ``wheel_cache_dir`` keyed by a hash of the
    requirements, platform and Python version, so a new model version with the
    same requirements downloads nothing.

    Args:
        ctx: A context from :func:`prepare_build_context`.
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
    _emit(log, f"Wheelhouse {cache.name}: {len(names)} wheels")
    return ctx.model_copy(update={"wheels": names})


def _ensure_base_image(client: Any, spec: ImageSpec, log: LogFn | None) -> None:
    import docker

    try:
        client.images.get(spec.base_image)
        return
    except docker.errors.ImageNotFound:
        pass
    reason = "pulling is turned off (ImageSpec.pull_base=False)"
    if spec.pull_base:
        _emit(log, f"Base image {spec.base_image} is missing; pulling it")
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


def _find_image(client: Any, ref: str) -> Any | None:
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


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


def _run_build(client: Any, ctx: BuildContext, spec: ImageSpec, log: LogFn | None) -> Any:
    import docker

    tag = f"{ctx.repository}:{ctx.content_tag}"
    for path in [ctx.path, *ctx.path.rglob("*")]:  # COPY keeps modes: make it readable for the user
        mode = path.stat().st_mode
        path.chmod(mode | (0o755 if path.is_dir() else 0o644))
    kwargs: dict[str, Any] = {}
    if spec.platform != "linux/amd64":
        kwargs["platform"] = spec.platform
    step: str | None = None
    lines: list[str] = []
    image_id: str | None = None
    try:
        stream = client.api.build(
            path=str(ctx.path), tag=tag, rm=True, forcerm=True, pull=False, decode=True, **kwargs
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if not line.strip():
                        continue
                    lines.append(line)
                    match = _STEP.match(line)
                    if match:
                        step = f"Step {match.group(1)}: {match.group(2)}"
                    _emit(log, line)
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                lines.append(message)
                tail = "\n".join(lines[-30:])
                raise ImageBuildError(
                    f"Building {tag} failed at {step or 'the start'}: {message.strip()}",
                    step=step,
                    log_tail=tail,
                )
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            f"The engine refused to build {tag}: {exc.explanation or exc}",
            step=step,
            log_tail="\n".join(lines[-30:]),
        ) from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailableError(f"The Docker engine failed during the build of {tag}: {exc}") from exc
    image = client.images.get(image_id or tag)
    return image


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

    client = _engine_client(engine)
    images = client.images.list(
        filters={"label": [f"{MANAGED_LABEL}=true", f"{_label_key('name')}={model_name}"]}
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
                logger.warning("Kept image %s of %s: used by container(s) %s", image.short_id, model_name,
                               ", ".join(c.name for c in users))
                continue
            # by id and forced: also drops registry tags and digest references (docker pull by digest)
            client.images.remove(image.id, force=True, noprune=False)
            removed.append(image.id)
        except docker.errors.APIError as exc:
            logger.warning("Kept image %s of %s: %s", image.short_id, model_name, exc.explanation or exc)
    return removed


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
    client = _engine_client(engine)
    ctx = prepare_build_context(
        model_name, version, spec=spec, mlflow_config=mlflow_config, with_wheels=False, log=log
    )
    existing = None if force_rebuild else _find_image(client, f"{ctx.repository}:{ctx.content_tag}")
    if existing is not None:
        existing.tag(ctx.repository, ctx.version_tag)
        _emit(log, f"Reusing {ctx.repository}:{ctx.content_tag} ({existing.short_id}): same content")
        return _image_ref(existing, ctx, reused=True, seconds=time.monotonic() - started)
    _ensure_base_image(client, spec, log)
    ctx = fill_wheelhouse(ctx, spec, log=log)
    image = _run_build(client, ctx, spec, log)
    image.tag(ctx.repository, ctx.version_tag)
    image.reload()
    removed = prune_model_images(model_name, spec.keep_images, engine=client, keep_ids=[image.id])
    if removed:
        _emit(log, f"Pruned {len(removed)} old image(s) of {model_name}")
    seconds = time.monotonic() - started
    _emit(
        log,
        f"Built {ctx.repository}:{ctx.version_tag} {image.short_id} "
        f"({int(image.attrs.get('Size') or 0) / 1e6:.0f} MB) in {seconds:.1f}s",
    )
    return _image_ref(image, ctx, reused=False, seconds=seconds)


# --- push -------------------------------------------------------------------------------


def _split_host(registry: str) -> tuple[str, str]:
    """``host[:port][/namespace]`` -> (host[:port], namespace)."""
    registry = registry.removeprefix("https://").removeprefix("http://").strip("/")
    host, _, namespace = registry.partition("/")
    if not host:
        raise ConfigurationError(f"Registry {registry!r} has no host; give e.g. 'registry.example.com:5000'.")
    return host, namespace


def ecr_credentials(
    registry_host: str, *, endpoint_url: str | None = None, region: str | None = None
) -> RegistryCredentials:
    """Log-in credentials for an Amazon ECR registry from ``get_authorization_token``.

    AWS credentials come from boto3's usual chain (environment, profile, role).

    Args:
        registry_host: ``<account>.dkr.ecr.<region>.amazonaws.com``.
        endpoint_url: ECR API endpoint (tests, VPC endpoints); default
            ``$MLOPS_ECR_ENDPOINT_URL`` or AWS's.
        region: Region; default the one in the host name.

    Returns:
        Username ``AWS`` and a 12-hour token as password.

    Raises:
        ConfigurationError: The host is not an ECR host.
        RegistryAuthError: AWS refused the token request.

    Example:
        ```python
        creds = ecr_credentials("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        ```
    """
    import boto3
    import botocore.exceptions

    match = _ECR_HOST.match(registry_host)
    if not match:
        raise ConfigurationError(f"{registry_host!r} is not an Amazon ECR registry host.")
    account, host_region = match.groups()
    endpoint = endpoint_url or os.environ.get("MLOPS_ECR_ENDPOINT_URL") or None
    ecr = boto3.client("ecr", region_name=region or host_region, endpoint_url=endpoint)
    try:
        answer = ecr.get_authorization_token(registryIds=[account])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise RegistryAuthError(
            f"Amazon ECR refused an authorization token for {registry_host}: {exc}"
        ) from exc
    data = answer["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryCredentials(username=username, password=SecretStr(password))


def _coerce_credentials(credentials: Any) -> RegistryCredentials | None:
    if credentials is None or isinstance(credentials, RegistryCredentials):
        return credentials
    if isinstance(credentials, str):  # a saved Prefect block: "<block-type-slug>/<name>"
        from prefect.blocks.core import Block

        credentials = Block.load(credentials)
    username = getattr(credentials, "username", None)
    password = getattr(credentials, "password", None)
    if not username or password is None:
        raise ConfigurationError(
            f"Credentials {type(credentials).__name__} have no username/password fields; pass "
            "RegistryCredentials or a block such as prefect-docker's DockerRegistryCredentials."
        )
    secret = password if isinstance(password, SecretStr) else SecretStr(str(password))
    return RegistryCredentials(username=str(username), password=secret)


def _check_reachable(host: str, timeout: float) -> None:
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    name = name or host
    try:
        infos = socket.getaddrinfo(name, int(port or 443), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RegistryUnreachableError(
            f"Registry host {name!r} is unknown (DNS: {exc}); check the name."
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"Registry port in {host!r} is not a number.") from exc
    errors = []
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                return
            except OSError as exc:
                errors.append(f"{address[0]}: {exc}")
    raise RegistryUnreachableError(f"Registry {host} does not answer ({'; '.join(errors)}).")


def _registry_error(ref: str, message: str) -> RegistryPushError:
    low = message.lower()
    if any(
        s in low
        for s in (
            "unauthorized",
            "authentication required",
            "no basic auth",
            "incorrect username",
            "denied",
            "401",
        )
    ):
        return RegistryAuthError(f"Registry refused the credentials for {ref}: {message}")
    if any(
        s in low
        for s in (
            "name unknown",
            "name_unknown",
            "repository does not exist",
            "does not exist in the registry",
            "repositorynotfound",
        )
    ):
        return RepositoryNotFoundError(
            f"Repository of {ref} does not exist in the registry: {message}. Create it "
            "first (e.g. aws ecr create-repository)."
        )
    if any(s in low for s in ("connection refused", "no such host", "i/o timeout", "timeout", "unreachable")):
        return RegistryUnreachableError(f"Registry of {ref} does not answer: {message}")
    return RegistryPushError(f"Pushing {ref} failed: {message}")


def _untag(client: Any, ref: str) -> None:
    """Drop a registry tag added for a push that failed (the image itself stays)."""
    import docker

    try:
        client.images.remove(ref)
    except docker.errors.APIError:
        logger.warning("Could not remove tag %s", ref)


def push_model_image(
    image: ImageRef,
    registry: str,
    *,
    credentials: RegistryCredentials | Any | str | None = None,
    repository: str | None = None,
    engine: DockerEngine | Any | None = None,
    ecr_endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
    log: LogFn | None = None,
) -> ImageRef:
    """Tag the image for a registry and push its tags; return it with its repository digest.

    Args:
        image: From :func:`build_model_image`.
        registry: ``host[:port][/namespace]``, e.g. ``127.0.0.1:5000`` or
            ``123456789012.dkr.ecr.eu-west-1.amazonaws.com``.
        credentials: :class:`RegistryCredentials`, a Prefect block with ``username``
            and ``password`` (or its saved name ``"slug/name"``). For an ECR host and
            no credentials, a token is fetched with boto3.
        repository: Repository in the registry; default the image's local one.
        engine: Docker engine.
        ecr_endpoint_url: ECR API endpoint for the token (tests, VPC endpoints).
        connect_timeout_s: Time allowed for the registry's TCP port to answer.
        log: Progress callback.

    Returns:
        The image reference with ``repo_digest`` and ``pushed`` filled in.

    Raises:
        RegistryUnreachableError: Unknown host or nothing answers.
        RegistryAuthError: Credentials refused or missing.
        RepositoryNotFoundError: The registry has no such repository.
        RegistryPushError: Any other refusal.

    Example:
        ```python
        from mlops_tasks.containerize import RegistryCredentials, push_model_image
        pushed = push_model_image(ref, "registry.example.com/ml",
                                  credentials=RegistryCredentials(username="ci", password="..."))
        print(pushed.repo_digest)
        ```
    """
    import docker

    host, namespace = _split_host(registry)
    creds = _coerce_credentials(credentials)
    if creds is None and _ECR_HOST.match(host):
        creds = ecr_credentials(host, endpoint_url=ecr_endpoint_url)
    _check_reachable(host, connect_timeout_s)
    client = _engine_client(engine)
    local = _find_image(client, image.image_id)
    if local is None:
        raise ConfigurationError(
            f"Image {image.image_id} ({image.reference}) is not on the engine; build it first."
        )
    repo_path = repository or image.repository
    target = f"{host}/{namespace + '/' if namespace else ''}{repo_path}"
    auth = None
    if creds is not None:
        auth = {"username": creds.username, "password": creds.password.get_secret_value()}
        try:
            client.login(registry=host, reauth=True, **auth)
        except docker.errors.APIError as exc:
            raise _registry_error(target, str(exc.explanation or exc)) from None
    digest: str | None = None
    pushed: list[str] = []
    for tag in image.tags:
        local.tag(target, tag)
        ref = f"{target}:{tag}"
        try:
            for chunk in client.api.push(target, tag=tag, auth_config=auth, stream=True, decode=True):
                if "error" in chunk:
                    message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise _registry_error(ref, message)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                if chunk.get("status") and chunk.get("id") is None:
                    _emit(log, chunk["status"])
        except docker.errors.APIError as exc:
            _untag(client, ref)
            raise _registry_error(ref, str(exc.explanation or exc)) from None
        except RegistryPushError:
            _untag(client, ref)
            raise
        except (docker.errors.DockerException, OSError) as exc:
            _untag(client, ref)
            raise DockerUnavailableError(f"The Docker engine failed while pushing {ref}: {exc}") from exc
        pushed.append(ref)
        _emit(log, f"Pushed {ref}")
    return image.model_copy(
        update={"repo_digest": f"{target}@{digest}" if digest else None, "pushed": pushed}
    )


# --- verify -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _container_logs(container: Any, lines: int = 30) -> str:
    try:
        return container.logs(tail=lines).decode("utf-8", "replace")
    except Exception:  # the container may be gone already
        return ""


def _predictions_match(expected: Any, got: Any, rtol: float) -> int:
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
    ``mlflow.sklearn.load_model``. The container is removed in every case. A pass
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

    Example:
        ```python
        report = verify_model_image(ref, holdout, target="churned")
        print(report.health_seconds, report.rows)
        ```
    """
    import docker
    import mlflow.sklearn

    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    if tries < 1 or load_timeout_s <= 0 or max_rows < 1:
        raise ConfigurationError("tries, load_timeout_s and max_rows must be positive.")
    client = _engine_client(engine)
    ref = image.image_id if isinstance(image, ImageRef) else image
    local = _find_image(client, ref)
    if local is None:
        raise ConfigurationError(f"Image {ref} is not on the engine; build it first.")
    labels = local.labels or {}
    name = model_name or labels.get(_label_key("name"))
    ver = version or (int(labels[_label_key("version")]) if labels.get(_label_key("version")) else None)
    if not name or ver is None:
        raise ConfigurationError(f"Image {ref} has no model labels; pass model_name and version.")
    frame = holdout.drop(columns=[target]) if target and target in holdout.columns else holdout
    frame = frame.head(max_rows)
    if frame.empty:
        raise ConfigurationError("The holdout has no rows to send.")

    resolved = resolve_and_check(mlflow_config)
    with mlflow_session(resolved):
        expected = mlflow.sklearn.load_model(f"models:/{name}/{ver}").predict(frame)

    report = VerificationReport(
        image_id=local.id, model_name=name, model_version=ver, passed=False, rows=len(frame), mismatches=0
    )
    port = _free_port()
    run_label = uuid.uuid4().hex[:12]
    container = None
    try:
        container = client.containers.run(
            local.id,
            detach=True,
            name=f"mlops-verify-{run_label}",
            ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", port)},
            labels={MANAGED_LABEL: "true", VERIFY_LABEL: run_label, _label_key("name"): name},
            environment={"MLOPS_SERVE_INSTANCE": f"verify-{run_label}"},
        )
        _emit(log, f"Verifying {local.short_id} on 127.0.0.1:{port} (container {container.short_id})")
        started = time.monotonic()
        interval = load_timeout_s / tries
        healthy = False
        for attempt in range(1, tries + 1):
            report.health_tries = attempt
            container.reload()
            if container.status in ("exited", "dead"):
                report.detail = f"container exited ({container.attrs['State'].get('ExitCode')})"
                break
            try:
                status, _ = _http(f"http://127.0.0.1:{port}/health", timeout=max(interval, 1.0))
                healthy = status == 200
            except OSError:
                healthy = False
            if healthy:
                report.health_seconds = round(time.monotonic() - started, 3)
                break
            if time.monotonic() - started > load_timeout_s:
                break
            time.sleep(interval)
        if not healthy:
            report.detail = report.detail or f"/health did not answer 200 within {load_timeout_s:.0f}s"
            raise ImageVerificationError(
                f"Image {local.short_id} ({name} v{ver}) is not healthy: {report.detail}. "
                f"Container log:\n{_container_logs(container)}",
                report=report,
            )
        body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
        status, answer = _http(f"http://127.0.0.1:{port}/invocations", body.encode(), timeout=60)
        if status != 200:
            report.detail = f"/invocations answered {status}: {answer[:500].decode('utf-8', 'replace')}"
            raise ImageVerificationError(f"Image {local.short_id}: {report.detail}", report=report)
        got = json.loads(answer)["predictions"]
        report.mismatches = _predictions_match(expected, got, rtol)
        if report.mismatches:
            report.detail = f"{report.mismatches} of {len(frame)} predictions differ from in-process ones"
            raise ImageVerificationError(
                f"Image {local.short_id} ({name} v{ver}): {report.detail}", report=report
            )
        report.passed = True
        report.detail = f"healthy after {report.health_seconds}s; {len(frame)} predictions equal"
    except docker.errors.APIError as exc:
        raise ImageVerificationError(
            f"Running image {local.short_id} failed: {exc.explanation or exc}", report=report
        ) from exc
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                logger.warning("Could not remove verification container %s", container.short_id)
    if record:
        from mlops_tasks.registry import get_model_version

        with mlflow_session(resolved) as mlclient:
            get_model_version(mlclient, name, ver)
            mlclient.set_model_version_tag(name, str(ver), TAG_IMAGE_VERIFIED, local.id)
            mlclient.set_model_version_tag(
                name, str(ver), TAG_IMAGE_VERIFIED_AT, datetime.now(UTC).isoformat(timespec="seconds")
            )
        report.recorded = True
    if isinstance(image, ImageRef):
        report.image = image.model_copy(update={"verified": True})
    _emit(log, f"Verified {local.short_id}: {report.detail}")
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
    from mlops_tasks.registry import get_model_version
    from mlops_tasks.tracking import mlflow_session, resolve_and_check

    image_id = image.image_id if isinstance(image, ImageRef) else image
    with mlflow_session(resolve_and_check(mlflow_config)) as client:
        mv = get_model_version(client, model_name, version)
    return mv.tags.get(TAG_IMAGE_VERIFIED) == image_id


__all__ = [
    "BuildContext",
    "DockerEngine",
    "ImageRef",
    "ImageSpec",
    "ModelSource",
    "RegistryCredentials",
    "VerificationReport",
    "build_model_image",
    "default_repository",
    "ecr_credentials",
    "fill_wheelhouse",
    "image_verified",
    "prepare_build_context",
    "prune_model_images",
    "push_model_image",
    "render_dockerfile",
    "resolve_requirements",
    "verify_model_image",
]
