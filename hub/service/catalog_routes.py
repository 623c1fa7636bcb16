"""What the catalog proxy forwards, as data: the Iceberg REST endpoints notebooks and Trino may call, and the checks
their bodies must pass (pure functions; :mod:`.catalog_proxy` does the I/O).

A request is parsed once into a :class:`Call` of decoded, checked segments. Anything that is not in :data:`ROUTES`,
or whose segments are empty, ``.``/``..``, or carry a separator, a percent sign or a control character after
decoding, is refused, and the upstream URL is rebuilt from the checked values only: what is authorized is exactly
what is forwarded. Every location a write names (table and view locations, write paths, registered metadata files,
snapshots' manifest lists, statistics files) must lie inside the namespace's own bucket, and the view property that
makes Trino run a view as its owner may only be written by Trino itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode

NS_SEP = "\x1f"  # levels of a namespace in one path segment (Iceberg REST)

# Trino runs a view that has this property with the named user's rights (SECURITY DEFINER).
RUN_AS_OWNER = "trino.run-as-owner"

_PREFIX = re.compile(r"[A-Za-z0-9_\-|@]{1,200}", re.ASCII)
_NAMESPACE_LEVEL = re.compile(r"[a-z][a-z0-9_]{0,62}", re.ASCII)
_FORBIDDEN_IN_NAME = re.compile(r"[/\\%\x00-\x1f\x7f]")
_LOCATION_KEY = re.compile(r"(^|\.)(location|path)$")


class Refused(Exception):
    """A call the proxy will not forward: ``status``, the Iceberg REST error ``type`` and one sentence."""

    def __init__(self, status: int, message: str, type_: str | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_ or ERROR_TYPES.get(status, "RESTException")


ERROR_TYPES = {
    400: "BadRequestException",
    401: "NotAuthorizedException",
    403: "ForbiddenException",
    404: "NoSuchNamespaceException",
    405: "UnsupportedOperationException",
    409: "AlreadyExistsException",
    503: "ServiceUnavailableException",
}


def error_body(status: int, message: str, type_: str | None = None) -> dict:
    """An Iceberg REST error object, as pyiceberg and Iceberg's Java client read them."""
    return {"error": {"message": message, "type": type_ or ERROR_TYPES.get(status, "RESTException"), "code": status}}


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path template, whether it writes, the audit action and the body check it needs."""

    method: str
    template: tuple[str, ...]
    writes: bool
    action: str
    body: str | None = None
    query: tuple[str, ...] = ()


def _r(method: str, path: str, writes: bool, action: str, body: str | None = None, query: str = "") -> Route:
    return Route(method, tuple(path.split("/")), writes, action, body, tuple(query.split()))


_PAGE = "pageToken pageSize"
ROUTES: tuple[Route, ...] = (
    _r("GET", "v1/config", False, "config", query="warehouse"),
    _r("GET", "v1/{prefix}/namespaces", False, "namespace.list", query=f"parent {_PAGE}"),
    _r("POST", "v1/{prefix}/namespaces", True, "namespace.create", "provisioning"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}", False, "namespace.load"),
    _r("HEAD", "v1/{prefix}/namespaces/{namespace}", False, "namespace.exists"),
    _r("DELETE", "v1/{prefix}/namespaces/{namespace}", True, "namespace.drop", "provisioning"),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/properties", True, "namespace.properties", "namespace-properties"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}/tables", False, "table.list", query=_PAGE),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/tables", True, "table.create", "create"),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/register", True, "table.register", "register"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}/tables/{table}", False, "table.load", query="snapshots"),
    _r("HEAD", "v1/{prefix}/namespaces/{namespace}/tables/{table}", False, "table.exists"),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/tables/{table}", True, "table.commit", "commit"),
    _r("DELETE", "v1/{prefix}/namespaces/{namespace}/tables/{table}", True, "table.drop", query="purgeRequested"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials", False, "table.credentials"),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics", False, "table.metrics", "metrics"),
    _r("POST", "v1/{prefix}/tables/rename", True, "table.rename", "rename"),
    _r("POST", "v1/{prefix}/transactions/commit", True, "transaction.commit", "transaction"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}/views", False, "view.list", query=_PAGE),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/views", True, "view.create", "create-view"),
    _r("GET", "v1/{prefix}/namespaces/{namespace}/views/{view}", False, "view.load"),
    _r("HEAD", "v1/{prefix}/namespaces/{namespace}/views/{view}", False, "view.exists"),
    _r("POST", "v1/{prefix}/namespaces/{namespace}/views/{view}", True, "view.commit", "commit-view"),
    _r("DELETE", "v1/{prefix}/namespaces/{namespace}/views/{view}", True, "view.drop"),
    _r("POST", "v1/{prefix}/views/rename", True, "view.rename", "rename"),
)


# The prefix clients are told to use (the catalog's configuration answer); the upstream catalog's own is a setting.
PUBLIC_PREFIX = "agp"


def endpoints() -> list[str]:
    """The endpoints this proxy offers, as the Iceberg REST configuration answer lists them (``GET /v1/{prefix}/...``),
    so that clients use views and the other optional endpoints."""
    return [f"{r.method} /{'/'.join(r.template)}" for r in ROUTES if r.action != "config"]


def route(method: str, action: str) -> Route:
    """The route of ``action`` (to build a request the proxy makes itself)."""
    return next(r for r in ROUTES if r.method == method and r.action == action)


@dataclass(frozen=True)
class Call:
    """A parsed request: its route and the decoded values of the path's variables."""

    route: Route
    values: dict[str, str]
    query: tuple[tuple[str, str], ...] = ()

    @property
    def namespace(self) -> str | None:
        """The dotted namespace the path names (``None`` where the path names none)."""
        ns = self.values.get("namespace")
        return None if ns is None else ".".join(ns.split(NS_SEP))

    @property
    def name(self) -> str | None:
        return self.values.get("table") or self.values.get("view")

    def upstream_path(self, prefix: str | None = None) -> str:
        """The path to forward, rebuilt from the checked values (every segment percent-encoded). ``prefix`` puts the
        upstream catalog's own prefix in place of the caller's (``""``: the catalog serves none, the segment goes)."""
        out = []
        for part in self.route.template:
            if part == "{prefix}" and prefix is not None:
                if prefix:
                    out.append(quote(prefix, safe=""))
            elif part.startswith("{"):
                out.append(quote(self.values[part[1:-1]], safe=""))
            else:
                out.append(part)
        path = "/".join(out)
        return path + ("?" + urlencode(self.query) if self.query else "")


def parse(method: str, raw_path: str, query: list[tuple[str, str]] | None = None) -> Call:
    """Parse the raw path after ``/iceberg/`` into a :class:`Call`, or raise :class:`Refused`.

    ``raw_path`` is still percent-encoded, as the client sent it; it is split on ``/`` before decoding, so an
    encoded slash can never make a new segment, and each decoded segment is checked before anything uses it.
    """
    raw_segments = raw_path.split("/")
    segments = [_segment(s) for s in raw_segments]
    for route in ROUTES:
        if len(route.template) != len(segments):
            continue
        values: dict[str, str] = {}
        for part, seg in zip(route.template, segments, strict=True):
            if part.startswith("{"):
                values[part[1:-1]] = seg
            elif part != seg:
                break
        else:
            if route.method != method:
                continue
            for key, value in values.items():
                _check_value(key, value)
            kept = tuple((k, v) for k, v in (query or []) if k in route.query)
            return Call(route, values, kept)
    if any(_matches_shape(r, segments) for r in ROUTES):
        raise Refused(405, f"The catalog does not offer {method} here to notebooks.")
    raise Refused(403, "This catalog call is not offered to notebooks.")


def _matches_shape(route: Route, segments: list[str]) -> bool:
    return len(route.template) == len(segments) and all(
        p.startswith("{") or p == s for p, s in zip(route.template, segments, strict=True)
    )


def _segment(raw: str) -> str:
    try:
        value = unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError:
        raise Refused(400, "The catalog path is not valid UTF-8 once decoded.") from None
    if value in ("", ".", "..") or any(c in value for c in "/\\%") or value.strip() != value:
        raise Refused(400, "The catalog path has an empty, '.' or '..' segment, or an encoded separator.")
    # The namespace separator 0x1F is the one control character a segment may carry.
    if any((ord(c) < 0x20 and c != NS_SEP) or ord(c) == 0x7F for c in value):
        raise Refused(400, "The catalog path has a control character in a segment.")
    return value


def _check_value(key: str, value: str) -> None:
    if key == "prefix":
        if not _PREFIX.fullmatch(value):
            raise Refused(400, "The catalog prefix is not one this catalog serves.")
    elif key == "namespace":
        levels = value.split(NS_SEP)
        if not all(_NAMESPACE_LEVEL.fullmatch(level) for level in levels):
            raise Refused(404, f"There is no namespace {'.'.join(levels)!r} in your workspaces.")
    elif _FORBIDDEN_IN_NAME.search(value) or value in (".", "..") or not _well_formed(value):
        raise Refused(400, f"{key.capitalize()} names are printable text without '/', '\\' or '%'.")


def check_name(value: Any, what: str) -> None:
    """A table or view name in a body, checked like one in a path."""
    if not isinstance(value, str) or not value:
        raise Refused(400, f"The request names no {what}.")
    _check_value(what, value)


def _well_formed(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from JSON escapes
        return False
    return value.isprintable()


# -- bodies ---------------------------------------------------------------------------------------------------------


MAX_BODY = 4 * 1024 * 1024  # bytes: table commits are small; a metadata file is registered by its location


def parse_body(body: bytes) -> dict:
    """The request's JSON object, parsed strictly: one value per key (the catalog's parser keeps the first of two
    keys, Python's the last: a checked body must be the body forwarded), well-formed text, bounded size and depth.
    The caller forwards :func:`canonical` of what this returns, never the bytes it received."""
    if len(body) > MAX_BODY:
        raise Refused(413, f"The request body is over {MAX_BODY // (1024 * 1024)} MiB.", "BadRequestException")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise Refused(400, "The request body names a key twice.")
        return dict(pairs)

    try:
        doc = json.loads(body or b"{}", object_pairs_hook=no_duplicates)
        canonical(doc)  # refuses what cannot be written back as UTF-8 (lone surrogates)
    except (ValueError, UnicodeError, RecursionError):
        raise Refused(400, "The request body is not well-formed JSON.") from None
    if not isinstance(doc, dict):
        raise Refused(400, "The request body must be a JSON object.")
    return doc


def canonical(doc: Any) -> bytes:
    """The bytes forwarded for a checked body."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


def identifier_namespace(identifier: Any) -> str:
    """The dotted namespace of a body's ``{"namespace": [...], "name": ...}`` identifier (checked like a path's)."""
    if not isinstance(identifier, dict) or not isinstance(identifier.get("namespace"), list):
        raise Refused(400, "The request names a table without a namespace.")
    levels = identifier["namespace"]
    if not levels or not all(isinstance(x, str) and _NAMESPACE_LEVEL.fullmatch(x) for x in levels):
        raise Refused(404, f"There is no namespace {'.'.join(map(str, levels))!r} in your workspaces.")
    check_name(identifier.get("name"), "table")
    return ".".join(levels)


def check_location(location: Any, bucket_prefix: str, what: str) -> None:
    """Refuse unless ``location`` is a plain ``s3://`` path inside ``bucket_prefix`` (``s3://<bucket>/``)."""
    if not isinstance(location, str):
        raise Refused(400, f"The {what} must be a string.")
    rest = location[len(bucket_prefix) :] if location.startswith(bucket_prefix) else None
    # No dot segments and no empty ones (but a trailing slash): S3 keys do not normalize, readers might.
    bad = (
        rest is None
        or any(seg in ("", ".", "..") for seg in rest.split("/")[:-1])
        or rest.split("/")[-1] in (".", "..")
    )
    if bad or any(c in location for c in "\\%") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in location):
        raise Refused(403, f"The {what} must lie inside this workspace's bucket ({bucket_prefix}); got {location!r}.")


_DIALECT = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}", re.ASCII)
# Keys through which a table's or namespace's properties would configure the clients that load it: pyiceberg merges
# table properties into its FileIO's (which class, which endpoint, signer, proxy, credentials). A member could point
# other members' reads at a server of hers, with their tokens. Catalog clients' own settings never belong there.
_CLIENT_KEY = re.compile(
    r"^(py-|s3\.|client\.|header\.|gcs\.|adls\.|hf\.|oss\.|rest[.-]|oauth2|signer|io-impl$|token$|uri$|"
    r"credential$|scope$|audience$|resource$|warehouse$|prefix$)",
    re.IGNORECASE,
)


def check_properties(props: Any, bucket_prefix: str, engine: bool, what: str = "property") -> None:
    """Location-like properties must stay in the bucket; only Trino itself may say whom a view runs as; no property
    may configure the clients that read the table."""
    if props is None:
        return
    if not isinstance(props, dict):
        raise Refused(400, "Properties must be an object of strings.")
    for key, value in props.items():
        if str(key).startswith("agp."):
            raise Refused(403, f"The property {key!r} is managed by workspace provisioning.")
        if key == RUN_AS_OWNER and not engine:
            raise Refused(
                403,
                f"The {RUN_AS_OWNER} property is set by Trino for the user who creates a view; a view made here "
                "runs as whoever queries it.",
            )
        if _CLIENT_KEY.search(str(key).strip()):
            raise Refused(
                403,
                f"The property {key!r} would configure the catalog clients of everyone who reads this table; "
                "client settings belong in your own catalog configuration.",
            )
        if _LOCATION_KEY.search(str(key)):
            check_location(value, bucket_prefix, f"{what} {key!r}")


def check_removals(keys: Any) -> None:
    """The namespace's and table's location keys stay; removing them would send new files to the warehouse."""
    if not isinstance(keys, list):
        raise Refused(400, "Removals must be a list of property names.")
    for key in keys:
        if str(key) == "location" or str(key).startswith("agp."):
            raise Refused(403, f"The property {key!r} is managed by workspace provisioning.")


# The update actions of the Iceberg REST spec that a commit may carry; any other is refused.
TABLE_ACTIONS = frozenset(
    "assign-uuid upgrade-format-version add-schema set-current-schema add-spec set-default-spec add-sort-order "
    "set-default-sort-order add-snapshot set-snapshot-ref remove-snapshots remove-snapshot-ref set-location "
    "set-properties remove-properties set-statistics remove-statistics set-partition-statistics "
    "remove-partition-statistics remove-partition-specs remove-schemas add-encryption-key remove-encryption-key".split()
)
VIEW_ACTIONS = frozenset(
    "assign-uuid upgrade-format-version add-schema set-location set-properties remove-properties "
    "add-view-version set-current-view-version".split()
)


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Refused(400, f"The commit's {what} must be an object.")
    return value


def check_updates(updates: Any, bucket_prefix: str, engine: bool, view: bool = False) -> None:
    """The updates of a table or view commit: known actions of the right shape, every location they name in the
    bucket, and (for a notebook) no view query that Trino would run."""
    if not isinstance(updates, list):
        raise Refused(400, "A commit's updates must be a list.")
    allowed = VIEW_ACTIONS if view else TABLE_ACTIONS
    for raw in updates:
        update = _object(raw, "update")
        action = update.get("action")
        if action not in allowed:
            raise Refused(400, f"The commit's update action {str(action)[:60]!r} is not one this catalog takes.")
        if action == "set-location":
            check_location(update.get("location"), bucket_prefix, "location")
        elif action == "set-properties":
            check_properties(update.get("updates"), bucket_prefix, engine)
        elif action == "remove-properties":
            # Dropping trino.run-as-owner makes a view run as its invoker: that only lowers rights.
            check_removals(update.get("removals"))
        elif action == "add-snapshot":
            check_snapshot(_object(update.get("snapshot"), "snapshot"), bucket_prefix)
        elif action in ("set-statistics", "set-partition-statistics"):
            stats = _object(update.get("statistics") or update.get("partition-statistics"), "statistics")
            check_location(stats.get("statistics-path"), bucket_prefix, "statistics file")
        elif action == "add-view-version" and not engine:
            check_view_version(update.get("view-version"))


def check_snapshot(snapshot: dict, bucket_prefix: str) -> None:
    if "manifest-list" in snapshot:
        check_location(snapshot["manifest-list"], bucket_prefix, "snapshot's manifest list")
    manifests = snapshot.get("manifests") or []
    if not isinstance(manifests, list):
        raise Refused(400, "A snapshot's manifests must be a list.")
    for manifest in manifests:
        check_location(manifest, bucket_prefix, "snapshot's manifest")


def check_view_version(version: Any) -> None:
    """A view version made outside Trino carries no Trino query: Trino would run it without having checked it as
    its author's (and, nested in a view that runs as its owner, with the owner's rights). Spark's and others'
    dialects are the notebook's own: those engines run a view with the reader's credentials."""
    representations = _object(version, "view version").get("representations")
    if not isinstance(representations, list):
        raise Refused(400, "A view version's representations must be a list.")
    for rep in representations:
        dialect = _object(rep, "representation").get("dialect", "")
        # Plain ASCII names only: Java compares dialects with equalsIgnoreCase, which reads "tr\u0131no" (dotless i) and
        # "TRİNO" as "trino", while Python's casefold() does not.
        if not isinstance(dialect, str) or not _DIALECT.fullmatch(dialect):
            raise Refused(400, "A view's dialect is a plain name of letters, digits, '-' and '_' (e.g. spark).")
        if "trino" in dialect.lower():
            raise Refused(
                403,
                "Views that Trino runs are made with Trino (CREATE VIEW in %sql), which checks their query as "
                "yours; a view made here may carry Spark's or another engine's SQL.",
            )


def check_table_metadata(metadata: Any, bucket_prefix: str) -> None:
    """A table's metadata as the catalog holds it (after a register): its location, write paths, snapshots'
    manifest lists, statistics and earlier metadata files all in the bucket."""
    metadata = _object(metadata, "table metadata")
    check_location(metadata.get("location"), bucket_prefix, "table location")
    check_properties(metadata.get("properties"), bucket_prefix, engine=True)
    for snapshot in metadata.get("snapshots") or []:
        check_snapshot(_object(snapshot, "snapshot"), bucket_prefix)
    for key in ("statistics", "partition-statistics"):
        for stats in metadata.get(key) or []:
            check_location(_object(stats, "statistics").get("statistics-path"), bucket_prefix, "statistics file")
    for entry in metadata.get("metadata-log") or []:
        check_location(_object(entry, "metadata log entry").get("metadata-file"), bucket_prefix, "metadata file")


def view_version_changes(updates: Any) -> bool:
    """Whether a view commit changes what the view runs (a new or another current version)."""
    return isinstance(updates, list) and any(
        isinstance(u, dict) and u.get("action") in ("add-view-version", "set-current-view-version") for u in updates
    )
