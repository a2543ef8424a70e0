"""Self-signed certificates for clusters that serve TLS without a certificate of their own.

cryptography's x509 module takes about 25 ms to import, and every client process loads this
module (through the ``tls`` connection type), so each function imports it where it is used."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

from rh_core.paths import write_private


def _names(hosts: list[str]) -> list:
    # cryptography is imported on use (see the module's docstring).
    from cryptography import x509

    seen, out = set(), []
    for h in ["localhost", "127.0.0.1", "::1", socket.gethostname(), *hosts]:
        if not h or h in seen or h in ("0.0.0.0", "::"):
            continue
        seen.add(h)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def self_signed(folder: Path, hosts: list[str], days: int = 825) -> tuple[Path, Path]:
    """``(cert, key)`` in ``folder``, made once: an EC P-256 key and a certificate whose SANs are
    localhost, the loopback addresses, this host's name and ``hosts``. The key is mode 0600."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, hosts):
        return cert_path, key_path
    # cryptography is imported on use (see the module's docstring).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rh cluster")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    return cert_path, key_path


def _still_good(cert_path: Path, hosts: list[str]) -> bool:
    """Whether a certificate made earlier still names every host and is valid for a month."""
    # cryptography is imported on use (see the module's docstring).
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(n.value) for n in san}
    want = {str(n.value) for n in _names(hosts)}
    month = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    return want <= have and cert.not_valid_after_utc > month


def is_self_signed(cert_file: str | Path) -> bool:
    """Whether the certificate's issuer is its subject (then it is its own trust anchor)."""
    # cryptography is imported on use (see the module's docstring).
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return cert.issuer == cert.subject
