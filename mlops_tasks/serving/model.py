"""Find, load and describe the model the server runs.

The serving runtime reads an MLflow model folder itself: the ``MLmodel`` YAML names
the sklearn flavor's serialized file and its format (``skops``, ``cloudpickle`` or
``pickle``) and holds the input signature, which is parsed here. MLflow is imported
only to resolve registry URIs (``models:/name@alias``, ``models:/name/version``,
``runs:/...``); a local folder is served with no MLflow installed at all.

Which model is being served (name, version, run id) comes, first match wins, from:

1. the environment: ``MLOPS_MODEL_NAME``, ``MLOPS_MODEL_VERSION``, ``MLOPS_MODEL_RUN_ID``;
2. ``serving-model.json`` beside ``MLmodel`` (written by :func:`download_model`, or
   dropped there by an image builder): ``{"name": ..., "version": ..., "run_id": ...}``;
3. ``MLmodel`` itself (``run_id``) and the folder name.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_tasks.errors import ModelLoadError

METADATA_FILE = "serving-model.json"

#: MLflow column types -> the NumPy dtype MLflow's schema enforcement gives them.
MLFLOW_DTYPES: dict[str, np.dtype] = {
    "double": np.dtype("float64"),
    "float": np.dtype("float32"),
    "long": np.dtype("int64"),
    "integer": np.dtype("int32"),
    "boolean": np.dtype("bool"),
    "string": np.dtype("object"),
    "binary": np.dtype("object"),
    "datetime": np.dtype("datetime64[ns]"),
}
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
INTEGER_TYPES = frozenset({"long", "integer"})


@dataclass(frozen=True)
class ColumnSpec:
    """One named input column of a model signature.

    Example:
        ```python
        col = ColumnSpec(name="tenure_months", type="long")
        assert col.dtype == "int64" and col.numeric
        ```
    """

    name: str
    type: str
    required: bool = True

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype MLflow would give this column."""
        return MLFLOW_DTYPES.get(self.type, np.dtype("object"))

    @property
    def numeric(self) -> bool:
        """Whether the column holds numbers (``double``, ``float``, ``long``, ``integer``)."""
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class ModelInfo:
    """What is being served, as shown by ``/version``, headers and the prediction log.

    Example:
        ```python
        info = ModelInfo(name="churn", version="3", run_id="abc")
        assert info.as_dict()["version"] == "3"
        ```
    """

    name: str
    version: str
    run_id: str | None = None
    source_uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source_uri": self.source_uri,
        }


@dataclass
class LoadedModel:
    """A deserialized sklearn model with its signature and identity.

    Example:
        ```python
        from mlops_tasks.serving.model import load_model
        model = load_model("/models/churn")          # an MLflow model folder
        print(model.info.name, [c.name for c in model.columns])
        ```
    """

    estimator: Any
    columns: list[ColumnSpec]
    info: ModelInfo
    path: Path
    input_example: Any = None
    output_type: str | None = None
    cleanup_dir: Path | None = field(default=None, repr=False)

    @property
    def column_names(self) -> list[str]:
        """Input column names in signature order."""
        return [c.name for c in self.columns]

    def close(self) -> None:
        """Remove the temporary download folder, if the model was fetched from a registry."""
        if self.cleanup_dir is not None:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)
            self.cleanup_dir = None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    with path.open("r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not an MLmodel YAML mapping.")
    return data


def parse_signature(mlmodel: dict[str, Any]) -> tuple[list[ColumnSpec], str | None]:
    """Parse the column-based input signature (and output type) of an ``MLmodel`` dict.

    Args:
        mlmodel: The parsed ``MLmodel`` YAML.

    Returns:
        The input columns in order (empty when the model has no column signature) and
        the output type name, if the signature has one.

    Example:
        ```python
        cols, out = parse_signature({"signature": {
            "inputs": '[{"type": "double", "name": "x", "required": true}]',
            "outputs": '[{"type": "long", "required": true}]'}})
        assert cols[0].name == "x" and out == "long"
        ```
    """
    signature = mlmodel.get("signature") or {}
    raw_inputs = signature.get("inputs")
    columns: list[ColumnSpec] = []
    if raw_inputs:
        specs = json.loads(raw_inputs) if isinstance(raw_inputs, str) else raw_inputs
        for spec in specs:
            if spec.get("type") == "tensor" or "name" not in spec:
                # Tensor signatures have no column names: serve without column checks.
                return [], None
            columns.append(
                ColumnSpec(
                    name=str(spec["name"]),
                    type=str(spec.get("type", "string")),
                    required=bool(spec.get("required", True)),
                )
            )
    output_type = None
    raw_outputs = signature.get("outputs")
    if raw_outputs:
        outs = json.loads(raw_outputs) if isinstance(raw_outputs, str) else raw_outputs
        if outs and isinstance(outs[0], dict):
            output_type = outs[0].get("type")
    return columns, output_type


def _deserialize(model_dir: Path, flavor: dict[str, Any]) -> Any:
    file_name = flavor.get("pickled_model")
    if not file_name:
        raise ModelLoadError(f"The sklearn flavor in {model_dir / 'MLmodel'} names no model file.")
    path = model_dir / file_name
    if not path.exists():
        raise ModelLoadError(f"Model file {path} named by {model_dir / 'MLmodel'} is missing.")
    fmt = flavor.get("serialization_format", "pickle")
    try:
        if fmt == "skops":
            import skops.io

            return skops.io.load(path, trusted=flavor.get("skops_trusted_types"))
        with path.open("rb") as fh:
            if fmt == "cloudpickle":
                try:
                    import cloudpickle
                except ImportError:  # plain pickle reads cloudpickle output of importable code
                    return pickle.load(fh)
                return cloudpickle.load(fh)
            if fmt == "pickle":
                return pickle.load(fh)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Cannot deserialize {path} ({fmt}): {type(exc).__name__}: {exc}. Serve it with "
            "the scikit-learn version it was saved with."
        ) from exc
    raise ModelLoadError(f"Unknown serialization format {fmt!r} in {model_dir / 'MLmodel'}.")


def _read_input_example(model_dir: Path, mlmodel: dict[str, Any]) -> Any:
    """The model's serving input example as a scoring-request dict, if it has one."""
    info = mlmodel.get("saved_input_example_info") or {}
    serving = info.get("serving_input_path")
    try:
        if serving and (model_dir / serving).exists():
            return json.loads((model_dir / serving).read_text(encoding="utf-8"))
        name = info.get("artifact_path")
        if name and (model_dir / name).exists() and info.get("pandas_orient") == "split":
            data = json.loads((model_dir / name).read_text(encoding="utf-8"))
            return {"dataframe_split": data}
    except (OSError, ValueError):
        return None
    return None


def _model_info(model_dir: Path, mlmodel: dict[str, Any], hint: ModelInfo | None) -> ModelInfo:
    meta: dict[str, Any] = {}
    meta_path = model_dir / METADATA_FILE
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from exc
    if hint is not None:
        meta = {**meta, **{k: v for k, v in hint.as_dict().items() if v is not None}}
    name = os.environ.get("MLOPS_MODEL_NAME") or meta.get("name") or model_dir.name
    version = os.environ.get("MLOPS_MODEL_VERSION") or meta.get("version") or "unknown"
    run_id = os.environ.get("MLOPS_MODEL_RUN_ID") or meta.get("run_id") or mlmodel.get("run_id")
    return ModelInfo(
        name=str(name),
        version=str(version),
        run_id=str(run_id) if run_id else None,
        source_uri=meta.get("source_uri") or str(model_dir),
    )


def load_model_folder(path: str | os.PathLike[str], info: ModelInfo | None = None) -> LoadedModel:
    """Load a local MLflow sklearn model folder without MLflow.

    Args:
        path: Folder holding ``MLmodel`` and the serialized model.
        info: Identity to record (overrides ``serving-model.json``; the environment
            variables still win).

    Returns:
        The loaded model.

    Raises:
        ModelLoadError: The folder, ``MLmodel`` or the model file is missing or unreadable,
            or the model has no sklearn flavor.

    Example:
        ```python
        model = load_model_folder("/models/churn")
        model.estimator.predict(frame)
        ```
    """
    model_dir = Path(path).expanduser().resolve()
    mlmodel_path = model_dir / "MLmodel"
    if not model_dir.is_dir():
        raise ModelLoadError(f"Model folder {model_dir} does not exist.")
    if not mlmodel_path.exists():
        raise ModelLoadError(f"{model_dir} is not an MLflow model folder: it has no MLmodel file.")
    try:
        mlmodel = _read_yaml(mlmodel_path)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"Cannot read {mlmodel_path}: {exc}") from exc
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        flavors = sorted((mlmodel.get("flavors") or {}).keys())
        raise ModelLoadError(
            f"{model_dir} has no sklearn flavor (flavors: {flavors}); this server runs "
            "scikit-learn models logged with mlflow.sklearn.log_model."
        )
    estimator = _deserialize(model_dir, flavor)
    if not hasattr(estimator, "predict"):
        raise ModelLoadError(f"The object in {model_dir} has no predict method.")
    columns, output_type = parse_signature(mlmodel)
    return LoadedModel(
        estimator=estimator,
        columns=columns,
        info=_model_info(model_dir, mlmodel, info),
        path=model_dir,
        input_example=_read_input_example(model_dir, mlmodel),
        output_type=output_type,
    )


def _is_local(uri: str) -> bool:
    if uri.startswith("file://"):
        return True
    return "://" not in uri and not uri.startswith(("models:", "runs:"))


def resolve_store_uris(tracking_uri: str | None = None, registry_uri: str | None = None) -> tuple[str, str]:
    """Which MLflow tracking store and registry a ``models:/`` or ``runs:/`` URI is looked up in.

    The tasks' precedence without blocks (the server imports no Prefect): the arguments
    (``--tracking-uri`` / ``--registry-uri``), then ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI`` (or their ``MLOPS_MLFLOW_*`` forms), then the SQLite store of the
    state folder (``<$MLOPS_STATE_DIR or ./.mlops>/mlflow.db``) that the tasks write by
    default. The registry defaults to the tracking store. Nothing is created: a state folder
    without a store is an error, never a new empty database.

    Args:
        tracking_uri: Explicit tracking URI (wins).
        registry_uri: Explicit registry URI (wins).

    Returns:
        ``(tracking_uri, registry_uri)``.

    Raises:
        ModelLoadError: Nothing is configured and the state folder holds no ``mlflow.db``.

    Example:
        ```python
        tracking, registry = resolve_store_uris("http://127.0.0.1:5000")
        assert registry == "http://127.0.0.1:5000"
        ```
    """
    env = os.environ
    tracking = tracking_uri or env.get("MLFLOW_TRACKING_URI") or env.get("MLOPS_MLFLOW_TRACKING_URI") or None
    if tracking is None:
        state = Path(env.get("MLOPS_STATE_DIR") or ".mlops").expanduser().resolve()
        db = state / "mlflow.db"
        if not db.is_file():
            raise ModelLoadError(
                f"No MLflow store to resolve the model URI in: no --tracking-uri, no "
                f"MLFLOW_TRACKING_URI, and the state folder has no store at {db}. Pass "
                "--tracking-uri (e.g. http://mlflow:5000), set MLOPS_STATE_DIR to the folder the "
                "tasks wrote, or serve a local model folder."
            )
        tracking = f"sqlite:///{db}"
    registry = registry_uri or env.get("MLFLOW_REGISTRY_URI") or env.get("MLOPS_MLFLOW_REGISTRY_URI")
    return tracking, registry or tracking


def _registry_info(uri: str, tracking_uri: str, registry_uri: str) -> tuple[ModelInfo, str]:
    """Ask the MLflow registry which version ``models:/...`` names, and where its files are."""
    from mlflow import MlflowClient

    rest = uri[len("models:/") :].strip("/")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, version = rest.partition("/")
        if not version:
            raise ModelLoadError(
                f"Model URI {uri!r} names no version or alias; use models:/{name}@<alias> "
                f"or models:/{name}/<version>."
            )
        if version.lower() == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise ModelLoadError(f"Registered model {name!r} has no versions.")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(name, version)
    info = ModelInfo(name=mv.name, version=str(mv.version), run_id=mv.run_id, source_uri=uri)
    location = client.get_model_version_download_uri(mv.name, mv.version)
    if location.startswith("models:/"):  # a version whose source is a logged model
        location = client.get_logged_model(location[len("models:/") :].strip("/")).artifact_location
    return info, location


def download_model(
    uri: str,
    dst: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> Path:
    """Download a model from MLflow into ``dst`` and write ``serving-model.json`` beside it.

    Use it to prepare a folder the server (or an image) can run without MLflow.

    Args:
        uri: ``models:/name@alias``, ``models:/name/version``, ``runs:/...`` or any URI
            ``mlflow.artifacts.download_artifacts`` understands.
        dst: Existing or new local folder.
        tracking_uri: MLflow tracking server or store to ask; ``None``: as
            :func:`resolve_store_uris` decides (environment, then the state folder's store).
            Passed explicitly, never set globally.
        registry_uri: MLflow registry to ask; ``None``: as :func:`resolve_store_uris` decides.

    Returns:
        The local model folder (the one holding ``MLmodel``).

    Raises:
        ModelLoadError: MLflow is not installed, no store is configured, the model does not
            exist or cannot be fetched (the message names the store it searched).

    Example:
        ```python
        folder = download_model("models:/churn@champion", "/build/model")
        # folder/serving-model.json -> {"name": "churn", "version": "3", ...}
        ```
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow.artifacts
    except ImportError as exc:
        raise ModelLoadError(
            f"Resolving {uri!r} needs MLflow, which is not installed; serve a local model folder."
        ) from exc
    tracking_uri, registry_uri = resolve_store_uris(tracking_uri, registry_uri)
    searched = f"tracking URI {tracking_uri}" + (
        f", registry URI {registry_uri}" if registry_uri != tracking_uri else ""
    )
    try:
        # the registry is asked with an explicit client: MLflow's own models:/ resolution
        # reads its global registry URI (and MLflow's default store is ./mlflow.db)
        info, location = (
            _registry_info(uri, tracking_uri, registry_uri) if uri.startswith("models:/") else (None, uri)
        )
        Path(dst).mkdir(parents=True, exist_ok=True)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"Cannot fetch model {uri!r} from MLflow ({searched}): {exc}") from exc
    if not (local / "MLmodel").exists():
        candidates = [p.parent for p in local.rglob("MLmodel")]
        if len(candidates) != 1:
            raise ModelLoadError(f"{uri!r} downloaded to {local} holds no single MLmodel file.")
        local = candidates[0]
    if info is None:
        info = ModelInfo(name=local.name, version="unknown", source_uri=uri)
    (local / METADATA_FILE).write_text(json.dumps(info.as_dict(), indent=2), encoding="utf-8")
    return local


def load_model(
    uri: str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> LoadedModel:
    """Load a model by URI: a local MLflow model folder or anything MLflow resolves.

    Registry URIs are downloaded once (into ``cache_dir`` or a temporary folder removed
    by :meth:`LoadedModel.close`) and then loaded like a local folder.

    Args:
        uri: ``models:/name@alias``, ``models:/name/version``, ``runs:/...``, a folder
            path or ``file://`` URI.
        cache_dir: Where to download registry models; a new temporary folder by default.
        tracking_uri: MLflow store to resolve registry URIs in (see :func:`resolve_store_uris`).
        registry_uri: MLflow registry, when not the tracking store.

    Returns:
        The loaded model.

    Raises:
        ModelLoadError: The model cannot be found, fetched or deserialized.

    Example:
        ```python
        model = load_model("models:/churn@champion")
        print(model.info.version)
        ```
    """
    if not uri:
        raise ModelLoadError("No model URI given.")
    if _is_local(uri):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return load_model_folder(path)
    cleanup: Path | None = None
    if cache_dir is None:
        cleanup = Path(tempfile.mkdtemp(prefix="mlops-serve-model-"))
        target = cleanup
    else:
        target = Path(cache_dir)
    try:
        folder = download_model(uri, target, tracking_uri=tracking_uri, registry_uri=registry_uri)
        model = load_model_folder(folder)
    except BaseException:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise
    model.cleanup_dir = cleanup
    return model
