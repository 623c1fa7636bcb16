import json

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


def test_the_extension_outside_a_workspace_server_keeps_the_shell_usable(monkeypatch, caplog):
    from IPython.testing.globalipapp import start_ipython

    from agp import kernels

    for var in ("AGP_WORKSPACE_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AGP_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    ip = start_ipython()
    kernels.load_ipython_extension(ip)
    assert "This is not a workspace server" in caplog.text
    assert ip.run_cell("1 + 1").result == 2
