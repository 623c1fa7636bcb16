"""The images are built from the same pinned artifacts and sources as the lab."""

from pathlib import Path

from agp.core import versions

ROOT = Path(__file__).resolve().parents[2]


def test_the_catalog_images_jars_are_the_labs():
    lines = [ln.split() for ln in (ROOT / "images/catalog/jars.txt").read_text().splitlines() if ln and ln[0] != "#"]
    wanted = [[a.url, a.sha256] for a in [*versions.CATALOG_JARS, versions.ICEBERG_AWS_BUNDLE]]
    assert lines == wanted, "images/catalog/jars.txt differs from agp.core.versions: write it again from there"


def test_the_catalog_image_runs_the_labs_class():
    dockerfile = (ROOT / "images/catalog/Dockerfile").read_text()
    assert "COPY compose/config/catalog/AgpRestCatalog.java" in dockerfile
    assert "USER 10001:0" in dockerfile  # non-root, group 0 (arbitrary UIDs on OpenShift)


def test_each_image_installs_its_roles_extra():
    # The roles are checked against their imports in test_roles.py; each image installs exactly its role.
    hub = (ROOT / "images/hub/Dockerfile").read_text()
    notebook = (ROOT / "images/notebook/Dockerfile").read_text()
    assert "[hub,kubernetes]" in hub and "[notebook]" not in hub
    assert "[notebook]" in notebook and "[hub" not in notebook and "[lab" not in notebook
    for dockerfile in (hub, notebook):
        user = [ln for ln in dockerfile.splitlines() if ln.startswith("USER ")][-1]
        assert not user.startswith("USER 0") and user.endswith(":0"), user  # non-root, group 0
