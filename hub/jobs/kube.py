"""The Kubernetes executor: a batch/v1 Job per attempt, in the servers' namespace and image, as the servers run.

Pure builders make the objects (:func:`job_manifest`, :func:`token_secret_manifest`) and read them back
(:func:`outcome`, :func:`pending_problem`); :class:`KubeExecutor` is the thin part that talks to the apiserver.

An attempt is a Job named ``spec.tag`` and a Secret of the same name that holds the run's hub token and nothing
else: the pod reads it by ``secretKeyRef``, so the token is in no Job or pod spec that ``get pods`` shows. The Job
is created suspended, the Secret then with the Job as its owner (deleting the Job, by hand or by its
``ttlSecondsAfterFinished``, deletes it), and the Job resumed: its pod never waits for a Secret that is not there
yet, and the hub needs no right to change a Secret. The runner writes its result line to the container's
termination log, which the pod's status carries back (``FallbackToLogsOnError``: the log's tail when it wrote none
and failed).

A cancel deletes the Job and its pod with the cancel grace; a deleted pod's log goes with it, so the executor follows
that log to the runner's last line while the pod stops and keeps it until the attempt's cleanup.

The scheduler decides, not the Job: ``backoffLimit: 0`` (retries are new attempts), and ``activeDeadlineSeconds``
(the run's timeout plus the cancel grace) and ``ttlSecondsAfterFinished`` (a day) are only backstops for a
scheduler that is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agp.core.names import WorkspaceNames
from agp.core.settings import Settings
from agp.spawner.workspace import SERVER_GID, SERVER_UID, label_value, labels, resources

from .executor import ExecutorError, Outcome, RunSpec, parse_result

log = logging.getLogger(__name__)

COMPONENT = "job-run"
RUN_LABEL = "antigravity.io/run"
CONTAINER = "run"
TOKEN_KEY = "token"  # noqa: S105 (the Secret's only key, not a token)
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (a variable's name)
RESULT_FILE = "/dev/termination-log"  # the container's terminationMessagePath (Kubernetes' default)
HOME = "/home/jovyan"  # the notebook image's HOME (images/notebook/Dockerfile)
# The image's entrypoint is tini: it forwards SIGTERM to the runner (which interrupts the kernel) and reaps the
# kernel's and Spark's orphans; a `command` replaces the entrypoint, so it is named again.
COMMAND = ["tini", "--", "python", "-m", "agp.kernels.jobrun"]
TTL_AFTER_FINISHED = 24 * 3600  # seconds an ended Job is kept when nobody cleans it up
PENDING_TIMEOUT = 300.0  # seconds a pod may stay pending for a reason that is a problem before the run fails
LOG_LIMIT = 64 << 20  # bytes of a run's log read at most (the scheduler keeps as much)
LOG_FOLLOW_MARGIN = 15.0  # seconds beyond the cancel grace a stopped pod's log is followed before it is given up
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# A pending container's waiting reasons that will not clear by themselves (fail at once), and those that may (an
# image pull that backs off, a Secret or ConfigMap not there yet): these fail once the pod has been pending longer
# than the pending timeout. Reasons not named (ContainerCreating, PodInitializing) are progress.
FATAL_WAITING = {"InvalidImageName", "ErrImageNeverPull"}
TROUBLE_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
}


# ---------------------------------------------------------------------------------------------------------- builders


def pod_labels(spec: RunSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels of an attempt's Job, pod and Secret: a workspace server's labels (so the servers' NetworkPolicy
    restricts the pod as it restricts a server), with component ``job-run`` and the attempt's tag. ``extra`` (the
    deployment's ``jobs.pod_labels``) and ``spec.labels`` come first; the run's own labels win over them."""
    own = {**labels(spec.owner, WorkspaceNames(spec.workspace)), "app.kubernetes.io/component": COMPONENT}
    own[RUN_LABEL] = spec.tag
    given = {**(extra or {}), **{k: label_value(v) for k, v in spec.labels.items()}}
    return {**given, **own}


def container_resources(cpu_limit: float, memory_limit_gb: float) -> dict[str, dict[str, str]]:
    """The workspace quota as a container's resources, by the servers' rule (agp.spawner.workspace.resources): the
    limit is the quota, the request a quarter of it. Memory in bytes, as KubeSpawner gives a server's: it reads the
    rule's "2048M" as MiB, where Kubernetes would read 10^6 bytes and give a run 5 % less than its server."""
    r = resources(SimpleNamespace(cpu_limit=cpu_limit, memory_limit_gb=memory_limit_gb))  # type: ignore[arg-type]
    return {
        "limits": {"cpu": _cpu(r["cpu_limit"]), "memory": _bytes(r["mem_limit"])},
        "requests": {"cpu": _cpu(r["cpu_guarantee"]), "memory": _bytes(r["mem_guarantee"])},
    }


def _bytes(value: object) -> str:
    """A spawner's memory size ("2048M": MiB, KubeSpawner's ByteSpecification) as a number of bytes."""
    text = str(value)
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    if text[-1:] in units:
        return str(int(float(text[:-1]) * units[text[-1]]))
    return str(int(float(text)))


def _cpu(value: object) -> str:
    """CPUs as a Kubernetes quantity: 2.0 -> "2", 0.5 -> "500m"."""
    millis = round(float(value) * 1000)  # type: ignore[arg-type]
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def runner_env(spec: RunSpec, secret_name: str) -> list[dict[str, Any]]:
    """The runner's environment as a container's ``env``: :meth:`RunSpec.runner_env` with the result going to the
    termination log, and the token replaced by a reference to the attempt's Secret. Values are literal text (a
    container's ``env`` expands ``$(NAME)``; ``$$`` keeps a ``$`` as written)."""
    env = spec.runner_env(RESULT_FILE)
    env.pop(TOKEN_ENV)
    env.setdefault("HOME", HOME)
    items: list[dict[str, Any]] = [{"name": k, "value": v.replace("$", "$$")} for k, v in sorted(env.items())]
    items.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": TOKEN_KEY}}})
    return items


def job_manifest(
    spec: RunSpec,
    *,
    namespace: str,
    image: str,
    grace: float = 10.0,
    pull_policy: str = "IfNotPresent",
    pull_secrets: Iterable[str] = (),
    extra_labels: dict[str, str] | None = None,
    suspend: bool = True,
    ttl_after_finished: int = TTL_AFTER_FINISHED,
) -> dict[str, Any]:
    """The batch/v1 Job of one attempt, named ``spec.tag`` (pure). Created suspended by default: the executor resumes
    it once the token's Secret exists."""
    name = spec.tag
    grace_seconds = max(1, math.ceil(grace))
    meta_labels = pod_labels(spec, extra_labels)
    annotations = {"antigravity.io/owner": spec.owner, "antigravity.io/job-filename": spec.filename}
    display = spec.environment.get("AGP_WORKSPACE_DISPLAY_NAME")
    if display is not None:
        annotations["antigravity.io/workspace-display-name"] = display
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVER_UID,
            "runAsGroup": SERVER_GID,
            "fsGroup": SERVER_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": pull_policy,
                "command": list(COMMAND),
                "workingDir": HOME,
                "env": runner_env(spec, name),
                "resources": container_resources(spec.cpu_limit, spec.memory_limit_gb),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsNonRoot": True,
                },
                "terminationMessagePath": RESULT_FILE,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "home", "mountPath": HOME},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own emptyDir)
                ],
            }
        ],
        # A run keeps nothing: what it makes goes to the workspace's bucket, tables, or back to the service.
        "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    secrets = [{"name": s} for s in pull_secrets]
    if secrets:
        pod_spec["imagePullSecrets"] = secrets
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": meta_labels, "annotations": annotations},
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout_seconds + grace_seconds,
            "ttlSecondsAfterFinished": ttl_after_finished,
            "template": {"metadata": {"labels": meta_labels, "annotations": dict(annotations)}, "spec": pod_spec},
        },
    }


def token_secret_manifest(spec: RunSpec, namespace: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Secret holding the attempt's hub token and nothing else (pure); ``owner``: the attempt's Job as
    ``{"name", "uid"}``, whose deletion deletes the Secret."""
    meta: dict[str, Any] = {"name": spec.tag, "namespace": namespace, "labels": pod_labels(spec)}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": owner["name"], "uid": owner["uid"]}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: spec.token.get_secret_value()},
    }


def make_ref(namespace: str, name: str, uid: str) -> str:
    """The scheduler's note of an attempt (``job_runs.runner_ref``)."""
    return json.dumps({"namespace": namespace, "job": name, "uid": uid}, sort_keys=True)


def parse_ref(ref: str) -> dict[str, str]:
    try:
        data = json.loads(ref)
        return {"namespace": str(data["namespace"]), "job": str(data["job"]), "uid": str(data.get("uid", ""))}
    except (ValueError, TypeError, KeyError) as e:
        raise ExecutorError("The run's record names no Kubernetes Job.", log_message=f"bad runner_ref {ref!r}") from e


# ------------------------------------------------------------------------------------------------ reading status


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _age(obj: dict[str, Any], now: datetime) -> float:
    created = _time(obj.get("metadata", {}).get("creationTimestamp"))
    return (now - created).total_seconds() if created else 0.0


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def _detail(text: object, limit: int = 200) -> str:
    """Kubernetes' own words inside one of our sentences: one line, no final period, at most ``limit`` characters."""
    text = " ".join(str(text).split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def pending_problem(pod: dict[str, Any]) -> tuple[str, bool] | None:
    """Why a pending pod does not start, as ``(sentence, fatal)``, or ``None`` when it is only on its way (being
    scheduled, pulling its image, creating its container). ``fatal``: it will never start, fail now."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING or reason in TROUBLE_WAITING:
            detail = _detail(waiting.get("message") or "")
            what = "its image could not be pulled" if "Image" in reason else "its container could not be created"
            text = f"The run's pod did not start: {what} ({reason}{': ' + detail if detail else ''})."
            return text, reason in FATAL_WAITING
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            detail = _detail(cond.get("message") or cond.get("reason") or "no reason given")
            return f"The run's pod could not be scheduled on any node ({detail}).", False
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


DEADLINE = "The run passed its time limit and Kubernetes stopped it."


def _job_failure(job: dict[str, Any]) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            reason = cond.get("reason") or ""
            if reason == "DeadlineExceeded":
                return DEADLINE
            return f"Kubernetes failed the run's Job ({reason}: {_detail(cond.get('message') or 'no message')})."
    return None


def pick_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The attempt's pod: the one that ended if one did, else the newest (a Job with backoffLimit 0 makes one, but a
    deleted pod may still be terminating beside nothing else)."""
    if not pods:
        return None
    ended = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    candidates = ended or pods
    return max(candidates, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")


def outcome(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    now: datetime,
    *,
    uid: str = "",
    pending_timeout: float = PENDING_TIMEOUT,
) -> Outcome | None:
    """What the Job and its pods (as the API's JSON) say of an attempt (pure): ``None`` while it runs or is on its
    way, else its :class:`Outcome`. ``uid``: the Job's uid when it started (another Job of the same name is not
    this attempt's)."""
    if job is None or (uid and (job.get("metadata") or {}).get("uid") != uid):
        return Outcome(False, "The run's Kubernetes Job vanished before the run ended.")
    pod = pick_pod(pods)
    if pod is None:
        failure = _job_failure(job)
        if failure:
            return Outcome(False, failure)
        if (job.get("status") or {}).get("succeeded"):
            return Outcome(False, "The run's pod vanished before its result was read.")
        if _age(job, now) > pending_timeout:
            return Outcome(False, f"Kubernetes started no pod for the run within {_minutes(pending_timeout)}.")
        return None
    status = pod.get("status") or {}
    phase = status.get("phase")
    terminated = _terminated(pod)
    if terminated is not None:
        code = terminated.get("exitCode")
        result = parse_result(terminated.get("message"), code)
        if result.succeeded:
            return result
        if terminated.get("reason") == "OOMKilled":
            return Outcome(False, "The run used more memory than its workspace's quota allows and was stopped.", code)
        if _job_failure(job) == DEADLINE:  # the runner was stopped for it and may say only "interrupted"
            return Outcome(False, DEADLINE, code)
        return result
    if phase in ("Succeeded", "Failed"):  # ended without a container state: evicted, deleted on a lost node
        detail = _detail(status.get("message") or status.get("reason") or "no reason given")
        return Outcome(False, f"The run's pod ended before its runner did ({detail}).")
    failure = _job_failure(job)  # the Job gave up on a pod that has not ended yet (its deadline passed)
    if failure:
        return Outcome(False, failure)
    if phase == "Pending":
        problem = pending_problem(pod)
        if problem is not None:
            text, fatal = problem
            if fatal or _age(pod, now) > pending_timeout:
                return Outcome(False, text)
        return None
    if phase == "Unknown" and _age(pod, now) > pending_timeout:
        return Outcome(False, "The run's pod lost contact with its node.")
    return None


def api_error(doing: str, status: int | None, body: Any) -> ExecutorError:
    """An apiserver's refusal as the run's sentence and the log's detail."""
    message = ""
    try:
        message = json.loads(body).get("message", "") if body else ""
    except (ValueError, TypeError, AttributeError):
        message = str(body)[:500]
    if status == 403:
        sentence = f"The platform may not {doing} on Kubernetes; an admin must grant the hub's service account that."
    elif status == 422:
        sentence = f"Kubernetes refused to {doing} ({_detail(message or 'invalid object')})."
    elif status == 409:
        sentence = f"Kubernetes could not {doing}: an object of that name exists already."
    else:
        sentence = f"Kubernetes could not {doing} (status {status})."
    return ExecutorError(sentence, log_message=f"{doing}: {status} {message or body!r}")


# ---------------------------------------------------------------------------------------------------- the executor


class KubeExecutor:
    """Runs each attempt as a Kubernetes Job (see the module's docstring)."""

    name = "kubernetes"

    def __init__(
        self,
        settings: Settings,
        *,
        namespace: str | None = None,
        image: str | None = None,
        pending_timeout: float = PENDING_TIMEOUT,
        kubeconfig: str | None = None,
    ):
        self.settings = settings
        self._namespace = namespace or settings.jobs.namespace
        self.image = image or settings.jobs.image
        self.pending_timeout = pending_timeout
        self.kubeconfig = kubeconfig
        self._api: Any = None
        self._lock = asyncio.Lock()
        # The logs of cancelled attempts, read to their end while their pods stopped (a deleted pod's log goes with
        # it), by ref, until cleanup.
        self._kept_logs: dict[str, bytes] = {}

    # The edge: configuration, the client, the namespace.
    @property
    def namespace(self) -> str:
        if self._namespace is None:
            try:
                self._namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            except OSError as e:
                raise ExecutorError(
                    "No Kubernetes namespace is set for runs: set jobs.namespace (AGP_JOBS__NAMESPACE).",
                    log_message=f"jobs.namespace unset and {SERVICE_ACCOUNT_NAMESPACE} unreadable: {e}",
                ) from e
        return self._namespace

    async def api(self) -> Any:
        """The shared API client, made on first use from the in-cluster config, else the kubeconfig."""
        async with self._lock:
            if self._api is None:
                try:
                    from kubernetes_asyncio import client, config
                except ImportError as e:  # pragma: no cover - the hub image has it with kubespawner
                    raise ExecutorError(
                        "Runs on Kubernetes need kubernetes_asyncio: pip install jupyterhub-kubespawner.",
                        log_message=str(e),
                    ) from e
                except RuntimeError as e:  # its import reads Path.home(): no HOME and a uid without a passwd entry
                    raise ExecutorError(
                        "The platform could not load its Kubernetes client; an admin must check the hub's log.",
                        log_message=f"importing kubernetes_asyncio failed (is HOME set?): {e}",
                    ) from e
                conf = client.Configuration()
                try:
                    if self.kubeconfig is None and SERVICE_ACCOUNT_NAMESPACE.parent.joinpath("token").exists():
                        config.load_incluster_config(client_configuration=conf)
                    else:
                        await config.load_kube_config(config_file=self.kubeconfig, client_configuration=conf)
                except (config.ConfigException, OSError, ValueError) as e:
                    raise ExecutorError(
                        "The platform has no Kubernetes configuration to start runs with.",
                        log_message=f"loading the in-cluster config or the kubeconfig failed: {e}",
                    ) from e
                self._api = client.ApiClient(conf)
            return self._api

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _call(self, doing: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await fn(*args, **kwargs)
        except ApiException as e:
            if missing_ok and e.status == 404:
                return None
            raise api_error(doing, e.status, e.body) from e
        except (OSError, asyncio.TimeoutError) as e:
            raise ExecutorError(
                "The platform could not reach Kubernetes; the run is retried if it allows.",
                log_message=f"{doing}: {e!r}",
            ) from e

    async def _apis(self) -> tuple[Any, Any]:
        api = await self.api()
        from kubernetes_asyncio import client

        return client.BatchV1Api(api), client.CoreV1Api(api)

    # The protocol.
    async def start(self, spec: RunSpec) -> str:
        if not self.image:
            raise ExecutorError(
                "No image is set for runs on Kubernetes: set jobs.image (AGP_JOBS__IMAGE).",
                log_message="jobs.image is unset",
            )
        ns = self.namespace
        batch, core = await self._apis()
        jobs = self.settings.jobs
        manifest = job_manifest(
            spec,
            namespace=ns,
            image=self.image,
            grace=jobs.cancel_grace,
            pull_policy=jobs.image_pull_policy,
            pull_secrets=jobs.image_pull_secrets,
            extra_labels=jobs.pod_labels,
        )
        created = await self._call("create the run's Job", batch.create_namespaced_job, ns, manifest)
        uid = created.metadata.uid
        try:
            secret = token_secret_manifest(spec, ns, owner={"name": spec.tag, "uid": uid})
            await self._call("create the run's token Secret", core.create_namespaced_secret, ns, secret)
            await self._call(
                "start the run's Job", batch.patch_namespaced_job, spec.tag, ns, {"spec": {"suspend": False}}
            )
        except ExecutorError:
            try:  # undo what was made; a Job left behind suspended runs nothing, its TTL does not apply though
                await self._remove(ns, spec.tag)
            except ExecutorError as e:
                log.warning(
                    "run %s: Job %s/%s of a failed start not removed: %s", spec.run_id, ns, spec.tag, e.log_message
                )
            raise
        log.info("run %s: started Job %s/%s", spec.run_id, ns, spec.tag)
        return make_ref(ns, spec.tag, uid)

    async def poll(self, ref: str) -> Outcome | None:
        r = parse_ref(ref)
        batch, core = await self._apis()
        api = await self.api()
        job = await self._call(
            "read the run's Job", batch.read_namespaced_job, r["job"], r["namespace"], missing_ok=True
        )
        pods = await self._pods(core, r)
        found = outcome(
            api.sanitize_for_serialization(job) if job is not None else None,
            [api.sanitize_for_serialization(p) for p in pods],
            datetime.now(timezone.utc),
            uid=r["uid"],
            pending_timeout=self.pending_timeout,
        )
        if found is not None and not found.succeeded:
            log.info("run Job %s/%s ended: %s", r["namespace"], r["job"], found.reason)
        return found

    async def _pods(self, core: Any, r: dict[str, str]) -> list[Any]:
        pods = await self._call(
            "list the run's pods", core.list_namespaced_pod, r["namespace"], label_selector=f"{RUN_LABEL}={r['job']}"
        )
        return list(pods.items)

    async def cancel(self, ref: str, grace: float) -> None:
        r = parse_ref(ref)
        batch, core = await self._apis()
        api = await self.api()
        seconds = max(0, math.ceil(grace))
        # A deleted pod's log goes with it: follow the log of the attempt's pod from before it is stopped to its
        # runner's last line, so that the run keeps what it printed (the scheduler reads it once this returns).
        pod = pick_pod([api.sanitize_for_serialization(p) for p in await self._pods(core, r)])
        following = None
        if pod is not None and (pod.get("status") or {}).get("phase") == "Running":
            following = asyncio.create_task(self._read_log(core, r["namespace"], pod["metadata"]["name"], follow=True))
        try:
            # The Job first, so that it makes no new pod; then its pods with the given grace (the garbage collector
            # would give them their own terminationGracePeriodSeconds).
            await self._call(
                "delete the run's Job",
                batch.delete_namespaced_job,
                r["job"],
                r["namespace"],
                propagation_policy="Background",
                grace_period_seconds=seconds,
                missing_ok=True,
            )
            for item in await self._pods(core, r):
                await self._call(
                    "stop the run's pod",
                    core.delete_namespaced_pod,
                    item.metadata.name,
                    r["namespace"],
                    grace_period_seconds=seconds,
                    missing_ok=True,
                )
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        if following is not None:
            try:  # the runner has the grace to stop; its log ends when its container does
                self._kept_logs[ref] = await asyncio.wait_for(following, seconds + LOG_FOLLOW_MARGIN)
            except (ExecutorError, asyncio.TimeoutError) as e:
                log.warning("run Job %s/%s: its log was not kept: %s", r["namespace"], r["job"], e)

    async def log(self, ref: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        r = parse_ref(ref)
        _, core = await self._apis()
        api = await self.api()
        pod = pick_pod([api.sanitize_for_serialization(p) for p in await self._pods(core, r)])
        data = b""
        if pod is not None:
            data = await self._read_log(core, r["namespace"], pod["metadata"]["name"], limit_bytes=offset + limit)
        kept = self._kept_logs.get(ref, b"")
        if len(kept) > len(data):  # a cancelled attempt's pod, gone or going, and the log read to its end
            data = kept
        return data[offset : offset + limit]

    async def _read_log(
        self, core: Any, namespace: str, pod: str, *, limit_bytes: int = LOG_LIMIT, follow: bool = False
    ) -> bytes:
        """A pod's log as raw bytes (offsets are bytes; a decoded text would not keep them), at most ``limit_bytes``;
        ``follow``: until its container ends. Empty when its container has not started yet or the pod is gone."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            response = await core.read_namespaced_pod_log(
                pod, namespace, container=CONTAINER, limit_bytes=limit_bytes, follow=follow, _preload_content=False
            )
            try:
                data = await response.read()
            finally:
                response.release()
        except ApiException as e:
            raise api_error("read the run's log", e.status, e.body) from e
        except (OSError, asyncio.TimeoutError) as e:
            raise ExecutorError("The platform could not reach Kubernetes.", log_message=f"pod log: {e!r}") from e
        if response.status in (400, 404):
            return b""
        if not 200 <= response.status <= 299:
            raise api_error("read the run's log", response.status, data)
        return data

    async def cleanup(self, ref: str) -> None:
        r = parse_ref(ref)
        self._kept_logs.pop(ref, None)
        await self._remove(r["namespace"], r["job"])

    async def _remove(self, namespace: str, name: str) -> None:
        """Delete an attempt's Job (its pods with it) and its Secret; what is gone already is fine."""
        batch, core = await self._apis()
        await self._call(
            "delete the run's Job",
            batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Background",
            missing_ok=True,
        )
        # Owned by the Job, so the garbage collector deletes it too; at once is sooner, and covers a failed start.
        await self._call(
            "delete the run's token Secret", core.delete_namespaced_secret, name, namespace, missing_ok=True
        )
