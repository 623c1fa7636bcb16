"""Fixtures of the cluster tier (tests marked ``kubernetes``), on the single-node cluster of ``python3 -m tests.k8s``.

Fixtures
--------
cluster     the running cluster (session): reused when it runs; otherwise started, and stopped again at the end
kubectl     run kubectl (the cluster's own version) on the cluster; returns stdout, fails the test with stderr
helm        run helm on the cluster the same way
base_image  ``localhost/agp-base:bookworm``, built if needed and imported into the cluster's containerd (session)
namespace   factory: a new namespace with a unique name, deleted after the test (released volumes are
            recycled first: the default StorageClass ``standard`` has a dozen hostPath volumes)

The test modules of this folder are collected only when the cluster runs (``python3 -m tests.k8s status``), when
``-m`` names ``kubernetes``, or when this folder or one of its files is named on the command line: the default
run of the suite does not build a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@cache
def _cluster_runs() -> bool:
    from k8s.cluster import Cluster
    from k8s.settings import ClusterSettings

    try:
        return Cluster(ClusterSettings.from_env()).status()["running"]
    except Exception:
        return False


def _asked_for(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", "") or ""
    if "kubernetes" in markexpr and "not kubernetes" not in markexpr:
        return True
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    is_test_module = collection_path.name.startswith("test_") and collection_path.suffix == ".py"
    if is_test_module and not _asked_for(config) and not _cluster_runs():
        return True
    return None


class Runner:
    """A command line tool bound to the cluster's kubeconfig."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(self, *args: str, input: str | None = None, timeout: float = 180, check: bool = True) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        r = subprocess.run(
            [str(self.binary), *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and r.returncode != 0:
            pytest.fail(
                f"{self.binary.name} {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}", pytrace=False
            )
        return r.stdout


@pytest.fixture(scope="session")
def cluster() -> Iterator:
    from k8s.cluster import Cluster
    from k8s.errors import ClusterError
    from k8s.settings import ClusterSettings

    c = Cluster(ClusterSettings.from_env())
    started = not c.status()["running"]
    failure = None
    if started:
        try:
            c.up()
        except ClusterError as e:
            failure = str(e)
    if failure:
        pytest.fail(f"the test cluster did not start: {failure}", pytrace=False)
    yield c
    if started:
        c.down()


@pytest.fixture(scope="session")
def kubectl(cluster) -> Runner:
    return Runner(cluster.settings.kube_bin / "kubectl", cluster.settings.kubeconfig)


@pytest.fixture(scope="session")
def helm(cluster) -> Runner:
    return Runner(cluster.settings.helm_bin, cluster.settings.kubeconfig)


@pytest.fixture(scope="session")
def base_image(cluster) -> str:
    out = subprocess.run([sys.executable, str(REPO / "images" / "base" / "build.py")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"building the base image failed: {out.stderr.strip()[-500:]}", pytrace=False)
    name = out.stdout.strip().splitlines()[-1]
    cluster.load_images([name])
    return name


@pytest.fixture
def namespace(cluster, kubectl) -> Iterator[Callable[[], str]]:
    made: list[str] = []
    cluster.recycle_volumes()  # the volumes earlier tests' claims released, emptied and offered again

    def make() -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """When a cluster test fails, add the tail of each component's log to its report."""
    if call.when != "call" or call.excinfo is None or "kubernetes" not in item.keywords:
        return
    from k8s.settings import ClusterSettings

    logs = ClusterSettings.from_env().logs
    for name in ("kubelet", "containerd", "kube-proxy", "kube-apiserver"):
        path = logs / f"{name}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-15:]
            item.add_report_section("call", f"{name} log", "\n".join(tail))
