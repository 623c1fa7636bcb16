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
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from agp import kernels

    for var in ("AGP_WORKSPACE_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AGP_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    ip = start_ipython() or get_ipython()  # one shell per process: the first call makes it
    kernels.load_ipython_extension(ip)
    result = ip.run_cell("%sql SELECT 1")
    assert result.error_in_exec is not None, "%sql says why it cannot run"
    shown = capsys.readouterr()
    assert shown.out.startswith("This is not a workspace server"), "the sentence, no UsageError prefix"
    assert "Traceback" not in shown.out + shown.err
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


def test_servers_offer_only_the_antigravity_kernel_unless_the_admin_wants_the_plain_one_too():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.serverapp import ServerApp

    from agp.spawner.local import WorkspaceLocalSpawner, kernel_list_args

    assert kernel_list_args() == ["--KernelSpecManager.allowed_kernelspecs=agp"]
    assert kernel_list_args(plain_python_kernel=True) == []
    assert WorkspaceLocalSpawner().plain_python_kernel is False
    # Every spawner's server gets the argument: none of them builds its arguments past the workspace mixin.
    from agp.spawner.docker import WorkspaceDockerSpawner
    from agp.spawner.kube import WorkspaceKubeSpawner
    from agp.spawner.local import WorkspaceMixin

    for spawner in (WorkspaceLocalSpawner, WorkspaceKubeSpawner, WorkspaceDockerSpawner):
        assert spawner.get_args is WorkspaceMixin.get_args, spawner
    # What jupyter_server makes of the argument: its kernel spec manager lists the Antigravity kernel only.
    app = ServerApp()
    app.parse_command_line(kernel_list_args())
    assert KernelSpecManager(config=app.config).allowed_kernelspecs == {"agp"}


def test_the_kernel_spec_has_a_logo_jupyterlab_shows(tmp_path):
    from types import SimpleNamespace

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.services.kernelspecs.handlers import kernelspec_model
    from PIL import Image

    folder = kernelspec.install(tmp_path, "/x/python")
    found = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]).get_all_specs()["agp"]
    # What jupyter_server's /api/kernelspecs tells JupyterLab about it.
    spec = kernelspec_model(SimpleNamespace(base_url="/"), "agp", found["spec"], found["resource_dir"])
    assert {"logo-svg", "logo-64x64", "logo-32x32"} <= set(spec["resources"]), spec["resources"]
    svg = (folder / "logo-svg.svg").read_text()
    assert svg.startswith("<svg") and "<script" not in svg and "href" not in svg
    for size in (32, 64):
        with Image.open(folder / f"logo-{size}x{size}.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
            assert im.getpixel((0, 0))[3] == 0 and im.getpixel((size // 2, size // 2))[3] == 255, "a mark, not a box"
