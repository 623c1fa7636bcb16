"""A browser-like HTTP client of the lab's hub: the real Keycloak login form, hub tokens, the workspace API."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urljoin

import requests


class LoginFailed(AssertionError):
    pass


class HubSession:
    """One user's cookie session on the hub, logged in through Keycloak's form as a browser would."""

    def __init__(self, hub_url: str):
        self.hub_url = hub_url.rstrip("/")
        self.http = requests.Session()

    def _insecure(self) -> None:
        # Keycloak marks its cookies Secure; browsers send them to http://127.0.0.1, requests does not.
        for cookie in self.http.cookies:
            cookie.secure = False

    def get(self, url: str, **kw) -> requests.Response:
        r = self.http.get(urljoin(self.hub_url + "/", url), allow_redirects=False, timeout=30, **kw)
        self._insecure()
        while r.is_redirect:
            r = self.http.get(urljoin(r.url, r.headers["location"]), allow_redirects=False, timeout=30)
            self._insecure()
        return r

    def login(self, username: str, password: str) -> requests.Response:
        page = self.get("/hub/oauth_login?next=%2Fhub%2Fhome")
        form = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text)
        if not form:
            raise LoginFailed(f"no Keycloak login form at {page.url} (HTTP {page.status_code})")
        r = self.http.post(
            html.unescape(form.group(1)),
            data={"username": username, "password": password, "credentialId": ""},
            allow_redirects=False,
            timeout=30,
        )
        self._insecure()
        if not r.is_redirect:
            raise LoginFailed(f"Keycloak refused {username}: HTTP {r.status_code}")
        home = self.get(r.headers["location"])
        if not home.url.endswith("/hub/home") or home.status_code != 200:
            raise LoginFailed(f"{username} did not reach the hub's home page: {home.url} HTTP {home.status_code}")
        return home

    @property
    def xsrf(self) -> str:
        return self.http.cookies.get("_xsrf", path="/hub/") or self.http.cookies.get("_xsrf") or ""

    def hub_api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"X-XSRFToken": self.xsrf, **kw.pop("headers", {})}
        return self.http.request(method, f"{self.hub_url}/hub/api{path}", headers=headers, timeout=60, **kw)

    def new_token(self, username: str, scopes: list[str] | None = None) -> str:
        body = {"note": "tests", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        r = self.hub_api("POST", f"/users/{username}/tokens", json=body)
        if r.status_code != 201:
            raise AssertionError(f"token for {username}: HTTP {r.status_code} {r.text}")
        return r.json()["token"]


class Api:
    """The workspace service's REST API with a hub token."""

    def __init__(self, hub_url: str, token: str):
        self.base = hub_url.rstrip("/") + "/services/workspaces/api"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=120, **kw)

    def hub(self, method: str, path: str, **kw) -> requests.Response:
        hub = self.base.split("/services/")[0]
        return self.http.request(method, f"{hub}/hub/api{path}", timeout=120, **kw)

    def wait_server(self, user: str, server: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.hub("GET", f"/users/{user}").json()
            srv = model.get("servers", {}).get(server)
            if srv and srv.get("ready"):
                return srv
            if srv is None and time.monotonic() > deadline - timeout + 5:
                raise AssertionError(f"server {user}/{server} is gone: {model}")
            time.sleep(0.5)
        raise AssertionError(f"server {user}/{server} was not ready within {timeout} s")


class KeycloakAdmin:
    """Keycloak's admin REST API, as the lab's bootstrap admin, for tests that change users and groups."""

    def __init__(self, keycloak_url: str, realm: str, user: str, password: str):
        self.base = f"{keycloak_url.rstrip('/')}/admin/realms/{realm}"
        self._token_url = f"{keycloak_url.rstrip('/')}/realms/master/protocol/openid-connect/token"
        self._login = {"grant_type": "password", "client_id": "admin-cli", "username": user, "password": password}
        self._session = requests.Session()
        self._renew_at = 0.0
        _ = self.http  # fails here, at once, if the admin cannot log in

    @property
    def http(self) -> requests.Session:
        """A session with a valid admin token: the master realm's tokens live a minute, the fixture a whole run."""
        import time

        if time.monotonic() >= self._renew_at:
            r = requests.post(self._token_url, data=self._login, timeout=30)
            r.raise_for_status()
            doc = r.json()
            self._session.headers["Authorization"] = f"Bearer {doc['access_token']}"
            self._renew_at = time.monotonic() + max(doc.get("expires_in", 60) - 20, 5)
        return self._session

    def create_user(self, username: str, password: str) -> str:
        r = self.http.post(
            f"{self.base}/users",
            json={
                "username": username,
                "enabled": True,
                "email": f"{username}@antigravity.lab",
                "emailVerified": True,
                "firstName": username,
                "lastName": "Test",
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return r.headers["location"].rsplit("/", 1)[1]

    def group_id(self, name: str) -> str:
        groups = self.http.get(f"{self.base}/groups", params={"search": name, "exact": "true"}, timeout=30).json()
        return next(g["id"] for g in groups if g["name"] == name)

    def join(self, user_id: str, group: str) -> None:
        r = self.http.put(f"{self.base}/users/{user_id}/groups/{self.group_id(group)}", timeout=30)
        assert r.status_code == 204, r.text

    def leave(self, user_id: str, group: str) -> None:
        r = self.http.delete(f"{self.base}/users/{user_id}/groups/{self.group_id(group)}", timeout=30)
        assert r.status_code == 204, r.text

    def delete_user(self, user_id: str) -> None:
        self.http.delete(f"{self.base}/users/{user_id}", timeout=30)
