"""Start, check and stop the single-node cluster. Processes are started and stopped by pid, never by name."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
import yaml

from . import build, configs, host, pki
from .errors import ClusterError
from .settings import ClusterSettings

log = logging.getLogger("agp.k8s")

REPO = Path(__file__).resolve().parents[2]
PAUSE_BUILD = REPO / "images" / "pause" / "build.py"
COREDNS_BUILD = REPO / "images" / "coredns" / "build.py"
LOAD = REPO / "images" / "load.py"

START_ORDER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)
# Stopped first: the controllers, so that nothing recreates the pods being removed; last: the store.
STOP_ORDER = (
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "containerd",
    "kube-apiserver",
    "etcd",
)


class Cluster:
    """The cluster described by ``settings``: ``up`` / ``status`` / ``down``."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.pid_dir = settings.state / "pids"

    # ---- processes ------------------------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def process(self, name: str) -> psutil.Process | None:
        """The running process ``up`` started as ``name`` (checked by pid and start time), or None."""
        try:
            rec = json.loads(self._pidfile(name).read_text())
            proc = psutil.Process(rec["pid"])
            if abs(proc.create_time() - rec["create_time"]) < 1 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        return None

    def _start(self, name: str, cmd: list[str]) -> psutil.Process:
        s = self.settings
        logfile = s.logs / f"{name}.log"
        env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        with logfile.open("a") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n")
            out.flush()
            popen = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=s.state,
                env=env,
                start_new_session=True,
            )
        proc = psutil.Process(popen.pid)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self._pidfile(name).write_text(json.dumps({"pid": popen.pid, "create_time": proc.create_time(), "cmd": cmd}))
        return proc

    def _stop(self, name: str, timeout: float = 15) -> bool:
        proc = self.process(name)
        if proc is None:
            self._pidfile(name).unlink(missing_ok=True)
            return False
        _terminate([proc], timeout)
        self._pidfile(name).unlink(missing_ok=True)
        return True

    def _wait(self, what: str, check: Callable[[], bool], timeout: float, component: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if component and self.process(component) is None:
                tail = _tail(self.settings.logs / f"{component}.log")
                raise ClusterError(
                    f"{component} exited while starting ({tail}); see {self.settings.logs / f'{component}.log'}."
                )
            try:
                if check():
                    return
            except (requests.RequestException, OSError, ValueError):
                pass
            time.sleep(0.5)
        where = self.settings.logs / f"{component or 'kubelet'}.log"
        raise ClusterError(f"{what} did not happen within {timeout:.0f} s; see {where}.")

    # ---- API ------------------------------------------------------------------------------------------------

    @property
    def api(self) -> str:
        return f"https://{self.settings.node_ip}:{self.settings.apiserver_port}"

    def _session(self) -> requests.Session:
        p = configs.pki(self.settings)
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides the cluster's CA below, and proxies apply
        session.cert = (str(p / "admin.crt"), str(p / "admin.key"))
        session.verify = str(p / "ca.crt")
        return session

    def _get(self, path: str, timeout: float = 5) -> dict:
        r = self._session().get(self.api + path, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def node_ready(self) -> bool:
        try:
            node = self._get(f"/api/v1/nodes/{self.settings.node_name}")
        except (requests.RequestException, OSError, ValueError):
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    # ---- status ---------------------------------------------------------------------------------------------

    def status(self) -> dict:
        """Which processes run, whether the node is Ready, and where the kubeconfig is."""
        procs = {name: self.process(name) for name in START_ORDER}
        running = [n for n, p in procs.items() if p]
        ready = bool(running) and self.node_ready()
        all_up = len(running) == len(START_ORDER) and ready
        if all_up:
            summary = f"running: node {self.settings.node_name} Ready; KUBECONFIG={self.settings.kubeconfig}"
        elif running:
            down = [n for n in START_ORDER if n not in running]
            summary = f"partly running: {', '.join(down)} not running" + ("" if ready else ", node not Ready")
        else:
            summary = "not running"
        return {
            "running": all_up,
            "summary": summary,
            "node_ready": ready,
            "kubeconfig": str(self.settings.kubeconfig),
            "helm": str(self.settings.helm_bin),
            "kubectl": str(self.settings.kube_bin / "kubectl"),
            "containerd_socket": str(self.settings.containerd_socket),
            "state": str(self.settings.state),
            "processes": {n: (p.pid if p else None) for n, p in procs.items()},
            "memory_mb": {n: round(p.memory_info().rss / 2**20) for n, p in procs.items() if p},
        }

    # ---- up -------------------------------------------------------------------------------------------------

    def up(self) -> Path:
        """Build what is missing, start every process, wait for the node to be Ready; returns the kubeconfig."""
        s = self.settings
        st = self.status()
        if st["running"]:
            log.info("The cluster already runs.")
            return s.kubeconfig
        if any(st["processes"].values()):
            raise ClusterError(f"the cluster is {st['summary']}; run `python3 -m tests.k8s down` first.")
        started = time.monotonic()
        s.logs.mkdir(parents=True, exist_ok=True)
        self._preflight()
        images = self.prepare()
        self._write_configs()
        host.save_sysctls(s.state / "sysctls-before.json")
        before = s.state / "host-before.json"
        if not before.exists():
            before.write_text(
                json.dumps(
                    {
                        "netns": sorted(host.netns_names()),
                        "absent": host.absent_paths(),
                        "nft": host.nft_tables(),
                        "iptables": {t: sorted(host.chains(host.iptables_dump(t))) for t in ("iptables", "ip6tables")},
                    }
                )
            )
        try:
            self._start_all(images)
        except BaseException:
            log.error("Start failed; stopping what was started.")
            self.down(keep_state=True)
            raise
        log.info("Cluster up in %d s: node %s Ready.", time.monotonic() - started, s.node_name)
        return s.kubeconfig

    def _preflight(self) -> None:
        s = self.settings
        if os.geteuid() != 0:
            raise ClusterError("the kubelet and containerd need root; run this as root.")
        if not Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
            raise ClusterError(
                "this tool runs Kubernetes 1.34 on cgroup v1 and finds no v1 memory hierarchy at /sys/fs/cgroup/memory."
            )
        for what, port in s.ports.items():
            holder = _port_holder(port)
            if holder:
                raise ClusterError(
                    f"port {port}, which {what} needs, is taken by {holder}; stop it or change the cluster's port."
                )
        if Path("/sys/class/net", s.bridge).exists():
            raise ClusterError(
                f"a network interface named {s.bridge} exists already; run `python3 -m tests.k8s down` or remove it."
            )

    def prepare(self, platform_images: bool = False) -> list[Path]:
        """Everything the cluster needs built, without starting it: host packages, Kubernetes, Helm, the pause and
        CoreDNS images (returned as archives) and, with ``platform_images``, Antigravity's images (images/build.py).
        Found in the caches when built before; one process at a time (:func:`build.build_lock`)."""
        s = self.settings
        s.logs.mkdir(parents=True, exist_ok=True)
        with build.build_lock(s):
            host.ensure_packages(s.logs)
            build.kubernetes(s)
            build.helm(s)
            images = [self._image(PAUSE_BUILD), self._image(COREDNS_BUILD)]
            if platform_images:
                r = subprocess.run([sys.executable, str(REPO / "images" / "build.py")], stdout=sys.stderr)
                if r.returncode != 0:
                    raise ClusterError("images/build.py failed (its error is above).")
        return images

    def _image(self, script: Path) -> Path:
        """Run an image's build script (its progress goes to our stderr); returns the archive it prints."""
        out = subprocess.run(
            [sys.executable, str(script), "--cache", str(self.settings.images_cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        if out.returncode != 0:
            raise ClusterError(f"{script.relative_to(REPO)} failed (its error is above).")
        return Path(out.stdout.strip().splitlines()[-1])

    def _write_configs(self) -> None:
        s = self.settings
        for d in (s.state / "run", s.state / "cni" / "net.d", s.state / "kubelet", s.state / "etcd"):
            d.mkdir(parents=True, exist_ok=True)
        (s.state / "etcd").chmod(0o700)
        pki.ensure(s)
        (s.state / "containerd.toml").write_text(configs.containerd_config(s))
        (s.state / "cni" / "net.d" / "10-agp-k8s.conflist").write_text(json.dumps(configs.cni_conflist(s), indent=2))
        (s.state / "kubelet.yaml").write_text(yaml.safe_dump(configs.kubelet_config(s), sort_keys=False))
        (s.state / "kube-proxy.yaml").write_text(yaml.safe_dump(configs.kube_proxy_config(s), sort_keys=False))
        for i in range(s.volumes):  # world-writable: the pods that use them run as any user (a test cluster)
            d = s.volumes_dir / f"pv-{i:02d}"
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o777)

    def _start_all(self, images: list[Path]) -> None:
        s = self.settings
        cmds = configs.commands(s)
        p = configs.pki(s)
        api = self._session()

        self._start("etcd", cmds["etcd"])
        etcd = requests.Session()
        etcd.trust_env = False
        etcd.cert = (str(p / "apiserver-etcd-client.crt"), str(p / "apiserver-etcd-client.key"))
        etcd.verify = str(p / "ca.crt")
        etcd_health = f"https://127.0.0.1:{s.etcd_client_port}/health"
        self._wait("etcd answering", lambda: etcd.get(etcd_health, timeout=2).ok, 30, "etcd")

        self._start("kube-apiserver", cmds["kube-apiserver"])
        self._wait("kube-apiserver ready", lambda: api.get(f"{self.api}/readyz", timeout=2).ok, 90, "kube-apiserver")
        log.info("  control plane: etcd and kube-apiserver ready")
        self._start("kube-controller-manager", cmds["kube-controller-manager"])
        self._start("kube-scheduler", cmds["kube-scheduler"])

        self._start("containerd", cmds["containerd"])
        self._wait("containerd's socket", s.containerd_socket.exists, 30, "containerd")
        self.load_images(images)

        self._start("kubelet", cmds["kubelet"])
        self._start("kube-proxy", cmds["kube-proxy"])
        self._wait(f"node {s.node_name} Ready", self.node_ready, 120, "kubelet")
        self._wait(
            "the default service account",
            lambda: api.get(f"{self.api}/api/v1/namespaces/default/serviceaccounts/default", timeout=2).ok,
            60,
            "kube-controller-manager",
        )
        self._apply(configs.dns_manifests(s) + configs.storage_manifests(s))
        self._wait("cluster DNS (CoreDNS) available", self._dns_available, 90, "kubelet")
        for name in ("kube-controller-manager", "kube-scheduler", "kube-proxy"):
            if self.process(name) is None:
                raise ClusterError(f"{name} exited; see {s.logs / (name + '.log')}.")

    def _apply(self, objects: list[dict]) -> None:
        """Server-side apply of ``objects`` (idempotent)."""
        session = self._session()
        for obj in objects:
            r = session.patch(
                self.api + configs.api_path(obj),
                params={"fieldManager": "agp-k8s", "force": "true"},
                data=json.dumps(obj),
                headers={"Content-Type": "application/apply-patch+yaml"},
                timeout=10,
            )
            if not r.ok:
                raise ClusterError(
                    f"applying {obj['kind']} {obj['metadata']['name']} failed: {r.status_code} {r.text[:200]}"
                )

    def _dns_available(self) -> bool:
        dep = self._get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        return dep.get("status", {}).get("availableReplicas", 0) >= 1

    def recycle_volumes(self) -> list[str]:
        """Empty the cluster's released volumes and offer them again; returns their names."""
        session = self._session()
        pvs = self._get(f"/api/v1/persistentvolumes?labelSelector={configs.VOLUME_LABEL}%3Dtrue")["items"]
        recycled = []
        for pv in pvs:
            path = configs.volume_path(pv)
            if (
                pv.get("status", {}).get("phase") != "Released"
                or path is None
                or self.settings.state not in path.parents
            ):
                continue
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            r = session.patch(
                f"{self.api}/api/v1/persistentvolumes/{pv['metadata']['name']}",
                data=json.dumps({"spec": {"claimRef": None}}),
                headers={"Content-Type": "application/merge-patch+json"},
                timeout=10,
            )
            if r.ok:
                recycled.append(pv["metadata"]["name"])
        return recycled

    def load_images(self, archives: list[Path | str]) -> None:
        """Import images (archive files or local podman names) into the cluster's containerd (namespace k8s.io)."""
        cmd = [sys.executable, str(LOAD), "--address", str(self.settings.containerd_socket), *map(str, archives)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ClusterError(
                f"importing images into containerd failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
            )

    # ---- down -----------------------------------------------------------------------------------------------

    def down(self, keep_state: bool = False) -> None:
        """Stop what ``up`` started, remove the pods' containers, mounts, bridge and iptables rules, and restore the
        kernel settings; the state folder is emptied except its logs (and kept whole with ``keep_state``)."""
        s = self.settings
        done: list[str] = []
        if self.process("kube-apiserver") and self.process("kubelet"):
            done += [f"{n} stopped" for n in ("kube-controller-manager", "kube-scheduler") if self._stop(n)]
            removed = self._remove_pods()
            if removed:
                done.append(f"{removed} pods removed")
        for name in STOP_ORDER:
            if name == "containerd":
                self._stop_containers()
            if self._stop(name):
                done.append(f"{name} stopped")
        # The containers' processes, should any have outlived their shims: they are in the kubelet's cgroups.
        _terminate([_proc(pid) for pid in host.pids_in_kube_cgroups()], 5)
        unmounted = host.unmount_under(s.state)
        if unmounted:
            done.append(f"{unmounted} mounts removed")
        before_file = s.state / "host-before.json"
        before = json.loads(before_file.read_text()) if before_file.exists() else {}
        ours = [n for n in host.netns_names() - set(before.get("netns", [])) if n.startswith("cni-")]
        if before_file.exists() and host.remove_netns(ours):
            done.append(f"{len(ours)} network namespaces removed")
        removed = host.remove_paths(before.get("absent", []))
        if removed:
            done.append(f"removed {', '.join(removed)}")
        changed = host.remove_our_iptables(before.get("iptables"))
        if changed:
            done.append(f"{' and '.join(changed)} rules of the cluster removed")
        dropped = host.drop_empty_new_tables(before["nft"]) if "nft" in before else []
        if dropped:
            done.append(f"empty tables {', '.join(dropped)} dropped")
        before_file.unlink(missing_ok=True)
        if host.delete_link(s.bridge):
            done.append(f"bridge {s.bridge} removed")
        restored = host.restore_sysctls(s.state / "sysctls-before.json", s.bridge)
        if restored:
            done.append(f"kernel settings restored: {', '.join(restored)}")
        left = host.remove_kube_cgroups()
        if left:
            log.warning("%d cgroup folders of the kubelet could not be removed", left)
        if not keep_state and s.state.exists():
            for child in s.state.iterdir():
                if child != s.logs:
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        log.info("Cluster down%s.", (": " + "; ".join(done)) if done else " (nothing was running)")

    def _remove_pods(self, timeout: float = 60) -> int:
        """Delete every pod and wait for the kubelet to confirm (it stops the containers and frees their network)."""
        session = self._session()
        try:
            pods = self._get("/api/v1/pods")["items"]
        except (requests.RequestException, ValueError):
            return 0
        namespaces = {p["metadata"]["namespace"] for p in pods}
        for ns in namespaces:
            session.delete(f"{self.api}/api/v1/namespaces/{ns}/pods", json={"gracePeriodSeconds": 1}, timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self._get("/api/v1/pods")["items"]:
                    break
            except (requests.RequestException, ValueError):
                break
            time.sleep(1)
        return len(pods)

    def _stop_containers(self) -> None:
        """Stop the shims our containerd started (they are found by our containerd's socket, which they name)."""
        sock = str(self.settings.containerd_socket)
        shims = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if sock in cmd and "-address" in cmd and proc.pid != os.getpid():
                shims.append(proc)
        _terminate([_proc(pid) for pid in host.pids_in_kube_cgroups()], 5)
        _terminate(shims, 5)


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _terminate(procs: list[psutil.Process | None], timeout: float) -> None:
    procs = [p for p in procs if p is not None]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _port_holder(port: int) -> str | None:
    """Who listens on TCP ``port`` (any address), or None."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            try:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})" if conn.pid else "another process"
            except psutil.Error:
                return f"pid {conn.pid}"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no owner
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return "another process"
    return None


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return " / ".join(text[-lines:])[-300:] or "empty log"
