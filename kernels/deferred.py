"""jupysql imported without the heavy libraries it only may use: pandas, NumPy, matplotlib and PySpark come later.

jupysql 0.11 imports, at its own import, pandas (to recognise a DataFrame for ``--persist``), matplotlib and NumPy
(for ``%sqlplot``) and PySpark with Spark Connect (to recognise a Spark DataFrame): about three quarters of its
import time, and none of it needed to run a query. :func:`import_jupysql` imports jupysql with those imports
refused to the jupysql modules in :data:`DEFERRED` alone (jupysql then sets the names to ``None``, as where the
library is not installed) and puts a :class:`Deferred` in each such name: it imports the library at the first use
of the name, and answers ``isinstance`` without importing it (nothing is a pandas DataFrame while pandas is not
loaded). Any other module that imports these libraries meanwhile gets them as usual.

The names are jupysql's private module globals: the range of jupysql in pyproject.toml and
``tests/unit/test_deferred.py`` (which fails when jupysql imports another of these libraries, or one elsewhere)
guard them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Name:
    """A module global of jupysql (``module.name``) that holds ``source.attribute`` (the module itself if the
    attribute is empty) when ``source`` can be imported."""

    module: str
    name: str
    source: str
    attribute: str = ""


# Every import jupysql makes at its own import of a library it only may use: what it imports, and where to.
DEFERRED = (
    Name("sql.magic", "DataFrame", "pandas.core.frame", "DataFrame"),  # --persist: is it a DataFrame?
    Name("sql.magic", "Series", "pandas.core.frame", "Series"),
    Name("sql.plot", "plt", "matplotlib.pyplot"),  # %sqlplot
    Name("sql.plot", "Normalize", "matplotlib.colors", "Normalize"),
    Name("sql.plot", "np", "numpy"),
    Name("sql.run.sparkdataframe", "DataFrame", "pyspark.sql", "DataFrame"),  # %sql on a SparkSession
    Name("sql.run.sparkdataframe", "CDataFrame", "pyspark.sql.connect.dataframe", "DataFrame"),
    Name("sql.util", "AnalysisException", "pyspark.sql.utils", "AnalysisException"),  # Spark's errors
)


def _top(module: str) -> str:
    return module.partition(".")[0]


class Deferred:
    """Stands in for ``source.attribute`` until it is used: calls and attributes import ``source`` first;
    ``isinstance``/``issubclass`` import it only if its package is loaded already (else the answer is False);
    truth is whether it can be imported (jupysql's test for an installed library)."""

    def __init__(self, source: str, attribute: str = "") -> None:
        self._source, self._attribute = source, attribute
        self._target: Any = None
        self._lock = threading.Lock()

    def _resolve(self) -> Any:
        if self._target is None:
            with self._lock:
                if self._target is None:
                    module = importlib.import_module(self._source)
                    self._target = getattr(module, self._attribute) if self._attribute else module
        return self._target

    def _loaded(self) -> bool:
        return self._target is not None or _top(self._source) in sys.modules

    def __getattr__(self, name: str) -> Any:
        if name in ("_source", "_attribute", "_target", "_lock"):  # not set yet (copy, pickle): not the library's
            raise AttributeError(name)
        return getattr(self._resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __instancecheck__(self, instance: Any) -> bool:
        return self._loaded() and isinstance(instance, self._resolve())

    def __subclasscheck__(self, subclass: type) -> bool:
        return self._loaded() and issubclass(subclass, self._resolve())

    def __bool__(self) -> bool:
        return self._target is not None or importlib.util.find_spec(_top(self._source)) is not None

    def __repr__(self) -> str:
        target = f"{self._source}.{self._attribute}" if self._attribute else self._source
        return f"<deferred {target}{' (loaded)' if self._target is not None else ''}>"


class _Refuse(importlib.abc.MetaPathFinder):
    """Refuses the libraries of :data:`DEFERRED` to the jupysql modules that import them there, and only to them."""

    def __init__(self, refused: dict[str, set[str]]) -> None:
        self.refused = refused  # importing module -> top-level packages refused to it
        self.seen: list[tuple[str, str]] = []  # (importing module, package) refused, for the contract test

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        top = _top(fullname)
        if not any(top in tops for tops in self.refused.values()):
            return None
        importer = _importer()
        if top in self.refused.get(importer, ()):
            self.seen.append((importer, top))
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred)", name=fullname)
        return None


def _importer() -> str:
    """The module whose code runs the import being looked up (the first frame outside importlib and this file)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != __name__ and not name.startswith(("importlib", "_frozen_importlib")):
            return name
        frame = frame.f_back
    return ""


_import_lock = threading.Lock()


def import_jupysql(deferred: tuple[Name, ...] = DEFERRED) -> list[tuple[str, str]]:
    """Import jupysql (its magics and connections) with the imports of ``deferred`` put off; idempotent and safe
    from any thread. Returns the (module, package) imports that were refused, empty if jupysql was loaded already."""
    with _import_lock:
        if "sql.magic" in sys.modules and "sql.connection" in sys.modules:
            return []
        refused: dict[str, set[str]] = {}
        for d in deferred:
            if _top(d.source) not in sys.modules:  # a library already loaded costs nothing: jupysql takes it
                refused.setdefault(d.module, set()).add(_top(d.source))
        finder = _Refuse(refused)
        sys.meta_path.insert(0, finder)
        try:
            importlib.import_module("sql.magic")
            importlib.import_module("sql.connection")
        finally:
            sys.meta_path.remove(finder)
        for d in deferred:
            module = sys.modules.get(d.module)
            if module is not None and getattr(module, d.name, None) is None:
                setattr(module, d.name, Deferred(d.source, d.attribute))
        return list(finder.seen)
