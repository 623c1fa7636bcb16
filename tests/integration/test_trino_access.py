"""What Trino fetches from the running lab's workspace service when it runs apart from it: the broker's JWK Set
(public) and the access rules (the rules token only), and the rules follower that keeps a file equal to them."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from conftest import wait_until

from agp.core.names import WorkspaceNames
from agp.core.settings import GENERATED_CREDENTIALS, Settings
from agp.core.tokens import ISSUER, TRINO_AUDIENCE
from agp.hub.trino_rules import READ, WRITE, render

pytestmark = pytest.mark.integration

SERVICE = "/services/workspaces"


def _direct(settings: Settings, path: str) -> str:
    """The service itself, as Trino's pod reaches it (not through the hub's proxy)."""
    return settings.url("workspaces", SERVICE + path)


def _public(settings: Settings, path: str) -> str:
    """The service through the hub's public proxy, where notebooks and browsers reach it."""
    return settings.hub_url + SERVICE + path


@pytest.fixture(scope="module")
def rules_token(lab, settings: Settings) -> str:
    token = settings.credentials.trino_rules_token.get_secret_value()
    assert token, f"the lab made no {GENERATED_CREDENTIALS['trino_rules_token']} in {settings.keys_dir}"
    return token


@pytest.fixture(scope="module")
def alice_token(user_api) -> str:
    return user_api("alice").http.headers["Authorization"].split()[1]


def _raw_get(url: str, headers: dict[str, str], hops: int = 3) -> tuple[int, bytes]:
    """GET exactly this path (no client normalizes dots, slashes or escapes), following redirects by hand with the
    same headers: whatever the path, what comes back at the end is what an attacker gets."""
    for _ in range(hops):
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.putrequest("GET", target, skip_host=False, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        if r.status in (301, 302, 303, 307, 308) and r.getheader("location"):
            location = r.getheader("location")
            url = location if "://" in location else f"{parts.scheme}://{parts.netloc}{location}"
            continue
        return r.status, body
    return r.status, body


# ------------------------------------------------------------------------------------------------------------ JWKS
def test_the_jwks_is_public_and_verifies_a_token_the_broker_minted(lab, settings, new_workspace, admin_api, user_api):
    slug = new_workspace()["slug"]
    assert admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "viewer"}).status_code == 200
    issued = user_api("alice")("POST", f"/workspaces/{slug}/credentials", json={"kinds": ["trino"]})
    assert issued.status_code == 200, issued.text
    token = issued.json()["trino"]["token"]

    direct = requests.get(_direct(settings, "/jwks.json"), timeout=30)
    public = requests.get(_public(settings, "/jwks.json"), timeout=30)
    assert direct.status_code == public.status_code == 200 and direct.json() == public.json()
    assert direct.headers["content-type"] == "application/json"
    (key,) = direct.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and not {"d", "p", "q"} & set(key)
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]

    # PyJWKClient picks the key by the token's kid, as Trino's JWKS resolver does.
    signing_key = jwt.PyJWKClient(_direct(settings, "/jwks.json")).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=TRINO_AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "alice" and claims["workspace"] == slug


# ----------------------------------------------------------------------------------------------------------- rules
def test_the_rules_are_the_file_trino_reads_and_a_match_is_a_304(lab, settings, rules_token):
    url = _direct(settings, "/trino/rules.json")
    auth = {"Authorization": f"Bearer {rules_token}"}

    def same_as_the_file() -> requests.Response:
        r = requests.get(url, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        # The service rewrites the file on every change and every 10 s; another test may change memberships.
        assert r.text == settings.trino_rules_path.read_text()
        return r

    r = wait_until(same_as_the_file)
    assert r.headers["content-type"] == "application/json" and r.text == render(r.json())
    tag = r.headers["etag"]
    again = requests.get(url, headers={**auth, "If-None-Match": tag}, timeout=30)
    if again.status_code == 200:  # the rules changed in between (another test's workspace): ask once more
        tag = again.headers["etag"]
        again = requests.get(url, headers={**auth, "If-None-Match": tag}, timeout=30)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    stale = requests.get(url, headers={**auth, "If-None-Match": '"not-the-tag"'}, timeout=30)
    assert stale.status_code == 200 and stale.json()["catalogs"]


@pytest.mark.parametrize("where", ["direct", "public"])
def test_the_rules_refuse_anyone_without_the_rules_token(lab, settings, rules_token, alice_token, admin_api, where):
    url = (_direct if where == "direct" else _public)(settings, "/trino/rules.json")
    admin_token = admin_api.http.headers["Authorization"].split()[1]
    attempts = {
        "nothing": {},
        "a wrong bearer": {"Authorization": "Bearer " + "x" * len(rules_token)},
        "the token with a changed last character": {"Authorization": "Bearer " + rules_token[:-1] + "!"},
        "alice's hub token": {"Authorization": f"token {alice_token}"},
        "alice's hub token as a bearer": {"Authorization": f"Bearer {alice_token}"},
        "the admin's hub token": {"Authorization": f"token {admin_token}"},
        "the rules token under another scheme": {"Authorization": f"token {rules_token}"},
        "the rules token as a cookie": {"Cookie": f"agp-workspaces-token={rules_token}"},
    }
    for what, headers in attempts.items():
        r = requests.get(url, headers={**headers, "If-None-Match": "*"}, timeout=30, allow_redirects=False)
        assert r.status_code == 401, f"{what}: HTTP {r.status_code}"
        assert r.json()["detail"] and "catalogs" not in r.text, what
    query = requests.get(url, params={"token": rules_token}, timeout=30, allow_redirects=False)
    assert query.status_code == 401
    events = admin_api("GET", "/audit", params={"limit": 200}).json()
    refused = [e for e in events if e["action"] == "trino.rules.read" and e["outcome"] == "refused"]
    assert len(refused) >= len(attempts) + 1 and all(e["actor"] == "anonymous" for e in refused)


HOSTILE_PATHS = [
    "/trino/rules.json/",
    "//trino/rules.json",
    "/trino//rules.json",
    "/trino/./rules.json",
    "/x/../trino/rules.json",
    "/trino/rules.json%00",
    "/trino/rules.json;x=1",
    "/trino/rules.json%20",
    "/trino%2frules.json",
    "/trino%2Frules.json",
    "/api/..%2ftrino/rules.json",
    "/api/..%2Ftrino%2Frules.json",
    "/api/%2e%2e/trino/rules.json",
    "/iceberg/..%2f..%2ftrino/rules.json",
    "/iceberg/v1/..%2f..%2ftrino%2frules.json",
    "/Trino/rules.json",
    "/trino/Rules.json",
    "/TRINO/RULES.JSON",
    "/trino/rules.JSON",
    "/%74rino/rules.json",
]


@pytest.mark.parametrize("where", ["direct", "public"])
def test_no_spelling_of_the_rules_path_skips_the_token_check(lab, settings, rules_token, alice_token, where):
    base = settings.url("workspaces", SERVICE) if where == "direct" else settings.hub_url + SERVICE
    leaks = []
    for path in HOSTILE_PATHS:
        for headers in ({}, {"Authorization": f"token {alice_token}"}, {"Authorization": f"Bearer {alice_token}"}):
            status, body = _raw_get(base + path, headers)
            if status == 200 or b'"catalogs"' in body:
                leaks.append((path, headers and headers["Authorization"].split()[0], status))
    assert not leaks, leaks
    # The check itself: the right token on the canonical path does answer, directly.
    status, body = _raw_get(
        settings.url("workspaces", SERVICE + "/trino/rules.json"), {"Authorization": f"Bearer {rules_token}"}
    )
    assert status == 200 and b'"catalogs"' in body


# -------------------------------------------------------------------------------------------------------- follower
def _role_of(rules: dict, user: str, schema: str) -> str | None:
    """``editor``, ``viewer`` or ``None``: what the rules grant ``user`` on the workspace schema's tables."""
    pattern = "^" + re.escape(schema) + "$"
    for entry in rules["tables"]:
        if entry.get("catalog") == "iceberg" and entry.get("schema") == pattern and re.fullmatch(entry["user"], user):
            return "editor" if entry["privileges"] == WRITE else "viewer" if entry["privileges"] == READ else None
    return None


def test_the_follower_keeps_a_file_equal_to_the_rules_within_seconds(
    lab, settings, rules_token, new_workspace, admin_api, tmp_path: Path
):
    out = tmp_path / "shared" / "rules.json"
    token_file = settings.keys_dir / GENERATED_CREDENTIALS["trino_rules_token"]
    log = tmp_path / "follower.log"
    command = [sys.executable, "-m", "agp.hub.rules_follow", "--url", _direct(settings, "/trino/rules.json")]
    command += ["--token-file", str(token_file), "--out", str(out)]  # the default interval: 2 s
    with log.open("w") as sink:
        follower = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_until(lambda: json.loads(out.read_text()), timeout=30)
        slug = new_workspace()["slug"]
        schema = WorkspaceNames(slug).schema
        steps = [("PUT", "viewer"), ("PUT", "editor"), ("DELETE", None), ("PUT", "viewer"), ("PUT", "editor")]
        latencies = []
        for method, role in steps:
            # A change at a random moment of the follower's 2 s cycle: right after the last one, each change would
            # come at the same phase of it, and the latencies would all be alike.
            time.sleep(random.uniform(0, 2))
            body = {"json": {"role": role}} if role else {}
            r = admin_api(method, f"/workspaces/{slug}/members/bob", **body)
            assert r.status_code == 200, r.text
            done = time.monotonic()
            while True:
                try:
                    if _role_of(json.loads(out.read_text()), "bob", schema) == role:
                        break
                except (OSError, ValueError):
                    pytest.fail(f"the follower's file was missing or half-written: {log.read_text()[-2000:]}")
                assert time.monotonic() - done < 15, f"bob is not {role} in the file after 15 s: {log.read_text()}"
                time.sleep(0.02)
            latencies.append(time.monotonic() - done)
        p50, worst = statistics.median(latencies), max(latencies)
        print(f"\nrules follower (interval 2 s): change -> file p50 {p50:.2f} s, max {worst:.2f} s, {latencies}")
        assert sum("rules changed" in line for line in log.read_text().splitlines()) >= len(steps)
    finally:
        follower.send_signal(signal.SIGTERM)
        try:
            code = follower.wait(timeout=15)
        except subprocess.TimeoutExpired:
            follower.kill()
            raise
    assert code == 0, log.read_text()
    assert "stopping" in log.read_text().splitlines()[-1] and json.loads(out.read_text())["catalogs"]
