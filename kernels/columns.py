"""Readable names for the columns Trino leaves unnamed: ``%sql SELECT 1, count(*) FROM t`` gives ``1`` and
``count(*)``, not ``_col0`` and ``_col1``.

Trino calls an unnamed expression of the select list ``_col<position>``. Those names, and only those (a column a
user named ``_col0`` keeps its name), become the expression's text as written, as DuckDB and Spark name such
columns; names stay unique. The statement is parsed with sqlglot (which jupysql already depends on); a statement
it cannot read keeps Trino's names.
"""

from __future__ import annotations

import logging
from typing import Any

from .frames import Cursor

log = logging.getLogger(__name__)

MAX_LENGTH = 80  # characters of an expression's text kept in a name

_END_OF_LIST = (
    "FROM",
    "WHERE",
    "GROUP_BY",
    "HAVING",
    "WINDOW",
    "QUALIFY",
    "ORDER_BY",
    "LIMIT",
    "OFFSET",
    "FETCH",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "SEMICOLON",
    "INTO",
)


def readable_names(statement: str | None, names: list[str]) -> list[str]:
    """``names`` (a result's columns) with each ``_col<i>`` at position ``i`` named after the ``i``-th expression
    of ``statement``'s select list, unless the statement gave it that name itself (pure)."""
    generated = [i for i, name in enumerate(names) if name == f"_col{i}"]
    if not generated or not statement:
        return names
    try:
        items = select_items(statement)
    except Exception:  # whatever sqlglot cannot read keeps Trino's names
        log.debug("could not read the select list of %r", statement, exc_info=True)
        return names
    out = list(names)
    taken = {name for i, name in enumerate(names) if i not in generated}
    for i in generated:
        text = items[i] if i < len(items) else None
        if text is None:
            taken.add(names[i])
            continue
        text = _shorten(" ".join(text.split()))
        name, n = text, 0
        while name in taken:
            n += 1
            name = f"{text}_{n}"
        out[i] = name
        taken.add(name)
    return out


def select_items(statement: str) -> list[str | None]:
    """The text of each expression of the statement's outermost select list (the first one of a UNION), as
    written; ``None`` for an aliased one; nothing from a ``*`` on, whose columns cannot be counted here."""
    import sqlglot
    from sqlglot import exp

    dialect = sqlglot.Dialect.get_or_raise("trino")
    tree = dialect.parse(statement)[0]
    select = _outer_select(tree, exp)
    if select is None:
        return []
    texts = _texts_of(select, statement, dialect)
    items: list[str | None] = []
    for i, expression in enumerate(select.expressions):
        if isinstance(expression, exp.Star) or (
            isinstance(expression, exp.Column) and isinstance(expression.this, exp.Star)
        ):
            break
        items.append(None if isinstance(expression, exp.Alias) else texts[i])
    return items


def _outer_select(tree: Any, exp: Any) -> Any:
    set_operation = getattr(exp, "SetOperation", exp.Union)
    node = tree
    while node is not None:
        if isinstance(node, exp.Select):
            return node
        if isinstance(node, set_operation):
            node = node.left
        elif isinstance(node, exp.Subquery):
            node = node.this
        else:
            return None
    return None


def _texts_of(select: Any, statement: str, dialect: Any) -> list[str]:
    """The items of ``select``'s list as written in ``statement``: those of the first SELECT in its tokens whose
    items parse to ``select``'s expressions; the parser's own rendering where none does."""
    from sqlglot.tokens import TokenType

    rendered = [e.sql(dialect="trino") for e in select.expressions]
    tokens = dialect.tokenize(statement)
    for i, token in enumerate(tokens):
        if token.token_type != TokenType.SELECT:
            continue
        texts = _item_texts(statement, tokens, i + 1)
        if texts is None or len(texts) != len(rendered):
            continue
        try:
            if [dialect.parse(t)[0].sql(dialect="trino") for t in texts] == rendered:
                return texts
        except Exception:  # not an expression: the tokens of another clause
            log.debug("not a select list: %r", texts)
    return rendered


def _item_texts(statement: str, tokens: list, start: int) -> list[str] | None:
    """The items, as written, of the select list that starts at ``tokens[start]`` (``None``: none there)."""
    from sqlglot.tokens import TokenType

    ends = {getattr(TokenType, name) for name in _END_OF_LIST if hasattr(TokenType, name)}
    while start < len(tokens) and tokens[start].token_type in (TokenType.DISTINCT, TokenType.ALL):
        start += 1
    items: list[str] = []
    first = last = None
    depth = 0
    for token in tokens[start:]:
        kind = token.token_type
        if depth == 0 and (kind in ends or kind in (TokenType.R_PAREN, TokenType.COMMA)):
            if first is None or last is None:
                return None
            items.append(statement[first.start : last.end + 1])
            first = None
            if kind != TokenType.COMMA:
                return items
            continue
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        first = first or token
        last = token
    if first is not None and last is not None:
        items.append(statement[first.start : last.end + 1])
    return items


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - 1].rstrip() + "…"


class ReadableCursor(Cursor):
    """The kernel's cursor (:class:`agp.kernels.frames.Cursor`) whose ``description`` has readable names."""

    _named: tuple[tuple, list[str]] | None = None  # (statement, Trino's names) -> readable names

    @property
    def description(self) -> Any:
        description = self._cursor.description
        if not description:
            return description
        key = (self.operation, tuple(d[0] for d in description))
        if self._named is None or self._named[0] != key:
            self._named = (key, readable_names(self.operation, list(key[1])))
        return [_renamed(d, n) for d, n in zip(description, self._named[1], strict=True)]


def _renamed(column: Any, name: str) -> Any:
    if column[0] == name:
        return column
    if hasattr(column, "_replace"):
        return column._replace(name=name)
    return (name, *tuple(column)[1:])
