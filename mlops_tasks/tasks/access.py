"""Tasks of endpoint access: API keys, the TLS certificate, the client certificates' revocation list.

Importing this module registers Prefect's ``Secret`` blocks as the source of an
endpoint's secrets (:func:`mlops_tasks.deploy.secrets.register_secret_reader`), and the
key tasks send ``mlops.apikey.issued`` / ``mlops.apikey.revoked`` as Prefect events (name,
time, actor; never the key). :func:`issue_api_key` returns the new key and does not
persist its result, so the key is never written to Prefect's result storage.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mlops_tasks.deploy import access as _access
from mlops_tasks.deploy.secrets import register_secret_reader
from mlops_tasks.deploy.tls import CertificateInfo

__all__ = [
    "emit_apikey_event",
    "expire_api_keys",
    "issue_api_key",
    "read_prefect_secret",
    "revoke_api_key",
    "rotate_certificate",
    "update_client_crl",
]


def read_prefect_secret(name: str) -> str:
    """The value of Prefect ``Secret`` block ``name`` (``ValueError`` when it does not exist).

    Example:
        ```python
        pem = read_prefect_secret("churn-tls")
        ```
    """
    from prefect.blocks.system import Secret

    block: Any = Secret.load(name)  # a Secret (sync context), not a coroutine
    value = block.get()
    return value if isinstance(value, str) else str(value)


register_secret_reader(read_prefect_secret)


def emit_apikey_event(event: str, payload: dict[str, Any]) -> None:
    """Send one key event to Prefect; the resource is ``mlops.endpoint.<endpoint>.apikey.<name>``.

    Example:
        ```python
        emit_apikey_event("mlops.apikey.revoked", {"endpoint": "churn", "name": "svc-a", ...})
        ```
    """
    from prefect.events import emit_event

    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"mlops.endpoint.{payload['endpoint']}.apikey.{payload['name']}",
            "prefect.resource.name": payload["name"],
            "mlops.endpoint": payload["endpoint"],
        },
        payload=payload,
    )


@task(name="issue-api-key", persist_result=False, cache_policy=NO_CACHE)
def issue_api_key(
    endpoint_name: str,
    name: str,
    *,
    expires: str | None = None,
    rate_limit: int | None = None,
    actor: str | None = None,
) -> str:
    """Issue a key on a live endpoint (:func:`mlops_tasks.deploy.access.issue_api_key`).

    Example:
        ```python
        key = issue_api_key("churn", "billing-service", expires="2027-01-01T00:00:00Z")
        ```
    """
    return _access.issue_api_key(
        endpoint_name, name, expires=expires, rate_limit=rate_limit, actor=actor, emit=emit_apikey_event
    )


@task(name="revoke-api-key")
def revoke_api_key(endpoint_name: str, name: str, *, actor: str | None = None) -> None:
    """Revoke a key on a live endpoint (:func:`mlops_tasks.deploy.access.revoke_api_key`).

    Example:
        ```python
        revoke_api_key("churn", "billing-service")
        ```
    """
    _access.revoke_api_key(endpoint_name, name, actor=actor, emit=emit_apikey_event)


@task(name="expire-api-keys")
def expire_api_keys(endpoint_name: str) -> list[str]:
    """Remove expired keys (:func:`mlops_tasks.deploy.access.expire_api_keys`).

    Example:
        ```python
        expire_api_keys("churn")
        ```
    """
    return _access.expire_api_keys(endpoint_name, emit=emit_apikey_event)


@task(name="rotate-certificate")
def rotate_certificate(
    endpoint_name: str,
    *,
    cert_file: str | None = None,
    key_file: str | None = None,
    secret: str | None = None,
) -> CertificateInfo:
    """Replace a live endpoint's certificate (:func:`mlops_tasks.deploy.access.rotate_certificate`).

    Example:
        ```python
        rotate_certificate("churn", secret="churn-tls-2027")
        ```
    """
    return _access.rotate_certificate(endpoint_name, cert_file=cert_file, key_file=key_file, secret=secret)


@task(name="update-client-crl")
def update_client_crl(endpoint_name: str, *, crl_file: str | None = None) -> int:
    """Load a new client revocation list live (:func:`mlops_tasks.deploy.access.update_client_crl`).

    Example:
        ```python
        update_client_crl("churn", crl_file="/etc/mlops/clients.crl")
        ```
    """
    return _access.update_client_crl(endpoint_name, crl_file=crl_file)
