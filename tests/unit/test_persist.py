"""``%sql --persist`` and friends: the DataFrame as Arrow (typed as ``to_sql`` would on Trino) and the one-commit write,
against pyiceberg's own SQL catalog on local files."""

import datetime as dt
import decimal

import pandas as pd
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from agp.kernels.persist import frame_to_arrow, unfit_columns, write


def test_types_are_what_trino_would_have_made_with_to_sql():
    frame = pd.DataFrame(
        {
            "Small": pd.Series([1, 2], dtype="int8"),
            "u16": pd.Series([1, 65535], dtype="uint16"),
            "u32": pd.Series([1, 2**32 - 1], dtype="uint32"),
            "big": [1, 2**40],
            "maybe": pd.Series([1, None], dtype="Int64"),
            "f32": pd.Series([1.5, 2.5], dtype="float32"),
            "f64": [1.5, float("nan")],
            "ok": [True, False],
            "name": ["a", None],
            "at": pd.to_datetime(["2026-01-01 10:00:00.123456789", None]),
            "at_tz": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 00:00"]).tz_localize("Europe/Berlin"),
            "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
            "kind": pd.Categorical(["x", "y"]),
            "nothing": [None, None],
            "mixed": [1, "two"],
            "amount": [decimal.Decimal("1.10"), decimal.Decimal("2.25")],
        }
    )
    table = frame_to_arrow(frame, index=False)
    assert table.schema == pa.schema(
        [
            ("small", pa.int32()),
            ("u16", pa.int32()),
            ("u32", pa.int64()),
            ("big", pa.int64()),
            ("maybe", pa.int64()),
            ("f32", pa.float32()),
            ("f64", pa.float64()),
            ("ok", pa.bool_()),
            ("name", pa.string()),
            ("at", pa.timestamp("us")),
            ("at_tz", pa.timestamp("us", tz="UTC")),
            ("day", pa.date32()),
            ("kind", pa.string()),
            ("nothing", pa.string()),
            ("mixed", pa.string()),
            ("amount", pa.decimal128(3, 2)),
        ]
    )
    assert table.column("maybe").to_pylist() == [1, None]
    assert table.column("f64").to_pylist() == [1.5, None]
    assert table.column("name").to_pylist() == ["a", None]
    assert table.column("mixed").to_pylist() == ["1", "two"]
    assert table.column("at").to_pylist()[0] == dt.datetime(2026, 1, 1, 10, 0, 0, 123456)
    assert table.column("at_tz").to_pylist()[0] == dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("index", "columns"),
    [
        (pd.RangeIndex(2), ["index", "x"]),
        (pd.Index(["a", "b"], name="Key"), ["key", "x"]),
        (pd.MultiIndex.from_tuples([(1, "a"), (2, "b")]), ["level_0", "level_1", "x"]),
        (pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["n", None]), ["n", "level_1", "x"]),
    ],
)
def test_the_index_is_written_as_pandas_names_it(index, columns):
    frame = pd.DataFrame({"x": [1, 2]}, index=index)
    assert frame_to_arrow(frame).column_names == columns
    assert frame_to_arrow(frame, index=False).column_names == ["x"]


def test_an_index_beside_a_column_named_index_is_level_0():
    assert frame_to_arrow(pd.DataFrame({"index": [1]})).column_names == ["level_0", "index"]


def test_a_series_is_one_column():
    assert frame_to_arrow(pd.Series([1, 2], name="Kwh"), index=False).column_names == ["kwh"]
    assert frame_to_arrow(pd.Series([1, 2]), index=False).column_names == ["0"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": [1], "A": [2]}), "Column names must differ in more than case; a is given twice."),
        (pd.DataFrame({"u": pd.Series([1], dtype="uint64")}), "Column 'u' holds unsigned 64-bit integers"),
        (pd.DataFrame({"c": [1 + 2j]}), "Column 'c' holds complex numbers"),
    ],
)
def test_what_no_table_can_hold_is_refused_in_one_sentence(frame, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        frame_to_arrow(frame, index=False)


def test_time_deltas_are_nanoseconds_with_pandas_warning():
    with pytest.warns(UserWarning, match="timedelta"):
        table = frame_to_arrow(pd.DataFrame({"d": pd.to_timedelta(["1s", "2ms"])}), index=False)
    assert table.column("d").to_pylist() == [1_000_000_000, 2_000_000]


@pytest.fixture
def catalog(tmp_path):
    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}")
    cat.create_namespace("ws")
    return cat


def rows(catalog, name="df"):
    return catalog.load_table(("ws", name)).scan().to_arrow().to_pydict()


def test_persist_creates_refuses_appends_and_replaces_in_one_commit_each(catalog):
    data = pa.table({"x": list(range(1000))})
    assert write(catalog, "ws", "df", data, "fail") == "created"
    assert len(catalog.load_table(("ws", "df")).snapshots()) == 1, "1,000 rows are one commit"
    with pytest.raises(FileExistsError):
        write(catalog, "ws", "df", data, "fail")
    assert write(catalog, "ws", "df", pa.table({"x": [7]}), "append") == "appended"
    assert len(rows(catalog)["x"]) == 1001
    assert write(catalog, "ws", "df", pa.table({"y": ["new"]}), "replace") == "replaced"
    assert rows(catalog) == {"y": ["new"]}
    assert write(catalog, "ws", "other", data, "append") == "created", "append makes a missing table"


class FailingWrites(SqlCatalog):
    """The same catalog, whose tables fail to write their files (a full disk, a credential that expired...)."""

    def create_table(self, *args, **kwargs):
        table = super().create_table(*args, **kwargs)

        def append(*_, **__):
            raise OSError("No space left on device")

        table.append = append
        return table


def test_a_failed_persist_leaves_no_empty_table_behind(tmp_path):
    catalog = FailingWrites("t", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("ws")
    with pytest.raises(OSError, match="No space left"):
        write(catalog, "ws", "df", pa.table({"x": [1]}), "fail")
    assert not catalog.table_exists(("ws", "df"))


# -- jupysql's contract: --persist, --persist-replace and --append reach the connection's to_table


@pytest.fixture
def shell(catalog):
    """A real IPython shell with jupysql, whose current connection persists into ``catalog`` (SQLite for queries)."""
    import sqlalchemy
    from IPython.core.interactiveshell import InteractiveShell
    from sql.connection import ConnectionManager

    from agp.kernels.persist import persisting_connection_class

    class Connection(persisting_connection_class()):
        def drop_table(self, identifier):
            catalog.drop_table(identifier)

    ip = InteractiveShell()  # not the shared instance, which other tests give the kernel's own %sql
    ip.extension_manager.load_extension("sql")
    conn = Connection(sqlalchemy.create_engine("sqlite://"), lambda: catalog, lambda: "ws", alias="persist-test")
    ConnectionManager.set(conn, displaycon=False, alias="persist-test")
    yield ip
    ConnectionManager.close_all()


def test_jupysql_persist_flags_write_through_the_catalog(shell, catalog, capsys):
    shell.user_ns["Readings"] = pd.DataFrame({"kwh": [1.5, 2.5]}, index=pd.Index([10, 20], name="meter"))
    shell.run_line_magic("sql", "--persist Readings")
    assert "Success! Persisted readings to the database." in capsys.readouterr().out
    assert rows(catalog, "readings") == {"meter": [10, 20], "kwh": [1.5, 2.5]}
    shell.run_line_magic("sql", "--append Readings")
    assert len(rows(catalog, "readings")["kwh"]) == 4
    shell.user_ns["Readings"] = pd.DataFrame({"kwh": [9.0]})
    shell.run_line_magic("sql", "--persist-replace Readings --no-index")
    assert rows(catalog, "readings") == {"kwh": [9.0]}
    shell.run_line_magic("sql", "--append ws.Readings --no-index")  # schema.df, as jupysql documents for Trino
    assert rows(catalog, "readings") == {"kwh": [9.0, 9.0]}
    with pytest.raises(Exception, match=r"Table .readings. already exists\. Consider using --persist-replace"):
        shell.run_line_magic("sql", "--persist Readings")


def test_jupysql_errors_stay_jupysqls(shell):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"Expected .nowhere. to be a pd\.DataFrame but it.s undefined"):
        shell.run_line_magic("sql", "--persist nowhere")
    shell.user_ns["u"] = pd.DataFrame({"x": pd.Series([1], dtype="uint64")})
    with pytest.raises(UsageError, match="Column 'x' holds unsigned 64-bit integers"):
        shell.run_line_magic("sql", "--persist u")


def test_what_an_append_cannot_put_into_a_table_is_named_column_by_column():
    table = pa.schema([("id", pa.int64()), ("kwh", pa.float64()), ("city", pa.string()), ("at", pa.timestamp("us"))])
    assert (
        unfit_columns(table, pa.schema([("id", pa.int32()), ("kwh", pa.float32()), ("city", pa.large_string())])) == []
    )
    assert unfit_columns(
        table, pa.schema([("id", pa.string()), ("at", pa.timestamp("us", "UTC")), ("x", pa.int8())])
    ) == [
        "id is int64 in the table but string here",
        "at is timestamp[us] in the table but timestamp[us, tz=UTC] here",
        "x is no column of the table",
    ]


def test_an_append_that_does_not_fit_changes_nothing(catalog):
    write(catalog, "ws", "df", pa.table({"id": [1]}), "fail")
    with pytest.raises(
        ValueError, match="The DataFrame does not fit table df: id is int64 in the table but string here"
    ):
        write(catalog, "ws", "df", pa.table({"id": ["one"]}), "append")
    assert rows(catalog) == {"id": [1]}
