import pytest

from agp.core.names import MAX_LENGTH, InvalidName, WorkspaceNames, validate_slug


@pytest.mark.parametrize("slug", ["abc", "finance", "grid-ops-2026", "a1b", "x" * MAX_LENGTH])
def test_valid_slugs(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    ("hostile", "why"),
    [
        ("..", "has 2 characters"),
        ("../etc", "is not"),
        ("a/b", "is not"),
        ("fin\u0430nce", "is not"),  # Cyrillic a, a look-alike
        ("FINANCE", "is not"),
        ("x" * 10_000, "has 10000 characters"),
        ("fin'ance", "is not"),
        ('fin"; drop table x; --', "is not"),
        ("select", "is reserved"),
        ("information-schema", "is reserved"),
        ("hub", "is reserved"),
        ("-abc", "is not"),
        ("abc-", "is not"),
        ("a--b", "is not"),
        ("1abc", "is not"),
        ("ab", "has 2 characters"),
        ("a_b_c", "is not"),
        ("xn--abc", "is not"),
        ("finance\n", "is not"),
    ],
)
def test_hostile_slugs_get_a_sentence_that_says_what_is_allowed(hostile, why):
    with pytest.raises(InvalidName) as err:
        validate_slug(hostile)
    message = str(err.value)
    assert message.startswith("Workspace names are 3 to 40 characters of lowercase letters a-z, digits and single")
    assert why in message
    assert len(message) < 300, "a 10,000-character name must not be echoed back whole"


def test_non_strings_are_refused():
    with pytest.raises(InvalidName, match="got a int"):
        validate_slug(42)


def test_derived_names():
    names = WorkspaceNames("grid-ops")
    assert (names.bucket, names.namespace, names.schema, names.server_name) == (
        "agp-ws-grid-ops",
        "grid_ops",
        "grid_ops",
        "grid-ops",
    )


def test_derived_names_refuse_an_invalid_slug():
    with pytest.raises(InvalidName):
        WorkspaceNames("Grid Ops")


def test_a_namespace_leads_back_to_its_workspace():
    import pytest

    from agp.core.names import InvalidName, WorkspaceNames

    assert WorkspaceNames.from_namespace("energy_2026").slug == "energy-2026"
    assert WorkspaceNames.from_namespace(WorkspaceNames("a-b-c").namespace) == WorkspaceNames("a-b-c")
    with pytest.raises(InvalidName):
        WorkspaceNames.from_namespace("demo.sub")
