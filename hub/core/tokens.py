"""The platform's signing of Trino tokens and where its keys are: the broker mints a short-lived JWT for a user, which
Trino trusts through the public half of the key, read from a file or, where Trino runs apart from the workspace
service (Kubernetes), from the service's JWK Set (:func:`jwks`). Making the keys is the producer's (the lab, a Helm
chart's Secret)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "agp-broker"
TRINO_AUDIENCE = "trino"
ALGORITHM = "RS256"


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


def thumbprint(jwk: dict) -> str:
    """The RFC 7638 thumbprint of an RSA JWK (SHA-256 of its required members, sorted, without whitespace): a key id
    that is the same wherever the key is, and changes only with the key."""
    members = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


@functools.lru_cache(maxsize=4)
def public_jwk(private_pem: bytes) -> dict:
    """The public half of the broker's key as a JWK (RFC 7517), with its thumbprint as ``kid``."""
    jwk = RSAAlgorithm.to_jwk(_signing_key(private_pem).public_key(), as_dict=True)
    public = {k: jwk[k] for k in ("kty", "n", "e")}  # not key_ops: RFC 7517 says not to send it beside use
    return {**public, "kid": thumbprint(public), "use": "sig", "alg": ALGORITHM}


def jwks(private_pem: bytes) -> dict:
    """The JWK Set that verifies the broker's tokens (what Trino fetches when its key-file is a URL)."""
    return {"keys": [dict(public_jwk(private_pem))]}


def mint_trino_token(private_pem: bytes, user: str, ttl: int = 900, **claims: object) -> tuple[str, int]:
    """A JWT that Trino accepts for ``user`` until the returned expiry (epoch seconds). Its header names the key
    (``kid``), which a JWK Set consumer needs to pick the key; a key-file consumer ignores it."""
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
    kid = public_jwk(private_pem)["kid"]
    return jwt.encode(payload, _signing_key(private_pem), algorithm=ALGORITHM, headers={"kid": kid}), exp
