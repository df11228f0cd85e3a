"""The deploy tooling's own client certificate for an endpoint under mutual TLS.

The tooling (smoke tests, probes, confirmation requests) reaches its own router through
the same TLS ports as callers, so under mutual TLS it needs a client certificate the router
accepts. It gets one from a CA of its own, made per endpoint on first use: the CA
certificate (``tls/internal-ca.pem``) joins the operator's bundle, its empty revocation
list (``tls/internal-ca.crl``) the operator's, and the client certificate with its key
(``tls/internal-client.pem``, mode 600, CN ``mlops-internal``) is what the tooling
presents. The CA's private key is dropped once it has signed the certificate and the
list, so nothing on disk can issue another certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlops_tasks.deploy.secrets import write_private

__all__ = ["INTERNAL_CLIENT_CN", "internal_client_pem", "tooling_ca"]

#: Subject CN of the deploy tooling's own client certificate.
INTERNAL_CLIENT_CN = "mlops-internal"
_YEARS = 10


def internal_client_pem(folder: Path) -> Path:
    """``tls/internal-client.pem``: the tooling's client certificate and key (mode 600)."""
    return folder / "tls" / "internal-client.pem"


def tooling_ca(folder: Path) -> tuple[str, str]:
    """The tooling CA's certificate and empty CRL (PEM); made with its client certificate on first use.

    Example:
        ```python
        ca_pem, crl_pem = tooling_ca(target.folder)
        ```
    """
    ca_file, crl_file = folder / "tls" / "internal-ca.pem", folder / "tls" / "internal-ca.crl"
    if ca_file.exists() and crl_file.exists() and internal_client_pem(folder).exists():
        return ca_file.read_text(encoding="utf-8"), crl_file.read_text(encoding="utf-8")
    now = datetime.now(UTC)
    until = now + timedelta(days=365 * _YEARS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mlops tooling CA {folder.name}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INTERNAL_CLIENT_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(until)
        .sign(ca_key, hashes.SHA256())
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_name)
        .last_update(now - timedelta(minutes=5))
        .next_update(until)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(internal_client_pem(folder), (leaf.public_bytes(pem) + key_pem).decode())
    ca_text, crl_text = ca.public_bytes(pem).decode(), crl.public_bytes(pem).decode()
    write_private(ca_file, ca_text)
    write_private(crl_file, crl_text)
    return ca_text, crl_text  # the CA key is dropped here: nothing on disk can issue more
