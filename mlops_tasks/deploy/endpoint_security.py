"""Security setup while a target configures its router: keys, certificates, client CA, checked first.

:func:`prepare_security` reads and checks every source (key file, Secret blocks,
certificate and key, client CA bundle and revocation list) before any file changes, so a
configuration mistake raises :class:`~mlops_tasks.errors.EndpointSecurityError` and the
live endpoint keeps serving as it was. With the router already running it pushes the key
map atomically (``prepare map`` / ``add map @ver`` / ``commit map``) and a changed
certificate, client CA bundle or revocation list through the runtime API, so a redeploy
never reloads for such a change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mlops_tasks.deploy.apikeys import KeyStore
from mlops_tasks.deploy.client_certs import (
    ca_bundle_path,
    crl_path,
    keep_newer_crl,
    load_client_trust,
    revoked_map_path,
    write_client_ca,
    write_crl,
)
from mlops_tasks.deploy.haproxy.maps import replace_map
from mlops_tasks.deploy.haproxy.security import SecurityLayout
from mlops_tasks.deploy.models import EndpointSpec
from mlops_tasks.deploy.tls import (
    check_pem,
    keep_newer_certificate,
    load_pem,
    pem_path,
    replace_certificate,
)
from mlops_tasks.errors import RouterError

__all__ = ["prepare_security"]

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
Command = Callable[[str], str]


def prepare_security(
    folder: Path,
    endpoint: EndpointSpec,
    command: Command | None = None,
    map_ref: str | None = None,
    pem_ref: str | None = None,
    redirect_bind_port: int | None = None,
) -> SecurityLayout | None:
    """Check and write the endpoint's keys and certificate; the layout the config needs.

    Args:
        folder: The endpoint folder (the router reads its files there).
        endpoint: The endpoint, with its :class:`EndpointSecurity`.
        command: The running router's runtime API (None: not running; files only).
        map_ref: The key map's path as HAProxy sees it (default: its path here).
        pem_ref: The PEM's path as HAProxy sees it.
        redirect_bind_port: The port the plain-HTTP redirect binds as HAProxy sees it, when
            that is not the configured ``http_redirect_port`` (a container's own port that
            is published on the configured one).

    Returns:
        None for a plain-HTTP endpoint without keys.

    Raises:
        EndpointSecurityError: A source is missing, unreadable or malformed, the key does
            not match the certificate, the certificate expired, the client CA bundle holds
            no CA certificate or a revocation list is not signed by it (nothing was changed).

    Example:
        ```python
        layout = prepare_security(target.folder, endpoint)
        ```
    """
    sec = endpoint.security
    if endpoint.host not in _LOOPBACK and not (sec.tls and sec.api_keys):
        logger.warning(
            "Endpoint %s listens on %s without %s: anyone who can reach port %s can call it "
            "(set EndpointSpec.security: api_keys and a TLS certificate).",
            endpoint.name,
            endpoint.host,
            "TLS and API keys" if not (sec.tls or sec.api_keys) else ("TLS" if not sec.tls else "API keys"),
            endpoint.port,
        )
    if not sec.enabled:
        return None
    pem = load_pem(sec) if sec.tls else None
    if pem is not None:
        check_pem(pem, f"the certificate of endpoint {endpoint.name!r}")
        pem = keep_newer_certificate(folder, pem, endpoint.name)
    trust = load_client_trust(sec, endpoint.name) if sec.mtls else None
    store = KeyStore(folder, command, endpoint=endpoint.name)
    if sec.api_keys:
        store.sync(sec)  # reads and checks every source before writing
        if command is not None:
            _push_map(store, command, map_ref or str(store.map_path))
    if pem is not None:
        path = pem_path(folder)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != pem.strip() + "\n":
            replace_certificate(folder, pem, command, pem_ref)
    if trust is not None:
        trust = keep_newer_crl(folder, trust)
        try:
            write_client_ca(folder, trust, command)
            write_crl(folder, trust, command)
        except RouterError as exc:  # mutual TLS or the CRL is new: the reload that follows reads the files
            logger.info("client CA/CRL not pushed to the running router (%s); its next start reads them", exc)
    checks_crl = trust is not None and trust.crl_pem is not None
    return SecurityLayout(
        keys_map=(map_ref or str(store.map_path)) if sec.api_keys else None,
        rate_period_s=sec.rate_period_s,
        tls_pem=(pem_ref or str(pem_path(folder))) if pem is not None else None,
        http_redirect_port=(
            (redirect_bind_port or sec.http_redirect_port) if sec.http_redirect_port is not None else None
        ),
        https_port=endpoint.port,
        client_ca=str(ca_bundle_path(folder)) if trust is not None else None,
        client_crl=str(crl_path(folder)) if checks_crl else None,
        revoked_map=str(revoked_map_path(folder)) if checks_crl else None,
        cert_instead_of_key=sec.client_cert_instead_of_key,
        cert_rate_limit=sec.rate_limit,
    )


def _push_map(store: KeyStore, command: Command, ref: str) -> None:
    """Replace the running router's key map with the file's, atomically."""
    lines = [line for line in store.map_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        replace_map(command, ref, lines)
    except RouterError as exc:
        logger.warning("router key map not replaced (%s); the file holds the keys for its next start", exc)
