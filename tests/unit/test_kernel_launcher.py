"""What JupyterLab's launcher and kernel picker get from a workspace server's ``/api/kernelspecs``: only the
Antigravity kernel, with its logo, unless the admin wants the plain one too (jupyter_server in-process,
``jp_fetch``, started with the arguments the spawners give it)."""

from __future__ import annotations

import json

import pytest

from agp.kernels import kernelspec
from agp.spawner.local import kernel_list_args

pytest_plugins = ["jupyter_server.pytest_plugin"]


@pytest.fixture
def jp_argv(jp_data_dir, plain):
    kernelspec.install(jp_data_dir)  # as the spawners and images install it, beside ipykernel's own "python3"
    return kernel_list_args(plain_python_kernel=plain)


@pytest.mark.parametrize("plain", [False, True])
async def test_the_launcher_is_offered_the_antigravity_kernel_with_its_logo(jp_fetch, plain):
    r = await jp_fetch("api", "kernelspecs")
    specs = json.loads(r.body)
    if plain:  # every installed kernel (pytest-jupyter's environment has an "echo" kernel too)
        assert {"agp", "python3"} <= set(specs["kernelspecs"])
    else:
        assert set(specs["kernelspecs"]) == {"agp"}, "ipykernel's plain Python 3 (and any other) is not offered"
    agp = specs["kernelspecs"]["agp"]
    assert agp["spec"]["display_name"] == "Python 3 (Antigravity)"
    assert agp["resources"]["logo-svg"].endswith("/kernelspecs/agp/logo-svg.svg")
    logo = await jp_fetch("kernelspecs", "agp", "logo-svg.svg")
    assert logo.body.startswith(b"<svg") and logo.headers["Content-Type"].startswith("image/svg+xml")
