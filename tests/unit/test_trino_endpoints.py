"""What Trino fetches from the workspace service (the broker's JWK Set, the access rules) and the rules follower
that keeps Trino's rules file equal to them: the pure parts, the router on fake callables, and the follower
against a small local HTTP server."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from agp.core.tokens import ISSUER, TRINO_AUDIENCE, jwks, mint_trino_token, thumbprint
from agp.hub import rules_follow
from agp.hub.service import trino_routes
from agp.hub.trino_rules import Grant, build_rules, render

RULES = build_rules([Grant("finance", frozenset({"alice"}), frozenset({"bob"}))], admins=["admin"])


@pytest.fixture(scope="module")
def private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# ----------------------------------------------------------------------------------------------------------- JWKS
def test_the_key_id_is_the_rfc_7638_thumbprint():
    # RFC 7638, section 3.1: the example RSA key and its thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3o"
        "knjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu"
        "6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
        "pJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_the_jwks_verifies_the_brokers_tokens_and_names_their_key(private_pem):
    keys = jwks(private_pem)["keys"]
    assert len(keys) == 1 and set(keys[0]) == {"kty", "n", "e", "kid", "use", "alg"}
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig"
    assert keys[0]["kid"] == thumbprint(keys[0])
    token, _ = mint_trino_token(private_pem, "alice", workspace="finance")
    assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]
    key = jwt.PyJWKSet.from_dict(jwks(private_pem))[keys[0]["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=TRINO_AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "alice" and claims["workspace"] == "finance"


def test_the_jwks_holds_no_private_part(private_pem):
    key = jwks(private_pem)["keys"][0]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert jwks(pem)["keys"][0]["kid"] != key["kid"]  # another key, another id


# ---------------------------------------------------------------------------------------------------- pure helpers
def test_etags_and_if_none_match():
    tag = trino_routes.etag(render(RULES))
    assert tag.startswith('"') and tag.endswith('"') and tag == trino_routes.etag(render(RULES))
    assert tag != trino_routes.etag(render(build_rules([], admins=["admin"])))
    assert trino_routes.not_modified(tag, tag)
    assert trino_routes.not_modified(f'"x", W/{tag}', tag)
    assert trino_routes.not_modified("*", tag)
    assert not trino_routes.not_modified(None, tag)
    assert not trino_routes.not_modified("", tag)
    assert not trino_routes.not_modified('"something-else"', tag)
    assert not trino_routes.not_modified(tag.strip('"'), tag)  # unquoted is another tag


@pytest.mark.parametrize(
    ("header", "expected", "refused"),
    [
        ("Bearer s3cret", "s3cret", False),
        ("bearer s3cret", "s3cret", False),
        ("Bearer  s3cret ", "s3cret", False),
        (None, "s3cret", True),
        ("", "s3cret", True),
        ("Bearer", "s3cret", True),
        ("Bearer ", "s3cret", True),
        ("token s3cret", "s3cret", True),  # a hub token's scheme
        ("Basic czNjcmV0", "s3cret", True),
        ("Bearer s3cre", "s3cret", True),
        ("Bearer s3cretX", "s3cret", True),
        ("Bearer S3CRET", "s3cret", True),
        ("Bearer ", "", True),
        ("Bearer anything", "", True),  # no token configured: no one
    ],
)
def test_only_the_rules_token_passes(header, expected, refused):
    assert (trino_routes.refusal(header, expected) is not None) is refused


# ----------------------------------------------------------------------------------------------- the router itself
class _Client:
    """GETs on an ASGI app in this thread (httpx's ASGI transport; Starlette's TestClient warns of httpx)."""

    def __init__(self, app: FastAPI):
        self.app = app

    def get(self, url: str, headers: dict | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                return await client.get(url, headers=headers or {})

        return asyncio.run(go())


def _client(private_pem: bytes, text: list[str], refusals: list[dict], token: str = "s3cret") -> _Client:  # noqa: S107
    app = FastAPI()
    app.include_router(
        trino_routes.router(
            "/services/workspaces",
            jwks=lambda: jwks(private_pem),
            rules_text=lambda: text[0],
            rules_token=lambda: token,
            audit_refusal=refusals.append,
        )
    )
    return _Client(app)


def test_the_router_serves_exactly_its_doors(private_pem):
    routes = trino_routes.router("/p", jwks=dict, rules_text=str, rules_token=str, audit_refusal=print).routes
    assert sorted((m, r.path) for r in routes for m in r.methods) == sorted(
        (d.method, f"/p/{d.path}") for d in trino_routes.DOORS
    )


def test_the_rules_door(private_pem):
    text, refusals = [render(RULES)], []
    client = _client(private_pem, text, refusals)
    url = "/services/workspaces/trino/rules.json"
    r = client.get(url, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.text == text[0] and json.loads(r.text) == RULES
    assert r.headers["content-type"] == "application/json" and r.headers["etag"] == trino_routes.etag(text[0])
    again = client.get(url, headers={"Authorization": "Bearer s3cret", "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == r.headers["etag"]
    text[0] = render(build_rules([], admins=["admin"]))
    changed = client.get(url, headers={"Authorization": "Bearer s3cret", "If-None-Match": r.headers["etag"]})
    assert changed.status_code == 200 and changed.text == text[0]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "token s3cret"}):
        refused = client.get(url, headers={**headers, "If-None-Match": "*"})
        assert refused.status_code == 401 and refused.json()["detail"] and "catalogs" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert [d["status"] for d in refusals] == [401, 401, 401] and all(d["reason"] for d in refusals)


def test_no_configured_token_refuses_even_an_empty_bearer(private_pem):
    refusals = []
    client = _client(private_pem, [render(RULES)], refusals, token="")
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
        assert client.get("/services/workspaces/trino/rules.json", headers=headers).status_code == 401
    assert len(refusals) == 3


def test_rules_that_cannot_be_built_are_a_503_not_an_empty_document(private_pem):
    def broken() -> str:
        raise RuntimeError("the database is down")

    app = FastAPI()
    app.include_router(trino_routes.router("/p", lambda: {}, broken, lambda: "t", lambda d: None))
    r = _Client(app).get("/p/trino/rules.json", headers={"Authorization": "Bearer t"})
    assert r.status_code == 503 and "catalogs" not in r.text


def test_the_jwks_door_is_public(private_pem):
    r = _client(private_pem, [""], []).get("/services/workspaces/jwks.json")
    assert r.status_code == 200 and r.json() == jwks(private_pem)


# ------------------------------------------------------------------------------------------------------ the follower
def test_backoff_grows_and_is_capped():
    assert rules_follow.next_wait(2, 0) == 2
    waits = [rules_follow.next_wait(2, n) for n in range(1, 10)]
    assert waits == sorted(waits) and waits[0] == 4 and waits[-1] == rules_follow.MAX_BACKOFF
    assert rules_follow.next_wait(0.1, 1) == 2  # a tiny interval still backs off by whole seconds


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"catalogs": []}', b'"rules"'])
def test_what_is_not_a_rules_document_is_refused(body):
    with pytest.raises(ValueError):
        rules_follow.parse_rules(body)


class _Service:
    """A stand-in for the rules door: answers what ``status``/``text`` say, honours If-None-Match."""

    def __init__(self):
        self.status, self.text, self.seen = 200, render(RULES), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append(dict(self.headers))
                tag = trino_routes.etag(outer.text)
                if outer.status == 200 and self.headers.get("If-None-Match") == tag:
                    self.send_response(304)
                    self.send_header("ETag", tag)
                    self.end_headers()
                    return
                body = outer.text.encode()
                self.send_response(outer.status)
                self.send_header("ETag", tag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/workspaces/trino/rules.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service():
    s = _Service()
    yield s
    s.close()


def test_the_follower_writes_on_change_only_and_keeps_the_last_good_file(service, tmp_path: Path, caplog):
    caplog.set_level("INFO", logger="agp.hub.rules_follow")
    token, out = tmp_path / "token", tmp_path / "etc" / "rules.json"
    token.write_text("s3cret\n")
    follower = rules_follow.Follower(service.url, token, out)
    first = follower.poll()
    assert first.ok and first.changed and out.read_text() == render(RULES)
    assert service.seen[-1]["Authorization"] == "Bearer s3cret" and "If-None-Match" not in service.seen[-1]
    assert follower.poll() == rules_follow.Poll(True, changed=False)
    assert service.seen[-1]["If-None-Match"] == trino_routes.etag(render(RULES))
    service.text = render(build_rules([], admins=["admin"]))
    assert follower.poll().changed and json.loads(out.read_text()) == build_rules([], admins=["admin"])
    assert sum("rules changed" in r.getMessage() for r in caplog.records) == 2
    good = out.read_text()
    for status, text in ((401, '{"detail": "no"}'), (200, "<html>a login page</html>"), (200, '{"x": 1}')):
        service.status, service.text = status, text
        result = follower.poll()
        assert not result.ok and result.problem and out.read_text() == good
    service.close()
    result = follower.poll()
    assert not result.ok and "does not answer" in result.problem and out.read_text() == good


def test_the_follower_stops_at_once_when_told(service, tmp_path: Path):
    token, out = tmp_path / "token", tmp_path / "rules.json"
    token.write_text("s3cret")
    stop = threading.Event()
    follower = rules_follow.Follower(service.url, token, out)
    runner = threading.Thread(target=follower.run, args=(60.0, stop))
    runner.start()
    deadline = threading.Event()
    while not out.exists() and not deadline.wait(0.05):
        pass
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive() and out.read_text() == render(RULES)


def test_once_exits_zero_when_the_rules_are_written_and_the_token_file_is_read_each_time(service, tmp_path: Path):
    token, out = tmp_path / "token", tmp_path / "rules.json"
    assert rules_follow.Follower(service.url, token, out).poll().problem.startswith("cannot read the token file")
    token.write_text("s3cret")
    assert rules_follow.main(["--url", service.url, "--token-file", str(token), "--out", str(out), "--once"]) == 0
    assert out.read_text() == render(RULES)
