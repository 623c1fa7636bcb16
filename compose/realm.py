"""Which clients the lab's realm offers, and the grants each may use: data, and a pure function that says what to
change on a client. :meth:`agp.compose.lab.Lab._ensure_realm_clients` applies it through Keycloak's admin API at
every ``up``, so a realm imported by an older lab gets the same hardening as a new one.

Keycloak adds built-in clients to every realm (admin-cli, account, account-console, broker, realm-management,
security-admin-console). The platform uses two clients of its own, ``jupyterhub`` (the hub's login: code flow with
PKCE, confidential) and ``agp-services`` (client credentials), and keeps one built-in, ``realm-management``
(bearer-only: it holds the realm's admin roles and issues no token). Every other client is disabled: a disabled
client issues no token at all. No client offers the password grant (direct access), the implicit flow or the device
grant, so a user types her password into Keycloak's own form only, and only the hub's confidential client turns
that into a token, which the hub keeps.

``account-console`` (and ``account``, without which Keycloak serves no account console) are disabled too:

- Users imported from the realm file hold no account role (``manage-account``): the console's API answered them
  401 before this change, so it served no one.
- A password is changed on Keycloak's own login pages, which the hub's login reaches: an admin sets the
  ``UPDATE_PASSWORD`` required action and the user picks a new password at her next login (tested); sessions end
  at the hub's logout.
- With it enabled, any user could get a token of the realm for herself from a public client. Nessie refuses such
  tokens (audience and principal), but no token in a notebook's hands is better than a refused one. To offer the
  console, add ``"account-console": Grants(standard_flow=True, public=True)`` and ``"account": Grants(public=True)``
  below and give users the ``manage-account`` role.
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
