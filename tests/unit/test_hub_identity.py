"""The workspace service's view of hub tokens: a refusal is not cached (HubAuth keeps refusals in its cache, and a
hub that refused a good token once, on its first query after a PostgreSQL restart, kept it refused for the cache's
life). The hub's answers are scripted: this is the service's logic, not the hub's."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from agp.hub.service.hubauth import HubIdentity

ALICE = {"kind": "user", "name": "alice", "admin": False, "groups": ["finance"], "scopes": ["access:services"]}


def _request(token: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/api/workspaces",
            "headers": [(b"authorization", f"token {token}".encode())],
        }
    )


@pytest.fixture
def identity(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-token")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://hub.invalid:8081/hub/api")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "workspaces")
    ident = HubIdentity("/services/workspaces/", cache_max_age=30)
    ident.auth.access_scopes = {"access:services"}
    return ident


def test_a_token_the_hub_refused_once_is_asked_again(identity, monkeypatch):
    answers = [None, ALICE]  # the hub's 403 on its failed query, then its answer once it has reconnected
    asked = []

    async def api_request(method, url, **kwargs):
        asked.append(url)
        return answers.pop(0) if answers else ALICE

    monkeypatch.setattr(identity.auth, "_api_request", api_request)
    caller = asyncio.run(identity.caller(_request("good-token")))
    assert caller.name == "alice" and len(asked) == 2


def test_an_unknown_token_is_still_refused(identity, monkeypatch):
    async def api_request(method, url, **kwargs):
        return None

    monkeypatch.setattr(identity.auth, "_api_request", api_request)
    with pytest.raises(HTTPException) as e:
        asyncio.run(identity.caller(_request("bad-token")))
    assert e.value.status_code == 401
