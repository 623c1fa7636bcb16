"""Clients of the data plane (S3, the Iceberg REST catalog, Trino) built from the shared settings, as the platform
(provisioning, the lab's set-up, its tests and admin tools); notebooks get short-lived credentials from the
workspace service instead (agp.kernels.credentials), and use ``tls_session`` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: a kernel's first %sql imports this module for tls_session, not pydantic
    from .settings import Settings


def catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg properties of the REST catalog, with S3 reached directly at the lab's MinIO."""
    c = settings.credentials
    props = {
        "type": "rest",
        "uri": settings.catalog_uri,
        "warehouse": "warehouse",
        "s3.endpoint": settings.s3_endpoint,
        "s3.region": settings.s3_region,
        "s3.path-style-access": "true",
    }
    root_secret = c.s3_secret_key.get_secret_value()
    if root_secret:  # the lab's tools and tests read and write tables; the hub's settings hold no root key
        props.update({"s3.access-key-id": c.s3_access_key, "s3.secret-access-key": root_secret})
    if settings.catalog == "nessie":
        # The platform's own identity at Nessie (Keycloak client credentials).
        props.update(
            {
                "credential": f"agp-services:{c.services_client_secret.get_secret_value()}",
                "oauth2-server-uri": settings.keycloak_token_url,
                "scope": "openid",
            }
        )
    else:
        # The catalog's one bearer token, held by the platform alone.
        props["token"] = c.catalog_token.get_secret_value()
    return props


def catalog_token(settings: Settings) -> str:
    """The platform's bearer token at its catalog: the Iceberg REST catalog's own, or a Keycloak token for Nessie."""
    if settings.catalog == "nessie":
        return service_token(settings)
    return settings.credentials.catalog_token.get_secret_value()


def service_token(settings: Settings) -> str:
    """An access token of the platform's `agp-services` client (Keycloak client credentials), as Nessie wants."""
    import requests

    r = requests.post(
        settings.keycloak_token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "agp-services",
            "client_secret": settings.credentials.services_client_secret.get_secret_value(),
            "scope": "openid",
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def load_catalog(settings: Settings, name: str = "lab") -> Any:
    from pyiceberg.catalog import load_catalog as _load

    return _load(name, **catalog_properties(settings))


SERVICE_USER = "agp-service"


def trino_connect(settings: Settings, user: str = SERVICE_USER, schema: str | None = None, ttl: int = 900) -> Any:
    """A Trino connection over HTTPS as ``user``, with JWTs signed by the lab's broker key (platform tools only).
    Each token lives ``ttl`` seconds and a new one is minted before it runs out, so a connection held longer (a test
    session, a long tool run) keeps working."""
    import trino

    from .tokens import KeyPaths

    paths = KeyPaths(settings.keys_dir)
    return trino.dbapi.connect(
        http_session=tls_session(paths.trino_ca),
        host=settings.host_of("trino_https"),
        port=settings.ports.trino_https,
        user=user,
        catalog="iceberg",
        schema=schema,
        http_scheme="https",
        auth=RenewingJWT(paths.broker_private, user, ttl),
    )


class RenewingJWT:
    """Trino authentication with a broker-signed JWT minted again a minute before it expires. The trino client's
    JWTAuthentication holds one fixed token (a connection outliving it got 401 'JWT expired'); this is the same
    bearer header from a token that renews. Duck-types ``trino.auth.Authentication`` (set_http_session,
    get_exceptions) so that importing this module does not import trino."""

    def __init__(self, private_key: Path, user: str, ttl: int = 900) -> None:
        self.private_key, self.user, self.ttl = private_key, user, ttl
        self._token, self._exp = "", 0

    def token(self) -> str:
        import time

        from .tokens import mint_trino_token

        if time.time() > self._exp - min(60, self.ttl / 2):
            self._token, self._exp = mint_trino_token(self.private_key.read_bytes(), self.user, ttl=self.ttl)
        return self._token

    def __call__(self, request: Any) -> Any:  # requests' auth hook
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def set_http_session(self, http_session: Any) -> Any:
        http_session.auth = self
        return http_session

    def get_exceptions(self) -> tuple:
        return ()


def tls_session(ca_file: Path) -> Any:
    """A requests session that trusts ``ca_file``. ``trust_env`` is off: with it, requests lets
    REQUESTS_CA_BUNDLE override the session's own ``verify`` (a long-standing requests behaviour)."""
    import requests

    trust_in_environment(ca_file)
    session = requests.Session()
    session.verify = str(ca_file)
    session.trust_env = False
    return session


_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


_BUNDLES: dict[str, str] = {}  # combined CA bundles this process wrote, by what they combine


def trust_in_environment(ca_file: Path) -> None:
    """Add ``ca_file`` to the CA bundle this process's environment names, where it names one.

    The ``trino`` client fetches spooled result segments and acknowledges them with sessions of its own, which
    take REQUESTS_CA_BUNDLE over any ``verify`` they are given; on a machine that sets it, those requests would
    not trust Trino's certificate. The combined bundle (the original one plus ``ca_file``) is written once per
    process and user, and the variables are pointed at it.
    """
    import hashlib
    import os
    import tempfile

    pem = Path(ca_file).read_text()
    for var in _BUNDLE_VARIABLES:
        current = os.environ.get(var)
        if not current or not Path(current).is_file():
            continue
        original = Path(current).read_text()
        if pem.strip() in original:
            continue
        digest = hashlib.sha256((current + pem).encode()).hexdigest()
        combined = _BUNDLES.get(digest)
        if combined is None:
            # A new file of this process's own (O_EXCL, 0600): a name in the shared /tmp that others can guess
            # could be made by them first, or be a link to a file of root's.
            fd, name = tempfile.mkstemp(prefix="agp-ca-bundle-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(original.rstrip("\n") + "\n" + pem)
            combined = _BUNDLES[digest] = name
        os.environ[var] = combined


def s3_client(settings: Settings) -> Any:
    """S3 with the store's root key: the lab's set-up, its tools and tests (the runtime's services have their own)."""
    c = settings.credentials
    return _s3(settings, c.s3_access_key, c.s3_secret_key.get_secret_value())


def provisioner_s3_client(settings: Settings) -> Any:
    """S3 as workspace provisioning: it creates and deletes workspace buckets and nothing else."""
    c = settings.credentials
    return _s3(settings, c.provisioner_access_key, c.provisioner_secret_key.get_secret_value())


def _s3(settings: Settings, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=5),
    )
