"""The workspace service's checks on cookie-authenticated changes (pure: a request built in memory)."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from agp.hub.service.hubauth import XSRF_COOKIE, check_xsrf


def _request(headers: dict[str, str]) -> Request:
    base = {"host": "127.0.0.1:8000", "cookie": f"{XSRF_COOKIE}=abc", "x-xsrftoken": "abc"}
    raw = [(k.encode(), v.encode()) for k, v in {**base, **headers}.items()]
    return Request({"type": "http", "method": "POST", "path": "/services/workspaces/api/workspaces", "headers": raw})


def test_same_origin_changes_pass():
    check_xsrf(_request({}))
    check_xsrf(_request({"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"}))
    check_xsrf(_request({"origin": "https://hub.example", "x-forwarded-host": "hub.example"}))


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:8001"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-mode": "no-cors"},
        {"x-xsrftoken": "other"},
        {"x-xsrftoken": ""},
    ],
)
def test_changes_from_elsewhere_or_without_the_token_are_refused(headers):
    with pytest.raises(HTTPException) as e:
        check_xsrf(_request(headers))
    assert e.value.status_code == 403
