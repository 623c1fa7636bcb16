"""``python3 -m tests.k8s up|down|status|build|load`` from the repository's root (see the package's docstring)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .errors import ClusterError
from .settings import ClusterSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.k8s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing, start the cluster, wait for the node, print the kubeconfig path")
    sub.add_parser("down", help="stop what `up` started and restore what it changed on the machine")
    st = sub.add_parser("status", help="say whether the cluster runs (exit 0) or not (exit 3)")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    sub.add_parser("build", help="only build (or find in the cache) Kubernetes and Helm")
    sub.add_parser(
        "prepare",
        help="build (or find in the caches) everything the cluster and compose tiers need without starting anything: "
        "host packages, Kubernetes, Helm, the cluster's images and Antigravity's (CI runs it in the background)",
    )
    ld = sub.add_parser("load", help="import local images (podman names or archives) into the cluster's containerd")
    ld.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    settings = ClusterSettings.from_env()
    try:
        if args.command == "build":
            from . import build

            build.kubernetes(settings)
            build.helm(settings)
            return 0
        from .cluster import Cluster

        cluster = Cluster(settings)
        if args.command == "prepare":
            started = time.monotonic()
            cluster.prepare(platform_images=True)
            logging.getLogger("agp.k8s").info("Prepared in %.0f s.", time.monotonic() - started)
        elif args.command == "up":
            print(cluster.up())
        elif args.command == "load":
            if not cluster.status()["running"]:
                raise ClusterError("the cluster does not run; start it with `python3 -m tests.k8s up`.")
            cluster.load_images(args.images)
        elif args.command == "down":
            cluster.down()
        else:
            status = cluster.status()
            print(json.dumps(status, indent=2) if args.json else status["summary"])
            return 0 if status["running"] else 3
    except ClusterError as e:
        logging.getLogger("agp.k8s").error("error: %s", e)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
