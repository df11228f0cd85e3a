"""Container (Docker/OCI) registries: address, reachability, log-in credentials, refusals.

Not MLflow's model registry (:mod:`mlops_tasks.registry`): the errors raised here are
the ``ContainerRegistryError`` family of :mod:`mlops_tasks.errors`, not ``RegistryError``.
"""

from __future__ import annotations

import base64
import re
import socket
from typing import Any

from pydantic import SecretStr

from mlops_tasks.containerize.models import RegistryCredentials
from mlops_tasks.errors import (
    ConfigurationError,
    ContainerRegistryAuthError,
    ContainerRegistryError,
    ContainerRegistryUnreachableError,
    ContainerRepositoryNotFoundError,
)
from mlops_tasks.settings import first_set, get_settings

__all__ = [
    "check_registry_reachable",
    "coerce_registry_credentials",
    "ecr_credentials",
    "is_ecr_host",
    "registry_refusal",
    "split_registry",
]

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

_AUTH_HINTS = (
    "unauthorized",
    "authentication required",
    "no basic auth",
    "incorrect username",
    "denied",
    "401",
)
_MISSING_REPOSITORY_HINTS = (
    "name unknown",
    "name_unknown",
    "repository does not exist",
    "does not exist in the registry",
    "repositorynotfound",
)
_UNREACHABLE_HINTS = ("connection refused", "no such host", "i/o timeout", "timeout", "unreachable")


def split_registry(registry: str) -> tuple[str, str]:
    """Split ``host[:port][/namespace]`` (an ``http(s)://`` prefix is ignored).

    Args:
        registry: The registry address.

    Returns:
        ``(host[:port], namespace)``; the namespace may be empty.

    Raises:
        ConfigurationError: The address has no host.

    Example:
        ```python
        assert split_registry("https://registry.example.com:5000/ml") == ("registry.example.com:5000", "ml")
        ```
    """
    registry = registry.removeprefix("https://").removeprefix("http://").strip("/")
    host, _, namespace = registry.partition("/")
    if not host:
        raise ConfigurationError(f"Registry {registry!r} has no host; give e.g. 'registry.example.com:5000'.")
    return host, namespace


def is_ecr_host(host: str) -> bool:
    """Whether ``host`` is an Amazon ECR registry (``<account>.dkr.ecr.<region>.amazonaws.com``).

    Example:
        ```python
        assert is_ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        ```
    """
    return _ECR_HOST.match(host) is not None


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
        ContainerRegistryAuthError: AWS refused the token request.

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
    endpoint = first_set(endpoint_url, get_settings().ecr_endpoint_url)
    ecr = boto3.client("ecr", region_name=region or host_region, endpoint_url=endpoint)
    try:
        answer = ecr.get_authorization_token(registryIds=[account])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise ContainerRegistryAuthError(
            f"Amazon ECR refused an authorization token for {registry_host}: {exc}"
        ) from exc
    data = answer["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryCredentials(username=username, password=SecretStr(password))


def coerce_registry_credentials(credentials: Any) -> RegistryCredentials | None:
    """Turn anything with ``username`` and ``password`` (e.g. a loaded Prefect block) into credentials.

    Args:
        credentials: :class:`RegistryCredentials`, an object with ``username`` and
            ``password`` fields, or None.

    Returns:
        The credentials, or None when none were given.

    Raises:
        ConfigurationError: ``credentials`` is a string (a saved block's name is loaded by
            the Prefect task ``mlops_tasks.tasks.push_model_image``, not here) or has no
            username/password.

    Example:
        ```python
        creds = coerce_registry_credentials(docker_registry_credentials_block)
        ```
    """
    if credentials is None or isinstance(credentials, RegistryCredentials):
        return credentials
    if isinstance(credentials, str):
        raise ConfigurationError(
            f"Credentials {credentials!r} look like the name of a saved Prefect block: load it first "
            "(the Prefect task mlops_tasks.tasks.push_model_image does) or pass RegistryCredentials."
        )
    username = getattr(credentials, "username", None)
    password = getattr(credentials, "password", None)
    if not username or password is None:
        raise ConfigurationError(
            f"Credentials {type(credentials).__name__} have no username/password fields; pass "
            "RegistryCredentials or a block such as prefect-docker's DockerRegistryCredentials."
        )
    secret = password if isinstance(password, SecretStr) else SecretStr(str(password))
    return RegistryCredentials(username=str(username), password=secret)


def check_registry_reachable(host: str, timeout: float) -> None:
    """Fail fast when the registry's host is unknown or its TCP port does not answer.

    Args:
        host: ``host[:port]`` (port 443 when none is given).
        timeout: Seconds allowed for the TCP connection.

    Raises:
        ContainerRegistryUnreachableError: Unknown host, or no address answers.
        ConfigurationError: The port is not a number.

    Example:
        ```python
        check_registry_reachable("127.0.0.1:5000", timeout=5.0)
        ```
    """
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    name = name or host
    try:
        infos = socket.getaddrinfo(name, int(port or 443), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ContainerRegistryUnreachableError(
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
    raise ContainerRegistryUnreachableError(f"Registry {host} does not answer ({'; '.join(errors)}).")


def registry_refusal(ref: str, message: str) -> ContainerRegistryError:
    """The error for a container registry's refusal message (log-in or push).

    Args:
        ref: The reference being pushed (or the repository logged in to).
        message: The engine's or registry's message.

    Returns:
        ``ContainerRegistryAuthError``, ``ContainerRepositoryNotFoundError``,
        ``ContainerRegistryUnreachableError`` or, for anything else, ``ContainerRegistryError``.

    Example:
        ```python
        assert isinstance(registry_refusal("r/m:v1", "401 Unauthorized"), ContainerRegistryAuthError)
        ```
    """
    low = message.lower()
    if any(s in low for s in _AUTH_HINTS):
        return ContainerRegistryAuthError(f"Registry refused the credentials for {ref}: {message}")
    if any(s in low for s in _MISSING_REPOSITORY_HINTS):
        return ContainerRepositoryNotFoundError(
            f"Repository of {ref} does not exist in the registry: {message}. Create it "
            "first (e.g. aws ecr create-repository)."
        )
    if any(s in low for s in _UNREACHABLE_HINTS):
        return ContainerRegistryUnreachableError(f"Registry of {ref} does not answer: {message}")
    return ContainerRegistryError(f"Pushing {ref} failed: {message}")
