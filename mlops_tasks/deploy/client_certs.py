"""Mutual TLS of an endpoint: the client CA bundle and revocation list HAProxy checks callers with.

The operator's CA bundle comes from a file or a Prefect Secret block, the revocation list
(CRL) from a file. Both are checked with the ``cryptography`` package before anything is
written or sent to the router: the bundle must hold CA certificates valid now, and every
CRL must be signed by one of those CAs and not be past its next update (OpenSSL would
refuse every client certificate of that CA otherwise).

HAProxy reads two files in ``<endpoint folder>/tls``: ``client-ca.pem`` (the operator's
bundle plus the tooling's own CA) and ``client.crl`` (the operator's CRLs plus the
tooling CA's empty CRL, see :mod:`mlops_tasks.deploy.tooling_cert`). A change reaches
the running router through its runtime API (``set ssl ca-file`` / ``set ssl crl-file`` +
``commit``), after the file was written, so a reload or restart reads the same lists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mlops_tasks.deploy.haproxy.maps import replace_map
from mlops_tasks.deploy.models import EndpointSecurity
from mlops_tasks.deploy.secrets import read_private_file, read_secret, write_private
from mlops_tasks.deploy.tooling_cert import tooling_ca
from mlops_tasks.errors import EndpointSecurityError, RouterError

__all__ = [
    "ClientTrust",
    "ca_bundle_path",
    "check_client_ca",
    "check_crl",
    "crl_path",
    "keep_newer_crl",
    "load_client_trust",
    "parse_crls",
    "read_crl",
    "revoked_entries",
    "revoked_map_path",
    "write_client_ca",
    "write_crl",
]

_CRL_BLOCK = re.compile(r"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)
_TOOLING_MARK = "# mlops tooling CA\n"
Command = Callable[[str], str]
logger = logging.getLogger(__name__)


@dataclass
class ClientTrust:
    """The checked client CA bundle and CRL text of an endpoint (CRL None: no revocation check)."""

    ca_pem: str
    cas: list[x509.Certificate]
    crl_pem: str | None


def ca_bundle_path(folder: Path) -> Path:
    """``tls/client-ca.pem``: the CA bundle HAProxy verifies client certificates with."""
    return folder / "tls" / "client-ca.pem"


def crl_path(folder: Path) -> Path:
    """``tls/client.crl``: the revocation lists HAProxy reads."""
    return folder / "tls" / "client.crl"


def revoked_map_path(folder: Path) -> Path:
    """``tls/revoked.map``: ``<serial hex> <issuer CN>`` of every revoked certificate.

    The TLS handshake checks the CRL; this map lets the router refuse, per request, a
    revoked certificate whose connection was opened before the CRL update.
    """
    return folder / "tls" / "revoked.map"


def load_client_trust(security: EndpointSecurity, endpoint: str, crl_file: str | None = None) -> ClientTrust:
    """Read and check the endpoint's client CA bundle and CRL (``crl_file`` overrides the spec's).

    Raises:
        EndpointSecurityError: A file is missing or unreadable, the bundle holds no CA
            certificate valid now, or a CRL is not signed by it or is past its next update.
        SecretBlockNotFoundError: The CA bundle's Secret block does not exist.

    Example:
        ```python
        trust = load_client_trust(EndpointSecurity(..., client_ca_file="clients-ca.pem"), "churn")
        ```
    """
    if security.client_ca_secret:
        ca_pem = read_secret(security.client_ca_secret, "the client CA bundle (PEM)")
        origin = f"Secret block {security.client_ca_secret!r}"
    else:
        assert security.client_ca_file
        ca_pem = read_private_file(security.client_ca_file, "Client CA")
        origin = f"client CA file {security.client_ca_file}"
    cas = check_client_ca(ca_pem, f"{origin} of endpoint {endpoint!r}")
    source = crl_file or security.client_crl_file
    crl_pem = None
    if source:
        crl_pem = read_private_file(source, "Client CRL")
        check_crl(crl_pem, cas, f"revocation list {source}")
    return ClientTrust(ca_pem=ca_pem.strip() + "\n", cas=cas, crl_pem=crl_pem)


def check_client_ca(pem: str, origin: str, now: datetime | None = None) -> list[x509.Certificate]:
    """The CA certificates of a client CA bundle, each checked to be a CA valid now.

    Raises:
        EndpointSecurityError: No certificate could be read, one is not a CA certificate,
            or one has expired.

    Example:
        ```python
        cas = check_client_ca(open("clients-ca.pem").read(), "clients-ca.pem")
        ```
    """
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise EndpointSecurityError(
            f"{origin} holds no PEM certificate ({exc}); give the CA certificate(s) that issue the "
            "client certificates (-----BEGIN CERTIFICATE----- blocks)."
        ) from exc
    moment = now or datetime.now(UTC)
    for cert in certs:
        subject = cert.subject.rfc4514_string()
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = cert.issuer == cert.subject  # an old-style self-signed root
        if not is_ca:
            raise EndpointSecurityError(
                f"The certificate {subject!r} in {origin} is not a CA certificate (basicConstraints "
                "CA:FALSE); give the certificate of the CA that issues the client certificates."
            )
        if cert.not_valid_after_utc <= moment:
            raise EndpointSecurityError(
                f"The CA certificate {subject!r} in {origin} expired on "
                f"{cert.not_valid_after_utc.isoformat()}; renew it."
            )
    return certs


def check_crl(pem: str, cas: list[x509.Certificate], origin: str, now: datetime | None = None) -> None:
    """Check the CRLs in ``pem``: signed by ``cas``, one for each of them, none past its next update.

    HAProxy checks every certificate of a client's chain against a CRL of its issuer, so a
    CA of the bundle without a CRL would have all its certificates refused.

    Raises:
        EndpointSecurityError: No CRL could be read, one is signed by another CA, a CA has
            none, or one is past its next update.

    Example:
        ```python
        check_crl(open("clients.crl").read(), cas, "clients.crl")
        ```
    """
    crls = parse_crls(pem, origin)
    moment = now or datetime.now(UTC)
    names = ", ".join(repr(ca.subject.rfc4514_string()) for ca in cas)
    for crl in crls:
        issuer = crl.issuer.rfc4514_string()
        if not any(ca.subject == crl.issuer and _signed_by(crl, ca) for ca in cas):
            raise EndpointSecurityError(
                f"The revocation list of {issuer!r} in {origin} is not signed by the client CA "
                f"({names}); give the CRL that CA issued."
            )
        if crl.next_update_utc is not None and crl.next_update_utc <= moment:
            raise EndpointSecurityError(
                f"The revocation list of {issuer!r} in {origin} was due for its next update on "
                f"{crl.next_update_utc.isoformat()}; issue a fresh one (`openssl ca -gencrl`), or "
                "HAProxy refuses every client certificate of that CA."
            )
    for ca in cas:
        if not any(crl.issuer == ca.subject for crl in crls):
            raise EndpointSecurityError(
                f"{origin} holds no revocation list of the client CA {ca.subject.rfc4514_string()!r}; "
                "HAProxy would refuse every certificate it issued. Add its CRL (an empty one is fine)."
            )


def parse_crls(pem: str, origin: str) -> list[x509.CertificateRevocationList]:
    """The CRLs of a PEM text (one or more ``X509 CRL`` blocks).

    Raises:
        EndpointSecurityError: No CRL block, or one that cannot be read.

    Example:
        ```python
        crls = parse_crls(open("clients.crl").read(), "clients.crl")
        ```
    """
    blocks = _CRL_BLOCK.findall(pem)
    if not blocks:
        raise EndpointSecurityError(
            f"{origin} holds no PEM revocation list (-----BEGIN X509 CRL-----); write it with "
            "`openssl ca -gencrl` (an empty list is fine)."
        )
    try:
        return [x509.load_pem_x509_crl(block.encode()) for block in blocks]
    except ValueError as exc:
        raise EndpointSecurityError(f"A revocation list in {origin} cannot be read: {exc}") from exc


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return False
    return crl.is_signature_valid(key)


def keep_newer_crl(folder: Path, trust: ClientTrust) -> ClientTrust:
    """``trust`` with the router's current CRL instead when that one is newer than the source's.

    A CRL updated on the live endpoint (:func:`~mlops_tasks.deploy.access.update_client_crl`
    from another file) is never replaced by an older one at the next deployment, which
    would let revoked certificates in again.

    Example:
        ```python
        trust = keep_newer_crl(target.folder, trust)
        ```
    """
    current = read_crl(crl_path(folder))
    if trust.crl_pem is None or current is None or not current.strip():
        return trust
    try:
        mine = {c.issuer: c.last_update_utc for c in parse_crls(current, "the router's CRL")}
        check_crl(current, trust.cas, "the router's CRL")
    except EndpointSecurityError:
        return trust  # the CA changed: the source's CRL is the one that fits
    source = {c.issuer: c.last_update_utc for c in parse_crls(trust.crl_pem, "the CRL source")}
    if any(mine.get(issuer, when) > when for issuer, when in source.items()):
        logger.warning(
            "The configured revocation list is older than the one the router holds (updated "
            "live); keeping the router's. Write the newer CRL to the configured file."
        )
        return ClientTrust(ca_pem=trust.ca_pem, cas=trust.cas, crl_pem=current)
    return trust


def read_client_ca(path: Path) -> str | None:
    """The operator's part of the CA bundle HAProxy reads (None: no such file)."""
    return _operator_part(path)


def read_crl(path: Path) -> str | None:
    """The operator's part of the CRL file HAProxy reads (None: no such file)."""
    return _operator_part(path)


def _operator_part(path: Path) -> str | None:
    """A file HAProxy reads up to the tooling CA's part the tooling appends (None: no such file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.split(_TOOLING_MARK, 1)[0]


def write_client_ca(folder: Path, trust: ClientTrust, command: Command | None = None) -> bool:
    """Write the CA bundle HAProxy reads (operator's + tooling CA); push it live when it changed.

    Returns:
        Whether the file changed.

    Example:
        ```python
        write_client_ca(target.folder, trust, target.router.command)
        ```
    """
    own_ca, _ = tooling_ca(folder)
    text = trust.ca_pem + _TOOLING_MARK + own_ca
    return _replace(ca_bundle_path(folder), text, "ca-file", command)


def revoked_entries(crl_pem: str) -> list[str]:
    """Map lines ``<serial hex> <issuer CN>`` of the certificates the CRLs revoke.

    The serial is written as HAProxy's ``ssl_c_serial,hex`` shows it (upper-case bytes).

    Example:
        ```python
        lines = revoked_entries(open("clients.crl").read())
        ```
    """
    lines = []
    for crl in parse_crls(crl_pem, "the CRL"):
        names = crl.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        issuer = str(names[0].value) if names else crl.issuer.rfc4514_string()
        for revoked in crl:
            serial = revoked.serial_number
            raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
            lines.append(f"{raw.hex().upper()} {issuer}")
    return lines


def write_crl(folder: Path, trust: ClientTrust, command: Command | None = None) -> bool:
    """Write the CRL file HAProxy reads (operator's + tooling CA's); push it live when it changed.

    The map of revoked serials (:func:`revoked_map_path`) is written and replaced on the
    router with it, so connections opened before the update are refused too.

    Returns:
        Whether the file changed (False also without a CRL).

    Example:
        ```python
        write_crl(target.folder, trust, target.router.command)
        ```
    """
    if trust.crl_pem is None:
        return False
    _, tooling_crl = tooling_ca(folder)
    text = trust.crl_pem.strip() + "\n" + _TOOLING_MARK + tooling_crl
    entries = revoked_entries(trust.crl_pem)
    map_path = revoked_map_path(folder)
    write_private(map_path, "".join(f"{line}\n" for line in entries))
    changed = _replace(crl_path(folder), text, "crl-file", command)
    if changed and command is not None:
        try:
            replace_map(command, str(map_path), entries)
        except RouterError as exc:  # a router started before the map existed: the handshake checks
            logger.warning("revoked-serial map not replaced (%s); a reload adds the per-request check", exc)
    return changed


def _replace(path: Path, text: str, kind: str, command: Command | None) -> bool:
    """Write ``path`` when its text differs, then ``set ssl <kind>`` + ``commit`` on the router."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return False
    write_private(path, text)
    if command is not None:
        payload = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        command(f"set ssl {kind} {path} <<\n{payload.strip()}\n")
        command(f"commit ssl {kind} {path}")
    return True
