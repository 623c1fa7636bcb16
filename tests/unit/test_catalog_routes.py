"""The catalog proxy's route table and body checks (pure): what is authorized is exactly what is forwarded."""

from __future__ import annotations

import itertools

import pytest

from agp.hub.service.catalog_routes import (
    RUN_AS_OWNER,
    Refused,
    check_location,
    check_properties,
    check_removals,
    check_updates,
    error_body,
    identifier_namespace,
    parse,
)

TABLE = "v1/main/namespaces/ws_a/tables/t"
DOT_SEGMENTS = ["..", ".", "%2E%2E", "%2e%2e", "%2E", ".%2E", "%2E.", "%252E%252E", ""]
SEPARATORS = ["%2F", "%2f", "%5C", "\\", "%255C", "%252F", "%00", "%0A", "%7F", "%C0%AE%C0%AE"]


def test_routes_parse_into_checked_values_and_rebuild_the_same_path():
    call = parse("GET", TABLE)
    assert (call.route.action, call.namespace, call.name, call.route.writes) == ("table.load", "ws_a", "t", False)
    assert call.upstream_path() == TABLE
    commit = parse("POST", TABLE)
    assert commit.route.action == "table.commit" and commit.route.writes
    assert parse("GET", "v1/config").route.action == "config"
    assert parse("POST", "v1/main%7Cwarehouse/transactions/commit").upstream_path() == (
        "v1/main%7Cwarehouse/transactions/commit"
    )
    nested = parse("GET", "v1/main/namespaces/a%1Fb/tables")
    assert nested.namespace == "a.b" and nested.upstream_path() == "v1/main/namespaces/a%1Fb/tables"


@pytest.mark.parametrize("position", range(6))
@pytest.mark.parametrize("dots", DOT_SEGMENTS)
def test_dot_segments_are_refused_at_every_position(position, dots):
    parts = TABLE.split("/")
    parts.insert(position, dots)
    with pytest.raises(Refused):
        parse("GET", "/".join(parts))
    replaced = TABLE.split("/")
    replaced[position] = dots
    with pytest.raises(Refused):
        parse("GET", "/".join(replaced))


def test_the_penetration_tests_paths_are_refused():
    for path in (
        "v1/main/namespaces/ws_a/../ws_b/tables/t",
        "v1/main/namespaces/ws_a/%2E%2E/ws_b/tables/t",
        "v1/main/namespaces/ws_a/../../../../api/v2/trees/main/entries",
        "v1/main/namespaces/ws_a%2F..%2Fws_b/tables/t",
        "v1/main/namespaces/ws_a/tables/..%2F..%2Fws_b%2Ftables%2Ft",
        "v1/main//namespaces/ws_a/tables/t",
        "v1/main/namespaces/ws_a/tables/t/",
        "api/v2/trees",
        "v1/main/namespaces/ws_a/tables/t/plan",
    ):
        with pytest.raises(Refused):
            parse("GET", path)


@pytest.mark.parametrize("sep", SEPARATORS)
@pytest.mark.parametrize("slot", ["prefix", "namespace", "table"])
def test_encoded_separators_and_control_characters_are_refused(sep, slot):
    values = {"prefix": "main", "namespace": "ws_a", "table": "t"}
    values[slot] = values[slot] + sep + "ws_b"
    with pytest.raises(Refused):
        parse("GET", "v1/{prefix}/namespaces/{namespace}/tables/{table}".format(**values))


def test_names_outside_the_rules_and_unknown_methods_are_refused():
    with pytest.raises(Refused) as e:
        parse("GET", "v1/main/namespaces/WS_A/tables")
    assert e.value.status == 404
    with pytest.raises(Refused) as e:
        parse("PUT", TABLE)
    assert e.value.status == 405
    with pytest.raises(Refused) as e:
        parse("GET", "v1/main/namespaces/ws_a/tables/%FF")
    assert e.value.status == 400


def test_only_the_routes_query_parameters_are_forwarded():
    call = parse("GET", "v1/main/namespaces", [("parent", "x"), ("pageSize", "5"), ("evil", "1")])
    assert call.upstream_path() == "v1/main/namespaces?parent=x&pageSize=5"
    assert parse("DELETE", TABLE, [("purgeRequested", "true"), ("x", "y")]).upstream_path() == (
        TABLE + "?purgeRequested=true"
    )


BUCKET = "s3://agp-ws-ws-a/"


@pytest.mark.parametrize(
    "location",
    [
        "s3://agp-ws-ws-b/t",
        "s3://agp-ws-ws-a-evil/t",
        "s3://agp-ws-ws-a/../agp-ws-ws-b/t",
        "s3://agp-ws-ws-a/x/../../agp-ws-ws-b",
        "s3://agp-ws-ws-a//t",
        "s3://agp-ws-ws-a/%2E%2E/t",
        "s3a://agp-ws-ws-a/t",
        "S3://agp-ws-ws-a/t",
        "s3://agp-ws-ws-a\\..\\b",
        "file:///etc/passwd",
        "/agp-ws-ws-a/t",
        17,
        None,
    ],
)
def test_locations_outside_the_bucket_are_refused(location):
    with pytest.raises(Refused):
        check_location(location, BUCKET, "location")


def test_locations_inside_the_bucket_pass():
    check_location("s3://agp-ws-ws-a/t-1234/metadata/00001.metadata.json", BUCKET, "metadata file")
    check_location("s3://agp-ws-ws-a/", BUCKET, "location")


def test_location_properties_and_the_view_owner():
    for key in ("location", "write.data.path", "write.metadata.path", "write.object-storage.path"):
        with pytest.raises(Refused):
            check_properties({key: "s3://agp-ws-ws-b/x"}, BUCKET, engine=False)
        check_properties({key: "s3://agp-ws-ws-a/x"}, BUCKET, engine=False)
    with pytest.raises(Refused) as e:
        check_properties({RUN_AS_OWNER: "admin"}, BUCKET, engine=False)
    assert e.value.status == 403 and RUN_AS_OWNER in str(e.value)
    check_properties({RUN_AS_OWNER: "alice"}, BUCKET, engine=True)
    with pytest.raises(Refused):
        check_properties({"agp.workspace": "ws-b"}, BUCKET, engine=True)
    for removals in (["location"], ["agp.workspace"]):
        with pytest.raises(Refused):
            check_removals(removals)
    check_removals(["comment", RUN_AS_OWNER])


@pytest.mark.parametrize(
    "update",
    [
        {"action": "set-location", "location": "s3://agp-ws-ws-b/t"},
        {"action": "set-properties", "updates": {"write.data.path": "s3://agp-ws-ws-b/d"}},
        {"action": "set-properties", "updates": {RUN_AS_OWNER: "admin"}},
        {"action": "remove-properties", "removals": ["location"]},
        {"action": "add-snapshot", "snapshot": {"snapshot-id": 1, "manifest-list": "s3://agp-ws-ws-b/m.avro"}},
        {"action": "add-snapshot", "snapshot": {"snapshot-id": 1, "manifests": ["s3://agp-ws-ws-b/m.avro"]}},
        {"action": "set-statistics", "statistics": {"statistics-path": "s3://agp-ws-ws-b/s.puffin"}},
        {"action": "set-partition-statistics", "partition-statistics": {"statistics-path": "s3://agp-ws-ws-b/p"}},
        "not an object",
    ],
)
def test_commit_updates_that_point_elsewhere_are_refused(update):
    with pytest.raises(Refused):
        check_updates([update], BUCKET, engine=False)


def test_ordinary_commit_updates_pass():
    check_updates(
        [
            {"action": "assign-uuid", "uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1"},
            {"action": "add-schema", "schema": {"type": "struct", "fields": []}},
            {"action": "add-snapshot", "snapshot": {"snapshot-id": 1, "manifest-list": "s3://agp-ws-ws-a/m.avro"}},
            {"action": "set-properties", "updates": {"comment": "readings"}},
            {"action": "remove-properties", "removals": [RUN_AS_OWNER]},
        ],
        BUCKET,
        engine=False,
    )


def test_identifiers_in_bodies_are_checked_like_paths():
    assert identifier_namespace({"namespace": ["ws_a"], "name": "t"}) == "ws_a"
    for bad in (
        {"namespace": ["ws_a", ".."], "name": "t"},
        {"namespace": ["WS"], "name": "t"},
        {"namespace": [], "name": "t"},
        {"namespace": "ws_a", "name": "t"},
        {"namespace": ["ws_a"], "name": "a/b"},
        {"namespace": ["ws_a"]},
        None,
    ):
        with pytest.raises(Refused):
            identifier_namespace(bad)


def test_refusals_are_iceberg_error_objects():
    assert error_body(403, "no") == {"error": {"message": "no", "type": "ForbiddenException", "code": 403}}
    assert error_body(404, "none")["error"]["type"] == "NoSuchNamespaceException"


def test_every_route_has_an_action_and_distinct_method_and_template():
    from agp.hub.service.catalog_routes import ROUTES

    keys = [(r.method, r.template) for r in ROUTES]
    assert len(keys) == len(set(keys))
    assert all(r.action for r in ROUTES)
    for a, b in itertools.combinations(ROUTES, 2):
        assert (a.method, a.template) != (b.method, b.template)


def test_what_the_catalog_would_lend_is_taken_out_of_a_table_answer():
    from agp.hub.service.catalog_proxy import CatalogProxy

    doc = {
        "metadata": {},
        "config": {
            "s3.endpoint": "http://minio",
            "s3.remote-signing-enabled": "true",
            "s3.signer.uri": "http://nessie",
            "s3.access-key-id": "NESSIE",
            "s3.secret-access-key": "NESSIE-SECRET",
            "s3.session-token": "T",
            "client.refresh-credentials-endpoint": "http://nessie/creds",
            "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        },
        "storage-credentials": [{"prefix": "s3://", "config": {"s3.access-key-id": "NESSIE"}}],
    }
    out = CatalogProxy._strip_signing(doc)
    assert out == {
        "metadata": {},
        "config": {"s3.endpoint": "http://minio", "io-impl": "org.apache.iceberg.aws.s3.S3FileIO"},
    }


def test_bodies_are_parsed_strictly_and_forwarded_as_checked():
    from agp.hub.service.catalog_routes import canonical, parse_body

    for bad in (
        b'{"updates": [{"action": "set-properties", "action": "remove-properties"}]}',  # two values, one key
        b'{"name": "sur\\ud800"}',  # a lone surrogate
        b"[1, 2]",
        b"{" + b'"a": ' * 1 + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"not json",
        b"{" + b" " * (5 * 1024 * 1024) + b"}",
    ):
        with pytest.raises(Refused):
            parse_body(bad)
    doc = parse_body(b'{"name": "t\\u00e9", "n": 1}')
    assert canonical(doc) == '{"name": "té", "n": 1}'.encode()


@pytest.mark.parametrize("name", ["sur\ud800", "tab\u200bname", "a\u2028b"])
def test_names_must_be_printable_well_formed_text(name):
    from agp.hub.service.catalog_routes import check_name

    with pytest.raises(Refused):
        check_name(name, "table")


def test_commit_updates_must_be_known_actions_of_the_right_shape():
    for updates in (
        [{"action": "add-snapshot", "snapshot": "manifest-list"}],
        [{"action": "add-snapshot", "snapshot": [1]}],
        [{"action": "set-statistics", "statistics": [1]}],
        [{"action": "no-such-action"}],
        [{"action": "add-view-version", "view-version": {}}],  # a table commit takes no view version
    ):
        with pytest.raises(Refused):
            check_updates(updates, BUCKET, engine=False)


def test_a_notebook_makes_no_view_version_that_trino_would_run():
    from agp.hub.service.catalog_routes import check_view_version

    # Java's equalsIgnoreCase reads the dotless i and the capital I with a dot as "i": both spell trino for Trino.
    for dialect in ("trino", "Trino", " TRINO", "trino-sql", "tr\u0131no", "TR\u0130NO", "trino\u200b", "", None, 7):
        with pytest.raises(Refused) as e:
            check_view_version({"representations": [{"type": "sql", "sql": "SELECT 1", "dialect": dialect}]})
        assert e.value.status in (400, 403), dialect
    check_view_version({"representations": [{"type": "sql", "sql": "SELECT 1", "dialect": "spark"}]})
    update = {"action": "add-view-version", "view-version": {"representations": [{"dialect": "trino", "sql": "x"}]}}
    with pytest.raises(Refused):
        check_updates([update], BUCKET, engine=False, view=True)
    check_updates([update], BUCKET, engine=True, view=True)


def test_registered_metadata_is_checked_whole():
    from agp.hub.service.catalog_routes import check_table_metadata

    good = {
        "location": "s3://agp-ws-ws-a/t",
        "properties": {"write.format.default": "parquet"},
        "snapshots": [{"snapshot-id": 1, "manifest-list": "s3://agp-ws-ws-a/t/metadata/snap-1.avro"}],
        "statistics": [{"statistics-path": "s3://agp-ws-ws-a/t/metadata/s.puffin"}],
        "metadata-log": [{"metadata-file": "s3://agp-ws-ws-a/t/metadata/00000.metadata.json"}],
    }
    check_table_metadata(good, BUCKET)
    for key, value in (
        ("location", "s3://agp-ws-ws-b/t"),
        ("properties", {"write.data.path": "s3://agp-ws-ws-b/d"}),
        ("snapshots", [{"manifest-list": "s3://agp-ws-ws-b/m.avro"}]),
        ("statistics", [{"statistics-path": "s3://agp-ws-ws-b/s.puffin"}]),
        ("partition-statistics", [{"statistics-path": "s3://agp-ws-ws-b/p.parquet"}]),
        ("metadata-log", [{"metadata-file": "s3://agp-ws-ws-b/m.json"}]),
        ("snapshots", ["not an object"]),
    ):
        with pytest.raises(Refused):
            check_table_metadata({**good, key: value}, BUCKET)


@pytest.mark.parametrize(
    "key",
    [
        "py-io-impl",
        "s3.endpoint",
        "s3.signer.uri",
        "S3.Proxy-Uri",
        "client.region",
        "header.X-Token",
        "io-impl",
        "token",
        "uri",
        "credential",
        "gcs.oauth2.token",
        "adls.sas-token.x",
        "rest.sigv4-enabled",
        "oauth2-server-uri",
    ],
)
def test_properties_never_configure_the_clients_of_a_tables_readers(key):
    # A table's properties reach every reader's pyiceberg FileIO: an editor could send other members' requests (and
    # tokens) to a server of hers.
    with pytest.raises(Refused) as e:
        check_properties({key: "http://attacker.invalid"}, BUCKET, engine=False)
    assert e.value.status == 403
    with pytest.raises(Refused):
        check_properties({key: "x"}, BUCKET, engine=True)  # registered metadata is checked the same


def test_ordinary_table_properties_pass():
    check_properties(
        {
            "write.format.default": "parquet",
            "format-version": "2",
            "comment": "meter reads",
            "owner": "alice",
            "write.parquet.compression-codec": "zstd",
            "history.expire.max-snapshot-age-ms": "1",
        },
        BUCKET,
        engine=False,
    )
