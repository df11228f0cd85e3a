"""The endpoint's TLS certificate: read, checked, written privately, replaced on the live router.

The certificate (chain) and its private key come from two PEM files or from one Prefect
Secret block holding both. Before anything is written or sent to the router they are
checked with the ``cryptography`` package: the key must belong to the first certificate,
which must be valid now. HAProxy reads one PEM file holding both
(``<endpoint folder>/tls/endpoint.pem``, mode 600). :func:`replace_certificate` writes that
file, then hands the new PEM to the running router through its admin socket
(``set ssl cert`` + ``commit ssl cert``): connections in flight keep their session, new
handshakes get the new certificate, nothing is dropped, and a reload reads the same file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mlops_tasks.deploy.models import EndpointSecurity
from mlops_tasks.deploy.secrets import read_private_file, read_secret, write_private
from mlops_tasks.errors import EndpointSecurityError

__all__ = [
    "CertificateInfo",
    "check_pem",
    "keep_newer_certificate",
    "load_pem",
    "pem_path",
    "replace_certificate",
]

logger = logging.getLogger(__name__)

_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)


@dataclass
class CertificateInfo:
    """What the endpoint's certificate says (for messages and ``describe``)."""

    subject: str
    not_after: datetime
    fingerprint_sha256: str


def pem_path(folder: Path) -> Path:
    """Where HAProxy reads the endpoint's PEM (certificate chain and key)."""
    return folder / "tls" / "endpoint.pem"


def load_pem(security: EndpointSecurity) -> str:
    """The certificate chain and key as one PEM text, from files or the Secret block.

    Raises:
        EndpointSecurityError: A file is missing or unreadable.
        SecretBlockNotFoundError: The Secret block does not exist.

    Example:
        ```python
        pem = load_pem(EndpointSecurity(tls_cert_file="c.pem", tls_key_file="k.pem"))
        ```
    """
    if security.tls_secret:
        return read_secret(security.tls_secret, "the endpoint's TLS certificate and key (PEM)")
    assert security.tls_cert_file and security.tls_key_file
    cert = read_private_file(security.tls_cert_file, "TLS certificate")
    key = read_private_file(security.tls_key_file, "TLS private key")
    return cert.strip() + "\n" + key.strip() + "\n"


def check_pem(pem: str, origin: str = "the endpoint's PEM", now: datetime | None = None) -> CertificateInfo:
    """Check a PEM holding a certificate chain and its private key.

    Raises:
        EndpointSecurityError: No certificate or no key, a key that does not belong to the
            first certificate, or a certificate that has expired or is not valid yet.

    Example:
        ```python
        info = check_pem(open("endpoint.pem").read())
        print(info.subject, info.not_after)
        ```
    """
    data = pem.encode()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise EndpointSecurityError(f"No PEM certificate could be read from {origin}: {exc}") from exc
    found = _KEY_BLOCK.search(data)
    if found is None:
        raise EndpointSecurityError(f"{origin} holds no private key; give the certificate's key too.")
    try:
        key = serialization.load_pem_private_key(found.group(0), password=None)
    except (ValueError, TypeError) as exc:
        raise EndpointSecurityError(
            f"The private key in {origin} cannot be read ({exc}); give an unencrypted PEM key."
        ) from exc
    leaf = certs[0]
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, fmt) != leaf.public_key().public_bytes(enc, fmt):
        raise EndpointSecurityError(
            f"The private key in {origin} does not match the certificate {leaf.subject.rfc4514_string()!r}; "
            "give the key the certificate was issued for."
        )
    moment = now or datetime.now(UTC)
    if leaf.not_valid_after_utc <= moment:
        raise EndpointSecurityError(
            f"The certificate {leaf.subject.rfc4514_string()!r} in {origin} expired on "
            f"{leaf.not_valid_after_utc.isoformat()}; renew it."
        )
    if leaf.not_valid_before_utc > moment:
        raise EndpointSecurityError(
            f"The certificate {leaf.subject.rfc4514_string()!r} in {origin} is not valid before "
            f"{leaf.not_valid_before_utc.isoformat()}."
        )
    return CertificateInfo(
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
    )


def keep_newer_certificate(folder: Path, pem: str, endpoint: str) -> str:
    """``pem``, or the router's current PEM when that one was issued later and is valid.

    A certificate rotated on the live endpoint
    (:func:`~mlops_tasks.deploy.access.rotate_certificate` from other files or another
    Secret) is never replaced by the older configured one at the next deployment, which
    would silently undo the rotation (and bring back a certificate that expires sooner).

    Example:
        ```python
        pem = keep_newer_certificate(target.folder, load_pem(security), "churn")
        ```
    """
    path = pem_path(folder)
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current is None or current.strip() == pem.strip():
        return pem
    try:
        check_pem(current, "the router's certificate")
        held = x509.load_pem_x509_certificates(current.encode())[0]
    except (EndpointSecurityError, ValueError):
        return pem  # expired or unreadable: the configured one replaces it
    configured = x509.load_pem_x509_certificates(pem.encode())[0]
    if held.not_valid_before_utc > configured.not_valid_before_utc:
        logger.warning(
            "Endpoint %s: the configured TLS certificate (issued %s) is older than the one the "
            "router holds (issued %s, rotated live); keeping the router's. Point "
            "EndpointSecurity.tls_cert_file/tls_key_file (or tls_secret) at the new one.",
            endpoint,
            configured.not_valid_before_utc.isoformat(),
            held.not_valid_before_utc.isoformat(),
        )
        return current
    return pem


def replace_certificate(
    folder: Path, pem: str, command: Callable[[str], str] | None = None, ref: str | None = None
) -> CertificateInfo:
    """Check ``pem``, write it to the file HAProxy reads, and swap it in the running router.

    Args:
        folder: The endpoint folder.
        pem: Certificate chain and key.
        command: ``RouterClient.command`` of the running router (None: file only).
        ref: The PEM path as HAProxy sees it (default: the file's own path).

    Raises:
        EndpointSecurityError: The PEM fails :func:`check_pem` (nothing is changed).
        RouterError: The router refused the new certificate (the file already holds it).

    Example:
        ```python
        replace_certificate(target.folder, new_pem, target.router.command)
        ```
    """
    info = check_pem(pem)
    path = pem_path(folder)
    write_private(path, pem.strip() + "\n")
    if command is not None:
        name = ref or str(path)
        command(f"set ssl cert {name} <<\n{pem.strip()}\n")
        command(f"commit ssl cert {name}")
    return info
