"""``spark()`` against a Spark Connect server (``AGP_SPARK_MASTER=sc://…``, the production shape): the user's
catalog travels with the session, the server holds no S3 key, and Trino reads what the session wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CLIENT = r"""
import json, sys
from agp.kernels import spark
from agp.kernels.credentials import BrokerClient
from agp.kernels.spark_session import is_connect
broker = BrokerClient(sys.argv[2], sys.argv[3], "demo")
session = spark(broker, master=sys.argv[1])
out = {"connect": is_connect(session), "same": spark(broker) is session}
out["count"] = session.sql("SELECT count(*) FROM meter_readings").collect()[0][0]
session.sql("CREATE OR REPLACE TABLE connect_written AS SELECT 'via-connect' AS v").collect()
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server in local mode with Iceberg's jars and extensions, and no S3 credential at all."""
    import pyspark

    from agp.kernels.spark_session import jars

    port = free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    cmd = [
        str(submit),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master", "local[2]",
        "--jars", ",".join(str(j) for j in jars()),
        "--conf", "spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.memory=1g",
        "spark-internal",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPARK_CONNECT"))}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_spark_connect_session_on_the_workspace_catalog(connect_server, user_api, hub_url, settings):
    from agp.core import clients

    token = user_api("alice").http.headers["Authorization"].split()[1]
    try:
        run = subprocess.run(
            [sys.executable, "-c", CLIENT, connect_server, f"{hub_url}/services/workspaces", token],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out == {"connect": True, "same": True, "count": 5}
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            cur.execute('SELECT v FROM iceberg."demo".connect_written')
            assert cur.fetchall() == [["via-connect"]]
    finally:
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            cur.execute('DROP TABLE IF EXISTS iceberg."demo".connect_written')
            cur.fetchall()
