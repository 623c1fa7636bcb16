"""The Iceberg REST catalog as notebooks see it: Nessie behind the workspace service, which authorizes each call.

A caller reaches the namespaces of the workspaces it belongs to (writing where its role writes), platform admins
reach all, and nobody creates or drops namespaces here (provisioning does). Upstream, the service speaks to
Nessie with the platform's own Keycloak client credentials; Nessie refuses everyone without a realm token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import quote, unquote

import httpx
from fastapi import HTTPException, Request, Response

from agp.compose.settings import Settings

log = logging.getLogger(__name__)

READ_METHODS = {"GET", "HEAD"}
HOP_HEADERS = {"host", "authorization", "cookie", "content-length", "connection", "accept-encoding", "x-xsrftoken"}


def namespace_of(segment: str) -> str:
    """A namespace path segment (levels joined by 0x1F) as the dotted name the membership table knows."""
    return ".".join(unquote(segment).split("\x1f"))


def authorize(method: str, parts: list[str], body: bytes, access: dict[str, bool] | None) -> None:
    """Raise unless the call is allowed. ``access`` maps namespaces to writability; ``None`` means admin."""
    if parts[:2] == ["v1", "config"]:
        return
    if len(parts) < 3 or parts[0] != "v1":
        raise HTTPException(403, "This catalog call is not offered to notebooks.")
    rest = parts[2:]
    if rest == ["namespaces"]:
        if method not in READ_METHODS and access is not None:
            raise HTTPException(403, "Namespaces are made by workspace provisioning, not from a notebook.")
        return
    if rest[0] == "namespaces" and len(rest) >= 2:
        _check(namespace_of(rest[1]), method not in READ_METHODS and rest[-1] != "metrics", access)
        if len(rest) == 2 and method == "DELETE" and access is not None:
            raise HTTPException(403, "Namespaces are dropped by archiving a workspace, not from a notebook.")
        return
    if rest in (["tables", "rename"], ["views", "rename"]):
        doc = json.loads(body or b"{}")
        for key in ("source", "destination"):
            _check(".".join(doc.get(key, {}).get("namespace", [])), True, access)
        return
    if rest == ["transactions", "commit"]:
        doc = json.loads(body or b"{}")
        for change in doc.get("table-changes", []):
            _check(".".join(change.get("identifier", {}).get("namespace", [])), True, access)
        return
    raise HTTPException(403, "This catalog call is not offered to notebooks.")


def credentials_path(parts: list[str]) -> bool:
    """``v1/{prefix}/namespaces/{ns}/tables/{table}/credentials``: the table's storage credential (Iceberg REST)."""
    return (
        len(parts) == 7 and parts[0] == "v1" and parts[2] == "namespaces" and parts[4:7:2] == ["tables", "credentials"]
    )


def s3_config(cred: dict) -> dict[str, str]:
    """An S3 credential from the broker in the Iceberg REST catalog's property names (pure)."""
    return {
        "s3.access-key-id": cred["access_key_id"],
        "s3.secret-access-key": cred["secret_access_key"],
        "s3.session-token": cred["session_token"],
        "s3.session-token-expires-at-ms": str(int(cred["expires_at"]) * 1000),
    }


def vend(doc: dict, cred: dict, refresh_path: str) -> dict:
    """A load-table answer with the caller's own S3 credential for the table, and where to renew it (pure).

    Iceberg's clients (Spark's S3FileIO through ``VendedCredentialsProvider``, pyiceberg) take these over any
    catalog-wide keys, and ask ``refresh_path`` for a new credential before this one expires.
    """
    config = doc.setdefault("config", {})
    config.update(s3_config(cred))
    config["client.refresh-credentials-endpoint"] = refresh_path
    config["client.refresh-credentials-enabled"] = "true"
    return doc


def _check(namespace: str, write: bool, access: dict[str, bool] | None) -> None:
    if access is None:
        return
    if namespace not in access:
        raise HTTPException(404, f"There is no namespace {namespace!r} in your workspaces.")
    if write and not access[namespace]:
        raise HTTPException(403, f"Your role in the workspace of {namespace!r} reads but does not write.")


class CatalogProxy:
    def __init__(self, settings: Settings, public_uri: str):
        self.settings = settings
        self.upstream = settings.catalog_uri.rstrip("/")
        self.public_uri = public_uri.rstrip("/")
        self._token: tuple[str, float] | None = None
        self.http = httpx.AsyncClient(timeout=60)

    async def _service_token(self) -> str:
        if self._token and self._token[1] > time.time():
            return self._token[0]
        r = await self.http.post(
            self.settings.keycloak_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": "agp-services",
                "client_secret": self.settings.credentials.services_client_secret,
                "scope": "openid",
            },
        )
        r.raise_for_status()
        doc = r.json()
        self._token = (doc["access_token"], time.time() + doc.get("expires_in", 60) - 30)
        return self._token[0]

    async def forward(
        self,
        request: Request,
        access: dict[str, bool] | None,
        vend_s3: Callable[[str, bool], dict | None] | None = None,
    ) -> Response:
        """Authorize the call, forward it to Nessie as the platform, and adapt the answer for the caller.

        ``vend_s3(namespace, writable)`` returns the caller's S3 credential for a namespace's bucket; with it,
        table answers carry that credential and its refresh endpoint is answered here.
        """
        raw = request.scope.get("raw_path", request.url.path.encode()).decode()
        tail = raw.split("/iceberg/", 1)[1] if "/iceberg/" in raw else ""
        parts = tail.split("/")
        body = await request.body()
        try:
            authorize(request.method, parts, body, access)
        except json.JSONDecodeError as e:
            raise HTTPException(400, "The request body is not JSON.") from e
        namespace = namespace_of(parts[3]) if len(parts) > 3 and parts[2] == "namespaces" else None
        writable = True if access is None else bool(namespace and access.get(namespace))
        if credentials_path(parts) and request.method == "GET" and vend_s3 is not None and namespace:
            cred = await asyncio.to_thread(vend_s3, namespace, writable)
            if cred is None:
                raise HTTPException(404, f"Namespace {namespace!r} has no workspace bucket to vend credentials for.")
            answer = {"storage-credentials": [{"prefix": f"s3://{cred['bucket']}/", "config": s3_config(cred)}]}
            return Response(json.dumps(answer).encode(), media_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["authorization"] = f"Bearer {await self._service_token()}"
        url = f"{self.upstream}/{tail}"
        if request.url.query:
            url += f"?{request.url.query}"
        try:
            upstream = await self.http.request(request.method, url, content=body, headers=headers)
        except httpx.HTTPError as e:
            log.error("catalog %s %s failed: %s", request.method, url, e)
            raise HTTPException(503, "The Iceberg catalog does not answer; try again in a moment.") from e
        content = upstream.content
        is_json = upstream.headers.get("content-type", "").startswith("application/json")
        if parts[:2] == ["v1", "config"] and upstream.status_code == 200:
            content = self._rewrite_config(upstream.json())
        elif len(parts) >= 5 and parts[4] == "tables" and upstream.status_code == 200 and is_json:
            doc = self._strip_signing(upstream.json())
            if vend_s3 is not None and namespace and "metadata" in doc:
                # Loading names the table in the path; creating names it in the body.
                table = parts[5] if len(parts) > 5 else quote(str(json.loads(body or b"{}").get("name", "")), safe="")
                if table:
                    cred = await asyncio.to_thread(vend_s3, namespace, writable)
                    doc = (
                        doc if cred is None else vend(doc, cred, "/".join([*parts[:4], "tables", table, "credentials"]))
                    )
            content = json.dumps(doc).encode()
        elif (
            parts[2:] == ["namespaces"]
            and request.method == "GET"
            and upstream.status_code == 200
            and access is not None
        ):
            doc = upstream.json()
            doc["namespaces"] = [ns for ns in doc.get("namespaces", []) if ".".join(ns) in access]
            content = json.dumps(doc).encode()
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in {"content-type", "etag"}}
        return Response(content, status_code=upstream.status_code, headers=kept)

    @staticmethod
    def _strip_signing(doc: dict) -> dict:
        """Clients sign their S3 requests with their own bucket-scoped credential: Nessie's remote signing would
        lend them Nessie's rights to every bucket, and send them to Nessie, which they cannot reach."""
        config = doc.get("config")
        if isinstance(config, dict):
            for key in ("s3.remote-signing-enabled", "s3.signer.uri", "s3.signer.endpoint", "s3.signer"):
                config.pop(key, None)
        return doc

    def _rewrite_config(self, doc: dict) -> bytes:
        """Keep clients on this proxy: Nessie would send them straight to itself."""
        for section in ("defaults", "overrides"):
            values = doc.get(section) or {}
            if "uri" in values:
                values["uri"] = self.public_uri + "/"
            for key in [k for k in values if k.startswith("nessie.")]:
                del values[key]
        return json.dumps(doc).encode()
