"""From inside a real kernel of a hub-started workspace server: no lab secret is within the notebook's reach.

alice's kernel (in her server, started through the hub) walks every file under the lab folder, the cache, /var/lib/agp,
/tmp, /var/tmp, /root, /home and the servers' homes (her own excepted), and every /proc/*/environ and /proc/*/cmdline,
and reports each place where a lab secret appears: the secret fields of the lab's credentials, the private keys and
secrets of ``<lab>/secrets``, the hub's cookie secret and crypt key, the proxy's auth token, and the hub API tokens of
every process that is not hers (bob's server, the workspace service, ...). The test itself (root) collects those values.
A credential still at its published default (``Credentials``' literal, in the README and in every copy of the source)
is reported apart: file modes cannot hide a value the source prints. It also checks that the kernel is not root,
cannot write the runtime it runs from, that ``%pip install`` goes to the user's own site, and that a Keycloak name
that is no OS name gets an account and a 0700 home of its own. It prints attempts, denials and leaks.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import uuid

import psutil
import pytest
from conftest import remove_workspace
from hubclient import Api, HubSession
from kernelclient import NotebookKernel

from agp.core.settings import REVEAL_SECRETS, Credentials
from agp.core.tokens import KeyPaths
from agp.spawner.osusers import os_user_name

pytestmark = pytest.mark.integration

SECRET_FIELD = re.compile(r"password|secret")
ENV_SECRETS = ("JUPYTERHUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN", "JUPYTERHUB_CRYPT_KEY", "JPY_API_TOKEN")

# Runs in the kernel: walks what the kernel's user can read and looks for the secrets (a dict name -> value).
SCAN = r"""
import base64, json, os, stat, sys, sysconfig
needles = {k: v.encode() for k, v in json.loads(base64.b64decode(%(needles)r)).items()}
public_defaults = set(%(public_defaults)r)
roots, home = %(roots)r, os.path.realpath(os.environ["HOME"])
report = {"uid": os.getuid(), "euid": os.geteuid(), "files_read": 0, "denied": 0, "too_big": 0, "proc_read": 0,
          "proc_denied": 0, "leaks": [], "published": [], "source_copies": 0, "denied_examples": []}
MAX = 64 * 1024 * 1024

SOURCE = ("/site-packages/agp/", "/antigravity_platform", "/agp/compose/", "/compose/config/")

def look(where, data):
    for name, value in needles.items():
        if value in data:
            if name not in public_defaults:
                report["leaks"].append([name, where])
            elif where.endswith((".py", ".pyc", ".md")) or any(s in where for s in SOURCE):
                report["source_copies"] += 1  # a published default, in a copy of agp's source
            else:
                report["published"].append([name, where])

def denied(path):
    report["denied"] += 1
    if len(report["denied_examples"]) < 8:
        report["denied_examples"].append(path)

seen = set()
def walk(path):
    try:
        info = os.lstat(path)
    except OSError:
        return
    if (info.st_dev, info.st_ino) in seen:
        return
    seen.add((info.st_dev, info.st_ino))
    if os.path.realpath(path) == home:
        return
    if stat.S_ISDIR(info.st_mode):
        try:
            entries = os.listdir(path)
        except OSError:
            denied(path)
            return
        for entry in entries:
            walk(os.path.join(path, entry))
    elif stat.S_ISREG(info.st_mode):
        if info.st_size > MAX:
            report["too_big"] += 1
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            denied(path)
            return
        report["files_read"] += 1
        look(path, data)

for root in roots:
    walk(root)
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    data = f.read()
            except OSError:
                report["proc_denied"] += 1
                continue
            report["proc_read"] += 1
            look(f"/proc/{pid}/{part}", data)

prefix, site = sys.prefix, sysconfig.get_paths()["purelib"]
report["runtime"] = prefix
report["runtime_writable"] = [p for p in (prefix, site, os.path.join(site, "agp")) if os.access(p, os.W_OK)]
try:
    open(os.path.join(site, "agp", "planted.py"), "w").close()
    report["runtime_writable"].append("wrote agp/planted.py")
except OSError:
    pass
import site as site_module
report["user_site"] = site_module.getusersitepackages()
report["home"] = home
report["pip_user"] = os.environ.get("PIP_USER")
print("REPORT" + json.dumps(report))
"""


def _private_pem_lines(text: str) -> list[str]:
    """Lines from the private half of each PEM private key in ``text`` (their last full lines: CRT values, which no
    public key or certificate contains)."""
    found = []
    for block in re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)-----END", text, re.S):
        lines = [line for line in block.splitlines() if len(line) == 64]
        found += lines[-3:]
    return found


def lab_secrets(settings, own_uid: int | None, extra_tokens: dict[str, str]) -> dict[str, str]:
    """Every lab secret value by a readable name, collected as root."""
    out: dict[str, str] = {}
    for name, value in settings.credentials.model_dump(context={REVEAL_SECRETS: True}).items():
        if SECRET_FIELD.search(name) and isinstance(value, str) and len(value) >= 6:
            out[f"credentials.{name}"] = value
    keys = KeyPaths(settings.keys_dir)
    for path in sorted(keys.folder.iterdir()):
        text = path.read_text(errors="replace")
        if "PRIVATE KEY" in text:
            for i, line in enumerate(_private_pem_lines(text)):
                out[f"secrets/{path.name}#{i}"] = line
        elif path not in (keys.broker_public, keys.trino_ca):
            out[f"secrets/{path.name}"] = text.strip()
    hub = settings.lab_dir / "hub"
    for name in ("jupyterhub_cookie_secret", "crypt_key"):
        if (hub / name).exists():
            out[f"hub/{name}"] = (hub / name).read_text().strip()
    for proc in psutil.process_iter(["pid", "uids", "name"]):
        try:
            if own_uid is not None and proc.info["uids"].real == own_uid:
                continue
            env = proc.environ()
        except psutil.Error:
            continue
        for var in ENV_SECRETS:
            if env.get(var) and len(env[var]) >= 16:
                out.setdefault(f"env {var} of pid {proc.info['pid']} ({proc.info['name']})", env[var])
    out.update(extra_tokens)
    return {k: v for k, v in out.items() if v}


@pytest.fixture(scope="module")
def workspace(admin_api, settings):
    """A workspace of its own, alice and bob editors (tests of others start and stop servers of ``demo``)."""
    slug = f"t-iso-{uuid.uuid4().hex[:8]}"
    r = admin_api("POST", "/workspaces", json={"slug": slug})
    assert r.status_code == 201, r.text
    for user in ("alice", "bob"):
        r = admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": "editor"})
        assert r.status_code == 200, r.text
    yield slug
    remove_workspace(settings, slug)


@pytest.fixture(scope="module")
def servers(user_api, workspace):
    """alice's and bob's servers of the workspace, started through the hub."""
    started = {}
    for user in ("alice", "bob"):
        api = user_api(user)
        r = api.hub("POST", f"/users/{user}/servers/{workspace}")
        assert r.status_code in (201, 202), r.text
        started[user] = api
    for user, api in started.items():
        api.wait_server(user, workspace)
    yield started
    for user, api in started.items():
        api.hub("DELETE", f"/users/{user}/servers/{workspace}")


@pytest.fixture(scope="module")
def kernel(servers, hub_url, workspace):
    alice = servers["alice"]
    url = f"{hub_url}/user/alice/{workspace}"
    path = f"isolation-{uuid.uuid4().hex[:8]}.ipynb"
    nb = NotebookKernel.new_notebook(alice.http, url, path)
    yield nb
    nb.shutdown()
    alice.http.delete(f"{url}/api/contents/{path}", timeout=30)


def _kernel_uid(nb: NotebookKernel) -> int:
    reply = nb.execute("import os; print(os.getuid())")
    assert not reply.errors, reply.errors
    return int(reply.text.strip())


def test_no_lab_secret_is_within_a_kernels_reach(kernel, settings, servers, user_api):
    uid = _kernel_uid(kernel)
    others = {
        "hub API token of the admin (tests)": user_api("admin").http.headers["Authorization"].split()[-1],
        "hub API token of bob (tests)": servers["bob"].http.headers["Authorization"].split()[-1],
    }
    secrets = lab_secrets(settings, uid if uid != 0 else None, others)
    assert any(k.startswith("env CONFIGPROXY_AUTH_TOKEN") for k in secrets), "the proxy's token was not found"
    assert any("JUPYTERHUB_API_TOKEN" in k for k in secrets), "no other process's hub API token was found"
    defaults = Credentials().model_dump(context={REVEAL_SECRETS: True})
    public_defaults = [
        f"credentials.{n}"
        for n, v in settings.credentials.model_dump(context={REVEAL_SECRETS: True}).items()
        if defaults.get(n) == v and f"credentials.{n}" in secrets
    ]
    roots = sorted(
        {
            str(settings.lab_dir),
            str(settings.cache_dir),
            "/var/lib/agp",
            "/tmp",
            "/var/tmp",
            "/root",
            "/home",
            str(settings.servers_root),
        }
    )
    code = SCAN % {
        "needles": base64.b64encode(json.dumps(secrets).encode()).decode(),
        "public_defaults": public_defaults,
        "roots": roots,
    }
    reply = kernel.execute(code)
    assert not reply.errors, reply.errors
    report = json.loads(reply.text.split("REPORT", 1)[1])
    print(
        f"\nkernel uid {report['uid']} (euid {report['euid']}), looking for {len(secrets)} secret values in {roots}:"
        f"\n  attempts: {report['files_read'] + report['denied']} files ({report['files_read']} read, "
        f"{report['denied']} denied, {report['too_big']} over 64 MiB skipped), "
        f"{report['proc_read'] + report['proc_denied']} /proc environ/cmdline ({report['proc_read']} read, "
        f"{report['proc_denied']} denied)\n  denied, e.g.: {report['denied_examples']}"
        f"\n  credentials left at their published defaults (known to anyone with the source; not counted as "
        f"leaks): {', '.join(public_defaults) or 'none'}; seen in copies of the source {report['source_copies']} "
        f"times, elsewhere {len(report['published'])} times"
        f"\n  leaks: {len(report['leaks'])}"
    )
    for name, where in report["published"][:20]:
        print(f"    published default {name} in {where}")
    for name, where in report["leaks"][:50]:
        print(f"    LEAK {name} in {where}")
    assert report["uid"] != 0 and report["euid"] != 0, "the kernel runs as root"
    assert not report["leaks"], f"{len(report['leaks'])} lab secrets are readable from a kernel"


def test_the_kernel_cannot_change_the_runtime_and_installs_into_its_home(kernel):
    reply = kernel.execute(SCAN % {"needles": base64.b64encode(b"{}").decode(), "public_defaults": [], "roots": []})
    assert not reply.errors, reply.errors
    report = json.loads(reply.text.split("REPORT", 1)[1])
    print(f"\nruntime {report['runtime']}; writable by the kernel: {report['runtime_writable']}")
    assert report["uid"] != 0
    assert report["runtime_writable"] == []
    assert report["pip_user"] == "1" and report["user_site"].startswith(report["home"] + "/")


def test_another_user_cannot_subscribe_to_the_kernels_output(kernel):
    """Kernels talk to their server over unix sockets in the user's 0700 folder: on loopback TCP, any local user
    could subscribe to a kernel's IOPub (the HMAC key signs, it does not hide) and read every input and output of
    another user's notebook. The test subscribes to every TCP port the kernel listens on (ipykernel keeps one PULL
    pipe for its subprocesses' output, which sends nothing) while the kernel prints a marker."""
    import psutil
    import zmq

    reply = kernel.execute(
        "import json, os, ipykernel.connect as c\n"
        "info = json.loads(c.get_connection_info())\n"
        "print(json.dumps({'pid': os.getpid(), 'transport': info['transport'], 'ip': info['ip'],"
        " 'home': os.path.expanduser('~')}))"
    )
    assert not reply.errors, reply.errors
    info = json.loads(reply.text)
    assert info["transport"] == "ipc" and info["ip"].startswith(info["home"] + "/"), info
    ports = [
        c.laddr.port for c in psutil.Process(info["pid"]).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    ctx = zmq.Context()
    subs = []
    for port in ports:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"tcp://127.0.0.1:{port}")
        subs.append(sub)
    try:
        marker = f"marker-{uuid.uuid4().hex}"
        kernel.execute(f"import time; time.sleep(1); print({marker!r})")
        poller = zmq.Poller()
        for sub in subs:
            poller.register(sub, zmq.POLLIN)
        heard = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for sock, _ in poller.poll(200):
                heard.append(b"".join(sock.recv_multipart()))
        assert not any(marker.encode() in m for m in heard), f"another user read the kernel's output on {ports}"
        print(f"\nkernel listens on TCP {ports}; subscribing to them heard {len(heard)} messages, no output")
    finally:
        for sub in subs:
            sub.close()
        ctx.term()


def test_pip_install_goes_to_the_users_own_site(kernel):
    """``%pip install`` of a (local, tiny) wheel from a notebook lands in the user's site, and imports."""
    name = f"agp_tiny_{uuid.uuid4().hex[:6]}"
    reply = kernel.execute(
        "import os, zipfile, base64, hashlib\n"
        f"name = {name!r}\n"
        "whl = os.path.join(os.environ['TMPDIR'], f'{name}-0.1-py3-none-any.whl')\n"
        "files = {f'{name}.py': b'VALUE = 42\\n', f'{name}-0.1.dist-info/METADATA': "
        "f'Metadata-Version: 2.1\\nName: {name}\\nVersion: 0.1\\n'.encode(), "
        "f'{name}-0.1.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
        "Tag: py3-none-any\\n'}\n"
        "def rec(d): return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()\n"
        "record = ''.join(f'{p},{rec(d)},{len(d)}\\n' for p, d in files.items())\n"
        "record += f'{name}-0.1.dist-info/RECORD,,\\n'\n"
        "with zipfile.ZipFile(whl, 'w') as z:\n"
        "    [z.writestr(p, d) for p, d in files.items()]\n"
        "    z.writestr(f'{name}-0.1.dist-info/RECORD', record)\n"
        "print(whl)"
    )
    assert not reply.errors, reply.errors
    whl = reply.text.strip()
    reply = kernel.execute(f"%pip install --no-index --no-deps --quiet {whl}")
    assert not reply.errors, reply.errors
    reply = kernel.execute(
        f"import importlib, os; m = importlib.import_module({name!r}); "
        "print(m.VALUE, m.__file__.startswith(os.environ['HOME'] + '/.local/'))"
    )
    assert not reply.errors, (reply.errors, reply.text)
    assert reply.text.strip() == "42 True", reply.text


def test_a_keycloak_name_that_is_no_os_name_gets_an_account_of_its_own(
    hub_url, keycloak_admin, admin_api, workspace, settings
):
    """A hub user named ``o.neill.<hex>`` (dots: not an OS name) spawns as ``agp-o-neill-<hex>_<hash>``, in a 0700
    home of its own, and the server's environment keeps the user's files in that home."""
    name = f"o.neill.{uuid.uuid4().hex[:6]}"
    user_id = keycloak_admin.create_user(name, "oneill-pass-1")
    session = HubSession(hub_url)
    try:
        r = admin_api("PUT", f"/workspaces/{workspace}/members/{name}", json={"role": "viewer"})
        assert r.status_code == 200, r.text
        session.login(name, "oneill-pass-1")
        api = Api(hub_url, session.new_token(name))
        r = api.hub("POST", f"/users/{name}/servers/{workspace}")
        assert r.status_code in (201, 202), r.text
        api.wait_server(name, workspace)
        nb = NotebookKernel.new_notebook(api.http, f"{hub_url}/user/{name}/{workspace}", "whoami.ipynb")
        reply = nb.execute(
            "import os, pwd, stat, sys, json\n"
            "home = os.environ['HOME']\n"
            "print(json.dumps({'name': pwd.getpwuid(os.getuid()).pw_name, 'home': home, 'cwd': os.getcwd(),\n"
            "  'mode': oct(stat.S_IMODE(os.stat(home).st_mode)), 'owner': os.stat(home).st_uid == os.getuid(),\n"
            "  'env': {k: os.environ.get(k, '') for k in ('JUPYTER_RUNTIME_DIR', 'TMPDIR', 'PYTHONUSERBASE')},\n"
            "  'python': sys.executable}))"
        )
        nb.shutdown()
        assert not reply.errors, reply.errors
        seen = json.loads(reply.text)
        print(f"\nhub user {name!r} runs as {seen['name']!r} in {seen['home']} ({seen['mode']})")
        assert seen["name"] == os_user_name(name) and re.fullmatch(
            r"agp-o-neill-[0-9a-f]{6}_[0-9a-f]{10}", seen["name"]
        )
        assert seen["home"].endswith("/" + seen["name"]) and seen["mode"] == "0o700" and seen["owner"]
        assert seen["cwd"].startswith(seen["home"] + "/workspaces/")
        assert all(v.startswith(seen["home"] + "/") for v in seen["env"].values()), seen["env"]
        assert not seen["python"].startswith("/root/")
        api.hub("DELETE", f"/users/{name}/servers/{workspace}")
    finally:
        keycloak_admin.delete_user(user_id)
        # Tests make a new user each run: give its system account (the uids below 1000 are few) and home back.
        subprocess.run(["/usr/sbin/userdel", os_user_name(name)], capture_output=True)
        shutil.rmtree(settings.servers_root / "homes" / os_user_name(name), ignore_errors=True)
