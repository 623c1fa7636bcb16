"""Trino's file-based access rules, generated from the membership table (pure functions).

Members reach their workspace's schema, owners and editors may write (tables, not the schema itself), viewers
only read; platform admins and the platform's own service users reach everything; everyone else gets nothing.
Of the ``system`` catalog, members read only what SQL clients reflect with (:data:`REFLECTION`: table comments,
which Trino lists only for tables the caller may see); the rest of it (``runtime.queries`` and every other table,
``kill_query`` and every other procedure) is the admins'. No one may impersonate anyone (so ``SET SESSION
AUTHORIZATION`` fails), and a rules file always exists, because no file at all would mean allow-all.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WRITE = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]
READ = ["SELECT"]

# The ``system`` tables members may read: what SQL clients need to reflect a table, filtered by Trino to what the
# caller may see. The ``trino`` SQLAlchemy dialect reads ``system.metadata.table_comments`` in every table
# reflection (pandas' ``to_sql(if_exists="replace")``, ``Table(..., autoload_with=...)``); its other ``system``
# read, ``system.jdbc.catalogs`` (``get_catalog_names``), no flow of ours uses, and ``SHOW CATALOGS`` answers it.
REFLECTION = (("metadata", "table_comments"),)


@dataclass(frozen=True)
class Grant:
    """One workspace as Trino sees it: its schema, who writes, who reads."""

    schema: str
    writers: frozenset[str]
    readers: frozenset[str]


def _users(names: Iterable[str]) -> str:
    return "^(" + "|".join(re.escape(n) for n in sorted(names)) + ")$"


def build_rules(grants: Iterable[Grant], admins: Iterable[str], services: Iterable[str] = ("agp-service",)) -> dict:
    grants = sorted(grants, key=lambda g: g.schema)
    superusers = _users({*admins, *services})
    members = {u for g in grants for u in g.writers | g.readers}
    catalogs: list[dict] = [{"user": superusers, "catalog": ".*", "allow": "all"}]
    schemas: list[dict] = [{"user": superusers, "schema": ".*", "owner": True}]
    tables: list[dict] = [{"user": superusers, "privileges": [*WRITE, "GRANT_SELECT"]}]
    if members:
        catalogs.append({"user": _users(members), "catalog": "iceberg", "allow": "all"})
        catalogs.append({"user": _users(members), "catalog": "system", "allow": "read-only"})
        for schema, table in REFLECTION:
            tables.append(
                {
                    "user": _users(members),
                    "catalog": "system",
                    "schema": "^" + re.escape(schema) + "$",
                    "table": "^" + re.escape(table) + "$",
                    "privileges": READ,
                }
            )
    for g in grants:
        schema = "^" + re.escape(g.schema) + "$"
        readers = g.readers - g.writers
        if g.writers:
            # Writers create and drop tables (table OWNERSHIP) but do not own the schema: schemas are made and
            # dropped by provisioning only, so no editor can DROP or rename a workspace's schema.
            schemas.append({"user": _users(g.writers), "schema": schema, "owner": False})
            tables.append({"user": _users(g.writers), "catalog": "iceberg", "schema": schema, "privileges": WRITE})
        if readers:
            schemas.append({"user": _users(readers), "schema": schema, "owner": False})
            tables.append({"user": _users(readers), "catalog": "iceberg", "schema": schema, "privileges": READ})
    catalogs.append({"catalog": ".*", "allow": "none"})
    schemas.append({"schema": ".*", "owner": False})
    tables.append({"privileges": []})
    return {
        "catalogs": catalogs,
        "schemas": schemas,
        "tables": tables,
        "queries": [{"user": superusers, "allow": ["execute", "kill", "view"]}, {"allow": ["execute"]}],
        "system_information": [{"user": superusers, "allow": ["read"]}],
        "impersonation": [],
        "authorization": [],
        "system_session_properties": [{"allow": True}],
        "catalog_session_properties": [{"allow": True}],
    }


def render(rules: dict) -> str:
    """The rules file's text: the same rules always give the same bytes (what the service's ETag is taken of)."""
    return json.dumps(rules, indent=2, sort_keys=True) + "\n"


def write_atomically(path: Path, rules: dict) -> bool:
    """Write ``rules`` to ``path`` by renaming a finished file over it; ``False`` when nothing changed."""
    text = render(rules)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rules-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
