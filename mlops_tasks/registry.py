"""The MLflow model registry: register candidates, move aliases, roll back.

Aliases used:

- ``challenger``: the newest version whose quality gate passed;
- ``champion``: the version in production; once a model is deployed it moves only
  when a deployment (or ``rollback_deployment``) succeeds. :func:`promote_model` records the
  previous champion on the new champion's tag ``mlops.previous_champion`` (and
  the champion on the registered model's tag ``mlops.champion_version``), so
  :func:`rollback_model` is one step and a champion that was deleted is
  detected instead of silently ignored.

Version tags written by :func:`register_model`: ``mlops.gate.passed``,
``mlops.gate.reasons``, ``mlops.metric.<name>``, ``mlops.data_fingerprint``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from mlops_tasks.errors import (
    ConfigurationError,
    ModelNotFoundError,
    PromotionRefusedError,
    RegistryError,
)
from mlops_tasks.registry_lookup import (
    CHALLENGER,
    CHAMPION,
    TAG_CHAMPION_VERSION,
    check_model_name,
    get_alias_version,
    get_champion,
    get_model_version,
    is_not_found,
)
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tracking import connect

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_tasks.evaluation import EvaluationReport
    from mlops_tasks.training import TrainedModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TAG_CHAMPION_VERSION",
    "TAG_GATE_PASSED",
    "TAG_GATE_REASONS",
    "TAG_PREVIOUS_CHAMPION",
    "TAG_PROMOTED_AT",
    "TAG_ROLLED_BACK_AT",
    "PromotionResult",
    "RegisteredVersion",
    "ServingEndpoints",
    "check_model_name",
    "get_alias_version",
    "get_champion",
    "get_model_version",
    "is_not_found",
    "promote_model",
    "refuse_while_deployed",
    "register_model",
    "rollback_model",
]

logger = logging.getLogger(__name__)

#: Which endpoints serve a model: given by the caller (the deploy layer knows), see :func:`rollback_model`.
ServingEndpoints = Callable[[str], Sequence[str]]

TAG_GATE_PASSED = "mlops.gate.passed"
TAG_GATE_REASONS = "mlops.gate.reasons"
TAG_PREVIOUS_CHAMPION = "mlops.previous_champion"
TAG_PROMOTED_AT = "mlops.promoted_at"
TAG_ROLLED_BACK_AT = "mlops.rolled_back_at"


class RegisteredVersion(BaseModel):
    """A model version in the registry, as the pipeline registered it."""

    name: str
    version: int
    run_id: str | None
    source: str
    gate_passed: bool
    aliases: list[str] = Field(default_factory=list)
    created: bool = Field(..., description="False when the run was already registered.")

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


class PromotionResult(BaseModel):
    """What an alias move did."""

    name: str
    alias: str = CHAMPION
    version: int
    previous_version: int | None
    changed: bool = Field(..., description="False when the version already held the alias.")
    forced: bool = False


def register_model(
    trained: TrainedModel,
    report: EvaluationReport,
    model_name: str,
    *,
    mlflow_config: MlflowConfig | None = None,
) -> RegisteredVersion:
    """Register the candidate with its gate verdict; alias ``challenger`` if it passed.

    Re-running on the same MLflow run does not create a duplicate version: the
    existing version is returned with its tags refreshed.

    Args:
        trained: The logged candidate from :func:`~mlops_tasks.training.train_model`.
        report: Its evaluation; verdict and metrics become version tags.
        model_name: Registered model name.
        mlflow_config: Where MLflow lives.

    Returns:
        The registered version.

    Raises:
        ConfigurationError: Bad model name, or the report is for another run.
        RegistryError: The registry refused the operation.
        ServiceUnavailableError: The MLflow server did not answer.

    Example:
        ```python
        from mlops_tasks.registry import register_model
        version = register_model(trained, report, "churn-classifier")
        print(version.version, version.gate_passed, version.aliases)
        ```
    """
    check_model_name(model_name)
    if report.run_id != trained.run_id:
        raise ConfigurationError(
            f"Evaluation report is for run {report.run_id}, not the candidate run {trained.run_id}; "
            "evaluate the candidate you register."
        )

    _, client = connect(mlflow_config)
    tags = {
        TAG_GATE_PASSED: str(report.passed).lower(),
        TAG_GATE_REASONS: json.dumps(report.failed_reasons)[:4900],
        "mlops.data_fingerprint": trained.data_fingerprint,
        **{f"mlops.metric.{k}": f"{v:.6g}" for k, v in report.metrics.items()},
    }
    return _register(client, trained, report, model_name, tags)


def _register(
    client: MlflowClient,
    trained: TrainedModel,
    report: EvaluationReport,
    model_name: str,
    tags: dict[str, str],
) -> RegisteredVersion:
    from mlflow.exceptions import MlflowException

    try:
        try:
            client.get_registered_model(model_name)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
            client.create_registered_model(model_name, description="Registered by mlops-tasks.")
        existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{trained.run_id}'")
        if existing:
            mv = max(existing, key=lambda v: int(v.version))
            created = False
            logger.info("Run %s is already %s version %s", trained.run_id, model_name, mv.version)
        else:
            mv = client.create_model_version(
                model_name,
                source=_version_source(client, trained.model_uri),
                run_id=trained.run_id,
                model_id=trained.model_id,
                description=f"Gate {'passed' if report.passed else 'failed'}: "
                + ("; ".join(report.failed_reasons) or "all checks passed"),
            )
            created = True
            logger.info("Registered %s version %s from run %s", model_name, mv.version, trained.run_id)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, mv.version, key, value)
        champion = get_alias_version(client, model_name, CHAMPION)
        if report.passed and not (champion is not None and champion.version == mv.version):
            client.set_registered_model_alias(model_name, CHALLENGER, mv.version)
        else:
            holder = get_alias_version(client, model_name, CHALLENGER)
            if holder is not None and holder.version == mv.version:
                client.delete_registered_model_alias(model_name, CHALLENGER)
        mv = client.get_model_version(model_name, mv.version)
    except MlflowException as exc:
        raise RegistryError(f"Registering run {trained.run_id} as {model_name!r} failed: {exc}") from exc
    return RegisteredVersion(
        name=model_name,
        version=int(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        gate_passed=report.passed,
        aliases=list(getattr(mv, "aliases", []) or []),
        created=created,
    )


def _version_source(client: MlflowClient, model_uri: str) -> str:
    """The artifact location of a logged model (``models:/<id>``), asked of ``client``.

    MLflow's local registry stores resolve a ``models:/`` source with a client on the
    *global* tracking URI; passing the location (and ``model_id``) keeps them off it.
    """
    if not model_uri.startswith("models:/"):
        return model_uri
    from mlops_tasks.tracking import artifact_location

    return artifact_location(client, model_uri)


def _move_champion(
    client: MlflowClient, name: str, version: Any, previous: Any | None, *, record_previous: bool
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_registered_model_tag(name, TAG_CHAMPION_VERSION, str(version.version))
    client.set_model_version_tag(name, version.version, TAG_PROMOTED_AT, now)
    if record_previous and previous is not None:
        client.set_model_version_tag(name, version.version, TAG_PREVIOUS_CHAMPION, str(previous.version))
    challenger = get_alias_version(client, name, CHALLENGER)
    if challenger is not None and challenger.version == version.version:
        client.delete_registered_model_alias(name, CHALLENGER)


def promote_model(
    model_name: str,
    version: int,
    *,
    force: bool = False,
    mlflow_config: MlflowConfig | None = None,
) -> PromotionResult:
    """Move alias ``champion`` to ``version``, recording the previous champion.

    Args:
        model_name: Registered model name.
        version: Version to promote.
        force: Promote even though the version's gate did not pass.
        mlflow_config: Where MLflow lives.

    Returns:
        What moved; ``changed`` is False when ``version`` already was champion.

    Raises:
        ModelNotFoundError: The version does not exist.
        PromotionRefusedError: The version's gate did not pass and ``force`` is False.
        RegistryError: The registry refused the operation.

    Example:
        ```python
        from mlops_tasks.registry import promote_model
        result = promote_model("churn-classifier", 3)
        print(result.previous_version, "->", result.version)
        ```
    """
    check_model_name(model_name)
    if version < 1:
        raise ConfigurationError(f"Model versions start at 1, got {version}.")

    _, client = connect(mlflow_config)
    return _promote(client, model_name, version, force)


def _promote(client: MlflowClient, model_name: str, version: int, force: bool) -> PromotionResult:
    from mlflow.exceptions import MlflowException

    target = get_model_version(client, model_name, version)
    passed = target.tags.get(TAG_GATE_PASSED) == "true"
    if not passed and not force:
        reasons = target.tags.get(TAG_GATE_REASONS, "no gate verdict recorded")
        raise PromotionRefusedError(
            f"{model_name!r} version {version} has not passed its quality gate ({reasons}); "
            "fix the model, or pass force=True to promote it anyway."
        )
    try:
        current = get_alias_version(client, model_name, CHAMPION)
        if current is not None and int(current.version) == int(version):
            logger.info("%s version %s is already champion", model_name, version)
            return PromotionResult(
                name=model_name, version=version, previous_version=None, changed=False, forced=force
            )
        _move_champion(client, model_name, target, current, record_previous=True)
    except MlflowException as exc:
        raise RegistryError(f"Promoting {model_name!r} version {version} failed: {exc}") from exc
    previous = int(current.version) if current is not None else None
    logger.info("Promoted %s version %s to champion (previous: %s)", model_name, version, previous)
    return PromotionResult(
        name=model_name, version=version, previous_version=previous, changed=True, forced=force
    )


def rollback_model(
    model_name: str,
    *,
    mlflow_config: MlflowConfig | None = None,
    serving_endpoints: ServingEndpoints | None = None,
) -> PromotionResult:
    """Put the previous champion back: one step, from the recorded history.

    The model registry knows nothing of deployments: the caller says which endpoints serve
    the model (``serving_endpoints``), and while any does, the alias-only rollback is refused
    (:func:`refuse_while_deployed`). The ``rollback-model`` task passes the deploy layer's
    :func:`mlops_tasks.deploy.state.endpoints_serving`.

    Args:
        model_name: Registered model name.
        mlflow_config: Where MLflow lives.
        serving_endpoints: Called with the model name, returns the endpoints serving it;
            ``None``: no endpoint is asked about (nothing is deployed by this pipeline).

    Returns:
        What moved: ``version`` is the restored champion, ``previous_version`` the
        one rolled back.

    Raises:
        ModelNotFoundError: No champion, or the recorded previous champion was deleted.
        PromotionRefusedError: No previous champion was recorded, or an endpoint serves the model.

    Example:
        ```python
        from mlops_tasks.deploy.state import endpoints_serving
        from mlops_tasks.registry import rollback_model
        print(rollback_model("churn-classifier", serving_endpoints=endpoints_serving).version)
        ```
    """
    check_model_name(model_name)
    if serving_endpoints is not None:
        refuse_while_deployed(model_name, serving_endpoints(model_name))

    _, client = connect(mlflow_config)
    return _rollback(client, model_name)


def refuse_while_deployed(model_name: str, endpoints: Sequence[str]) -> None:
    """Refuse to move the alias alone while ``endpoints`` serve ``model_name``.

    While an endpoint serves the model, the alias ``champion`` must follow what serves, so
    an alias-only rollback is refused and ``rollback_deployment`` is named instead.

    Args:
        model_name: Registered model name.
        endpoints: The endpoints serving it (the caller asks the deploy layer).

    Raises:
        PromotionRefusedError: ``endpoints`` is not empty.
    """
    if endpoints:
        raise PromotionRefusedError(
            f"Model {model_name!r} is live on endpoint(s) {', '.join(endpoints)}: rolling back the "
            "alias alone would make 'champion' disagree with what serves. Use "
            f"rollback_deployment({endpoints[0]!r}) (task or flow 'rollback-deployment'), which "
            "puts the previous version back at 100 % and moves the alias with it."
        )


def _rollback(client: MlflowClient, model_name: str) -> PromotionResult:
    from mlflow.exceptions import MlflowException

    current = get_champion(client, model_name)
    if current is None:
        raise ModelNotFoundError(
            f"Model {model_name!r} has no champion to roll back; promote a version first."
        )
    previous_version = current.tags.get(TAG_PREVIOUS_CHAMPION)
    if not previous_version:
        raise PromotionRefusedError(
            f"{model_name!r} champion version {current.version} has no recorded previous champion; "
            "promote the version you want with promote_model(..., force=True)."
        )
    previous = get_model_version(client, model_name, previous_version)
    try:
        _move_champion(client, model_name, previous, None, record_previous=False)
        client.set_model_version_tag(
            model_name, current.version, TAG_ROLLED_BACK_AT, datetime.now(UTC).isoformat(timespec="seconds")
        )
    except MlflowException as exc:
        raise RegistryError(f"Rolling back {model_name!r} failed: {exc}") from exc
    logger.info("Rolled back %s: champion %s -> %s", model_name, current.version, previous.version)
    return PromotionResult(
        name=model_name,
        version=int(previous.version),
        previous_version=int(current.version),
        changed=True,
    )
