"""What the cluster needs from the machine and changes on it: Debian packages, kernel settings, iptables, the
CNI bridge, mounts, network namespaces and cgroups. Every change ``up`` makes is recorded first and undone by
``down``; nothing that was there before is removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import ClusterError

log = logging.getLogger("agp.k8s")

# Debian package -> a file it installs (present means installed). --no-install-recommends keeps it small.
PACKAGES = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "etcd-server": "/usr/bin/etcd",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
    "socat": "/usr/bin/socat",
    "ethtool": "/usr/sbin/ethtool",
    "iproute2": "/usr/sbin/ip",
    "podman": "/usr/bin/podman",
    "debootstrap": "/usr/sbin/debootstrap",
    "nftables": "/usr/sbin/nft",  # to drop the nf_tables tables iptables-nft made, when there were none before
}

# Kernel settings the kubelet, kube-proxy or the CNI bridge may change machine-wide; restored by ``down``.
SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)

CNI_NETWORK = "agp-k8s"  # the name of the cluster's CNI network: the CNI plugins put it in their rules' comments
KUBE_CHAIN = re.compile(r"^KUBE-")
# Chains the CNI plugins of our conflist make: bridge's per-container masquerade chains (CNI-<hex>) and portmap's.
# Other CNI users (podman's default network, for one) make and share the same kinds, so these are removed only
# when they were absent before ``up`` and no other CNI network has rules left.
OUR_CNI_CHAIN = re.compile(r"^CNI-(HOSTPORT-|DN-)|^CNI-[0-9a-f]{20,}$")


def missing_packages() -> list[str]:
    return [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]


def ensure_packages(logdir: Path) -> None:
    """Install the Debian packages that are missing (a no-op when all are there), without starting their services."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(
            f"the cluster needs root to install {' '.join(missing)} and to run the kubelet; run it as root."
        )
    if not shutil.which("apt-get"):
        raise ClusterError(f"install these packages and run this again: {' '.join(missing)}.")
    log.info("Installing Debian packages: %s", " ".join(missing))
    logfile = logdir / "apt.log"
    logdir.mkdir(parents=True, exist_ok=True)
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:  # keep Debian from starting a system containerd or etcd of its own
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        with logfile.open("a") as out:
            for cmd in (
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            ):
                if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode != 0:
                    raise ClusterError(f"`{' '.join(cmd[:2])}` failed; see {logfile}.")
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    still = missing_packages()
    if still:
        raise ClusterError(f"apt-get did not install {' '.join(still)}; see {logfile}.")


# ---- kernel settings -----------------------------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str] = SYSCTLS) -> dict[str, str]:
    """The current value of each setting that exists on this kernel."""
    values = {}
    for name in names:
        try:
            values[name] = _sysctl_path(name).read_text().strip()
        except OSError:
            continue
    return values


def save_sysctls(path: Path) -> None:
    """Record the settings before the cluster changes them; an earlier record (of a cluster not stopped) is kept."""
    if not path.exists():
        path.write_text(json.dumps(read_sysctls(), indent=1))


FORWARDING = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding")


def busy_bridges(ours: str) -> list[str]:
    """Other bridges with interfaces attached (podman's containers, say), which need forwarding left on."""
    root = Path("/sys/class/net")
    return sorted(
        d.name for d in root.iterdir() if d.name != ours and (d / "brif").is_dir() and any((d / "brif").iterdir())
    )


def restore_sysctls(path: Path, bridge: str) -> list[str]:
    """Put back the recorded settings; returns those that differed.

    Forwarding, which the CNI bridge plugin turns on, stays on while another bridge has containers attached: turning
    it off would cut their network (the kubelet's own settings are always restored)."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    busy = busy_bridges(bridge)
    if busy:
        kept = {n: saved.pop(n) for n in FORWARDING if n in saved}
        if kept and any(read_sysctls([n]).get(n) != v for n, v in kept.items()):
            log.info("Forwarding left on: %s has containers attached.", ", ".join(busy))
    changed = []
    for name, value in saved.items():
        p = _sysctl_path(name)
        try:
            if p.read_text().strip() != value:
                p.write_text(value)
                changed.append(name)
        except OSError as e:
            log.warning("could not restore %s=%s: %s", name, value, e)
    path.unlink()
    return changed


# ---- iptables ------------------------------------------------------------------------------------------------


def chains(saved: str) -> set[str]:
    """The chains an ``iptables-save`` dump declares, as ``table/chain``."""
    found, table = set(), ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            found.add(f"{table}/{line[1:].split()[0]}")
    return found


def _rule_chain_and_target(line: str) -> tuple[str, str]:
    parts = line.split()
    return parts[1], (parts[parts.index("-j") + 1] if "-j" in parts else "")


def without_our_rules(saved: str, before: set[str] = frozenset(), network: str = CNI_NETWORK) -> str:
    """An ``iptables-save`` dump without what the cluster added and nothing else.

    Removed: every ``KUBE-*`` chain (kube-proxy's, the kubelet's) and the rules that jump to one; every rule whose
    comment names our CNI network; and the CNI chains our plugins make (``CNI-<hex>``, ``CNI-HOSTPORT-*``,
    ``CNI-DN-*``) that were absent ``before`` (``table/chain`` names), when no other CNI network has rules left.
    """
    mine = f'\\"{network}\\"'  # iptables-save writes the comment's quotes escaped: name: \"agp-k8s\"
    lines = saved.splitlines()
    kept = [
        line
        for line in lines
        if not (line.startswith("-A ") and (mine in line or any(map(KUBE_CHAIN.match, _rule_chain_and_target(line)))))
    ]
    others = any(line.startswith("-A ") and 'name: \\"' in line for line in kept)
    candidates, table = set(), ""
    for line in kept:
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if OUR_CNI_CHAIN.match(chain) and f"{table}/{chain}" not in before:
                candidates.add(chain)
    # With no other CNI network, all of ours go; with one, those nothing jumps to any more (repeated, since dropping
    # a chain drops its own jumps).
    drop: set[str] = set()
    while True:
        rules = [_rule_chain_and_target(line) for line in kept if line.startswith("-A ")]
        referenced = {target for chain, target in rules if chain not in drop}
        more = {c for c in candidates - drop if not others or c not in referenced}
        if not more:
            break
        drop |= more
    out = []
    for line in kept:
        if line.startswith(":"):
            chain = line[1:].split()[0]
            if KUBE_CHAIN.match(chain) or chain in drop:
                continue
        if line.startswith("-A ") and any(c in drop for c in _rule_chain_and_target(line)):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def iptables_dump(tool: str) -> str:
    if not shutil.which(f"{tool}-save"):
        return ""
    r = subprocess.run([f"{tool}-save"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def remove_our_iptables(before: dict[str, list[str]] | None = None) -> list[str]:
    """Remove what the cluster added to iptables and ip6tables (see ``without_our_rules``); returns the tools changed.

    ``before`` maps each tool to the ``table/chain`` names that existed before ``up``."""
    changed = []
    for tool in ("iptables", "ip6tables"):
        saved = iptables_dump(tool)
        if not saved:
            continue
        cleaned = without_our_rules(saved, set((before or {}).get(tool, [])))
        if cleaned.split() == saved.split():
            continue
        r = subprocess.run([f"{tool}-restore"], input=cleaned, capture_output=True, text=True)
        if r.returncode != 0:
            log.warning("%s-restore failed: %s", tool, r.stderr.strip())
        else:
            changed.append(tool)
    return changed


IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
FAMILIES = {"iptables": "ip", "ip6tables": "ip6"}


def nft_tables() -> list[str]:
    """The nf_tables tables iptables-nft can make (``ip nat``, ``ip6 filter``, ...) that exist now."""
    if not shutil.which("nft"):
        return []
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    found = [line.split(None, 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("table ")]
    wanted = {f"{fam} {t}" for fam in FAMILIES.values() for t in IPTABLES_TABLES}
    return [t for t in found if t in wanted]


def drop_empty_new_tables(before: Iterable[str]) -> list[str]:
    """Delete the iptables-nft tables that were absent before ``up`` and hold no rule now.

    An empty ``nat`` table still hooks into netfilter and makes conntrack track every connection of the machine,
    so what the cluster's iptables made is removed, not only emptied."""
    dropped = []
    for table in sorted(set(nft_tables()) - set(before)):
        family, name = table.split()
        tool = next(t for t, f in FAMILIES.items() if f == family)
        dump = subprocess.run([f"{tool}-save", "-t", name], capture_output=True, text=True).stdout
        if any(line.startswith("-A ") for line in dump.splitlines()):
            continue
        if subprocess.run(["nft", "delete", "table", family, name], capture_output=True).returncode == 0:
            dropped.append(table)
    return dropped


# ---- bridge, mounts, network namespaces, cgroups -------------------------------------------------------------


def delete_link(name: str) -> bool:
    if not Path("/sys/class/net", name).exists():
        return False
    subprocess.run(["ip", "link", "delete", name], capture_output=True)
    return True


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    points = []
    prefix = str(root.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(root: Path) -> int:
    count = 0
    for point in mounts_under(root):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
        count += 1
    return count


# Fixed paths the kubelet and containerd create whatever their configured folders (the device-plugin socket,
# the containers' log links, the shims' sockets): removed by ``down`` when they were not there before ``up``.
FIXED_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/run/netns")


def absent_paths() -> list[str]:
    return [p for p in FIXED_PATHS if not os.path.lexists(p)]


def remove_paths(paths: Iterable[str]) -> list[str]:
    """Remove these paths (recorded as absent before ``up``), mounts below them first."""
    removed = []
    for p in paths:
        path = Path(p)
        if not os.path.lexists(path):
            continue
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(p)
    return removed


NETNS_DIR = Path("/run/netns")


def netns_names() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def remove_netns(names: Iterable[str]) -> int:
    count = 0
    for name in names:
        path = NETNS_DIR / name
        subprocess.run(["umount", str(path)], capture_output=True)
        try:
            path.unlink()
            count += 1
        except OSError:
            pass
    return count


CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBE_CGROUP = "kubepods"


def kube_cgroups() -> list[Path]:
    """The kubelet's cgroup folders in every v1 hierarchy, deepest first."""
    found = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / KUBE_CGROUP
        if top.is_dir():
            found.extend(p for p in top.rglob("*") if p.is_dir())
            found.append(top)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def pids_in_kube_cgroups() -> set[int]:
    """Processes in the kubelet's pod cgroups: the containers of the cluster's pods."""
    pids: set[int] = set()
    for group in kube_cgroups():
        try:
            pids.update(int(x) for x in (group / "cgroup.procs").read_text().split())
        except OSError:
            continue
    return pids


def remove_kube_cgroups(attempts: int = 10) -> int:
    """rmdir the kubelet's cgroup folders once they are empty."""
    left = kube_cgroups()
    for _ in range(attempts):
        for group in left:
            with contextlib.suppress(OSError):
                group.rmdir()
        left = [g for g in left if g.exists()]
        if not left:
            break
        time.sleep(0.5)
    return len(left)
