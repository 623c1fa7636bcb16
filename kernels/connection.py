"""jupysql's SQLAlchemy connection, made to speak Trino where jupysql's own queries do not (pure but for the hook).

jupysql writes the queries behind ``%sqlplot`` and ``%sqlcmd`` for DuckDB and translates them with sqlglot.
``%sqlplot histogram`` groups by a select alias (``GROUP BY bin``), which Trino refuses
(``COLUMN_NOT_FOUND: Column 'bin' cannot be resolved``); :func:`group_by_position` names such groups by their
position instead (``GROUP BY 1``), which every engine reads the same. ``%sql`` itself sends the user's SQL as it is
written: jupysql runs it with ``raw_execute``, which :func:`speak_trino` leaves alone.

The hook is jupysql's private ``_transpile_query`` (the last step before its own queries run); the range of jupysql
in pyproject.toml and ``tests/unit/test_connection.py`` guard it.
"""

from __future__ import annotations

from typing import Any


def group_by_position(query: str, dialect: str = "trino") -> str:
    """``query`` with every GROUP BY term that names a select alias (and no column of the same name in the select
    list) replaced by the alias's position (pure); the query unchanged if sqlglot cannot read it."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = sqlglot.parse(query, read=dialect)
    except Exception:  # sqlglot does not know the syntax: leave it to Trino
        return query
    changed = False
    for statement in statements:
        if statement is None:
            continue
        for select in statement.find_all(exp.Select):
            group = select.args.get("group")
            if group is None:
                continue
            positions: dict[str, int] = {}
            plain: set[str] = set()
            for i, projection in enumerate(select.expressions, start=1):
                if isinstance(projection, exp.Alias):
                    positions.setdefault(projection.alias.lower(), i)
                elif isinstance(projection, exp.Column):
                    plain.add(projection.name.lower())
            for term in group.expressions:
                if isinstance(term, exp.Column) and not term.table:
                    name = term.name.lower()
                    if name in positions and name not in plain:
                        term.replace(exp.Literal.number(positions[name]))
                        changed = True
    if not changed:
        return query
    return ";\n".join(s.sql(dialect=dialect) for s in statements if s is not None)


def speak_trino(conn: Any) -> Any:
    """``conn`` (jupysql's connection, made by jupysql or by :mod:`agp.kernels.persist`), its own queries now
    grouped by position: the last step before they run, jupysql's ``_transpile_query``, is followed by
    :func:`group_by_position` for this object alone, whatever its class. Returns ``conn``."""
    transpile = conn._transpile_query
    if getattr(transpile, "agp_trino", False):
        return conn

    def _transpile_query(query: str) -> str:
        return group_by_position(transpile(query))

    _transpile_query.agp_trino = True  # type: ignore[attr-defined]
    conn._transpile_query = _transpile_query
    return conn
