"""Platform tools' Trino connections renew their JWT (a connection held past one token's life got 401 'JWT expired':
the lab's test session took longer than 15 minutes under load)."""

from __future__ import annotations

import time

import jwt
import requests
import trino
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agp.core.clients import RenewingJWT


def _key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "broker.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path, key.public_key()


def _claims(request, public):
    scheme, token = request.headers["Authorization"].split()
    assert scheme == "Bearer"
    return jwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False})


def test_the_token_is_minted_again_before_it_expires(tmp_path):
    path, public = _key(tmp_path)
    auth = RenewingJWT(path, "agp-platform", ttl=2)
    first = _claims(auth(requests.Request("GET", "https://trino").prepare()), public)
    assert first["sub"] == "agp-platform" and first["exp"] - time.time() <= 2
    assert auth.token() == auth.token()  # within its life the same token is reused
    time.sleep(1.1)  # past the renewal point (half the life for a short ttl, a minute before expiry otherwise)
    second = _claims(auth(requests.Request("GET", "https://trino").prepare()), public)
    assert second["exp"] > first["exp"]


def test_the_trino_client_sends_it_on_every_request(tmp_path):
    path, public = _key(tmp_path)
    auth = RenewingJWT(path, "agp-platform", ttl=60)
    conn = trino.dbapi.connect(host="trino.invalid", port=8443, user="agp-platform", http_scheme="https", auth=auth)
    session = conn.cursor()._request._http_session  # where the client puts a request's authentication
    assert session.auth is auth
    request = session.prepare_request(requests.Request("POST", "https://trino.invalid:8443/v1/statement"))
    assert _claims(request, public)["sub"] == "agp-platform"
