"""The server extension's jobs handlers (``/agp/jobs/...``), in-process with jupyter_server's ``jp_fetch``.

The workspace service is a small real HTTP server in this process (``service`` below): it records what our handlers
send and answers what each test tells it to, so the handlers are tested over real HTTP on both sides.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from agp.extension.jobs import Refused, output_path, parse_job_request, runs_query, service_error

pytest_plugins = ["jupyter_server.pytest_plugin"]

TOKEN = "server-token-of-alice"
RUN = {"id": 7, "job_id": 3, "job_name": "daily report", "state": "queued", "owner": "alice", "page_url": None}


class FakeService:
    """The workspace service's jobs API as far as these tests need it: routes to canned answers, requests kept."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                url = urlsplit(self.path)
                body = self.rfile.read(length) if length else b""
                service.requests.append(
                    {
                        "method": self.command,
                        "path": url.path,
                        "query": parse_qs(url.query),
                        "authorization": self.headers.get("Authorization"),
                        "json": json.loads(body) if body else None,
                    }
                )
                status, headers, payload = service.answers.get(
                    (self.command, url.path), (404, {}, json.dumps({"detail": "No such route here."}).encode())
                )
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/workspaces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, status: int = 200, body=None, headers=None, raw: bytes | None = None):
        payload = raw if raw is not None else json.dumps(body).encode()
        self.answers[(method, f"/services/workspaces/api/workspaces/finance/{path}")] = (status, headers or {}, payload)

    def last(self) -> dict:
        return self.requests[-1]


@pytest.fixture
def service():
    fake = FakeService()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def jp_server_config(service, monkeypatch):
    """Our extension enabled, in a server whose environment names the fake service (read when the server starts)."""
    monkeypatch.setenv("AGP_WORKSPACE_SERVICE_URL", service.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("AGP_WORKSPACE", "finance")
    return {"ServerApp": {"jpserver_extensions": {"agp.extension": True}}}


async def _error(jp_fetch, *path, **kwargs) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(*path, **kwargs)
    return e.value.code, json.loads(e.value.response.body)


def _notebook(tmp, name: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    (tmp / name).write_text(nbformat.writes(nb))
    return nbformat.writes(nb)


# --- pure -------------------------------------------------------------------------------------------------------


def test_a_job_request_becomes_checked_values():
    job = parse_job_request(
        {"path": "./reports//daily.ipynb", "parameters": {"day": "2026-01-02", "n": 3}, "timeout_seconds": 600}
    )
    assert (job.path, job.kind, job.name, job.filename) == ("reports/daily.ipynb", "notebook", "daily", "daily.ipynb")
    assert job.service_body("{}") == {
        "name": "daily",
        "kind": "notebook",
        "filename": "daily.ipynb",
        "source": "{}",
        "parameters": {"day": "2026-01-02", "n": 3},
        "schedule": None,
        "run_now": True,
        "timeout_seconds": 600,
    }
    scheduled = parse_job_request(
        {"path": "etl.py", "name": " ETL ", "schedule": "0 6 * * *", "timezone": "Europe/Berlin", "max_retries": 0}
    )
    assert (scheduled.kind, scheduled.name, scheduled.schedule, scheduled.timezone) == (
        "script",
        "ETL",
        "0 6 * * *",
        "Europe/Berlin",
    )
    assert scheduled.service_body("print(1)")["max_retries"] == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "Name the notebook"),
        ({"path": "../other/x.py"}, "outside the server's root"),
        ({"path": "a/../../x.py"}, "outside the server's root"),
        ({"path": "/etc/passwd.py"}, "not a path relative"),
        ({"path": "C:/x.py"}, "not a path relative"),
        ({"path": "a\\..\\x.py"}, "not a path relative"),
        ({"path": "x.py\0.ipynb"}, "not a path relative"),
        ({"path": "notes.txt"}, "neither a notebook (.ipynb) nor a Python script (.py)"),
        ({"path": "x.py", "parameters": ["a"]}, "parameters is a JSON object"),
        ({"path": "x.py", "timeout_seconds": "60"}, "timeout_seconds is a whole number"),
        ({"path": "x.py", "timeout_seconds": 0}, "timeout_seconds is a whole number"),
        ({"path": "x.py", "max_retries": True}, "max_retries is a whole number"),
        ({"path": "x.py", "schedule": "0 6 * * *\n* * * * *"}, "schedule is one line"),
        ({"path": "x.py", "owner": "bob"}, "Unknown field(s): owner"),
        ([], "The body is a JSON object"),
    ],
)
def test_a_job_request_that_is_refused_says_why(body, words):
    with pytest.raises(Refused) as e:
        parse_job_request(body)
    assert words in str(e.value)


def test_runs_query_keeps_checked_arguments_only():
    assert runs_query({"limit": "20", "state": "running", "owner": "bob", "offset": ""}) == {
        "limit": "20",
        "state": "running",
    }
    for bad in ({"limit": "-1"}, {"job_id": "1 OR 1=1"}, {"state": "exploded"}):
        with pytest.raises(Refused):
            runs_query(bad)


def test_output_names_are_safe():
    assert output_path("job-outputs", "daily report", 7) == "job-outputs/daily-report-run-7.ipynb"
    assert output_path("job-outputs", "../../etc/passwd", 8) == "job-outputs/etc-passwd-run-8.ipynb"
    assert output_path("out/", "ünïcode/..", 9) == "out/n-code-run-9.ipynb"
    assert output_path("out", "...", 10) == "out/job-run-10.ipynb"


def test_service_errors_become_one_sentence():
    assert service_error(409, b'{"detail": "The workspace runs 4 jobs already.\\nmore"}') == (
        "The workspace runs 4 jobs already."
    )
    validation = {"detail": [{"loc": ["body", "schedule"], "msg": "not a cron expression"}]}
    assert service_error(422, json.dumps(validation).encode()) == "schedule: not a cron expression"
    assert service_error(502, b"<html>Bad gateway</html>") == "The workspace service answered HTTP 502."


# --- in-process: jp_fetch on the real server, the fake service over HTTP -----------------------------------------


async def test_runs_are_listed_as_the_server_with_checked_arguments(jp_fetch, service):
    service.answer("GET", "runs", body=[RUN])
    r = await jp_fetch("agp", "jobs", "runs", params={"limit": "20", "state": "queued", "owner": "bob"})
    assert json.loads(r.body) == [RUN]
    sent = service.last()
    assert sent["authorization"] == f"token {TOKEN}"
    assert sent["query"] == {"limit": ["20"], "state": ["queued"]}, "unknown arguments are not forwarded"
    code, error = await _error(jp_fetch, "agp", "jobs", "runs", params={"state": "exploded"})
    assert code == 400 and "state is one of" in error["message"]


async def test_a_notebook_is_submitted_with_its_source(jp_fetch, service, jp_root_dir):
    (jp_root_dir / "reports").mkdir()
    text = _notebook(jp_root_dir / "reports", "daily.ipynb")
    service.answer("POST", "jobs", 201, {"job": {"id": 3, "name": "daily"}, "run": RUN})
    body = {"path": "reports/daily.ipynb", "parameters": {"day": "mon"}, "schedule": "0 6 * * 1", "timezone": "UTC"}
    r = await jp_fetch("agp", "jobs", method="POST", body=json.dumps(body))
    assert r.code == 201 and json.loads(r.body)["run"]["id"] == 7
    sent = service.last()
    assert (sent["method"], sent["authorization"]) == ("POST", f"token {TOKEN}")
    assert nbformat.reads(sent["json"].pop("source"), 4) == nbformat.reads(text, 4)
    assert sent["json"] == {
        "name": "daily",
        "kind": "notebook",
        "filename": "daily.ipynb",
        "parameters": {"day": "mon"},
        "schedule": "0 6 * * 1",
        "timezone": "UTC",
        "run_now": True,
    }


async def test_a_script_is_submitted_as_its_text(jp_fetch, service, jp_root_dir):
    (jp_root_dir / "etl.py").write_text("print('hello')\n")
    service.answer("POST", "jobs", 201, {"job": {"id": 4}, "run": None})
    body = {"path": "etl.py", "name": "nightly", "timeout_seconds": 60, "max_retries": 2, "run_now": False}
    await jp_fetch("agp", "jobs", method="POST", body=json.dumps(body))
    sent = service.last()["json"]
    assert (sent["kind"], sent["source"], sent["name"], sent["timeout_seconds"], sent["max_retries"]) == (
        "script",
        "print('hello')\n",
        "nightly",
        60,
        2,
    )
    assert sent["run_now"] is False


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("../outside.py", 400, "outside the server's root"),
        ("/etc/hosts.py", 400, "not a path relative"),
        ("notes.txt", 400, "neither a notebook"),
        ("missing.py", 404, "There is no file missing.py"),
    ],
)
async def test_what_is_not_a_notebook_or_script_of_this_server_is_refused(jp_fetch, service, path, code, words):
    got, error = await _error(jp_fetch, "agp", "jobs", method="POST", body=json.dumps({"path": path}))
    assert (got, words in error["message"]) == (code, True), error
    assert service.requests == [], "nothing reaches the service"


async def test_a_file_outside_the_root_through_a_link_is_refused(jp_fetch, service, jp_root_dir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.py"
    outside.write_text("print('secret')\n")
    (jp_root_dir / "link.py").symlink_to(outside)
    code, _ = await _error(jp_fetch, "agp", "jobs", method="POST", body=json.dumps({"path": "link.py"}))
    assert code in (400, 403, 404)
    assert service.requests == []


async def test_service_errors_keep_their_status_and_sentence(jp_fetch, service, jp_root_dir):
    (jp_root_dir / "etl.py").write_text("print(1)\n")
    service.answer("POST", "jobs", 409, {"detail": "Workspace finance runs 4 jobs already, its quota; wait for one."})
    code, error = await _error(jp_fetch, "agp", "jobs", method="POST", body=json.dumps({"path": "etl.py"}))
    assert (code, error["message"]) == (409, "Workspace finance runs 4 jobs already, its quota; wait for one.")
    service.answer("GET", "runs/8", 403, {"detail": "You are not a member of workspace finance."})
    code, error = await _error(jp_fetch, "agp", "jobs", "runs", "8")
    assert (code, error["message"]) == (403, "You are not a member of workspace finance.")
    code, error = await _error(jp_fetch, "agp", "jobs", "runs", "9")
    assert (code, error["message"]) == (404, "No such route here.")


async def test_a_service_that_does_not_answer_is_a_503(jp_fetch, service):
    service.server.shutdown()
    service.server.server_close()
    code, error = await _error(jp_fetch, "agp", "jobs", "runs")
    assert code == 503
    assert error["message"].startswith("The workspace service does not answer") and "\n" not in error["message"]


async def test_a_server_outside_a_workspace_says_so(jp_fetch, jp_serverapp):
    jp_serverapp.web_app.settings["agp_jobs"].environ = {}
    code, error = await _error(jp_fetch, "agp", "jobs", "runs")
    assert code == 503 and "AGP_WORKSPACE_SERVICE_URL" in error["message"]


async def test_a_run_is_read_and_cancelled(jp_fetch, service):
    service.answer("GET", "runs/7", body=RUN)
    assert json.loads((await jp_fetch("agp", "jobs", "runs", "7")).body) == RUN
    service.answer("POST", "runs/7/cancel", body={**RUN, "state": "cancelled"})
    r = await jp_fetch("agp", "jobs", "runs", "7", "cancel", method="POST", body="")
    assert json.loads(r.body)["state"] == "cancelled"
    assert (service.last()["method"], service.last()["path"]) == (
        "POST",
        "/services/workspaces/api/workspaces/finance/runs/7/cancel",
    )


async def test_the_log_is_text_with_its_offset_and_state(jp_fetch, service):
    service.answer(
        "GET",
        "runs/7/log",
        raw=b"cell 1 of 3\n",
        headers={"Content-Type": "text/plain", "X-Run-State": "running", "X-Log-Next-Offset": "12"},
    )
    r = await jp_fetch("agp", "jobs", "runs", "7", "log", params={"offset": "0"})
    assert r.body == b"cell 1 of 3\n"
    assert (r.headers["X-Run-State"], r.headers["X-Log-Next-Offset"]) == ("running", "12")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert service.last()["query"] == {"offset": ["0"]}
    code, _ = await _error(jp_fetch, "agp", "jobs", "runs", "7", "log", params={"offset": "-5"})
    assert code == 400


async def test_a_runs_output_is_opened_in_the_users_folder(jp_fetch, service, jp_root_dir):
    executed = nbformat.v4.new_notebook()
    executed.cells.append(nbformat.v4.new_code_cell("1 + 1", execution_count=1))
    service.answer("GET", "runs/7", body={**RUN, "job_name": "daily report/../x", "state": "succeeded"})
    service.answer("GET", "runs/7/output", body=executed)
    r = await jp_fetch("agp", "jobs", "runs", "7", "open", method="POST", body="")
    path = json.loads(r.body)["path"]
    assert path == "job-outputs/daily-report-..-x-run-7.ipynb" or path.startswith("job-outputs/daily-report")
    saved = nbformat.read(jp_root_dir / path, 4)
    assert saved.cells[0].source == "1 + 1"
    assert (jp_root_dir / path).resolve().parent == (jp_root_dir / "job-outputs").resolve()


async def test_an_opened_output_is_never_trusted(jp_fetch, jp_serverapp, service, jp_root_dir):
    """A run's output is its job's code's (or any bucket writer's): cells it marks trusted must not get it signed in
    the server of whoever opens it, where JupyterLab would run its scripts as that user."""
    executed = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("HTML(...)", execution_count=1, metadata={"trusted": True})
    cell.outputs.append(
        nbformat.v4.new_output("display_data", data={"text/html": "<script>steal()</script>", "text/plain": "x"})
    )
    executed.cells.append(cell)
    service.answer("GET", "runs/7", body={**RUN, "state": "succeeded"})
    service.answer("GET", "runs/7/output", body=executed)
    r = await jp_fetch("agp", "jobs", "runs", "7", "open", method="POST", body="")
    path = json.loads(r.body)["path"]
    cm = jp_serverapp.contents_manager
    assert not cm.notary.check_signature(nbformat.read(jp_root_dir / path, 4))
    model = await jp_fetch("api", "contents", path, params={"content": "1"})
    saved = json.loads(model.body)["content"]["cells"][0]
    assert saved["metadata"].get("trusted") is False and saved["outputs"], saved


async def test_a_run_without_output_says_so(jp_fetch, service):
    service.answer("GET", "runs/7", body=RUN)
    service.answer("GET", "runs/7/output", 404, {"detail": "Run 7 has no output (it is queued)."})
    code, error = await _error(jp_fetch, "agp", "jobs", "runs", "7", "open", method="POST", body="")
    assert (code, error["message"]) == (404, "Run 7 has no output (it is queued).")
    service.answer("GET", "runs/7/output", body={"not": "a notebook"})
    code, error = await _error(jp_fetch, "agp", "jobs", "runs", "7", "open", method="POST", body="")
    assert (code, error["message"]) == (502, "The output of run 7 is not a valid notebook.")


async def test_requests_without_the_users_credentials_are_refused(jp_fetch, jp_base_url, jp_http_port, service):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}agp/jobs/runs"
    with pytest.raises(HTTPClientError) as e:
        await AsyncHTTPClient().fetch(url)
    assert e.value.code == 403
    with pytest.raises(HTTPClientError) as e:
        await AsyncHTTPClient().fetch(url.replace("/runs", ""), method="POST", body='{"path": "x.py"}')
    assert e.value.code == 403
    assert service.requests == []
