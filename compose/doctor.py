"""``agp doctor``: one real round trip to every service, and the MinIO buckets listed (the seed's Hello World)."""

from __future__ import annotations

import logging

import requests

from agp.core import clients
from agp.core.settings import Settings

from . import health
from .lab import Lab

log = logging.getLogger(__name__)


def run_checks(settings: Settings) -> dict:
    lab = Lab(settings)
    checks = []
    for svc in lab.services():
        ok, detail = health.check(svc.health)
        checks.append({"name": f"{svc.name} health", "ok": ok, "detail": detail})
    buckets: list[str] = []
    try:
        buckets = sorted(b["Name"] for b in lab.s3_client().list_buckets().get("Buckets", []))
        checks.append({"name": "minio buckets", "ok": True, "detail": f"{len(buckets)} bucket(s)"})
    except Exception as e:
        log.debug("listing buckets failed", exc_info=True)
        checks.append({"name": "minio buckets", "ok": False, "detail": f"S3 list failed: {type(e).__name__}"})
    checks.append(_catalog(settings))
    checks.append(_trino(settings))
    checks.append(_oidc(settings))
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "buckets": buckets}


def _catalog(settings: Settings) -> dict:
    try:
        token = clients.catalog_token(settings)
        r = requests.get(
            f"{settings.catalog_uri}/v1/config",
            params={"warehouse": "warehouse"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        r.raise_for_status()
        config = r.json()
        prefix = config.get("overrides", {}).get("prefix") or config.get("defaults", {}).get("prefix", "?")
        return {"name": "iceberg rest catalog", "ok": True, "detail": f"config answered (prefix {prefix})"}
    except (requests.RequestException, ValueError) as e:
        return {"name": "iceberg rest catalog", "ok": False, "detail": f"{type(e).__name__}: {e}"[:200]}


def _trino(settings: Settings) -> dict:
    try:
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            cur.execute("SHOW CATALOGS")
            catalogs = sorted(row[0] for row in cur.fetchall())
        return {"name": "trino query", "ok": "iceberg" in catalogs, "detail": "catalogs: " + ", ".join(catalogs)}
    except Exception as e:
        return {"name": "trino query", "ok": False, "detail": f"{type(e).__name__}: {e}"[:200]}


def _oidc(settings: Settings) -> dict:
    try:
        r = requests.get(f"{settings.keycloak_issuer}/.well-known/openid-configuration", timeout=5)
        r.raise_for_status()
        return {"name": "keycloak oidc discovery", "ok": True, "detail": r.json()["issuer"]}
    except (requests.RequestException, ValueError, KeyError) as e:
        return {"name": "keycloak oidc discovery", "ok": False, "detail": f"{type(e).__name__}"}
