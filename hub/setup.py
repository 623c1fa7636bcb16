"""Setting up what the platform's services need in PostgreSQL and S3: databases, one role per service, buckets, one
S3 user per service with its own policy. Idempotent: the lab runs it at every `agp lab up`, a Kubernetes install at
every start of the hub (``python -m agp.hub.setup``, an init container with the superuser's and S3 root's
credentials, which the hub itself never gets).

The builders are pure; :func:`ensure_databases`, :func:`ensure_db_roles`, :func:`ensure_buckets` and
:func:`ensure_s3_users` act on the services.
"""

from __future__ import annotations

import logging
import re

from agp.core.settings import DB_ROLES, HUB_READS, Settings

log = logging.getLogger(__name__)

# The platform's databases (compose's init.sql creates the same ones; tests/unit/test_composition.py compares).
DATABASES = ("nessie", "iceberg", "keycloak", "agp", "jupyterhub")


def broker_policy(bucket_prefix: str = "agp-ws-", warehouse: str | None = None) -> dict:
    """The broker user's own MinIO policy; each brokered credential narrows it further to one bucket. The
    warehouse holds the platform's namespaces that are no workspace's: the catalog proxy vends for it to
    platform admins and Trino only."""
    resources = [f"arn:aws:s3:::{bucket_prefix}*", f"arn:aws:s3:::{bucket_prefix}*/*"]
    if warehouse:
        resources += [f"arn:aws:s3:::{warehouse}", f"arn:aws:s3:::{warehouse}/*"]
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": resources}]}


def provisioner_policy(bucket_prefix: str = "agp-ws-") -> dict:
    """Workspace provisioning's own MinIO policy: make, find and remove workspace buckets; no object, no other
    bucket (a workspace's data is read and written with its members' brokered credentials only)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                # No s3:ListBucket: the names of a workspace's objects are its members' to read.
                "Action": ["s3:CreateBucket", "s3:DeleteBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{bucket_prefix}*"],
            }
        ],
    }


def catalog_policy(warehouse_bucket: str, bucket_prefix: str = "agp-ws-") -> dict:
    """The catalog's own MinIO policy: the warehouse and the workspace buckets, nothing else (no spooling bucket,
    no bucket administration)."""
    return objects_policy([warehouse_bucket, f"{bucket_prefix}*"])


def trino_policy(spooling_bucket: str) -> dict:
    """Trino's own MinIO policy: its spooling bucket alone. Tables come with vended credentials of their own."""
    return objects_policy([spooling_bucket])


def objects_policy(buckets: list[str]) -> dict:
    """Listing and object reads and writes in ``buckets`` (names or ``prefix*``); no bucket administration."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets],
            },
        ],
    }


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _role_name(name: str) -> str:
    """A role or database name fit to be spelled inside SQL as it is; anything else is refused."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"{name!r} is not a plain PostgreSQL name (lower-case letters, digits, _)")
    return name


def postgres_roles(s: Settings) -> dict[str, list[str]]:
    """SQL that gives each platform database its own login role (:data:`DB_ROLES`), run by the superuser: database
    to run in -> statements, in order. Idempotent; also migrates a lab whose services all used the superuser."""
    su = _role_name(s.credentials.postgres_user)
    hub = DB_ROLES["jupyterhub"]
    limits = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    cluster = []
    for database, role in DB_ROLES.items():
        database, role = _role_name(database), _role_name(role)
        cluster += [
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f'CREATE ROLE "{role}"; END IF; END $$',
            f'ALTER ROLE "{role}" {limits} PASSWORD {_literal(s.db_password(role))}',
            f'ALTER DATABASE "{database}" OWNER TO "{role}"',
            f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC',
        ]
    cluster.append(f'GRANT CONNECT ON DATABASE "{HUB_READS}" TO "{hub}"')
    # Nor may the platform's roles enter the maintenance databases (only the superuser's set-up uses them).
    cluster += [f"REVOKE CONNECT ON DATABASE {db} FROM PUBLIC" for db in ("postgres", "template1")]
    per_db: dict[str, list[str]] = {"postgres": cluster}
    for database, role in DB_ROLES.items():
        # REASSIGN OWNED cannot move objects of the bootstrap superuser (it owns the system catalogs): each object
        # the superuser made in this database (tables with their sequences, views, free sequences, enums)
        # goes to the database's role.
        per_db[database] = [_reassign_from(su, role)]
    owner = DB_ROLES[HUB_READS]
    per_db[HUB_READS] += [
        f'GRANT USAGE ON SCHEMA public TO "{hub}"',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{hub}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public GRANT SELECT ON TABLES TO "{hub}"',
    ]
    return per_db


def _reassign_from(old: str, new: str) -> str:
    old, new = _role_name(old), _role_name(new)
    return f"""DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = '{old}'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO "{new}"',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
        ELSE 'TABLE' END, r.obj);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS obj FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = '{old}'::regrole AND c.relkind = 'S' AND n.nspname <> 'pg_catalog'
  LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO "{new}"', r.obj);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS obj FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = '{old}'::regrole AND t.typtype = 'e'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO "{new}"', r.obj);
  END LOOP;
END $$"""  # noqa: S608 (names checked by _role_name, no value of a request)


def ensure_databases(s: Settings, databases: tuple[str, ...] = DATABASES) -> list[str]:
    """Create the platform's databases that are missing (as the superuser); returns those it made."""
    import psycopg

    made = []
    with psycopg.connect(s.postgres_dsn, autocommit=True) as conn:
        have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for db in databases:
            if db not in have:
                conn.execute(f'CREATE DATABASE "{_role_name(db)}"')
                made.append(db)
    return made


def ensure_db_roles(s: Settings) -> None:
    """Each service's own PostgreSQL role owning its own database (:func:`postgres_roles`)."""
    import psycopg

    for database, statements in postgres_roles(s).items():
        url = s.database_url(database, "postgresql", role=s.credentials.postgres_user)
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)


def ensure_buckets(s3, s: Settings) -> list[str]:
    """The Iceberg warehouse and Trino's spooling bucket; ``s3`` is a boto3 client with the root keys."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    made = []
    for bucket in (s.warehouse_bucket, s.trino_spooling_bucket):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            made.append(bucket)
    return made


def s3_users(s: Settings, catalogs: tuple[str, ...] | None = None) -> list[tuple[str, dict, str, str]]:
    """(policy name, policy, access key, secret key) of each service's own S3 user: the credential broker,
    provisioning, the catalog(s) in ``catalogs`` (default: the one of the settings) and Trino's spooling."""
    c = s.credentials
    users = [
        ("agp-workspaces", broker_policy(warehouse=s.warehouse_bucket), c.broker_access_key, c.broker_secret_key),
        ("agp-provisioner", provisioner_policy(), c.provisioner_access_key, c.provisioner_secret_key),
    ]
    for catalog in catalogs or (s.catalog,):
        if catalog == "nessie":
            key, secret = c.nessie_s3_access_key, c.nessie_s3_secret_key
        else:
            key, secret = c.catalog_s3_access_key, c.catalog_s3_secret_key
        users.append(("agp-catalog", catalog_policy(s.warehouse_bucket), key, secret))
    users.append(("agp-trino", trino_policy(s.trino_spooling_bucket), c.trino_s3_access_key, c.trino_s3_secret_key))
    # The secret keys leave the settings here: MinIO's admin API takes them as text.
    return [(name, policy, key, secret.get_secret_value()) for name, policy, key, secret in users]


def ensure_s3_user(s: Settings, policy_name: str, policy: dict, access_key: str, secret_key: str) -> None:
    """A MinIO user of one platform service with its own policy (set again each time), as MinIO's root."""
    from urllib.parse import urlparse

    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    endpoint = urlparse(s.s3_endpoint)
    admin = MinioAdmin(
        endpoint=endpoint.netloc,
        credentials=StaticProvider(s.credentials.s3_access_key, s.credentials.s3_secret_key.get_secret_value()),
        secure=endpoint.scheme == "https",
    )
    admin.policy_add(policy_name, policy=policy)
    admin.user_add(access_key, secret_key)
    admin.policy_set(policy_name, user=access_key)


def setup(s: Settings) -> None:
    """Everything above, in order, as the superuser and S3's root (Kubernetes: the hub's init container)."""
    from agp.core.clients import s3_client

    made = ensure_databases(s)
    log.info("databases: %s", f"made {', '.join(made)}" if made else "all there")
    ensure_db_roles(s)
    log.info("database roles: %s", ", ".join(sorted(set(DB_ROLES.values()))))
    made = ensure_buckets(s3_client(s), s)
    log.info("buckets: %s", f"made {', '.join(made)}" if made else "all there")
    for policy_name, policy, access_key, secret_key in s3_users(s):
        ensure_s3_user(s, policy_name, policy, access_key, secret_key)
        log.info("S3 user %s with policy %s", access_key, policy_name)


def main() -> None:
    """``python -m agp.hub.setup``: wait for PostgreSQL and S3 (a fresh install starts them beside the hub), then
    set up; exits non-zero with one sentence when they do not answer in time."""
    import sys

    from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = Settings()

    @retry(
        retry=retry_if_exception_type(OSError) | retry_if_exception_type(_unavailable()),
        wait=wait_exponential(multiplier=0.5, max=5),
        stop=stop_after_delay(float(s.start_timeout)),
        reraise=True,
        before_sleep=lambda state: log.info("waiting for PostgreSQL and S3: %s", state.outcome.exception()),
    )
    def attempt() -> None:
        setup(s)

    try:
        attempt()
    except Exception as e:
        log.exception("set-up failed")
        print(f"agp setup: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


def _unavailable() -> tuple[type[BaseException], ...]:
    """Errors of a service that is not up yet (connection refused, DNS not there yet)."""
    import psycopg
    from botocore.exceptions import EndpointConnectionError
    from urllib3.exceptions import HTTPError

    return (psycopg.OperationalError, EndpointConnectionError, HTTPError)


if __name__ == "__main__":
    main()
