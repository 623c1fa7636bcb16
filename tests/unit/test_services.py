from pathlib import Path

from agp.compose import services
from agp.compose.java import Java
from agp.compose.services import LabPaths
from agp.core.settings import Settings

SETTINGS = Settings(lab_dir="/lab", cache_dir="/cache")
PATHS = LabPaths.of(SETTINGS, Path("/pg"))
JDK = Java(Path("/jdk"), 25)


def test_trino_config_for_a_single_node_lab():
    files = services.trino_files(SETTINGS, PATHS)
    assert files[Path("/lab/trino/etc/config.properties")] == (
        "coordinator=true\n"
        "node-scheduler.include-coordinator=true\n"
        "http-server.http.port=8080\n"
        "http-server.https.enabled=true\n"
        "http-server.https.port=8443\n"
        "http-server.https.keystore.path=/lab/secrets/trino-tls.pem\n"
        "http-server.authentication.type=JWT\n"
        "http-server.authentication.jwt.key-file=/lab/secrets/broker-jwt.pub\n"
        "http-server.authentication.jwt.required-issuer=agp-broker\n"
        "http-server.authentication.jwt.required-audience=trino\n"
        "internal-communication.shared-secret=${ENV:AGP_TRINO_INTERNAL_SECRET}\n"
        "discovery.uri=http://127.0.0.1:8080\n"
        "query.max-memory=1024MB\n"
        "query.max-memory-per-node=1024MB\n"
        "task.concurrency=2\n"
        "catalog.management=static\n"
        "protocol.spooling.enabled=true\n"
        "protocol.spooling.shared-secret-key=${ENV:AGP_TRINO_SPOOLING_KEY}\n"
        "protocol.spooling.retrieval-mode=STORAGE\n"
    )
    assert files[Path("/lab/trino/etc/node.properties")] == (
        "node.environment=agp_lab\n"
        "node.id=agp-lab-coordinator\n"
        "node.data-dir=/lab/trino/data\n"
        "node.internal-address=127.0.0.1\n"
    )
    assert files[Path("/lab/trino/etc/access-control.properties")] == (
        "access-control.name=file\nsecurity.config-file=/lab/trino/etc/rules.json\nsecurity.refresh-period=5s\n"
    )
    jvm = files[Path("/lab/trino/etc/jvm.config")].splitlines()
    assert "-Xmx2G" in jvm
    catalog = files[Path("/lab/trino/etc/catalog/iceberg.properties")]
    assert "connector.name=iceberg" in catalog
    assert "iceberg.rest-catalog.uri=${ENV:AGP_TRINO_CATALOG_URI}" in catalog
    assert "iceberg.rest-catalog.vended-credentials-enabled=true" in catalog
    assert "aws-access-key" not in catalog and "aws-secret-key" not in catalog, "Trino reads tables with vended keys"


def test_trino_spools_large_results_to_its_own_bucket_and_prunes_them():
    files = services.trino_files(SETTINGS, PATHS)
    assert files[Path("/lab/trino/etc/spooling-manager.properties")] == (
        "spooling-manager.name=filesystem\n"
        "fs.s3.enabled=true\n"
        "fs.location=s3://agp-trino-spooling/\n"
        "fs.segment.encryption=false\n"
        "fs.segment.explicit-ack=true\n"
        "fs.segment.ttl=1h\n"
        "fs.segment.direct.ttl=1h\n"
        "fs.segment.pruning.enabled=true\n"
        "fs.segment.pruning.interval=5m\n"
        "s3.endpoint=${ENV:AGP_S3_ENDPOINT}\n"
        "s3.region=${ENV:AGP_S3_REGION}\n"
        "s3.path-style-access=true\n"
        "s3.aws-access-key=${ENV:AGP_TRINO_S3_ACCESS_KEY}\n"
        "s3.aws-secret-key=${ENV:AGP_TRINO_S3_SECRET_KEY}\n"
    )
    assert "agp-lab-root" not in "".join(files.values()), "S3 keys come from Trino's environment, not its files"


def test_trino_gets_its_spooling_key_from_the_environment():
    svc = services.trino(SETTINGS, PATHS, JDK, internal_secret="internal", spooling_key="c3Bvb2w=")
    assert svc.env["AGP_TRINO_SPOOLING_KEY"] == "c3Bvb2w="
    assert svc.env["AGP_TRINO_INTERNAL_SECRET"] == "internal"
    for key in ("AGP_S3_ENDPOINT", "AGP_S3_REGION", "AGP_TRINO_S3_ACCESS_KEY", "AGP_TRINO_S3_SECRET_KEY"):
        assert svc.env[key], f"spooling-manager.properties expands {key}"
    assert "AGP_S3_ACCESS_KEY" not in svc.env and "AGP_S3_SECRET_KEY" not in svc.env, "Trino holds no root key"
    assert SETTINGS.credentials.s3_secret_key.get_secret_value() not in svc.env.values()
    assert svc.endpoints["spooling"] == "s3://agp-trino-spooling/"


def test_trinos_own_minio_user_reaches_its_spooling_bucket_alone():
    policy = services.trino_policy("agp-trino-spooling")
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {"arn:aws:s3:::agp-trino-spooling", "arn:aws:s3:::agp-trino-spooling/*"}


def test_trino_runs_on_its_own_java_with_the_shared_environment():
    svc = services.trino(SETTINGS, PATHS, JDK)
    assert svc.command == (
        "/cache/trino-476/bin/launcher",
        "run",
        "--etc-dir=/lab/trino/etc",
        "--data-dir=/lab/trino/data",
    )
    assert svc.env["JAVA_HOME"] == "/jdk"
    assert svc.env["PATH"].startswith("/jdk/bin:")
    assert svc.env["AGP_TRINO_CATALOG_URI"] == "http://127.0.0.1:8091/services/workspaces/iceberg"
    assert svc.health.target == "http://127.0.0.1:8080/v1/info"


def test_postgres_runs_as_the_postgres_user_with_a_fast_shutdown():
    svc = services.postgres(SETTINGS, PATHS, "postgres")
    assert svc.user == "postgres"
    assert svc.stopsignal == "INT"
    assert svc.command[:5] == ("/usr/lib/postgresql/15/bin/postgres", "-D", "/pg/data", "-p", "15432")
    assert "agp-lab-postgres" not in repr(svc.endpoints), "status must not print the password inside the DSN"


def test_keycloak_moves_its_management_port_off_9000():
    svc = services.keycloak(SETTINGS, PATHS, JDK)
    assert "--http-management-port=9180" in svc.command
    assert "--cache=local" in svc.command, "a single node must not wait for cluster discovery"
    assert svc.health.target == "http://127.0.0.1:9180/health/ready"
    assert svc.ports == {"keycloak": 8180, "keycloak_management": 9180}


def test_supervisor_conf_stops_whole_process_groups_and_escapes_percent():
    svc = services.Service(
        name="demo",
        title="Demo",
        command=("/bin/echo", "50%", "two words"),
        cwd=Path("/lab/demo"),
        env={"RATIO": "10%"},
        ports={},
        health=services.Health("http", "http://x"),
        phase=1,
    )
    conf = services.supervisor_conf(PATHS, [svc])
    assert "[program:demo]" in conf
    assert 'command=/bin/echo 50%% "two words"' in conf
    assert 'environment=RATIO="10%%"' in conf
    for line in ("autostart=false", "stopasgroup=true", "killasgroup=true", "startretries=0"):
        assert line in conf.splitlines()
    assert "stdout_logfile=/lab/logs/demo.log" in conf


def test_external_postgres_dir_is_stable_per_lab():
    a = services.external_postgres_dir(Path("/root/.local/share/agp/lab"))
    assert a == services.external_postgres_dir(Path("/root/.local/share/agp/lab"))
    assert a != services.external_postgres_dir(Path("/root/other"))
    assert a.parent == Path("/var/lib/agp")
