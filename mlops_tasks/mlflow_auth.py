"""MLflow request-auth provider: credentials from our settings, never from the process environment.

MLflow 3's REST client builds each request's credentials in
``mlflow.utils.credentials.get_default_host_creds`` from ``MLFLOW_TRACKING_USERNAME`` /
``..._PASSWORD`` (or ``~/.mlflow/credentials``) and ``MLFLOW_TRACKING_TOKEN``: process-wide
values, one identity per process. It also names a *request-auth provider* with
``MLFLOW_TRACKING_AUTH``; ``mlflow.utils.rest_utils.http_request`` then asks the provider
registered under that name (entry point group ``mlflow.request_auth_provider``) for a
``requests`` auth object and hands it to every request, REST calls and ``mlflow-artifacts``
uploads alike.

This package registers :class:`MlopsRequestAuthProvider` under the name ``mlops-tasks``. Its
auth object looks the request's URL up in the credentials that
:func:`register_credentials` recorded for the tracking and registry URIs of each
:class:`~mlops_tasks.settings.ResolvedMlflowConfig` a client was built from (explicit argument
or block), and sets the ``Authorization`` header for that server only. A request to a server
with no recorded credentials is left as MLflow built it, so MLflow's own environment variables
and credentials file keep working. See docs/configuration.md for why this mechanism.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider
from requests.auth import AuthBase

from mlops_tasks.errors import ConfigurationError

if TYPE_CHECKING:
    from mlops_tasks.settings import ResolvedMlflowConfig

__all__ = [
    "AUTH_VARIABLE",
    "PROVIDER_NAME",
    "MlopsRequestAuthProvider",
    "SettingsAuth",
    "authorization_for",
    "register_credentials",
]

logger = logging.getLogger(__name__)

PROVIDER_NAME = "mlops-tasks"
#: The variable MLflow reads to pick a request-auth provider (a name, never a secret).
AUTH_VARIABLE = "MLFLOW_TRACKING_AUTH"

_lock = threading.Lock()
_headers: dict[str, str] = {}  # normalised server URI -> Authorization header value


def _normalise(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme.lower() not in {"http", "https"}:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _header(config: ResolvedMlflowConfig) -> str | None:
    if config.username and config.password:
        pair = f"{config.username}:{config.password.get_secret_value()}".encode()
        return "Basic " + base64.standard_b64encode(pair).decode()
    if config.token:
        return f"Bearer {config.token.get_secret_value()}"
    return None


def register_credentials(config: ResolvedMlflowConfig) -> None:
    """Record ``config``'s credentials for its tracking and registry servers.

    Called by :func:`mlops_tasks.tracking.get_client`. The first time credentials are
    recorded and ``MLFLOW_TRACKING_AUTH`` is unset, it is set to ``mlops-tasks`` (the
    provider's name, no secret) so MLflow consults the provider; set it in the worker's
    environment to make that explicit.

    Raises:
        ConfigurationError: ``MLFLOW_TRACKING_AUTH`` names another provider, so the
            credentials in ``config`` could not reach MLflow.
    """
    header = _header(config)
    if header is None:
        return
    servers = {key for key in map(_normalise, {config.tracking_uri, config.registry_uri}) if key}
    if not servers:
        return
    chosen = os.environ.setdefault(AUTH_VARIABLE, PROVIDER_NAME)
    if chosen != PROVIDER_NAME:
        raise ConfigurationError(
            f"{AUTH_VARIABLE}={chosen!r} selects another MLflow auth provider, so the credentials "
            f"in the MLflow settings for {config.tracking_uri} cannot be sent; unset it or set it "
            f"to {PROVIDER_NAME!r}, or drop the token/username from the settings."
        )
    with _lock:
        for server in servers:
            if _headers.get(server) != header:
                logger.debug("MLflow credentials recorded for %s", server)
            _headers[server] = header


def authorization_for(url: str) -> str | None:
    """The ``Authorization`` value recorded for the server ``url`` belongs to, if any.

    The longest recorded server URI that is a prefix of ``url`` (at a path boundary) wins.
    """
    target = _normalise(url)
    if target is None:
        return None
    with _lock:
        matches = [server for server in _headers if target == server or target.startswith(server + "/")]
        return _headers[max(matches, key=len)] if matches else None


class SettingsAuth(AuthBase):
    """``requests`` auth that sets the recorded credentials of the request's server."""

    def __call__(self, request: Any) -> Any:
        """Set the ``Authorization`` header when credentials are recorded for the URL's server."""
        header = authorization_for(request.url or "")
        if header is not None:
            request.headers["Authorization"] = header
        return request


class MlopsRequestAuthProvider(RequestAuthProvider):
    """MLflow request-auth provider ``mlops-tasks`` (entry point ``mlflow.request_auth_provider``)."""

    def get_name(self) -> str:
        """The name ``MLFLOW_TRACKING_AUTH`` selects: ``mlops-tasks``."""
        return PROVIDER_NAME

    def get_auth(self) -> SettingsAuth:
        """The auth object MLflow passes to every request."""
        return SettingsAuth()
