"""%sql results as HTML: what the data says is shown, never run (jupysql's ResultSet on SQLite, in a real IPython)."""

from __future__ import annotations

import pytest

EVIL = "<img src=x onerror=alert(1)>"
QUERY = (
    f"SELECT '{EVIL}' AS \"<b>c</b>\", 'http://x\" onmouseover=\"alert(2)' AS u, "
    "'https://ok.example/a?b=1' AS link, 'a  b' AS spaced"
)


@pytest.fixture
def result():
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()  # a shell of another test may carry the kernel's own %sql
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sql")
    ip.run_line_magic("sql", "sqlite://")
    ip.run_line_magic("config", "SqlMagic.autopandas = False")
    yield ip.run_line_magic("sql", QUERY)
    InteractiveShell.clear_instance()


def test_jupysql_alone_runs_what_the_data_says(result):
    """The contract: jupysql 0.11 unescapes its table; when this fails, the hook below may be needed no more."""
    from sql.run.resultset import ResultSet

    jupysqls_own = getattr(ResultSet._repr_html_, "__wrapped__", ResultSet._repr_html_)
    assert EVIL in jupysqls_own(result)


def test_the_kernel_shows_values_and_names_escaped_and_only_plain_urls_as_links(result):
    from agp.kernels.safe_html import install

    install()
    html = result._repr_html_()
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>c</b>" not in html and "&lt;b&gt;c&lt;/b&gt;" in html
    assert 'onmouseover="alert(2)' not in html and "onmouseover=&quot;" in html
    assert '<a href="https://ok.example/a?b=1" target="_blank" rel="noopener noreferrer">' in html
    assert "&lt;a href" not in html, "jupysql's own link markup is not shown as text"
