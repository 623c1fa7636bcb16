"""Versions, folders, addresses and ports of the test cluster: one typed object, environment only feeds defaults."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
HELM_VERSION = "v3.19.5"
PAUSE_IMAGE = "localhost/agp-pause:3.10"  # containerd's sandbox image, built from images/pause/
BASE_IMAGE = "localhost/agp-base:bookworm"  # images/base/build.py makes it; our Dockerfiles name it in FROM
COREDNS_IMAGE = "localhost/agp-coredns:v1.14.7"  # images/coredns/build.py makes it (same version there)

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")


def _user_dir(kind: str) -> Path:
    try:
        import platformdirs
    except ImportError:  # platformdirs is optional: fall back to its answers on Linux
        return Path.home() / {"cache": ".cache", "state": ".local/state"}[kind] / "agp"
    return Path(platformdirs.user_cache_dir("agp") if kind == "cache" else platformdirs.user_state_dir("agp"))


def host_address() -> str:
    """The machine's own non-loopback IPv4 address (the one a default route leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # no packet is sent: this only asks the routing table
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster keeps things and which addresses it uses.

    ``cache`` holds build outputs keyed by version (kept between runs, never in the repository); ``state`` holds
    what one running cluster needs (certificates, configs, data, logs); ``down`` empties it except the logs.
    Ports are chosen off the mini-lab's (15432, 9000-9001, 19120-19121, 8080, 8443, 8180, 9180, 8000, 8081, ...).
    """

    cache: Path = field(default_factory=lambda: _user_dir("cache") / "k8s")
    state: Path = field(default_factory=lambda: _user_dir("state") / "k8s")
    kubernetes_version: str = KUBERNETES_VERSION
    helm_version: str = HELM_VERSION
    node_ip: str = field(default_factory=host_address)
    node_name: str = "agp-node"
    apiserver_port: int = 6443
    etcd_client_port: int = 12379  # off etcd's default 2379/2380, which a developer's own etcd may use
    etcd_peer_port: int = 12380
    service_cidr: str = "10.96.0.0/16"
    pod_cidr: str = "10.244.0.0/24"
    bridge: str = "agp-cni0"
    volumes: int = 12  # hostPath PersistentVolumes of the default StorageClass, recycled once released
    volume_size: str = "20Gi"  # their nominal size (the host's disk is what they really share)
    niceness: int = 19  # builds run at the lowest priority: other people's test suites share the 2 cores

    @classmethod
    def from_env(cls) -> ClusterSettings:
        """Defaults, overridden by ``AGP_K8S_CACHE``, ``AGP_K8S_STATE`` and ``AGP_K8S_NODE_IP`` where set."""
        kw: dict = {}
        if os.environ.get("AGP_K8S_CACHE"):
            kw["cache"] = Path(os.environ["AGP_K8S_CACHE"])
        if os.environ.get("AGP_K8S_STATE"):
            kw["state"] = Path(os.environ["AGP_K8S_STATE"])
        if os.environ.get("AGP_K8S_NODE_IP"):
            kw["node_ip"] = os.environ["AGP_K8S_NODE_IP"]
        return cls(**kw)

    # Build outputs, keyed by version.
    @property
    def kube_bin(self) -> Path:
        return self.cache / f"kubernetes-{self.kubernetes_version}" / "bin"

    @property
    def helm_bin(self) -> Path:
        return self.cache / f"helm-{self.helm_version}" / "helm"

    @property
    def images_cache(self) -> Path:
        return self.cache.parent / "images"

    # One running cluster.
    @property
    def volumes_dir(self) -> Path:
        return self.state / "volumes"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig that ``up`` prints."""
        return self.state / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "run" / "containerd.sock"

    @property
    def service_ip(self) -> str:
        """The first address of the service range: the ``kubernetes`` service in ``default``."""
        a, b, c, _ = self.service_cidr.split("/")[0].split(".")
        return f"{a}.{b}.{c}.1"

    @property
    def dns_ip(self) -> str:
        """The cluster DNS service's address: the tenth of the service range, as kubeadm chooses."""
        a, b, c, _ = self.service_cidr.split("/")[0].split(".")
        return f"{a}.{b}.{c}.10"

    @property
    def ports(self) -> dict[str, int]:
        """Every TCP port the cluster listens on, by what listens."""
        return {
            "kube-apiserver": self.apiserver_port,
            "etcd": self.etcd_client_port,
            "etcd peer": self.etcd_peer_port,
            "kubelet": 10250,
            "kubelet healthz": 10248,
            "kube-proxy metrics": 10249,
            "kube-proxy healthz": 10256,
            "kube-controller-manager": 10257,
            "kube-scheduler": 10259,
        }
