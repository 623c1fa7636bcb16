import json
import sys

from agp.kernels import kernelspec


def test_kernel_spec_loads_the_extension_at_start():
    assert kernelspec.kernel_spec("/opt/py/bin/python") == {
        "argv": ["/opt/py/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext", "agp.kernels"],
        "display_name": "Python 3 (Antigravity)",
        "language": "python",
        "metadata": {"debugger": True},
    }


def test_install_writes_the_spec_where_jupyter_looks(tmp_path):
    folder = kernelspec.install(tmp_path, "/x/python")
    assert folder == tmp_path / "kernels" / "agp"
    assert json.loads((folder / "kernel.json").read_text())["argv"][0] == "/x/python"


def test_the_extension_outside_a_workspace_server_keeps_the_shell_usable(monkeypatch, capsys):
    from IPython.testing.globalipapp import start_ipython

    from agp import kernels

    for var in ("AGP_WORKSPACE_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AGP_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    ip = start_ipython()
    kernels.load_ipython_extension(ip)
    result = ip.run_cell("%sql SELECT 1")
    assert result.error_in_exec is not None, "%sql says why it cannot run"
    assert "This is not a workspace server" in capsys.readouterr().err
    assert ip.run_cell("1 + 1").result == 2


def test_kernel_start_does_not_import_jupysql():
    """The stand-ins keep the kernel's start as quick as a plain one: jupysql loads at the first %sql."""
    import subprocess

    code = (
        "import sys; from IPython.testing.globalipapp import start_ipython; ip = start_ipython(); "
        "from agp import kernels; kernels.load_ipython_extension(ip); "
        "print(sorted(m for m in ('sql', 'sqlalchemy', 'trino', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_kernels_defaults_yield_to_what_the_user_set():
    """``DEFAULTS`` apply where the user chose nothing: not over ``%config`` before the first ``%sql``, nor over
    jupysql's own settings file (pyproject.toml, ~/.jupysql/config), which sets the magic's attributes."""
    from traitlets import Bool, HasTraits

    from agp.kernels.sql import DEFAULTS, apply_defaults

    class Magic(HasTraits):
        displaycon = Bool(True)

    assert DEFAULTS == {"displaycon": False}
    fresh = Magic()
    assert apply_defaults(fresh, {}) == {"displaycon": False} and fresh.displaycon is False
    assert apply_defaults(Magic(), {"displaycon": True}) == {}
    from_file = Magic()
    from_file.displaycon = False  # as jupysql's set_configs does; a value that is not the default
    assert apply_defaults(from_file, {}, {"displaycon": True}) == {}
