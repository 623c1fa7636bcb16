"""The one rule for workspace names, and the names derived from it for S3, Iceberg, Trino and URLs.

A slug is checked here and nowhere else. Everything that reaches a bucket name, an SQL identifier or a URL path is
derived from a slug that passed :func:`validate_slug`, so no other code needs to quote or escape it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_LENGTH = 3
MAX_LENGTH = 40
BUCKET_PREFIX = "agp-ws-"

# ASCII only, on purpose: look-alike letters from other scripts never match.
_SLUG = re.compile(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*", re.ASCII)

# Names that would collide with the platform's own paths, Trino's schemas, or SQL keywords.
RESERVED = frozenset(
    (
        "admin api default hub information_schema login logout metrics oauth_callback public services spawn "
        "static system token user users workspace workspaces all alter and any as by case cast create cross "
        "cube current delete describe distinct drop else end escape except execute exists extract false fetch "
        "for from full function grant group grouping having in inner insert intersect into is join json_table "
        "left like listagg localtime localtimestamp natural normalize not null on or order outer prepare "
        "recursive right rollup select session skip table then true uescape union unnest update using values "
        "when where with "
    ).split()
)

RULE = (
    f"Workspace names are {MIN_LENGTH} to {MAX_LENGTH} characters of lowercase letters a-z, digits and single "
    "hyphens, start with a letter, do not end with a hyphen, and are not a reserved word"
)


class InvalidName(ValueError):
    """A workspace name broke the rule; the message says what is allowed."""


def validate_slug(value: object) -> str:
    """Return ``value`` if it is a valid workspace slug, else raise :class:`InvalidName` with one clear sentence."""
    if not isinstance(value, str):
        raise InvalidName(f"{RULE}; got a {type(value).__name__}.")
    shown = value if len(value) <= 60 else value[:57] + "..."
    if not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        raise InvalidName(f"{RULE}; {shown!r} has {len(value)} characters.")
    if not _SLUG.fullmatch(value):
        raise InvalidName(f"{RULE}; {shown!r} is not.")
    if value in RESERVED or value.replace("-", "_") in RESERVED:
        raise InvalidName(f"{RULE}; {value!r} is reserved.")
    return value


@dataclass(frozen=True)
class WorkspaceNames:
    """Every external name of one workspace, derived from its validated slug."""

    slug: str

    def __post_init__(self) -> None:
        validate_slug(self.slug)

    @classmethod
    def from_namespace(cls, namespace: str) -> WorkspaceNames:
        """The workspace whose Iceberg namespace is ``namespace`` (slugs have no '_'; raises :class:`InvalidName`
        for a namespace no workspace can have)."""
        return cls(namespace.replace("_", "-"))

    @property
    def bucket(self) -> str:
        return BUCKET_PREFIX + self.slug

    @property
    def namespace(self) -> str:
        """Iceberg namespace, which Trino shows as the schema of the ``iceberg`` catalog."""
        return self.slug.replace("-", "_")

    @property
    def schema(self) -> str:
        return self.namespace

    @property
    def server_name(self) -> str:
        """The JupyterHub named server of this workspace."""
        return self.slug


_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}", re.ASCII)
USERNAME_PATTERN = _USERNAME.pattern  # for a form's pattern attribute (a browser anchors it)
SLUG_PATTERN = _SLUG.pattern
USERNAME_RULE = (
    "User names are 1 to 64 characters of lowercase letters a-z, digits and . _ @ -, starting with a letter or digit"
)


def validate_username(value: object) -> str:
    """Return ``value`` if it is a valid hub user name (as Keycloak's preferred_username lowercased gives)."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        shown = repr(value)[:60]
        raise InvalidName(f"{USERNAME_RULE}; {shown} is not.")
    return value
