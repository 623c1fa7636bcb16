"""The test cluster's pure builders (tests/k8s/): the wrapper module, linker flags, configs and the iptables filter.

The cluster itself is exercised by tests/k8s/test_cluster.py (marker ``kubernetes``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from k8s import build, configs, host, pki
from k8s.settings import COREDNS_IMAGE, ClusterSettings

from agp.core.settings import Ports

UPSTREAM_GO_MOD = textwrap.dedent("""\
    module k8s.io/kubernetes

    go 1.24.0

    require (
    \tk8s.io/api v0.0.0
    \tgithub.com/spf13/cobra v1.9.1
    )

    replace (
    \tk8s.io/api => ./staging/src/k8s.io/api
    \tk8s.io/cri-api => ./staging/src/k8s.io/cri-api
    \tk8s.io/externaljwt => ./staging/src/k8s.io/externaljwt
    )
    """)


def settings(tmp_path: Path) -> ClusterSettings:
    return ClusterSettings(cache=tmp_path / "cache", state=tmp_path / "state", node_ip="192.0.2.2")


def test_wrapper_go_mod_pins_each_staging_module_to_its_published_version():
    assert build.wrapper_go_mod(UPSTREAM_GO_MOD, "v1.34.4") == textwrap.dedent("""\
        module agp.local/kubernetes-build

        go 1.24.0

        require k8s.io/kubernetes v1.34.4

        replace (
        \tk8s.io/api => k8s.io/api v0.34.4
        \tk8s.io/cri-api => k8s.io/cri-api v0.34.4
        \tk8s.io/externaljwt => k8s.io/externaljwt v0.34.4
        )
        """)


def test_version_is_stamped_into_the_binaries():
    flags = build.kube_ldflags("v1.34.4").split()
    assert "k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "k8s.io/component-base/version.gitMinor=34" in flags
    assert "k8s.io/client-go/pkg/version.gitVersion=v1.34.4" in flags
    helm = build.helm_ldflags("v3.19.5", "v1.34.4").split()
    assert "helm.sh/helm/v3/internal/version.version=v3.19.5" in helm
    assert "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34" in helm


def test_containerd_runs_its_own_instance_with_what_this_machine_needs(tmp_path):
    s = settings(tmp_path)
    toml = configs.containerd_config(s)
    for line in (
        "restrict_oom_score_adj = true",
        "SystemdCgroup = false",
        'snapshotter = "overlayfs"',
        'runtime_type = "io.containerd.runc.v2"',
        'sandbox_image = "localhost/agp-pause:3.10"',
        f'address = "{s.state}/run/containerd.sock"',
        f'root = "{s.state}/containerd/root"',
    ):
        assert line in toml


def test_kubelet_runs_on_cgroup_v1_without_eviction_or_image_gc(tmp_path):
    cfg = configs.kubelet_config(settings(tmp_path))
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["failCgroupV1"] is False
    assert cfg["evictionHard"] == {}
    assert cfg["imageGCHighThresholdPercent"] == 100
    assert cfg["authentication"]["anonymous"]["enabled"] is False


def test_kube_proxy_leaves_conntrack_and_localhost_alone(tmp_path):
    cfg = configs.kube_proxy_config(settings(tmp_path))
    assert cfg["conntrack"] == {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}
    assert cfg["iptables"]["localhostNodePorts"] is False
    assert cfg["nodePortAddresses"] == ["192.0.2.2/32"]


def test_cluster_ports_are_off_the_labs():
    cluster = set(ClusterSettings(node_ip="192.0.2.2").ports.values())
    assert not cluster & set(Ports().model_dump().values())


def test_etcd_takes_only_clients_with_a_certificate(tmp_path):
    etcd = configs.commands(settings(tmp_path))["etcd"]
    assert "--client-cert-auth=true" in etcd and "--peer-client-cert-auth=true" in etcd
    assert all(
        u.startswith("https://127.0.0.1:")
        for a in etcd
        if "-urls=" in a and a.split("=", 1)[1]
        for u in [a.split("=", 1)[1]]
    )


def test_certificates_carry_the_identities_rbac_expects(tmp_path):
    certs = {c.name: c for c in pki.certificates(settings(tmp_path))}
    assert (certs["kubelet"].common_name, certs["kubelet"].organization) == ("system:node:agp-node", "system:nodes")
    assert certs["kube-proxy"].common_name == "system:kube-proxy"
    assert "10.96.0.1" in certs["apiserver"].ips and "192.0.2.2" in certs["apiserver"].ips


OURS = '-m comment --comment "name: \\"agp-k8s\\" id: \\"c0ffee\\""'
PODMANS = '-m comment --comment "name: \\"podman\\" id: \\"beef\\""'
HEX = "CNI-0123456789abcdef01234567"


def test_iptables_filter_removes_the_clusters_chains_and_rules_and_keeps_the_rest():
    saved = textwrap.dedent(f"""\
        *nat
        :PREROUTING ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :KUBE-SERVICES - [0:0]
        :{HEX} - [0:0]
        :CNI-HOSTPORT-DNAT - [0:0]
        :DOCKER - [0:0]
        -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
        -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
        -A POSTROUTING -s 10.244.0.5/32 {OURS} -j {HEX}
        -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
        -A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X
        -A {HEX} -d 10.244.0.0/24 {OURS} -j ACCEPT
        -A DOCKER -i docker0 -j RETURN
        COMMIT
        """)
    assert host.without_our_rules(saved, before={"nat/PREROUTING", "nat/POSTROUTING", "nat/DOCKER"}) == textwrap.dedent(
        """\
        *nat
        :PREROUTING ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :DOCKER - [0:0]
        -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
        -A DOCKER -i docker0 -j RETURN
        COMMIT
        """
    )


def test_iptables_filter_leaves_the_cni_chains_another_network_uses_and_drops_its_own_unused_ones():
    saved = textwrap.dedent(f"""\
        *nat
        :POSTROUTING ACCEPT [0:0]
        :CNI-HOSTPORT-MASQ - [0:0]
        :CNI-fedcba9876543210fedcba98 - [0:0]
        -A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
        -A POSTROUTING -s 10.88.0.2/32 {PODMANS} -j CNI-fedcba9876543210fedcba98
        -A POSTROUTING -s 10.244.0.5/32 {OURS} -j {HEX}
        -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
        -A CNI-fedcba9876543210fedcba98 {PODMANS} -j MASQUERADE
        COMMIT
        """)
    ours_left_behind = textwrap.dedent("""\
        :CNI-DN-0123456789abcdef01234 - [0:0]
        -A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 31888 -j DNAT --to-destination 10.244.0.5:8080
        """)
    with_ours = saved.replace("COMMIT\n", ours_left_behind + "COMMIT\n")
    cleaned = host.without_our_rules(with_ours, before={"nat/POSTROUTING"})
    assert cleaned == saved.replace(f"-A POSTROUTING -s 10.244.0.5/32 {OURS} -j {HEX}\n", "")


def test_cluster_dns_is_coredns_on_the_tenth_service_address_without_privileges(tmp_path):
    s = settings(tmp_path)
    assert configs.kubelet_config(s)["clusterDNS"] == ["10.96.0.10"]
    objs = {o["kind"]: o for o in configs.dns_manifests(s)}
    assert objs["Service"]["spec"]["clusterIP"] == "10.96.0.10"
    assert {(p["port"], p["targetPort"]) for p in objs["Service"]["spec"]["ports"]} == {(53, 1053)}
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert ".:1053 {" in objs["ConfigMap"]["data"]["Corefile"]
    assert configs.api_path(objs["Deployment"]) == "/apis/apps/v1/namespaces/kube-system/deployments/coredns"


def test_the_coredns_image_the_cluster_runs_is_the_one_its_build_script_makes():
    script = (Path(__file__).parents[2] / "images" / "coredns" / "build.py").read_text()
    version = next(line.split('"')[1] for line in script.splitlines() if line.startswith("VERSION = "))
    assert f"localhost/agp-coredns:{version}" == COREDNS_IMAGE


def test_the_default_storage_class_offers_host_folders_of_the_state_as_volumes(tmp_path):
    s = settings(tmp_path)
    objs = configs.storage_manifests(s)
    sc, pvs = objs[0], objs[1:]
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert len(pvs) == s.volumes
    assert {configs.volume_path(pv).parent for pv in pvs} == {s.volumes_dir}
    assert configs.volume_path({"metadata": {"name": "someone-elses"}, "spec": {"hostPath": {"path": "/"}}}) is None
    assert configs.api_path(pvs[0]) == "/api/v1/persistentvolumes/agp-pv-00"
