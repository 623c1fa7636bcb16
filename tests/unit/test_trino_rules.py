import json

from agp.hub.trino_rules import Grant, build_rules, write_atomically


def test_rules_against_literal_expectations():
    rules = build_rules(
        [
            Grant("finance", writers=frozenset({"alice"}), readers=frozenset({"carol"})),
            Grant("grid_ops", writers=frozenset({"bob", "dave.k"}), readers=frozenset()),
        ],
        admins=["admin"],
    )
    assert rules == {
        "catalogs": [
            {"user": "^(admin|agp\\-service)$", "catalog": ".*", "allow": "all"},
            {"user": "^(alice|bob|carol|dave\\.k)$", "catalog": "iceberg", "allow": "all"},
            {"user": "^(alice|bob|carol|dave\\.k)$", "catalog": "system", "allow": "read-only"},
            {"catalog": ".*", "allow": "none"},
        ],
        "schemas": [
            {"user": "^(admin|agp\\-service)$", "schema": ".*", "owner": True},
            {"user": "^(alice)$", "schema": "^finance$", "owner": False},
            {"user": "^(carol)$", "schema": "^finance$", "owner": False},
            {"user": "^(bob|dave\\.k)$", "schema": "^grid_ops$", "owner": False},
            {"schema": ".*", "owner": False},
        ],
        "tables": [
            {
                "user": "^(admin|agp\\-service)$",
                "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"],
            },
            {
                "user": "^(alice|bob|carol|dave\\.k)$",
                "catalog": "system",
                "schema": "^metadata$",
                "table": "^table_comments$",
                "privileges": ["SELECT"],
            },
            {
                "user": "^(alice)$",
                "catalog": "iceberg",
                "schema": "^finance$",
                "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"],
            },
            {"user": "^(carol)$", "catalog": "iceberg", "schema": "^finance$", "privileges": ["SELECT"]},
            {
                "user": "^(bob|dave\\.k)$",
                "catalog": "iceberg",
                "schema": "^grid_ops$",
                "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"],
            },
            {"privileges": []},
        ],
        "queries": [{"user": "^(admin|agp\\-service)$", "allow": ["execute", "kill", "view"]}, {"allow": ["execute"]}],
        "system_information": [{"user": "^(admin|agp\\-service)$", "allow": ["read"]}],
        "impersonation": [],
        "authorization": [],
        "system_session_properties": [{"allow": True}],
        "catalog_session_properties": [{"allow": True}],
    }


def test_no_members_still_closes_everything():
    rules = build_rules([], admins=[])
    assert rules["catalogs"] == [
        {"user": "^(agp\\-service)$", "catalog": ".*", "allow": "all"},
        {"catalog": ".*", "allow": "none"},
    ]
    assert rules["tables"][-1] == {"privileges": []}
    assert rules["impersonation"] == []


def test_a_writer_listed_as_reader_too_stays_a_writer():
    rules = build_rules([Grant("s1", frozenset({"a1"}), frozenset({"a1"}))], admins=[])
    assert [r for r in rules["tables"] if r.get("schema") == "^s1$"] == [
        {
            "user": "^(a1)$",
            "catalog": "iceberg",
            "schema": "^s1$",
            "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"],
        }
    ]


def test_rules_are_written_atomically_and_only_when_changed(tmp_path):
    path = tmp_path / "rules.json"
    rules = build_rules([], admins=["admin"])
    assert write_atomically(path, rules) is True
    assert json.loads(path.read_text()) == rules
    assert write_atomically(path, rules) is False
    assert [p.name for p in tmp_path.iterdir()] == ["rules.json"], "no temporary file is left behind"


def test_members_read_only_table_comments_of_system():
    rules = build_rules([Grant("s1", frozenset({"a1"}), frozenset({"v1"}))], admins=["admin"])
    system_tables = [r for r in rules["tables"] if r.get("catalog") == "system"]
    assert system_tables == [
        {
            "user": "^(a1|v1)$",
            "catalog": "system",
            "schema": "^metadata$",
            "table": "^table_comments$",
            "privileges": ["SELECT"],
        }
    ], "no other system table (runtime.queries, jdbc.*, metadata.*) is opened"
    assert {"user": "^(a1|v1)$", "catalog": "system", "allow": "read-only"} in rules["catalogs"]
    # Only admins see other users' queries; members may run their own.
    assert rules["queries"] == [
        {"user": "^(admin|agp\\-service)$", "allow": ["execute", "kill", "view"]},
        {"allow": ["execute"]},
    ]
