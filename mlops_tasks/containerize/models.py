"""Parameters and results of the image stages: JSON-serialisable pydantic models.

:class:`ImageSpec` says how to build, :class:`ModelSource` which registered version,
:class:`BuildContext` what was written, :class:`ImageRef` what was built or pushed,
:class:`RegistryCredentials` how to log in to a container registry and
:class:`VerificationReport` what the verification saw.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mlops_tasks.containerize.constants import DEFAULT_BASE_IMAGE
from mlops_tasks.errors import ConfigurationError

__all__ = [
    "BuildContext",
    "ImageRef",
    "ImageSpec",
    "ModelSource",
    "RegistryCredentials",
    "VerificationReport",
]


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
        """The pip ``--platform`` tags (manylinux up to :attr:`glibc`, pip adds the older ones)."""
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
    """Credentials for a container registry (the password never appears in logs or reprs).

    Any object with ``username`` and ``password`` fields (e.g. a loaded prefect-docker
    ``DockerRegistryCredentials`` block) is accepted wherever these are. The name of a
    saved block is resolved by the Prefect task ``mlops_tasks.tasks.push_model_image``.

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
