"""Endpoint access on a live endpoint: API keys, the TLS certificate, the client revocation list.

The operations (:func:`issue_api_key`, :func:`revoke_api_key`,
:func:`expire_api_keys`, :func:`list_api_keys`, :func:`rotate_certificate`,
:func:`update_client_crl`, :func:`describe_security`) find the
endpoint by name, change the files HAProxy reads, then the running router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mlops_tasks.deploy import state
from mlops_tasks.deploy.apikeys import INTERNAL_KEY_NAME, Emit, KeyStore
from mlops_tasks.deploy.client_certs import (
    ca_bundle_path,
    crl_path,
    load_client_trust,
    parse_crls,
    read_client_ca,
    read_crl,
    write_crl,
)
from mlops_tasks.deploy.haproxy.security import RATE_TABLE
from mlops_tasks.deploy.models import ApiKeyView, EndpointSecurity, EndpointSpec, SecurityView
from mlops_tasks.deploy.rollout import resolve_target
from mlops_tasks.deploy.state import supervise_lock
from mlops_tasks.deploy.tls import CertificateInfo, load_pem, pem_path, replace_certificate
from mlops_tasks.errors import EndpointDeployError, EndpointSecurityError, RouterError

__all__ = [
    "describe_security",
    "expire_api_keys",
    "issue_api_key",
    "list_api_keys",
    "revoke_api_key",
    "rotate_certificate",
    "update_client_crl",
]

logger = logging.getLogger(__name__)

Command = Callable[[str], str]


def _live(endpoint_name: str) -> tuple[Any, EndpointSpec, KeyStore]:
    saved = state.load_endpoint(endpoint_name)
    if saved is None:
        raise EndpointDeployError(f"Endpoint {endpoint_name!r} was never deployed (or was stopped).")
    spec, kind, _ = saved
    if kind not in ("local", "docker"):
        raise EndpointSecurityError(
            f"Endpoint {endpoint_name!r} is on the {kind!r} target, which has no router of its "
            "own: API keys and TLS are built for the 'local' and 'docker' targets."
        )
    tgt: Any = resolve_target(kind, spec)  # a real target: it hosts the router
    command = tgt.router.command if tgt.router_running() else None
    return tgt, spec, KeyStore(tgt.folder, command, endpoint=endpoint_name)


def describe_security(endpoint_name: str) -> SecurityView:
    """What protects a live endpoint, read from the files its router holds.

    The certificate, the operator's client CAs and the revocation list are the ones the
    router reads (a certificate rotated or a CRL updated live shows here at once), not the
    configured sources.

    Raises:
        EndpointDeployError: The endpoint was never deployed.
        EndpointSecurityError: It is on a target without a router of its own.

    Example:
        ```python
        from mlops_tasks.deploy.access import describe_security
        view = describe_security("churn")
        print(view.certificate_not_after, view.revoked_certificates)
        ```
    """
    tgt, spec, _ = _live(endpoint_name)
    sec = spec.security
    view = SecurityView(
        tls=sec.tls,
        http_redirect_port=sec.http_redirect_port,
        api_keys=sec.api_keys,
        rate_limit=sec.rate_limit,
        rate_period_s=sec.rate_period_s,
        client_certificates=sec.mtls,
        client_cert_instead_of_key=sec.client_cert_instead_of_key,
    )
    update: dict[str, Any] = {}
    pem = pem_path(tgt.folder)
    if sec.tls and pem.exists():
        leaf = x509.load_pem_x509_certificates(pem.read_bytes())[0]
        update.update(
            certificate_subject=leaf.subject.rfc4514_string(),
            certificate_not_after=leaf.not_valid_after_utc,
            certificate_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        )
    cas = read_client_ca(ca_bundle_path(tgt.folder)) if sec.mtls else None
    if cas:
        certs = x509.load_pem_x509_certificates(cas.encode())
        update["client_cas"] = [cert.subject.rfc4514_string() for cert in certs]
    crl = read_crl(crl_path(tgt.folder)) if sec.mtls else None
    if crl and crl.strip():
        crls = parse_crls(crl, "the router's CRL")
        updates = [c.next_update_utc for c in crls if c.next_update_utc is not None]
        update.update(
            revocation_list=True,
            revoked_certificates=sum(len(list(c)) for c in crls),
            crl_next_update=min(updates) if updates else None,
        )
    return view.model_copy(update=update)


def _security(spec: EndpointSpec, need_keys: bool = True) -> EndpointSecurity:
    if need_keys and not spec.security.api_keys:
        raise EndpointSecurityError(
            f"Endpoint {spec.name!r} does not use API keys; deploy it with "
            "EndpointSpec(security=EndpointSecurity(api_keys=True)) first."
        )
    return spec.security


def issue_api_key(
    endpoint_name: str,
    name: str,
    *,
    expires: str | None = None,
    rate_limit: int | None = None,
    actor: str | None = None,
    emit: Emit | None = None,
) -> str:
    """Issue a new API key on a live endpoint; returns the key (shown once, never stored).

    Example:
        ```python
        key = issue_api_key("churn", "billing-service", expires="2027-01-01T00:00:00Z")
        ```
    """
    _, spec, store = _live(endpoint_name)
    store.emit = emit
    with supervise_lock(store.folder):  # one writer of the key files at a time (the watchdog expires keys)
        return store.issue(_security(spec), name, expires=expires, rate_limit=rate_limit, actor=actor)


def revoke_api_key(
    endpoint_name: str, name: str, *, actor: str | None = None, emit: Emit | None = None
) -> None:
    """Revoke key ``name`` on a live endpoint: its next request gets 401, nobody else notices.

    Example:
        ```python
        revoke_api_key("churn", "billing-service")
        ```
    """
    _, spec, store = _live(endpoint_name)
    store.emit = emit
    with supervise_lock(store.folder):
        store.revoke(_security(spec), name, actor=actor)


def expire_api_keys(endpoint_name: str, *, emit: Emit | None = None) -> list[str]:
    """Remove the keys whose expiry passed (the router refuses them already); their names.

    Example:
        ```python
        gone = expire_api_keys("churn")
        ```
    """
    _, spec, store = _live(endpoint_name)
    store.emit = emit
    with supervise_lock(store.folder):
        return store.expire(_security(spec))


def list_api_keys(endpoint_name: str) -> list[ApiKeyView]:
    """Keys of an endpoint with created, expires, last used and request counts (no key text).

    Counts and last use come from the router's stick table (kept 24 h after a key's last
    request, reset when the router restarts).

    Example:
        ```python
        for key in list_api_keys("churn"):
            print(key.name, key.requests, key.last_used)
        ```
    """
    tgt, spec, store = _live(endpoint_name)
    usage = _usage(store.command) if store.command is not None else {}
    out = []
    for record in store.records().values():
        requests, last_used = usage.get(record.name, (0, None))
        out.append(
            ApiKeyView(
                name=record.name,
                created=record.created,
                expires=record.expires,
                source=record.source,
                expired=record.expired(),
                requests=requests,
                last_used=last_used,
                internal=record.name == INTERNAL_KEY_NAME,
            )
        )
    return sorted(out, key=lambda v: v.name)


def _usage(command: Command) -> dict[str, tuple[int, str | None]]:
    """``name -> (requests, last used ISO time)`` from the rate stick table."""
    from datetime import UTC, datetime

    try:
        text = command(f"show table {RATE_TABLE}")
    except RouterError:
        return {}
    now = time.time()
    out: dict[str, tuple[int, str | None]] = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "key" not in fields or "http_req_cnt" not in fields:
            continue
        left_ms = int(fields.get("exp", "0"))
        last = now - (24 * 3600 * 1000 - left_ms) / 1000
        out[fields["key"]] = (int(fields["http_req_cnt"]), datetime.fromtimestamp(last, UTC).isoformat())
    return out


def rotate_certificate(
    endpoint_name: str,
    *,
    cert_file: str | None = None,
    key_file: str | None = None,
    secret: str | None = None,
) -> CertificateInfo:
    """Replace the certificate of a live TLS endpoint without dropping a request.

    The new PEM (files, a Secret block, or else the endpoint's configured source read
    again) is checked first; then the file HAProxy reads is replaced and the running
    router swaps it in (``set ssl cert`` + ``commit ssl cert``).

    Raises:
        EndpointSecurityError: The endpoint has no TLS, or the new certificate does not
            match its key or has expired (nothing changed).

    Example:
        ```python
        info = rotate_certificate("churn", cert_file="new.pem", key_file="new.key")
        ```
    """
    tgt, spec, store = _live(endpoint_name)
    sec = _security(spec, need_keys=False)
    if not sec.tls:
        raise EndpointSecurityError(f"Endpoint {endpoint_name!r} has no TLS certificate to rotate.")
    source = sec
    if cert_file or key_file or secret:
        source = EndpointSecurity(tls_cert_file=cert_file, tls_key_file=key_file, tls_secret=secret)
    pem = load_pem(source)
    with supervise_lock(tgt.folder):
        return replace_certificate(tgt.folder, pem, store.command)


def update_client_crl(endpoint_name: str, *, crl_file: str | None = None) -> int:
    """Load a new client revocation list into a live mutual-TLS endpoint without a dropped request.

    The CRL (``crl_file``, or else the endpoint's ``client_crl_file`` read again) is checked
    against the endpoint's client CA first; then the file HAProxy reads is replaced and the
    running router swaps it in (``set ssl crl-file`` + ``commit ssl crl-file``). A revoked
    certificate is refused from its next handshake on; connections already open (other
    callers' and its own) keep going.

    Returns:
        How many certificates the new list revokes.

    Raises:
        EndpointSecurityError: The endpoint has no mutual TLS or was deployed without a
            CRL, or the list is unreadable, not signed by the client CA or out of date
            (nothing changed).

    Example:
        ```python
        revoked = update_client_crl("churn")   # after `openssl ca -revoke ... && openssl ca -gencrl`
        ```
    """
    tgt, spec, store = _live(endpoint_name)
    sec = _security(spec, need_keys=False)
    if not sec.mtls:
        raise EndpointSecurityError(
            f"Endpoint {endpoint_name!r} does not use client certificates; deploy it with "
            "EndpointSecurity(client_ca_file=..., client_crl_file=...) first."
        )
    if not sec.client_crl_file:
        raise EndpointSecurityError(
            f"Endpoint {endpoint_name!r} was deployed without a revocation list, so its router checks "
            "none; set EndpointSecurity.client_crl_file and deploy again (the router reloads once)."
        )
    trust = load_client_trust(sec, endpoint_name, crl_file)
    with supervise_lock(tgt.folder):
        write_crl(tgt.folder, trust, store.command)
    assert trust.crl_pem is not None
    return sum(len(list(crl)) for crl in parse_crls(trust.crl_pem, "the CRL"))
