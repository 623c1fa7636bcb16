"""Kubernetes and Helm built from the Go module proxy into a cache folder keyed by version.

``k8s.io/kubernetes`` cannot be ``go install``-ed (its go.mod replaces its staging modules with local folders), so
a small wrapper module requires it and pins each staging module to its published ``v0.x`` version. The Go build
and module caches are Go's own (``go env GOCACHE GOMODCACHE``) and are kept between runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import ClusterError
from .settings import COMPONENTS, ClusterSettings

BINARIES = (*COMPONENTS, "kubectl")  # kubectl of the cluster's own version, for tests and users

log = logging.getLogger("agp.k8s")


@contextlib.contextmanager
def build_lock(settings: ClusterSettings):
    """Held while this machine builds the cluster's binaries and images (``prepare``, ``up``): CI prepares them in
    the background while the lab's tiers run, and the cluster tier's ``up`` then waits for that instead of building
    the same things at the same time. An advisory flock, released when the process ends however it ends."""
    settings.cache.mkdir(parents=True, exist_ok=True)
    with (settings.cache / "build.lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Another process builds the cluster's parts on this machine; waiting for it to finish.")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


WRAPPER_MODULE = "agp.local/kubernetes-build"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s*=>\s*\./staging/src/\1\s*$", re.M)
_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.M)


# ---- pure builders -------------------------------------------------------------------------------------------


def staging_version(kubernetes_version: str) -> str:
    """The published version of the staging modules that belong to a Kubernetes release: v1.34.4 -> v0.34.4."""
    _, minor, patch = kubernetes_version.lstrip("v").split(".")
    return f"v0.{minor}.{patch}"


def wrapper_go_mod(upstream_go_mod: str, kubernetes_version: str) -> str:
    """The wrapper's go.mod: require Kubernetes, and pin every staging module upstream's go.mod replaces locally."""
    staging = _STAGING_REPLACE.findall(upstream_go_mod)
    if not staging:
        raise ValueError("upstream go.mod has no replace of a ./staging/src module")
    go = _GO_DIRECTIVE.search(upstream_go_mod)
    pinned = staging_version(kubernetes_version)
    lines = [
        f"module {WRAPPER_MODULE}",
        "",
        f"go {go.group(1) if go else '1.24.0'}",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
        "replace (",
        *(f"\t{mod} => {mod} {pinned}" for mod in staging),
        ")",
        "",
    ]
    return "\n".join(lines)


def tools_go(components: Sequence[str] = COMPONENTS) -> str:
    """A file that imports the commands, so that ``go mod tidy`` records everything they need."""
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in components)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def kube_ldflags(kubernetes_version: str) -> str:
    """Linker flags that stamp the version (without them the server says v0.0.0 and Helm's kubeVersion checks fail)."""
    major, minor, _ = kubernetes_version.lstrip("v").split(".")
    return " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={kubernetes_version}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            f"-X k8s.io/client-go/pkg/version.gitVersion={kubernetes_version}",
            f"-X k8s.io/client-go/pkg/version.gitMajor={major}",
            f"-X k8s.io/client-go/pkg/version.gitMinor={minor}",
        ]
    )


def helm_ldflags(helm_version: str, kubernetes_version: str) -> str:
    """Helm's own version, and the Kubernetes version ``helm template`` and ``lint`` assume (as Helm's Makefile)."""
    major, minor, _ = kubernetes_version.lstrip("v").split(".")
    return " ".join(
        [
            "-s -w",
            f"-X helm.sh/helm/v3/internal/version.version={helm_version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor={major}",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor}",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={major}",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
        ]
    )


# ---- running Go ----------------------------------------------------------------------------------------------


def go_env(**extra: str) -> dict[str, str]:
    """The environment Go runs in: static binaries, the local toolchain only, no VCS stamping."""
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false", **extra)
    return env


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise ClusterError(
            "Go 1.24 or newer must be on PATH to build Kubernetes and Helm; install it and run this again."
        )
    return go


def run_go(
    args: Sequence[str],
    *,
    cwd: Path,
    logfile: Path,
    what: str,
    niceness: int,
    total: int | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``go`` at low priority, its output to ``logfile``; every 30 s log how many packages it has compiled."""
    cmd = ["nice", "-n", str(niceness), _go(), *args]
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    count = 0
    with logfile.open("a") as out:
        out.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=go_env(**(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

        def pump() -> None:
            nonlocal count
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if re.match(r"^[\w.\-]+(/[\w.\-~+]+)+$", line.strip()):  # `go build -v` names each package it compiles
                    count += 1

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        last = start
        while proc.poll() is None:
            time.sleep(1)
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                done = f"{min(count, total)}/{total}" if total else str(count)
                stage = "; linking" if total and count >= total else ""
                log.info("  %s: %s packages compiled%s, %d s", what, done, stage, last - start)
        reader.join()
    if proc.returncode != 0:
        raise ClusterError(f"{what} failed (go exited {proc.returncode}); see {logfile}.")
    log.info("  %s: done in %d s", what, time.monotonic() - start)


def _go_output(args: Sequence[str], cwd: Path) -> str:
    r = subprocess.run([_go(), *args], cwd=cwd, env=go_env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise ClusterError(f"`go {' '.join(args)}` failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}.")
    return r.stdout


def kubernetes(settings: ClusterSettings) -> Path:
    """The folder holding the Kubernetes binaries (the five components and kubectl); builds those missing."""
    bin_dir = settings.kube_bin
    missing = [c for c in BINARIES if not (bin_dir / c).is_file()]
    if not missing:
        return bin_dir
    version = settings.kubernetes_version
    root = bin_dir.parent
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    logfile = settings.logs / f"build-kubernetes-{version}.log"
    log.info(
        "Building %s %s (cold: about 20 min for all on 2 cores, at nice %d; log: %s)",
        ", ".join(missing),
        version,
        settings.niceness,
        logfile,
    )
    info = json.loads(_go_output(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd=src))
    if info.get("Error"):
        raise ClusterError(f"the Go module proxy did not serve k8s.io/kubernetes@{version}: {info['Error']}")
    (src / "go.mod").write_text(wrapper_go_mod(Path(info["GoMod"]).read_text(), version))
    (src / "tools.go").write_text(tools_go(BINARIES))
    run_go(
        ["mod", "tidy"], cwd=src, logfile=logfile, what="downloading Kubernetes' modules", niceness=settings.niceness
    )

    pkgs = [f"k8s.io/kubernetes/cmd/{c}" for c in missing]
    listed = _go_output(["list", "-deps", "-f", "{{.ImportPath}}", *pkgs], cwd=src)  # -v names std ones too
    total = sum(1 for line in listed.splitlines() if line.strip())
    tmp = root / "bin.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    run_go(
        ["build", "-v", "-trimpath", "-ldflags", kube_ldflags(version), "-o", f"{tmp}/", *pkgs],
        cwd=src,
        logfile=logfile,
        what=f"compiling {', '.join(missing)}",
        niceness=settings.niceness,
        total=total,
    )
    probe = tmp / missing[0]
    out = subprocess.run(
        [probe, "--version"] if missing[0] != "kubectl" else [probe, "version", "--client"],
        capture_output=True,
        text=True,
    ).stdout
    if version not in out:
        raise ClusterError(f"the {missing[0]} just built says {out.strip()!r}, not {version}; see {logfile}.")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in missing:
        (tmp / name).rename(bin_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)
    return bin_dir


def helm(settings: ClusterSettings) -> Path:
    """The ``helm`` binary of ``settings.helm_version``; built if missing."""
    target = settings.helm_bin
    if target.is_file():
        return target
    version = settings.helm_version
    logfile = settings.logs / f"build-helm-{version}.log"
    log.info("Building Helm %s (about 5 min cold; log: %s)", version, logfile)
    tmp = target.parent / "bin.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ldflags = helm_ldflags(version, settings.kubernetes_version)
    run_go(
        ["install", "-v", "-trimpath", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@{version}"],
        cwd=target.parent,
        logfile=logfile,
        what="compiling helm",
        niceness=settings.niceness,
        env={"GOBIN": str(tmp)},
    )
    out = subprocess.run([tmp / "helm", "version", "--short"], capture_output=True, text=True).stdout.strip()
    if not out.startswith(version):
        raise ClusterError(f"the helm just built says {out!r}, not {version}; see {logfile}.")
    (tmp / "helm").rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target
