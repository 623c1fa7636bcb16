"""Which clients the lab's realm offers, and the grants each may use: data, and a pure function that says what to
change on a client. :meth:`agp.compose.lab.Lab._ensure_realm_clients` applies it through Keycloak's admin API at
every ``up``, so a realm imported by an older lab gets the same hardening as a new one.

Keycloak adds built-in clients to every realm (admin-cli, account, account-console, broker, realm-management,
security-admin-console). The platform uses two clients of its own and keeps three built-ins:

- ``account-console``: the one place where a user changes her password and ends her sessions (public, code flow
  with PKCE only). Its tokens carry the ``account`` audience, which no platform service accepts: Nessie admits the
  ``agp-services`` client only, Trino trusts the broker's JWTs, not Keycloak's, and the hub its own client's logins.
- ``account``: Keycloak serves no account console while this client is disabled ("account management not
  enabled"); it keeps no flow of its own (the console logs in through ``account-console``).
- ``realm-management``: bearer-only; it holds the realm's admin roles and issues no token.

Every other client is disabled (a disabled client issues no token at all), and no client offers the password grant
(direct access), the implicit flow or the device grant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grants:
    standard_flow: bool = False
    service_accounts: bool = False
    public: bool = False


CLIENTS: dict[str, Grants] = {
    "jupyterhub": Grants(standard_flow=True),  # the hub's login: code flow with PKCE, confidential
    "agp-services": Grants(service_accounts=True),  # platform services to the catalog: client credentials
    "account-console": Grants(standard_flow=True, public=True),  # users change their password, see sessions
    "account": Grants(public=True),  # no flow: it only has to exist (enabled) for the account console to exist
    "realm-management": Grants(),  # bearer-only holder of the realm's admin roles
}

# Grants that no client of the realm offers: a user's password must only ever be typed into Keycloak's own form.
NO_CLIENT_OFFERS = {"directAccessGrantsEnabled": False, "implicitFlowEnabled": False}
NO_CLIENT_OFFERS_ATTRIBUTES = {"oauth2.device.authorization.grant.enabled": "false", "oidc.ciba.grant.enabled": "false"}


def hardening(client: dict) -> dict:
    """The fields to change on a client representation of Keycloak's admin API; empty if it complies."""
    grants = CLIENTS.get(client.get("clientId", ""))
    wanted: dict = dict(NO_CLIENT_OFFERS)
    if grants is None:
        wanted["enabled"] = False
    else:
        wanted.update(
            enabled=True,
            standardFlowEnabled=grants.standard_flow and not client.get("bearerOnly", False),
            serviceAccountsEnabled=grants.service_accounts,
            publicClient=grants.public,
        )
    changes = {k: v for k, v in wanted.items() if bool(client.get(k, False)) != v}
    attributes = client.get("attributes") or {}
    if any(attributes.get(k, "false") != v for k, v in NO_CLIENT_OFFERS_ATTRIBUTES.items()):
        changes["attributes"] = {**attributes, **NO_CLIENT_OFFERS_ATTRIBUTES}
    return changes
