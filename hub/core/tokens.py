"""The platform's signing of Trino tokens and where its keys are: the broker mints a short-lived JWT for a user, which
Trino trusts through the public half of the key. Making the keys is the producer's (the lab, a Helm chart's Secret)."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "agp-broker"
TRINO_AUDIENCE = "trino"


@dataclass(frozen=True)
class KeyPaths:
    folder: Path

    broker_private = property(lambda self: self.folder / "broker-jwt.key")
    broker_public = property(lambda self: self.folder / "broker-jwt.pub")
    trino_keystore = property(lambda self: self.folder / "trino-tls.pem")  # key + certificate, for Trino
    trino_ca = property(lambda self: self.folder / "trino-ca.pem")  # certificate only, for clients
    internal_secret = property(lambda self: self.folder / "trino-internal-secret")
    spooling_key = property(lambda self: self.folder / "trino-spooling-key")  # base64 of 256 random bits


@functools.lru_cache(maxsize=4)
def _signing_key(private_pem: bytes) -> rsa.RSAPrivateKey:
    # Loading an RSA key checks it, which costs tens of milliseconds: do it once per key, not per token.
    return serialization.load_pem_private_key(private_pem, password=None)


def mint_trino_token(private_pem: bytes, user: str, ttl: int = 900, **claims: object) -> tuple[str, int]:
    """A JWT that Trino accepts for ``user`` until the returned expiry (epoch seconds)."""
    now = int(time.time())
    exp = now + ttl
    payload = {
        "iss": ISSUER,
        "aud": TRINO_AUDIENCE,
        "sub": user,
        "iat": now,
        "nbf": now - 5,
        "exp": exp,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, _signing_key(private_pem), algorithm="RS256"), exp
