"""The lab's own keys: the broker's JWT signing key (Trino trusts its public half), Trino's TLS certificate, the
secret Trino's nodes share, and the key Trino encrypts the handles of spooled result segments with. Made once per lab,
readable by their owner only; never in a notebook."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agp.core.tokens import ISSUER, TRINO_AUDIENCE, KeyPaths, mint_trino_token

__all__ = ["ISSUER", "TRINO_AUDIENCE", "KeyPaths", "ensure", "ensure_secrets", "mint_trino_token"]


def _private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def ensure(paths: KeyPaths, host: str) -> None:
    """Make whatever key is missing; existing keys are kept, so tokens and certificates stay valid."""
    paths.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not paths.broker_private.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _private(
            paths.broker_private,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        paths.broker_public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    if not paths.trino_keystore.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "antigravity-lab-trino")])
        now = dt.datetime.now(dt.timezone.utc)
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(sans))), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        _private(paths.trino_keystore, _pem(key) + cert_pem)
        paths.trino_ca.write_bytes(cert_pem)
    if not paths.internal_secret.exists():
        _private(paths.internal_secret, secrets.token_urlsafe(48).encode())
    if not paths.spooling_key.exists():
        # protocol.spooling.shared-secret-key: Trino wants exactly 256 bits, base64-encoded.
        _private(paths.spooling_key, base64.b64encode(secrets.token_bytes(32)))


def ensure_secrets(folder: Path, names: list[str]) -> list[str]:
    """Random secrets made once, one file each, readable by their owner only (the lab's generated credentials);
    URL-safe text, so that they fit in database URLs, SQL literals and supervisord's config as they are. Returns
    the names made now (a lab made before had the published defaults there: the caller changes them)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = []
    for name in names:
        if not (folder / name).exists():
            _private(folder / name, secrets.token_urlsafe(30).encode())
            made.append(name)
    return made
