"""Trino's rules follower: keeps a local copy of the access rules equal to what the workspace service answers.

``python -m agp.hub.rules_follow --url URL --token-file FILE --out PATH [--interval 2]`` runs beside Trino's
coordinator (a sidecar of the hub image on Kubernetes) and writes PATH in a folder both share, where Trino reads
it again every ``security.refresh-period``. It asks with ``If-None-Match``, so an unchanged answer costs a 304;
it writes PATH only when the rules change (atomically: Trino never reads half a file), logs one line per change,
keeps the last good file while the service is down or answers something that is not rules, and exits cleanly on
SIGTERM. ``--once`` fetches once and exits (0 once PATH holds the rules), for an init container: Trino must not
start without a rules file.

Retries are a plain loop with capped exponential backoff, not tenacity: the follower polls forever anyway, the
wait must end at once on SIGTERM (an :class:`threading.Event` does that), and it is one dependency fewer in the
hub image.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import requests

from .trino_rules import write_atomically

log = logging.getLogger("agp.hub.rules_follow")

RULES_KEYS = frozenset({"catalogs", "schemas", "tables"})  # what every rules document of build_rules has
MAX_BACKOFF = 30.0  # seconds between attempts while the service is down


@dataclass
class Poll:
    """The outcome of one request: ``changed`` when PATH was rewritten, ``ok`` when the service answered rules."""

    ok: bool
    changed: bool = False
    problem: str = ""


def next_wait(interval: float, failures: int, cap: float = MAX_BACKOFF) -> float:
    """Seconds until the next poll: ``interval`` while things work, doubling with each failure up to ``cap``."""
    if failures <= 0:
        return interval
    return min(cap, max(interval, 1.0) * 2 ** min(failures, 16))


def parse_rules(body: bytes) -> dict:
    """The rules in an answer, or ``ValueError``: a document that is not rules is never written where Trino reads."""
    rules = json.loads(body)  # a JSONDecodeError is a ValueError
    if not isinstance(rules, dict):
        raise ValueError(f"the answer is a JSON {type(rules).__name__}, not a rules document")
    missing = RULES_KEYS - rules.keys()
    if missing:
        raise ValueError(f"the answer is not a rules document: it has no {', '.join(sorted(missing))}")
    return rules


class Follower:
    def __init__(self, url: str, token_file: Path, out: Path, timeout: float = 10.0):
        self.url = url
        self.token_file = token_file
        self.out = out
        self.timeout = timeout
        self.etag: str | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # the service is reached directly: no proxy of the environment in between

    def poll(self) -> Poll:
        try:
            # Read each time: a mounted Secret that is rotated takes effect without a restart.
            token = self.token_file.read_text().strip()
        except OSError as e:
            return Poll(False, problem=f"cannot read the token file {self.token_file}: {e.strerror or e}")
        headers = {"Authorization": f"Bearer {token}"}
        if self.etag and self.out.exists():
            headers["If-None-Match"] = self.etag
        try:
            r = self.http.get(self.url, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:
            return Poll(False, problem=f"the service does not answer: {type(e).__name__}")
        if r.status_code == 304:
            return Poll(True)
        if r.status_code != 200:
            return Poll(False, problem=f"the service answered HTTP {r.status_code}: {r.text[:200]!r}")
        try:
            rules = parse_rules(r.content)
        except ValueError as e:
            return Poll(False, problem=str(e)[:300])
        changed = write_atomically(self.out, rules)
        self.etag = r.headers.get("ETag")
        if changed:
            log.info("rules changed: wrote %s (%d bytes, ETag %s)", self.out, len(r.content), self.etag)
        return Poll(True, changed=changed)

    def run(self, interval: float, stop: threading.Event, once: bool = False) -> int:
        failures = 0
        problem = ""
        while not stop.is_set():
            result = self.poll()
            if result.ok:
                if failures:
                    log.info("the service answers again after %d failed attempts; %s is current", failures, self.out)
                failures, problem = 0, ""
                if once:
                    return 0
            else:
                failures += 1
                if result.problem != problem:  # one line per kind of trouble, not one per attempt
                    kept = "keeping the last rules" if self.out.exists() else "no rules written yet"
                    log.warning("%s (%s; retrying with backoff)", result.problem, kept)
                    problem = result.problem
                if once and failures >= 5:
                    return 1
            stop.wait(next_wait(interval, failures))
        log.info("stopping; %s keeps the last rules", self.out)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agp.hub.rules_follow", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        required=True,
        help="the service's rules URL, e.g. http://hub:8091/services/workspaces/trino/rules.json",
    )
    parser.add_argument(
        "--token-file", required=True, type=Path, help="file holding the rules token (credentials.trino_rules_token)"
    )
    parser.add_argument("--out", required=True, type=Path, help="the rules file Trino reads (security.config-file)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls while the service answers (default 2)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one request may take (default 10)")
    parser.add_argument("--once", action="store_true", help="fetch once and exit: 0 when the rules are written")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be a positive number of seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("following %s into %s every %gs", args.url, args.out, args.interval)
    return Follower(args.url, args.token_file, args.out, args.timeout).run(args.interval, stop, once=args.once)


if __name__ == "__main__":
    raise SystemExit(main())
