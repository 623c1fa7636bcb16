"""Iceberg REST catalogs that tests and benchmarks start beside the lab, on spare ports, and remove again.

- :func:`nessie`: a Nessie 0.99 from the lab's cached runner jar and the lab's own ``application.properties`` (a copy
  with authentication and authorization off), its version store in a temporary database of the lab's PostgreSQL,
  reaching MinIO with the lab's root keys. Its Iceberg REST prefix is ``main``.
- :func:`rest_catalog`: a second ``AgpRestCatalog`` (Apache Iceberg's REST catalog on a JDBC catalog) started as the
  lab starts its own, with the same JVM options and configuration file, on a temporary database and a token of its
  own. No prefix.

Both are context managers yielding a :class:`CatalogServer`; on exit the process (by its pid, with the process group
it leads) is stopped and the database dropped. S3 objects the catalog wrote are the caller's: it chose where
(``delete_prefix`` removes them).

    with catalogs.nessie(settings, workdir) as server:
        cat = server.pyiceberg()
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from agp.compose import java, services
from agp.compose.services import LabPaths
from agp.core import fetch, versions
from agp.core.settings import Settings


def free_ports(n: int) -> list[int]:
    """``n`` different TCP ports that nothing listens on (all held open together, so none is given twice)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


@contextlib.contextmanager
def temp_database(settings: Settings, prefix: str) -> Iterator[str]:
    """A new database in the lab's PostgreSQL cluster (owned by its superuser), dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class CatalogServer:
    """A catalog process started here: where it answers, its REST prefix, the token it wants and its log."""

    name: str
    uri: str
    prefix: str
    token: str
    log: Path
    proc: subprocess.Popen
    database: str
    settings: Settings

    def pyiceberg(self, **overrides: str):
        """A pyiceberg REST catalog on this server, with S3 at the lab's MinIO (root keys)."""
        from pyiceberg.catalog import load_catalog

        s, c = self.settings, self.settings.credentials
        props = {
            "type": "rest",
            "uri": self.uri,
            "warehouse": "warehouse",
            "s3.endpoint": s.s3_endpoint,
            "s3.access-key-id": c.s3_access_key,
            "s3.secret-access-key": c.s3_secret_key.get_secret_value(),
            "s3.region": s.s3_region,
            "s3.path-style-access": "true",
            **({"token": self.token} if self.token else {}),
            **overrides,
        }
        return load_catalog(self.name, **props)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_healthy(name: str, url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting; see {log}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{name} was not healthy at {url} after {timeout:.0f} s; see {log}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started here with ``start_new_session`` (it leads its own group): TERM, then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _spawn(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


AUTH_KEYS = ("nessie.server.authentication.", "nessie.server.authorization.", "quarkus.oidc.")


def _java(settings: Settings, service: str) -> java.Java:
    return java.find_java(versions.JAVA_MAJOR[service], settings.java_home, "java_home")


@contextlib.contextmanager
def nessie(settings: Settings, workdir: Path, log: Path | None = None, timeout: float = 120) -> Iterator[CatalogServer]:
    """A Nessie 0.99 on spare ports, authentication off, its version store in a temporary database."""
    http_port, management_port = free_ports(2)
    ports = settings.ports.model_copy(update={"nessie": http_port, "nessie_management": management_port})
    mine = settings.model_copy(update={"ports": ports, "catalog": "nessie"})
    paths = LabPaths(workdir, settings.cache_dir, settings.lab_dir / "postgres")
    paths.nessie.mkdir(parents=True, exist_ok=True)
    # A lab made on this machine with the Iceberg REST catalog never fetched Nessie's jar (a fresh CI machine has none)
    fetch.download(versions.NESSIE, paths.downloads)
    service = services.nessie(mine, paths, _java(settings, "nessie"))
    # The lab's application.properties without its authentication and authorization. Overriding them with -D system
    # properties instead left Nessie 0.99 answering 401 to every call (its CEL authorizer still loaded).
    lab_config = services.CONFIG_DIR / "nessie" / "application.properties"
    config = paths.nessie / "application.properties"
    config.write_text(
        "".join(line + "\n" for line in lab_config.read_text().splitlines() if not line.startswith(AUTH_KEYS))
        + "nessie.server.authentication.enabled=false\nnessie.server.authorization.enabled=false\n"
    )
    command = [
        f"-Dquarkus.config.locations={config}" if a.startswith("-Dquarkus.config.locations=") else a
        for a in service.command
    ]
    c = settings.credentials
    log = log or workdir / "nessie.log"
    with temp_database(settings, "bench_nessie") as db:
        env = {
            **services.shared_env(mine),
            **service.env,
            "AGP_NESSIE_JDBC_URL": f"jdbc:postgresql://{settings.host}:{settings.ports.postgres}/{db}",
            "AGP_NESSIE_DB_USER": c.postgres_user,
            "AGP_NESSIE_DB_PASSWORD": c.postgres_password.get_secret_value(),
            "AGP_NESSIE_S3_ACCESS_KEY": c.s3_access_key,  # the root key: fine for a throw-away process
            "AGP_NESSIE_S3_SECRET_KEY": c.s3_secret_key.get_secret_value(),
        }
        proc = _spawn(command, env, paths.nessie, log)
        try:
            _wait_healthy("Nessie", mine.url("nessie_management", "/q/health/ready"), proc, log, timeout)
            yield CatalogServer("nessie", mine.url("nessie", "/iceberg"), "main", "", log, proc, db, settings)
        finally:
            _stop(proc)


@contextlib.contextmanager
def rest_catalog(
    settings: Settings, workdir: Path, log: Path | None = None, timeout: float = 120
) -> Iterator[CatalogServer]:
    """A second AgpRestCatalog, run as the lab runs its own, on a spare port with a temporary database."""
    (port,) = free_ports(1)
    mine = settings.model_copy(update={"ports": settings.ports.model_copy(update={"catalog": port})})
    paths = LabPaths(workdir, settings.cache_dir, settings.lab_dir / "postgres")
    paths.catalog.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(24)
    token_file = paths.catalog / "catalog.token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    c = settings.credentials
    log = log or workdir / "catalog.log"
    with temp_database(settings, "bench_iceberg") as db:
        # The lab's own file, then what differs (java.util.Properties keeps a key's last value).
        overrides = {
            "agp.token-file": str(token_file),
            "uri": f"jdbc:postgresql://{settings.host}:{settings.ports.postgres}/{db}",
            "jdbc.user": c.postgres_user,
            "jdbc.password": c.postgres_password.get_secret_value(),
            "s3.access-key-id": c.s3_access_key,
            "s3.secret-access-key": c.s3_secret_key.get_secret_value(),
        }
        paths.catalog_properties.touch(mode=0o600)
        paths.catalog_properties.write_text(
            services.catalog_properties(mine, paths)
            + "".join(f"{k}={services._java_property(v)}\n" for k, v in overrides.items())
        )
        service = services.iceberg_rest(mine, paths, _java(settings, "catalog"))
        proc = _spawn(list(service.command), dict(service.env), paths.catalog, log)
        try:
            _wait_healthy("AgpRestCatalog", mine.url("catalog", "/healthz"), proc, log, timeout)
            yield CatalogServer("iceberg-rest", mine.url("catalog"), "", token, log, proc, db, settings)
        finally:
            _stop(proc)


def delete_prefix(s3, bucket: str, prefix: str) -> int:
    """Delete every object of ``bucket`` under ``prefix``; returns how many."""
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            n += len(keys)
    return n
