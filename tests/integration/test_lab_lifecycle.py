"""The lab's own behaviour: status, idempotent up, and faults that must leave nothing half-started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from agp.compose.lab import Lab, LabError

pytestmark = pytest.mark.integration


def _lab_processes(lab: Lab) -> list[psutil.Process]:
    return lab.leftover_processes() + ([psutil.Process(lab.supervisor.pid())] if lab.supervisor.pid() else [])


def test_status_json_names_every_endpoint_and_credential(lab):
    out = subprocess.run(
        [sys.executable, "-m", "agp.compose.cli", "lab", "status", "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["running"] is True and st["healthy"] is True
    catalog = "nessie" if lab.settings.catalog == "nessie" else "catalog"
    assert set(st["services"]) == {"postgres", "minio", catalog, "trino", "keycloak", "jupyterhub"}
    assert st["services"]["jupyterhub"]["endpoints"]["hub"] == lab.settings.hub_url
    assert st["services"]["trino"]["endpoints"]["http"] == lab.settings.trino_url
    assert st["services"][catalog]["endpoints"]["iceberg_rest"] == lab.settings.catalog_uri
    assert st["services"]["keycloak"]["endpoints"]["issuer"].endswith("/realms/antigravity")
    assert st["credentials"]["s3"]["access_key"] == lab.settings.credentials.s3_access_key
    assert {u["username"] for u in st["demo_users"]} == {"admin", "alice", "bob"}
    for svc in st["services"].values():
        assert svc["pid"] and os.path.exists(svc["log"])


def test_up_again_is_idempotent(lab):
    before = {name: svc["pid"] for name, svc in lab.status()["services"].items()}
    lab.up()
    after = {name: svc["pid"] for name, svc in lab.status()["services"].items()}
    assert after == before


def test_logs_of_an_unknown_service_is_a_clear_error(lab):
    out = subprocess.run(
        [sys.executable, "-m", "agp.compose.cli", "lab", "logs", "nosuch"], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "There is no lab service 'nosuch'" in out.stderr


def test_busy_port_names_the_port_and_its_holder(spare_settings, free_port):
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        lab = Lab(spare_settings(ports={"trino": port}))
        with pytest.raises(LabError) as err:
            lab.up()
    message = str(err.value)
    assert f"Port {port} (Trino 476, ports.trino) is already in use by pid {os.getpid()}" in message
    assert "AGP_PORTS__TRINO" in message
    assert not _lab_processes(lab)


def test_too_old_java_names_the_java_it_needs(spare_settings):
    lab = Lab(spare_settings(trino_java_home="/usr/lib/jvm/java-17-openjdk-amd64"))
    with pytest.raises(LabError, match=r"Java 24 or newer is needed .* AGP_TRINO_JAVA_HOME"):
        lab.up()
    assert not _lab_processes(lab)


def test_service_dying_during_start_shows_its_log_and_stops_the_rest(spare_settings):
    # MinIO refuses a secret key shorter than 8 characters: a real crash of a real service.
    from agp.core.settings import Credentials

    lab = Lab(spare_settings(credentials=Credentials(s3_secret_key="short")))
    with pytest.raises(LabError) as err:
        lab.up()
    message = str(err.value)
    assert message.startswith("MinIO")
    assert "died during start" in message
    assert "minio.log ends with:" in message
    assert len(message.splitlines()) > 1, "the tail of the log follows the sentence"
    assert not _lab_processes(lab), "PostgreSQL, started beside MinIO, must be stopped too"


def test_ctrl_c_during_up_stops_what_started(spare_settings):
    st = spare_settings()
    env = {
        **os.environ,
        "AGP_LAB_DIR": str(st.lab_dir),
        **{f"AGP_PORTS__{name.upper()}": str(port) for name, port in st.ports.model_dump().items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agp.compose.cli", "lab", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if "MinIO" in line and "ready" in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    time.sleep(2)  # phase 2 (the JVMs) is starting now
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "Interrupted" in rest
    assert not _lab_processes(Lab(st))
