"""A certificate authority made inside the tests (the ``cryptography`` package): CA, certs, CRLs."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes
    serial: int

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


class CertAuthority:
    """A self-signed CA that issues server certificates for 127.0.0.1 / localhost."""

    def __init__(self, name: str = "mlops test CA") -> None:
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str = "localhost", days: float = 10, start_days: float = -1) -> Issued:
        key = _key()
        now = datetime.now(UTC)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now + timedelta(days=start_days))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), serial)

    def crl(self, revoked: tuple[int, ...] = (), hours: float = 24 * 7, age_hours: float = 1) -> bytes:
        """A PEM revocation list of this CA revoking ``revoked`` serials (issued ``age_hours`` ago)."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - timedelta(hours=age_hours))
            .next_update(now + timedelta(hours=hours))
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def client_context(
        self, folder: Path, client: Issued | None = None, stem: str = "client"
    ) -> ssl.SSLContext:
        """A context trusting this CA, presenting ``client``'s certificate when given."""
        path = folder / "ca.pem"
        path.write_bytes(self.pem)
        context = ssl.create_default_context(cafile=str(path))
        if client is not None:
            cert, key = client.write(folder, stem)
            context.load_cert_chain(str(cert), str(key))
        return context


def served_serial(host: str, port: int, context: ssl.SSLContext) -> int:
    """Serial number of the certificate a fresh handshake gets."""
    import socket

    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def write_keys_file(folder: Path, keys: dict[str, str]) -> Path:
    """A mode-600 ``keys.txt`` in ``folder`` with one ``name key`` line per entry (its path)."""
    path = folder / "keys.txt"
    path.write_text("".join(f"{name} {key}\n" for name, key in keys.items()), encoding="utf-8")
    path.chmod(0o600)
    return path
