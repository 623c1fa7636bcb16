"""Spark in one call, against the real catalog (through the workspace service), MinIO and Trino; its UI through
a workspace server's proxy, and its progress bar in a real kernel."""

from __future__ import annotations

import queue
import re
from urllib.parse import urlparse

import pytest
import requests
from kernelclient import workspace_kernel

from agp.kernels.credentials import BrokerClient

pytestmark = pytest.mark.integration

PREFIX = "/user/alice/demo/"  # what JupyterHub gives alice's "demo" server as JUPYTERHUB_SERVICE_PREFIX


@pytest.fixture(scope="module")
def alice(user_api, hub_url) -> BrokerClient:
    token = user_api("alice").http.headers["Authorization"].split()[1]
    return BrokerClient(f"{hub_url}/services/workspaces", token, "demo")


@pytest.fixture(scope="module")
def session(alice, hub_url):
    from agp.kernels import spark

    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)  # as in alice's demo server
        env.setenv("AGP_PUBLIC_URL", hub_url)
        s = spark(alice)
    yield s
    from agp.kernels.spark_session import _stop

    _stop()


def test_one_call_gives_a_session_on_the_workspace_namespace(session, alice):
    from agp.kernels import spark

    assert spark(alice) is session, "a second call returns the same session"
    assert session.catalog.currentDatabase() == "demo"
    assert session.sql("SELECT count(*) FROM meter_readings").collect()[0][0] == 5


def test_spark_writes_what_trino_reads_and_the_reverse(session, alice):
    from agp.kernels.credentials import trino_connect

    session.sql("DROP TABLE IF EXISTS spark_written")
    session.sql(
        "CREATE TABLE spark_written USING iceberg AS SELECT city, sum(reading_kwh) AS kwh "
        "FROM meter_readings GROUP BY city"
    ).collect()
    try:
        with trino_connect(alice) as conn:
            cur = conn.cursor()
            cur.execute("SELECT city, kwh FROM spark_written ORDER BY city")
            assert [r[0] for r in cur.fetchall()] == ["Bern", "Lima", "Oslo"]
            cur.execute("CREATE TABLE trino_written AS SELECT 42 AS answer")
            cur.fetchall()
        assert session.sql("SELECT answer FROM trino_written").collect()[0][0] == 42
    finally:
        session.sql("DROP TABLE IF EXISTS spark_written")
        session.sql("DROP TABLE IF EXISTS trino_written")


def test_spark_holds_no_s3_key_and_renews_the_catalogs_credential_itself(session, alice, settings):
    """Spark gets no S3 key; tables come with the caller's bucket credential and a refresh endpoint, which Iceberg's
    own ``VendedCredentialsProvider`` (what S3FileIO renews with before expiry) calls successfully."""
    import boto3
    from botocore.exceptions import ClientError

    conf = dict(session.sparkContext.getConf().getAll())
    s3_keys = [
        k for k in conf if "access-key" in k or "session-token" in k or ("secret" in k and "authenticate" not in k)
    ]
    assert not s3_keys, sorted(conf)

    jvm = session._jvm
    props = jvm.java.util.HashMap()
    props.put("uri", alice.get("catalog")["uri"])
    props.put("token", alice.token)
    props.put("credentials.uri", "v1/main/namespaces/demo/tables/meter_readings/credentials")
    renewed = jvm.org.apache.iceberg.aws.s3.VendedCredentialsProvider.create(props).resolveCredentials()
    assert renewed.expirationTime().isPresent()

    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=renewed.accessKeyId(),
        aws_secret_access_key=renewed.secretAccessKey(),
        aws_session_token=renewed.sessionToken(),
    )
    assert s3.list_objects_v2(Bucket="agp-ws-demo", MaxKeys=1)["KeyCount"] == 1
    with pytest.raises(ClientError) as denied:
        s3.list_objects_v2(Bucket="agp-warehouse", MaxKeys=1)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_another_workspace_is_out_of_reach(session, new_workspace):
    other = new_workspace()["namespace"]
    with pytest.raises(Exception) as err:
        session.sql(f"SELECT * FROM iceberg.`{other}`.anything").collect()
    # The catalog answers as for a table that does not exist (NoSuchTable, which Spark reports as not found), the
    # same as for a missing table of one's own workspace: nothing says that the namespace exists.
    assert "table_or_view_not_found" in str(err.value).lower()
    with pytest.raises(Exception) as own:
        session.sql("SELECT * FROM iceberg.demo.no_such_table_here").collect()
    shape = lambda e: str(e.value).lower().replace(other, "NS").replace("demo", "NS").replace("no_such_table_here", "T")  # noqa: E731
    assert shape(err).replace("anything", "T") == shape(own), "another workspace's table reads as a missing one"


def test_the_ui_is_on_a_free_port_with_links_for_the_servers_proxy(session):
    from agp.kernels import spark_session

    port = urlparse(session.sparkContext.uiWebUrl).port
    assert spark_session.spark_ui_url() == f"{PREFIX}proxy/{port}/jobs/"
    conf = session.sparkContext.getConf()
    assert conf.get("spark.ui.port") == str(port)
    assert conf.get("spark.ui.proxyBase") == f"/user/alice/demo/proxy/{port}"
    assert conf.get("spark.ui.showConsoleProgress") == "true", "outside a kernel Spark's console bar stays"
    assert spark_session._monitor is None, "no notebook, no progress thread"
    page = requests.get(f"http://127.0.0.1:{port}/jobs/", timeout=60)
    assert page.status_code == 200
    assert f'href="/user/alice/demo/proxy/{port}/static/' in page.text, "the UI's own links go through the proxy"


def test_the_drivers_ports_need_the_sessions_secret_which_the_ui_does_not_show(session):
    """Other users' kernels share loopback: Spark's RPC and block transfers authenticate with a per-session secret."""
    conf = session.sparkContext.getConf()
    secret = conf.get("spark.authenticate.secret")
    assert conf.get("spark.authenticate") == "true" and secret and len(secret) >= 32
    port = urlparse(session.sparkContext.uiWebUrl).port
    page = requests.get(f"http://127.0.0.1:{port}/environment/", timeout=60)
    assert page.status_code == 200 and "spark.authenticate.secret" in page.text and secret not in page.text


@pytest.fixture
def demo_server(user_api, hub_url):
    alice = user_api("alice")
    r = alice.hub("POST", "/users/alice/servers/demo")
    assert r.status_code in (201, 202, 400), r.text  # 400: already running
    alice.wait_server("alice", "demo")
    yield alice.http, hub_url
    alice.hub("DELETE", "/users/alice/servers/demo")


def test_the_ui_answers_through_the_workspace_servers_proxy(session, demo_server):
    http, hub_url = demo_server
    session.sql("SELECT count(*) FROM meter_readings").collect()
    base = session.sparkContext.getConf().get("spark.ui.proxyBase")
    url = f"{hub_url}{base}"
    page = http.get(f"{url}/jobs/", timeout=60)
    assert page.status_code == 200, page.text[:500]
    assert "Spark Jobs" in page.text and "agp-demo" in page.text
    assert f"{base}/static/webui.css" in page.text
    assert http.get(f"{url}/static/webui.css", timeout=60).status_code == 200, "the UI's links resolve"
    home = http.get(f"{url}/", timeout=60)  # the UI redirects / to its jobs page, through the proxy too
    assert home.status_code == 200 and home.url.rstrip("/") == f"{url}/jobs", home.url
    anonymous = requests.get(f"{url}/jobs/", allow_redirects=False, timeout=60)
    assert anonymous.status_code in (302, 401, 403), "the proxy is behind the server's login"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, user_api, hub_url, settings):
    """A real "Python 3 (Antigravity)" kernel with the environment of alice's demo server."""
    token = user_api("alice").http.headers["Authorization"].split()[1]
    folder = tmp_path_factory.mktemp("jupyter-data")
    env = {"AGP_CACHE_DIR": str(settings.cache_dir), "JUPYTERHUB_SERVICE_PREFIX": PREFIX}
    with workspace_kernel(folder, hub_url, token, **env) as kc:
        yield kc


def messages_of(kc, msg_id: str, until, limit: float = 300) -> list[dict]:
    """IOPub messages of the request ``msg_id`` until ``until(messages)`` holds (``limit``: a hang, not a check)."""
    got: list[dict] = []
    while not until(got):
        try:
            msg = kc.get_iopub_msg(timeout=limit)
        except queue.Empty:
            raise AssertionError(f"kernel went quiet; so far: {[m['msg_type'] for m in got]}") from None
        if msg["parent_header"].get("msg_id") == msg_id:
            got.append(msg)
    return got


def idle(msgs: list[dict]) -> bool:
    return any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in msgs)


def text(msg: dict) -> str:
    return msg["content"].get("data", {}).get("text/plain", "") or msg["content"].get("text", "")


def test_a_running_job_shows_a_progress_bar_in_its_cell(kernel, tmp_path):
    made = messages_of(kernel, kernel.execute("from agp.kernels import spark\ns = spark()"), idle)
    assert not [m for m in made if m["msg_type"] == "error"], made
    assert len([m for m in made if m["msg_type"] == "display_data"]) == 1, "one line for the start and its link"
    link = [m for m in made if m["msg_type"] == "update_display_data"][-1]
    assert re.fullmatch(rf"\[Spark\] session ready in \d+ s · Spark UI: {PREFIX}proxy/\d+/jobs/", text(link))
    assert ">Spark UI</a>" in link["content"]["data"]["text/html"]

    gate = tmp_path / "go"
    job = (
        "import os, time\n"
        f"def held(i, gate={str(gate)!r}):\n"
        "    end = time.monotonic() + 600\n"  # a bound in case the test dies, not part of what is checked
        "    while not os.path.exists(gate) and time.monotonic() < end:\n"
        "        time.sleep(0.05)\n"
        "    return i\n"
        "print('sum', s.sparkContext.parallelize(range(4), 4).map(held).sum())"
    )
    cell = kernel.execute(job)

    def bar_shown(msgs):
        return any(m["msg_type"] == "display_data" and text(m).startswith("[Spark] job") for m in msgs)

    running = messages_of(kernel, cell, bar_shown)
    [bar] = [m for m in running if m["msg_type"] == "display_data"]
    assert "0/4 tasks done" in text(bar) and "running" in text(bar), text(bar)
    assert '<progress max="100" value="0"' in bar["content"]["data"]["text/html"]
    display_id = bar["content"]["transient"]["display_id"]
    gate.touch()

    def ended(msgs):
        return idle(msgs) and any(text(m).endswith("succeeded") for m in msgs)

    rest = messages_of(kernel, cell, ended)
    assert "sum 6\n" in "".join(text(m) for m in rest if m["msg_type"] == "stream")
    updates = [m for m in rest if m["msg_type"] == "update_display_data"]
    assert updates and {m["content"]["transient"]["display_id"] for m in updates} == {display_id}
    job_id = re.match(r"\[Spark\] job (\d+),", text(bar)).group(1)
    assert text(updates[-1]) == f"[Spark] job {job_id} succeeded"
    assert 'value="100"' in updates[-1]["content"]["data"]["text/html"]
    assert not [m for m in rest if m["msg_type"] == "display_data"], "one bar per cell"

    check = kernel.execute(
        "from agp.kernels import spark_session as ss\n"
        "m = ss._monitor\n"
        "print('console', s.conf.get('spark.ui.showConsoleProgress'), 'alive', m.alive)\n"
        "ss._stop()\n"
        "print('after stop', m.alive, ss.spark_ui_url())"
    )
    out = "".join(text(m) for m in messages_of(kernel, check, idle) if m["msg_type"] == "stream")
    assert "console false alive True" in out
    assert "after stop False None" in out, "the progress thread ends with the session"


def test_a_clean_start_prints_nothing_into_the_cell(tmp_path_factory, user_api, hub_url, settings):
    """Spark's and Iceberg's start-up lines (the JVM's notice, log4j's defaults, Iceberg's deprecation warnings
    about our settings) are not the notebook's: a cell that makes the session and runs a job shows no stream."""
    token = user_api("alice").http.headers["Authorization"].split()[1]
    env = {"AGP_CACHE_DIR": str(settings.cache_dir), "JUPYTERHUB_SERVICE_PREFIX": PREFIX}
    home = tmp_path_factory.mktemp("jupyter-data")
    with workspace_kernel(home, hub_url, token, **env) as kc:
        cell = "from agp.kernels import spark\ns = spark()\ns.sql('SELECT count(*) FROM meter_readings').collect()"
        made = messages_of(kc, kc.execute(cell), idle)
        done = messages_of(kc, kc.execute("from agp.kernels.spark_session import _stop\n_stop()"), idle)
    assert not [m for m in made + done if m["msg_type"] == "error"], made
    streams = [(m["content"]["name"], m["content"]["text"]) for m in made if m["msg_type"] == "stream"]
    assert streams == [], streams

    # Its start is one line that updates through its phases, from the first moment to the ready session.
    [first] = [m for m in made if m["msg_type"] == "display_data" and text(m).startswith("[Spark] starting")]
    display_id = first["content"]["transient"]["display_id"]
    lines = [text(first)] + [
        text(m)
        for m in made
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id
    ]
    assert lines[0] == "[Spark] starting · resolving Iceberg's jars… · 0 s", lines
    phases = [re.sub(r" · \d+ s$", "", line) for line in lines]
    assert list(dict.fromkeys(phases)) == [
        "[Spark] starting · resolving Iceberg's jars…",
        "[Spark] starting · jars ready (2) · starting the JVM…",
        "[Spark] starting · jars ready (2) · JVM up · opening the workspace catalog…",
        re.sub(r" · \d+ s$", "", lines[-1]),
    ], phases
    assert re.fullmatch(rf"\[Spark\] session ready in \d+ s · Spark UI: {PREFIX}proxy/\d+/jobs/", lines[-1])
    # The JVM's warnings and log4j's notices went into the kernel's Spark log, in the user's own cache.
    [log_file] = (home / ".cache" / "agp" / "spark").glob("driver-*.log")
    assert "log4j" in log_file.read_text() and log_file.stat().st_mode & 0o777 == 0o600


def test_a_start_that_fails_is_one_sentence_naming_the_jvms_log(tmp_path_factory, user_api, hub_url, settings):
    token = user_api("alice").http.headers["Authorization"].split()[1]
    env = {"AGP_CACHE_DIR": str(settings.cache_dir), "JAVA_HOME": "/nonexistent/java"}
    home = tmp_path_factory.mktemp("jupyter-data")
    with workspace_kernel(home, hub_url, token, **env) as kc:
        made: list[dict] = []
        reply = kc.execute_interactive("from agp.kernels import spark\ns = spark()", output_hook=made.append)
    assert reply["content"]["status"] == "error", made
    [error] = [m["content"] for m in made if m["msg_type"] == "error"]
    [log_file] = (home / ".cache" / "agp" / "spark").glob("driver-*.log")
    assert error["traceback"] == [f"Spark did not start: its JVM exited before it was ready; its log: {log_file}."]
    assert "/nonexistent/java" in log_file.read_text(), "the log says why"
    line = [text(m) for m in made if m["msg_type"] in ("display_data", "update_display_data")][-1]
    assert line.startswith("[Spark] did not start (starting the JVM, after ") and str(log_file) in line
    streams = [m["content"]["text"] for m in made if m["msg_type"] == "stream"]
    assert not streams, streams
