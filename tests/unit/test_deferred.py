"""jupysql imported with pandas, NumPy, matplotlib and PySpark put off (``agp.kernels.deferred``).

The contract tests run in fresh interpreters (this one may have those libraries loaded already) and fail when
jupysql imports one of them somewhere the table does not name, or stops importing one where it does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from agp.kernels.deferred import DEFERRED, Deferred, _Refuse


def fresh(code: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a new interpreter with IPython loaded, as in a kernel."""
    script = "import json, sys, IPython\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


HEAVY = ("pandas", "numpy", "matplotlib", "pyspark")


def test_jupysql_imports_no_heavy_library_and_every_name_of_the_table_is_deferred():
    out = fresh(
        f"""
        from agp.kernels.deferred import DEFERRED, Deferred, import_jupysql
        refused = import_jupysql()
        again = import_jupysql()
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        kinds = {{f"{{d.module}}.{{d.name}}": type(getattr(sys.modules[d.module], d.name)).__name__ for d in DEFERRED}}
        print(json.dumps({{"refused": sorted(map(list, set(refused))), "again": again, "loaded": loaded,
                          "kinds": kinds}}))
        """
    )
    # Exactly the imports the table names, no more (a new one in jupysql fails here) and no fewer.
    assert out["refused"] == [list(pair) for pair in sorted({(d.module, d.source.partition(".")[0]) for d in DEFERRED})]
    assert out["again"] == []
    assert out["loaded"] == []
    assert set(out["kinds"].values()) == {"Deferred"}


def test_deferred_names_work_as_jupysqls_own_once_used():
    out = fresh(
        """
        from agp.kernels.deferred import import_jupysql
        import_jupysql()
        import sql.magic, sql.plot, sql.util, sql.run.sparkdataframe as spark_frames
        # Before pandas is loaded nothing is a DataFrame, and asking does not load it.
        before = [isinstance(object(), sql.magic.DataFrame), "pandas" in sys.modules, bool(sql.magic.DataFrame)]
        import pandas as pd
        frames = [isinstance(pd.DataFrame(), sql.magic.DataFrame), isinstance(pd.Series(dtype=int), sql.magic.Series),
                  isinstance(pd.Series(dtype=int), sql.magic.DataFrame), issubclass(pd.DataFrame, sql.magic.DataFrame)]
        import matplotlib
        matplotlib.use("Agg")
        fig, ax = sql.plot.plt.subplots()
        plot = [type(ax).__module__.startswith("matplotlib"), sql.plot.Normalize(0, 10)(5),
                int(sql.plot.np.arange(4).sum())]
        from pyspark.errors import AnalysisException
        spark = [bool(spark_frames.DataFrame), bool(spark_frames.CDataFrame),
                 isinstance(AnalysisException("no such table"), sql.util.AnalysisException),
                 isinstance(ValueError(), sql.util.AnalysisException)]
        print(json.dumps({"before": before, "frames": frames, "plot": plot, "spark": spark}))
        """
    )
    assert out["before"] == [False, False, True]
    assert out["frames"] == [True, True, False, True]
    assert out["plot"] == [True, 0.5, 6]
    assert out["spark"] == [True, True, True, False]


def test_a_library_loaded_before_jupysql_is_jupysqls_own_name():
    out = fresh(
        """
        import pandas
        from agp.kernels.deferred import import_jupysql
        refused = import_jupysql()
        import sql.magic
        print(json.dumps({"same": sql.magic.DataFrame is pandas.DataFrame,
                          "refused": sorted({p for _, p in refused})}))
        """
    )
    assert out["same"] is True
    assert "pandas" not in out["refused"] and "numpy" not in out["refused"]


def test_only_the_named_importer_is_refused(tmp_path, monkeypatch):
    (tmp_path / "agp_heavy_lib.py").write_text("VALUE = 42\n")
    for name in ("agp_importer_a", "agp_importer_b"):
        (tmp_path / f"{name}.py").write_text(
            "try:\n    import agp_heavy_lib\nexcept ModuleNotFoundError:\n    agp_heavy_lib = None\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = _Refuse({"agp_importer_a": {"agp_heavy_lib"}})
    sys.meta_path.insert(0, finder)
    try:
        import agp_importer_a
        import agp_importer_b
    finally:
        sys.meta_path.remove(finder)
        for name in ("agp_importer_a", "agp_importer_b", "agp_heavy_lib"):
            sys.modules.pop(name, None)
    assert agp_importer_a.agp_heavy_lib is None
    assert agp_importer_b.agp_heavy_lib.VALUE == 42
    assert finder.seen == [("agp_importer_a", "agp_heavy_lib")]


def test_a_deferred_name_reads_like_the_library(tmp_path, monkeypatch):
    (tmp_path / "agp_lazy_lib.py").write_text("class Thing:\n    size = 3\n\ndef make():\n    return Thing()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        thing, module = Deferred("agp_lazy_lib", "Thing"), Deferred("agp_lazy_lib")
        assert "agp_lazy_lib" not in sys.modules
        assert bool(thing) and not bool(Deferred("agp_no_such_lib", "Thing"))
        assert not isinstance(object(), thing) and "agp_lazy_lib" not in sys.modules
        assert isinstance(module.make(), thing)  # the module's attribute loaded it
        assert thing.size == 3 and isinstance(thing(), thing)
        assert "(loaded)" in repr(module)
        with pytest.raises(ModuleNotFoundError):
            _ = Deferred("agp_no_such_lib").anything
    finally:
        sys.modules.pop("agp_lazy_lib", None)


def test_the_first_sql_during_the_warm_up_waits_for_its_imports():
    # Both threads importing jupysql at once handed one a partly initialised module (seen: "cannot import name
    # 'ResultSet' from partially initialized module 'sql.run.resultset'"); the first %sql now waits instead.
    out = fresh(
        """
        import threading, time
        from IPython.testing.globalipapp import start_ipython
        from agp.kernels import sql as agp_sql
        ip = start_ipython()
        agp_sql.install_lazy(ip)  # no kernel here: no warm-up of its own
        timer = agp_sql.warm_up(delay=0)
        time.sleep(0.05)  # the warm-up is importing now
        agp_sql.configure(ip)
        timer.join(120)
        magic = ip.magics_manager.magics["line"]["sql"]
        # (IPython's test shell loads matplotlib itself: not asked here.)
        print(json.dumps({"wrapped": getattr(magic, "agp_wrapped", False), "pandas": "pandas" in sys.modules,
                          "spark": "pyspark" in sys.modules}))
        """
    )
    assert out == {"wrapped": True, "pandas": True, "spark": False}
