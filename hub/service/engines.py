"""Trino as a caller of the catalog proxy: it authenticates with the platform's Keycloak client (client credentials),
and the proxy verifies that token's signature, issuer and client before it treats the call as Trino's.

Trino reaches the catalog through the proxy so that every table it reads or writes comes with a credential for that
table's workspace bucket alone (vended credentials): Trino itself holds no S3 key that reaches every workspace.
"""

from __future__ import annotations

import asyncio
import logging

import jwt
from fastapi import HTTPException, Request

from agp.core.settings import Settings

log = logging.getLogger(__name__)

ENGINE_CLIENTS = frozenset({"agp-services"})


class EngineIdentity:
    """Recognizes bearer JWTs of the platform's own Keycloak client; hub tokens (not JWTs) pass through."""

    def __init__(self, settings: Settings, clients: frozenset[str] = ENGINE_CLIENTS):
        self.issuer = settings.keycloak_issuer
        # Behind a split hostname (docker-compose: browsers and services reach Keycloak at different addresses)
        # the realm's tokens name its public address; the keys are fetched where this service reaches Keycloak.
        self.issuers = list(settings.keycloak_issuers)
        self.clients = clients
        # PyJWKClient caches the realm's keys and fetches them again for a key id it does not know.
        self.jwks = jwt.PyJWKClient(f"{self.issuer}/protocol/openid-connect/certs", cache_keys=True, lifespan=300)

    async def engine(self, request: Request) -> str | None:
        """The engine's client id when the request carries a valid token of one, else ``None``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None
        try:
            claims = await asyncio.to_thread(self._verify, token)
        except (jwt.PyJWTError, OSError) as e:
            log.warning("catalog: refused a bearer JWT: %s", e)
            raise HTTPException(401, "The catalog refuses this token; use the hub token of your server.") from e
        client = claims.get("azp")
        if client not in self.clients:
            user = claims.get("preferred_username")
            log.warning("catalog: refused a realm token of client %r (user %r)", client, user)
            raise HTTPException(401, "The catalog refuses this token; use the hub token of your server.")
        return str(client)

    def _verify(self, token: str) -> dict:
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token, key.key, algorithms=["RS256"], issuer=self.issuers, options={"verify_aud": False, "require": ["exp"]}
        )
