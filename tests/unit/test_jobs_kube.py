"""The Kubernetes executor's pure parts: the Job and Secret of an attempt against literal values and the Kubernetes
schemas, and what a Job's and its pod's status say of the attempt (no cluster)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
from pydantic import SecretStr

from agp.core.settings import Settings
from agp.hub.jobs import kube
from agp.hub.jobs.executor import ExecutorError, Outcome, RunSpec

TOKEN = "s3cr3t-hub-token-of-the-attempt"
ENV = {
    "AGP_WORKSPACE": "grid-ops",
    "AGP_TRINO_SCHEMA": "grid_ops",
    "AGP_WORKSPACE_DISPLAY_NAME": "Grid operations",
}


def spec(**changes) -> RunSpec:
    values = {
        "run_id": 42,
        "attempt": 2,
        "workspace": "grid-ops",
        "owner": "alice",
        "kind": "notebook",
        "filename": "daily.ipynb",
        "timeout_seconds": 3600,
        "token": SecretStr(TOKEN),
        "environment": dict(ENV),
        "cpu_limit": 2.0,
        "memory_limit_gb": 4.0,
    }
    return RunSpec(**{**values, **changes})


def job(s: RunSpec | None = None, **kwargs) -> dict:
    args = {"namespace": "agp", "image": "agp-notebook:dev", "grace": 10.0, **kwargs}
    return kube.job_manifest(s or spec(), **args)


# Kubernetes versions whose schemas every object must pass: the chart's oldest (Chart.yaml) and the newest shipped.
VERSIONS = ["1.29", ".".join(kubernetes_validate.latest_version().split(".")[:2])]


def validate(obj: dict) -> None:
    for version in VERSIONS:
        # strict: a field the version does not know is an error (an apiserver would drop it silently)
        kubernetes_validate.validate(obj, version, strict=True)


LABELS = {
    "app.kubernetes.io/part-of": "antigravity",
    "app.kubernetes.io/component": "job-run",
    "antigravity.io/workspace": "grid-ops",
    "antigravity.io/user": "alice",
    "antigravity.io/run": "agp-run-42-2",
}


# ---------------------------------------------------------------------------------------------------------- the Job


def test_job_literal_parts():
    j = job(extra_labels={"antigravity.io/release": "agp"})
    assert j["apiVersion"] == "batch/v1" and j["kind"] == "Job"
    assert j["metadata"]["name"] == "agp-run-42-2" and j["metadata"]["namespace"] == "agp"
    assert j["metadata"]["labels"] == {**LABELS, "antigravity.io/release": "agp"}
    assert j["metadata"]["annotations"] == {
        "antigravity.io/owner": "alice",
        "antigravity.io/job-filename": "daily.ipynb",
        "antigravity.io/workspace-display-name": "Grid operations",
    }
    assert {k: v for k, v in j["spec"].items() if k != "template"} == {
        "suspend": True,
        "backoffLimit": 0,
        "activeDeadlineSeconds": 3610,
        "ttlSecondsAfterFinished": 86400,
    }
    assert j["spec"]["template"]["metadata"]["labels"] == j["metadata"]["labels"]


def test_pod_is_restricted_and_runs_as_the_servers_user():
    pod = job()["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["terminationGracePeriodSeconds"] == 10
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }
    assert "imagePullSecrets" not in pod


def test_container_literal_parts():
    (c,) = job()["spec"]["template"]["spec"]["containers"]
    assert c["name"] == "run"
    assert c["image"] == "agp-notebook:dev" and c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["tini", "--", "python", "-m", "agp.kernels.jobrun"]
    assert c["workingDir"] == "/home/jovyan"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["volumeMounts"] == [{"name": "home", "mountPath": "/home/jovyan"}, {"name": "tmp", "mountPath": "/tmp"}]
    assert job()["spec"]["template"]["spec"]["volumes"] == [
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]


def test_quota_becomes_resources_as_for_servers():
    # Bytes, as KubeSpawner gives a server's (its "4096M" is MiB; Kubernetes' "4096M" would be 10^6 bytes each).
    (c,) = job()["spec"]["template"]["spec"]["containers"]
    assert c["resources"] == {
        "limits": {"cpu": "2", "memory": str(4 * 1024**3)},
        "requests": {"cpu": "500m", "memory": str(1024**3)},
    }
    (c,) = job(spec(cpu_limit=0.5, memory_limit_gb=1.5))["spec"]["template"]["spec"]["containers"]
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": str(1536 * 1024**2)},
        "requests": {"cpu": "125m", "memory": str(384 * 1024**2)},
    }


def test_a_runs_memory_is_its_servers():
    """The same bytes KubeSpawner makes of the servers' rule for the same quota."""
    from jupyterhub.traitlets import ByteSpecification  # KubeSpawner's mem_limit trait
    from traitlets import HasTraits

    from agp.spawner.workspace import resources

    class Holder(HasTraits):
        size = ByteSpecification(0)

    for gb in (0.5, 1.5, 2, 3.3):
        (c,) = job(spec(memory_limit_gb=gb))["spec"]["template"]["spec"]["containers"]
        r = resources(SimpleNamespace(cpu_limit=1, memory_limit_gb=gb))
        h = Holder()
        h.size = r["mem_limit"]
        assert c["resources"]["limits"]["memory"] == str(h.size)


def test_env_has_no_token_value_and_takes_it_from_the_secret():
    j = job()
    (c,) = j["spec"]["template"]["spec"]["containers"]
    assert TOKEN not in json.dumps(j)
    assert c["env"] == [
        {"name": "AGP_JOB_ATTEMPT", "value": "2"},
        {"name": "AGP_JOB_FILENAME", "value": "daily.ipynb"},
        {"name": "AGP_JOB_KIND", "value": "notebook"},
        {"name": "AGP_JOB_RESULT_FILE", "value": "/dev/termination-log"},
        {"name": "AGP_JOB_RUN", "value": "agp-run-42-2"},
        {"name": "AGP_JOB_RUN_ID", "value": "42"},
        {"name": "AGP_TRINO_SCHEMA", "value": "grid_ops"},
        {"name": "AGP_WORKSPACE", "value": "grid-ops"},
        {"name": "AGP_WORKSPACE_DISPLAY_NAME", "value": "Grid operations"},
        {"name": "HOME", "value": "/home/jovyan"},
        {"name": "JUPYTERHUB_USER", "value": "alice"},
        {"name": "JUPYTERHUB_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "agp-run-42-2", "key": "token"}}},
    ]


def test_deployment_settings_reach_the_pod():
    j = job(pull_policy="Always", pull_secrets=["regcred"], suspend=False, grace=2.5)
    pod = j["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["terminationGracePeriodSeconds"] == 3
    assert j["spec"]["suspend"] is False and j["spec"]["activeDeadlineSeconds"] == 3603


def test_the_runs_own_labels_win_over_the_deployments():
    forged = {"antigravity.io/workspace": "other", "antigravity.io/run": "x", "antigravity.io/release": "agp"}
    j = job(spec(labels={"team": "ops/grid"}), extra_labels=forged)
    assert j["metadata"]["labels"] == {**LABELS, "antigravity.io/release": "agp", "team": "ops_grid"}


# ------------------------------------------------------------------------------------------------------- the Secret


def test_token_secret_holds_the_token_only():
    s = kube.token_secret_manifest(spec(), "agp", owner={"name": "agp-run-42-2", "uid": "u-1"})
    assert s == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "agp-run-42-2",
            "namespace": "agp",
            "labels": LABELS,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "agp-run-42-2", "uid": "u-1"}],
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {"token": TOKEN},
    }
    assert "ownerReferences" not in kube.token_secret_manifest(spec(), "agp")["metadata"]


# ------------------------------------------------------------------------------------------- schemas, hostile names

HOSTILE = [
    "{prefix:>2000000000}",
    "{prefix.x} $(HOME) $$(X) ${HOME}",
    "\u00dcn\u00efc\u00f6d\u00e9 \u2013 \u202eevil\u202d \n\t\"quoted\" 'single' <b>x</b>",
    "-" * 300,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_stay_literal_and_labels_valid(text):
    owner = "@" + text.replace("\n", " ")[:200] + "@corp.example"
    s = spec(
        owner=owner,
        filename=text + ".ipynb",
        environment={**ENV, "AGP_WORKSPACE_DISPLAY_NAME": text},
        labels={"team": text},
    )
    j = job(s)
    validate(j)
    secret = kube.token_secret_manifest(s, "agp", owner={"name": s.tag, "uid": "u-1"})
    validate(secret)
    assert j["metadata"]["annotations"]["antigravity.io/workspace-display-name"] == text
    assert j["metadata"]["annotations"]["antigravity.io/owner"] == owner
    env = {e["name"]: e.get("value") for e in j["spec"]["template"]["spec"]["containers"][0]["env"]}
    # A container's env expands $(NAME) and reduces $$ to $: every $ is doubled, so the runner gets the text back.
    assert env["AGP_WORKSPACE_DISPLAY_NAME"] == text.replace("$", "$$")
    assert env["JUPYTERHUB_USER"] == owner.replace("$", "$$")
    for value in {**j["metadata"]["labels"], **secret["metadata"]["labels"]}.values():
        assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum(), value


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"pull_secrets": ["regcred"], "suspend": False, "extra_labels": {"antigravity.io/release": "agp"}}],
)
def test_every_object_validates_against_the_kubernetes_schemas(kwargs):
    validate(job(**kwargs))
    validate(kube.token_secret_manifest(spec(), "agp", owner={"name": "agp-run-42-2", "uid": "u-1"}))


def test_ref_round_trip_and_garbage():
    ref = kube.make_ref("agp", "agp-run-42-2", "u-1")
    assert kube.parse_ref(ref) == {"namespace": "agp", "job": "agp-run-42-2", "uid": "u-1"}
    for bad in ("", "{}", "[1]", "not json"):
        with pytest.raises(ExecutorError):
            kube.parse_ref(bad)


# ------------------------------------------------------------------------------------------------ status to outcome

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_status(conditions=(), age=30, uid="u-1", **status) -> dict:
    return {
        "metadata": {"name": "agp-run-42-2", "uid": uid, "creationTimestamp": ago(age)},
        "status": {"conditions": list(conditions), **status},
    }


def pod_status(phase="Running", age=20, state=None, conditions=(), name="agp-run-42-2-abcde", **status) -> dict:
    cs = [{"name": "run", "state": state}] if state is not None else []
    return {
        "metadata": {"name": name, "creationTimestamp": ago(age)},
        "status": {"phase": phase, "containerStatuses": cs, "conditions": list(conditions), **status},
    }


def terminated(code, message=None, reason=None) -> dict:
    t = {"exitCode": code}
    if message is not None:
        t["message"] = message
    if reason is not None:
        t["reason"] = reason
    return {"terminated": t}


def decide(j, pods, **kwargs):
    return kube.outcome(j, pods, NOW, uid="u-1", **kwargs)


def test_running_is_no_outcome():
    assert decide(job_status(), [pod_status()]) is None
    assert decide(job_status(), [pod_status(state={"running": {"startedAt": ago(10)}})]) is None


def test_a_result_line_decides():
    ok = pod_status("Succeeded", state=terminated(0, '{"state": "succeeded"}\n', "Completed"))
    assert decide(job_status(), [ok]) == Outcome(True, None, 0)
    failed = pod_status("Failed", state=terminated(1, '{"state": "failed", "reason": "Cell 3 raised KeyError."}'))
    assert decide(job_status(), [failed]) == Outcome(False, "Cell 3 raised KeyError.", 1)


def test_no_result_line_says_how_the_runner_ended():
    # FallbackToLogsOnError: the message is the log's tail when the runner wrote no result and failed.
    tail = pod_status("Failed", state=terminated(2, "Traceback ...\nImportError: x\n", "Error"))
    assert decide(job_status(), [tail]) == Outcome(False, "The runner exited with status 2 without a result.", 2)
    silent = pod_status("Succeeded", state=terminated(0, reason="Completed"))
    assert decide(job_status(), [silent]) == Outcome(False, "The runner ended without a result.", 0)
    killed = pod_status("Failed", state=terminated(143, reason="Error"))
    assert decide(job_status(), [killed]) == Outcome(False, "The runner was killed (SIGTERM) before it finished.", 143)


def test_out_of_memory_is_named():
    oom = pod_status("Failed", state=terminated(137, reason="OOMKilled"))
    assert decide(job_status(), [oom]) == Outcome(
        False, "The run used more memory than its workspace's quota allows and was stopped.", 137
    )


def test_evicted_pod_without_container_state():
    evicted = pod_status("Failed", reason="Evicted", message="The node was low on resource: memory.")
    assert decide(job_status(), [evicted]) == Outcome(
        False, "The run's pod ended before its runner did (The node was low on resource: memory)."
    )


def test_vanished_job():
    assert decide(None, []) == Outcome(False, "The run's Kubernetes Job vanished before the run ended.")
    # Another Job of the same name is not this attempt's.
    assert decide(job_status(uid="u-2"), [pod_status()]).reason.startswith("The run's Kubernetes Job vanished")


def test_job_without_pod():
    assert decide(job_status(age=10), []) is None
    assert decide(job_status(age=400), []) == Outcome(False, "Kubernetes started no pod for the run within 5 minutes.")
    assert decide(job_status(succeeded=1), []) == Outcome(False, "The run's pod vanished before its result was read.")
    deadline = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer"}
    expected = Outcome(False, "The run passed its time limit and Kubernetes stopped it.")
    assert decide(job_status([deadline]), []) == expected
    assert decide(job_status([deadline]), [pod_status()]) == expected  # its pod is still being stopped
    stopped = pod_status("Failed", state=terminated(130, '{"state": "failed", "reason": "The run was interrupted."}'))
    assert decide(job_status([deadline]), [stopped]) == Outcome(False, expected.reason, 130)
    quota = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    assert decide(job_status([quota]), []) == Outcome(
        False, "Kubernetes failed the run's Job (BackoffLimitExceeded: Job has reached the specified backoff limit)."
    )


WAITING_PULL = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "agp-notebook:dev"'}}
UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/1 nodes are available: 1 Insufficient memory.",
}


def test_pending_on_its_way_is_no_outcome_however_long():
    creating = pod_status("Pending", age=3000, state={"waiting": {"reason": "ContainerCreating"}})
    assert decide(job_status(), [creating]) is None
    assert kube.pending_problem(creating) is None


def test_pending_with_a_problem_fails_after_the_bound():
    young = pod_status("Pending", age=60, state=WAITING_PULL)
    old = pod_status("Pending", age=301, state=WAITING_PULL)
    assert decide(job_status(), [young]) is None
    assert decide(job_status(), [old]) == Outcome(
        False,
        "The run's pod did not start: its image could not be pulled "
        '(ImagePullBackOff: Back-off pulling image "agp-notebook:dev").',
    )
    assert decide(job_status(), [young], pending_timeout=30) == decide(job_status(), [old])


def test_unschedulable_fails_after_the_bound():
    pod = pod_status("Pending", age=600, conditions=[UNSCHEDULABLE])
    assert decide(job_status(), [pod]) == Outcome(
        False, "The run's pod could not be scheduled on any node (0/1 nodes are available: 1 Insufficient memory)."
    )
    assert decide(job_status(), [pod_status("Pending", age=60, conditions=[UNSCHEDULABLE])]) is None


def test_an_image_that_can_never_be_had_fails_at_once():
    pod = pod_status("Pending", age=1, state={"waiting": {"reason": "InvalidImageName"}})
    assert decide(job_status(), [pod]) == Outcome(
        False, "The run's pod did not start: its image could not be pulled (InvalidImageName)."
    )


def test_a_missing_secret_is_trouble_not_progress():
    pod = pod_status("Pending", age=400, state={"waiting": {"reason": "CreateContainerConfigError", "message": "x"}})
    assert decide(job_status(), [pod]).reason == (
        "The run's pod did not start: its container could not be created (CreateContainerConfigError: x)."
    )


def test_long_reasons_are_one_short_sentence():
    pod = pod_status("Pending", age=400, state={"waiting": {"reason": "ErrImagePull", "message": "y\n" * 500}})
    reason = decide(job_status(), [pod]).reason
    assert len(reason) <= 300 and "\n" not in reason and reason.endswith("y y...).")


def test_the_ended_pod_is_read_when_there_are_two():
    ended = pod_status("Failed", age=50, state=terminated(1, '{"state": "failed", "reason": "No."}'), name="a")
    newer = pod_status("Running", age=5, name="b")
    assert kube.pick_pod([newer, ended]) is ended
    assert kube.pick_pod([pod_status(age=50, name="a"), newer])["metadata"]["name"] == "b"
    assert kube.pick_pod([]) is None


def test_api_errors_are_one_sentence_and_keep_the_detail():
    body = json.dumps({"message": 'jobs.batch is forbidden: User "system:serviceaccount:agp:hub" cannot create'})
    e = kube.api_error("create the run's Job", 403, body)
    assert str(e) == (
        "The platform may not create the run's Job on Kubernetes; an admin must grant the hub's service account that."
    )
    assert "cannot create" in e.log_message
    assert str(kube.api_error("create the run's Job", 409, "")) == (
        "Kubernetes could not create the run's Job: an object of that name exists already."
    )
    assert str(kube.api_error("create the run's Job", 500, b"\x00")) == (
        "Kubernetes could not create the run's Job (status 500)."
    )


def test_the_executor_takes_its_place_from_settings():
    s = Settings(jobs={"namespace": "runs", "image": "agp-notebook:1"})
    ex = kube.KubeExecutor(s)
    assert (ex.name, ex.namespace, ex.image) == ("kubernetes", "runs", "agp-notebook:1")
    ex = kube.KubeExecutor(s, namespace="other", image="x:1")
    assert (ex.namespace, ex.image) == ("other", "x:1")


def test_an_executor_without_an_image_refuses_to_start():
    ex = kube.KubeExecutor(Settings(jobs={"namespace": "runs"}))
    with pytest.raises(ExecutorError, match=r"jobs\.image"):
        asyncio.run(ex.start(spec()))


# ----------------------------------------------------------------------------------------------------------- chart

CHART = Path(__file__).resolve().parents[2] / "helm" / "antigravity"


def test_the_servers_network_policy_selects_job_runs():
    """The chart gives runs the release's label (AGP_JOBS__POD_LABELS), and the servers' NetworkPolicy, which selects
    the release's pods that have a workspace label, selects a run's pod as it selects a server's."""
    policy = (CHART / "templates" / "networkpolicy.yaml").read_text()
    servers = policy[policy.index('(dict "root" . "name" "servers")') :]
    selector = servers[servers.index("podSelector:") : servers.index("policyTypes:")]
    assert "antigravity.io/release: {{ .Release.Name }}" in selector
    assert "{key: antigravity.io/workspace, operator: Exists}" in selector
    hub = (CHART / "templates" / "hub.yaml").read_text()
    env = hub[hub.index("name: AGP_JOBS__POD_LABELS") :].split("\n")[1]
    assert '"antigravity.io/release" .Release.Name' in env
    labels = job(extra_labels={"antigravity.io/release": "agp"})["spec"]["template"]["metadata"]["labels"]
    assert labels["antigravity.io/release"] == "agp" and labels["antigravity.io/workspace"] == "grid-ops"
