"""Every config file and command line of the cluster, built from the settings with no I/O.

Why each setting is as it is: ``../shared/KUBERNETES-HERE.md`` (runc and cgroupfs because the machine has cgroup
v1 and no CAP_SYS_RESOURCE, ``restrict_oom_score_adj`` for the same reason, ``failCgroupV1: false`` because
Kubernetes 1.34 is the last to run on cgroup v1 by default).
"""

from __future__ import annotations

from pathlib import Path

from .host import CNI_NETWORK
from .settings import COREDNS_IMAGE, PAUSE_IMAGE, ClusterSettings

CNI_BIN_DIR = "/usr/lib/cni"  # where Debian's containernetworking-plugins installs them


def pki(s: ClusterSettings) -> Path:
    return s.state / "pki"


def containerd_config(s: ClusterSettings) -> str:
    """containerd's own instance: root, state and socket in the state folder (a system containerd is untouched)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{s.state / "containerd" / "root"}"
state = "{s.state / "containerd" / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{s.containerd_socket}"

[ttrpc]
  address = "{s.containerd_socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{s.state / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{s.state / "cni" / "net.d"}"
"""


def cni_conflist(s: ClusterSettings) -> dict:
    """One bridge network with host-local addresses; containerd adds the loopback itself."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": s.bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": s.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(s.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(s: ClusterSettings) -> dict:
    """KubeletConfiguration for cgroup v1 with cgroupfs, no swap check, no disk-pressure eviction or image GC."""
    p = pki(s)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": s.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(p / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(p / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(p / "kubelet-serving.key"),
        "containerRuntimeEndpoint": f"unix://{s.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        "evictionHard": {},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "clusterDomain": "cluster.local",
        "clusterDNS": [s.dns_ip],
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(s.state / "pod-logs"),
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kube_proxy_config(s: ClusterSettings) -> dict:
    """iptables mode; leaves the host's conntrack sysctls and localhost routing alone, NodePorts on the node IP only."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(s.state / "kube-proxy.kubeconfig")},
        "hostnameOverride": s.node_name,
        "mode": "iptables",
        "clusterCIDR": s.pod_cidr,
        "bindAddress": s.node_ip,
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        "nodePortAddresses": [f"{s.node_ip}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # 0 means "do not touch": otherwise kube-proxy raises nf_conntrack_max and the TCP timeouts machine-wide.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def commands(s: ClusterSettings) -> dict[str, list[str]]:
    """The command line of each process ``up`` starts, in start order."""
    p, st, b = pki(s), s.state, s.kube_bin
    etcd_url = f"https://127.0.0.1:{s.etcd_client_port}"
    peer_url = f"https://127.0.0.1:{s.etcd_peer_port}"
    return {
        "etcd": [
            "etcd",
            "--name=agp-k8s",
            f"--data-dir={st / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=agp-k8s={peer_url}",
            "--initial-cluster-state=new",
            f"--cert-file={p / 'etcd-server.crt'}",
            f"--key-file={p / 'etcd-server.key'}",
            f"--trusted-ca-file={p / 'ca.crt'}",
            "--client-cert-auth=true",
            f"--peer-cert-file={p / 'etcd-server.crt'}",
            f"--peer-key-file={p / 'etcd-server.key'}",
            f"--peer-trusted-ca-file={p / 'ca.crt'}",
            "--peer-client-cert-auth=true",
            "--logger=zap",
        ],
        "kube-apiserver": [
            str(b / "kube-apiserver"),
            f"--advertise-address={s.node_ip}",
            f"--bind-address={s.node_ip}",
            f"--secure-port={s.apiserver_port}",
            f"--etcd-servers={etcd_url}",
            f"--etcd-cafile={p / 'ca.crt'}",
            f"--etcd-certfile={p / 'apiserver-etcd-client.crt'}",
            f"--etcd-keyfile={p / 'apiserver-etcd-client.key'}",
            f"--service-cluster-ip-range={s.service_cidr}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(b / "kube-controller-manager"),
            f"--kubeconfig={st / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={st / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={st / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={s.service_cidr}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "kube-scheduler": [
            str(b / "kube-scheduler"),
            f"--kubeconfig={st / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={st / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={st / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "containerd": ["containerd", f"--config={st / 'containerd.toml'}"],
        "kubelet": [
            str(b / "kubelet"),
            f"--config={st / 'kubelet.yaml'}",
            f"--kubeconfig={st / 'kubelet.kubeconfig'}",
            f"--root-dir={st / 'kubelet'}",
            f"--cert-dir={p}",
            f"--node-ip={s.node_ip}",
            f"--hostname-override={s.node_name}",
            "--v=1",
        ],
        "kube-proxy": [str(b / "kube-proxy"), f"--config={st / 'kube-proxy.yaml'}", "--v=1"],
    }


COREFILE = """.:1053 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 5
    loop
}
"""


def dns_manifests(s: ClusterSettings) -> list[dict]:
    """CoreDNS as the cluster's DNS (``kube-dns`` at ``s.dns_ip``): non-root on port 1053, restricted, one replica.

    Upstream is the node's own resolver (``dnsPolicy: Default``); caches are short so tests see changes quickly."""
    ns, name, labels = "kube-system", "coredns", {"k8s-app": "kube-dns"}
    meta = {"name": name, "namespace": ns, "labels": labels}
    container = {
        "name": "coredns",
        "image": COREDNS_IMAGE,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "170Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": name}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": s.dns_ip,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]


VOLUME_LABEL = "agp-k8s/volume"


def storage_manifests(s: ClusterSettings) -> list[dict]:
    """The default StorageClass ``standard`` and ``s.volumes`` hostPath PersistentVolumes for it.

    Claims bind when their pod is scheduled; a released volume is emptied and offered again by
    ``Cluster.recycle_volumes`` (there is no provisioner to delete it). Pods may use them under the restricted Pod
    Security profile: it forbids hostPath volumes in a pod, not claims bound to one."""
    objects: list[dict] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        }
    ]
    for i in range(s.volumes):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"agp-pv-{i:02d}", "labels": {VOLUME_LABEL: "true"}},
                "spec": {
                    "storageClassName": "standard",
                    "capacity": {"storage": s.volume_size},
                    "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(s.volumes_dir / f"pv-{i:02d}"), "type": "Directory"},
                },
            }
        )
    return objects


# Where each kind lives in the API (for server-side apply by the cluster tool, which has no kubectl of its own yet
# when it starts).
API_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "StorageClass": "/apis/storage.k8s.io/v1/storageclasses",
    "PersistentVolume": "/api/v1/persistentvolumes",
}


def api_path(obj: dict) -> str:
    """The URL path of ``obj`` in the API, for a server-side apply (PATCH)."""
    meta = obj["metadata"]
    return API_PATHS[obj["kind"]].format(namespace=meta.get("namespace", "")) + "/" + meta["name"]


def volume_path(pv: dict) -> Path | None:
    """The host folder of one of the cluster's own volumes, or None for any other PersistentVolume."""
    if pv.get("metadata", {}).get("labels", {}).get(VOLUME_LABEL) != "true":
        return None
    path = pv.get("spec", {}).get("hostPath", {}).get("path")
    return Path(path) if path else None
