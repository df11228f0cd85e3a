"""What a drift check of an endpoint reads: its model, its live version and its prediction log.

Both targets log to ``<state_dir()>/endpoints/<name>/prediction-log`` (the local target's
servers write there, the docker target bind-mounts that folder into every slot), so one
answer fits both.

Example:
    ```python
    from mlops_tasks.deploy.monitored import endpoint_source
    source = endpoint_source("churn")
    print(source.model_name, source.version, source.prediction_log)
    ```
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from mlops_tasks.deploy import state
from mlops_tasks.errors import EndpointNotFoundError, MLOpsError
from mlops_tasks.settings import state_dir

__all__ = ["EndpointSource", "endpoint_source"]

logger = logging.getLogger(__name__)


class EndpointSource(BaseModel):
    """The model, version and prediction log an endpoint's drift check reads.

    Example:
        ```python
        source = EndpointSource(endpoint="churn", model_name="churn-classifier", version=3,
                                version_from="router", target="local",
                                prediction_log="/srv/.mlops/endpoints/churn/prediction-log")
        ```
    """

    endpoint: str = Field(description="Endpoint name.")
    model_name: str = Field(description="Registered model the endpoint serves.")
    version: int | None = Field(description="Version serving now (None: none known).")
    version_from: str = Field(description="Where the version was read: router, or the deployment history.")
    prediction_log: str = Field(description="The endpoint's prediction-log folder.")
    target: str = Field(description="Deploy target kind (local or docker).")


def _check_name(name: str) -> str:
    if not name or not name.strip() or "/" in name or name in (".", ".."):
        raise EndpointNotFoundError(
            f"Endpoint name {name!r} is not usable: give the name the endpoint was deployed with, "
            "e.g. 'churn' (`python -m flows.deployment --endpoint churn`)."
        )
    return name


def endpoint_source(name: str) -> EndpointSource:
    """Resolve an endpoint into the model version it serves and its prediction log.

    The version is the one the router sends traffic to right now (read back from the router
    and the slots); when the endpoint is stopped or the router cannot be read, the version
    of its last successful deployment (its history), with a log line saying so.

    Args:
        name: The endpoint's name (``EndpointSpec.name``).

    Returns:
        The endpoint's model name, version, prediction-log folder and target kind.

    Raises:
        EndpointNotFoundError: The name is malformed, or the endpoint was never deployed
            in this state folder (no history and no saved spec).

    Example:
        ```python
        source = endpoint_source("churn")
        assert source.prediction_log.endswith("endpoints/churn/prediction-log")
        ```
    """
    _check_name(name)
    folder = state_dir() / "endpoints" / name
    saved = state.load_endpoint(name)
    last = state.last_record(name, outcome="succeeded")
    if saved is None and last is None:
        known = ", ".join(state.live_endpoints()) or "none"
        raise EndpointNotFoundError(
            f"Endpoint {name!r} was never deployed from state folder {state_dir()} (live endpoints: "
            f"{known}). Deploy it first (`python -m flows.deployment --endpoint {name}`), or give "
            "the model name and a prediction log instead of the endpoint."
        )
    version: int | None = None
    version_from = "deployment history"
    if saved is not None:
        from mlops_tasks.deploy.endpoint_ops import describe_deployment

        try:
            version = describe_deployment(name).live_version
            version_from = "router"
        except MLOpsError as exc:  # router unreadable: fall back to the history, say so
            logger.warning("Endpoint %s: live version not readable (%s); using its history", name, exc)
    if version is None and last is not None:
        version, version_from = last.version, "deployment history"
    if saved is not None:
        model_name, target = saved[2], saved[1]
    else:
        assert last is not None  # checked above: one of them is set
        model_name, target = last.model_name, "unknown (stopped)"
    return EndpointSource(
        endpoint=name,
        model_name=model_name,
        version=version,
        version_from=version_from,
        prediction_log=str(folder / "prediction-log"),
        target=target,
    )
