"""A simulated ARC controller that drives real objects through their lifecycle.

It writes what ARC 0.12/0.14 write (ARC.md §6), against the real API server:
AutoscalingRunnerSet -> EphemeralRunnerSet -> EphemeralRunners with ARC's labels,
annotations, owner references and finalizers; status through the /status
subresource (runnerId, Pending -> Running, job fields at JobStarted); and the end of
a job: ARC 0.14 deletes the runner without a terminal phase, ARC 0.12 writes
`Succeeded` first. Idle churn, `Failed/InvalidPod` and pool deletion are modelled too.
There is no ARC controller and no kube-controller-manager: this class removes the
finalizers itself, as ARC's would.
"""

import itertools
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from snapshotter.clock import utc_now
from tests.support.rest import JSON_PATCH, Rest, RestError

API = "/apis/actions.github.com/v1alpha1"
ARC_VERSION_LABEL = {"0.12": "0.12.1", "0.14": "0.14.2"}
RUNNER_FINALIZERS = [
    "ephemeralrunner.actions.github.com/finalizer",
    "ephemeralrunner.actions.github.com/runner-registration-finalizer",
]
ARS_FINALIZER = "autoscalingrunnerset.actions.github.com/finalizer"
ArcVersion = Literal["0.12", "0.14"]

_ids = itertools.count(100_000)


@dataclass(frozen=True, slots=True)
class Job:
    """The job fields the ARC listener writes to a runner at JobStarted."""

    job_id: str
    request_id: int
    run_id: int
    repository: str
    workflow_ref: str
    display_name: str

    @classmethod
    def new(
        cls,
        *,
        workflow: str = "ci.yaml",
        ref: str = "refs/heads/main",
        repository: str = "acme-corp/payments-api",
        display_name: str = "test",
    ) -> "Job":
        n = next(_ids)
        return cls(
            job_id=str(uuid.uuid4()),
            request_id=n,
            run_id=15_000_000_000 + n,
            repository=repository,
            workflow_ref=f"{repository}/.github/workflows/{workflow}@{ref}",
            display_name=display_name,
        )

    def status(self, version: ArcVersion) -> dict[str, Any]:
        fields = {
            "jobRequestId": self.request_id,
            "jobRepositoryName": self.repository,
            "jobWorkflowRef": self.workflow_ref,
            "workflowRunId": self.run_id,
            "jobDisplayName": self.display_name,
        }
        if version != "0.12":  # status.jobId exists since 0.13
            fields["jobId"] = self.job_id
        return fields


@dataclass(slots=True)
class FinishedRunner:
    """What the simulator did to one runner, for assertions and latency figures."""

    uid: str
    name: str
    job: Job | None
    created_at: datetime
    job_started_at: datetime | None
    finished_at: datetime | None = None  # the DELETE (0.14) or the Succeeded status (0.12)


@dataclass
class SimulatedArc:
    rest: Rest
    namespace: str
    version: ArcVersion = "0.14"
    finished: list[FinishedRunner] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _path(self, plural: str, name: str = "", sub: str = "") -> str:
        path = f"{API}/namespaces/{self.namespace}/{plural}"
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def _labels(self, ars_name: str, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "gha-runner-scale-set",
            "app.kubernetes.io/version": ARC_VERSION_LABEL[self.version],
            "actions.github.com/scale-set-name": ars_name,
            "actions.github.com/scale-set-namespace": self.namespace,
            "actions.github.com/organization": "acme-corp",
        }

    # -- pools -------------------------------------------------------------------

    def create_runner_set(
        self,
        name: str,
        *,
        github_config_url: str = "https://github.com/acme-corp",
        min_runners: int = 0,
        max_runners: int = 20,
        scale_set_id: int = 7,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "actions.github.com/v1alpha1",
            "kind": "AutoscalingRunnerSet",
            "metadata": {
                "name": name,
                "labels": {
                    **self._labels(name, "autoscaling-runner-set"),
                    "app.kubernetes.io/part-of": "gha-rs",
                },
                "annotations": {
                    "runner-scale-set-id": str(scale_set_id),
                    "actions.github.com/runner-scale-set-name": name,
                    "actions.github.com/runner-group-name": "Default",
                },
                "finalizers": [ARS_FINALIZER],
            },
            "spec": {
                "githubConfigUrl": github_config_url,
                "githubConfigSecret": f"{name}-github-secret",
                "minRunners": min_runners,
                "maxRunners": max_runners,
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "runner", "image": "ghcr.io/actions/actions-runner:2.334.0"}
                        ]
                    }
                },
            },
        }
        self.rest.post(self._path("autoscalingrunnersets"), body)
        status = {
            "phase": "Running",
            "currentRunners": 0,
            "pendingEphemeralRunners": 0,
            "runningEphemeralRunners": 0,
            "failedEphemeralRunners": 0,
        }
        if self.version == "0.12":
            status = {"state": "", **{k: v for k, v in status.items() if k != "phase"}}
        return self.rest.merge_patch(
            self._path("autoscalingrunnersets", name, "status"), {"status": status}
        )

    def create_ephemeral_runner_set(
        self, ars: Mapping[str, Any], replicas: int = 0
    ) -> dict[str, Any]:
        name = ars["metadata"]["name"]
        body = {
            "apiVersion": "actions.github.com/v1alpha1",
            "kind": "EphemeralRunnerSet",
            "metadata": {
                "generateName": f"{name}-",
                "labels": self._labels(name, "runner-set"),
                "annotations": {"actions.github.com/runner-scale-set-name": name},
                "finalizers": ["ephemeralrunner.actions.github.com/finalizer"],
                "ownerReferences": [self._owner(ars)],
            },
            "spec": {
                "replicas": replicas,
                "patchID": 0,
                "ephemeralRunnerSpec": self._runner_spec(ars),
            },
        }
        ers = self.rest.post(self._path("ephemeralrunnersets"), body)
        return self.rest.merge_patch(
            self._path("ephemeralrunnersets", ers["metadata"]["name"], "status"),
            {"status": {"currentReplicas": 0}},
        )

    def scale(self, ers: Mapping[str, Any], replicas: int, patch_id: int = 1) -> dict[str, Any]:
        return self.rest.merge_patch(
            self._path("ephemeralrunnersets", ers["metadata"]["name"]),
            {"spec": {"replicas": replicas, "patchID": patch_id}},
        )

    @staticmethod
    def _owner(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "actions.github.com/v1alpha1",
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @staticmethod
    def _runner_spec(ars: Mapping[str, Any]) -> dict[str, Any]:
        spec = ars["spec"]
        return {
            "githubConfigUrl": spec["githubConfigUrl"],
            "githubConfigSecret": spec["githubConfigSecret"],
            "runnerScaleSetId": int(ars["metadata"]["annotations"]["runner-scale-set-id"]),
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "runner", "image": "ghcr.io/actions/actions-runner:2.334.0"}
                ],
            },
        }

    # -- runners -----------------------------------------------------------------

    def create_runner(
        self,
        ers: Mapping[str, Any],
        *,
        dry_run: bool = False,
        annotations: Mapping[str, str] | None = None,
        name: str | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A runner of `ers` (named by the API server unless `name` is given), with the
        runner set's ephemeralRunnerSpec unless `spec` is given."""
        meta = ers["metadata"]
        ars_name = meta["labels"]["actions.github.com/scale-set-name"]
        naming = {"name": name} if name else {"generateName": f"{meta['name']}-runner-"}
        body: dict[str, Any] = {
            "apiVersion": "actions.github.com/v1alpha1",
            "kind": "EphemeralRunner",
            "metadata": {
                **naming,
                "labels": {**self._labels(ars_name, "runner")},
                "annotations": {
                    "actions.github.com/patch-id": "1",
                    "actions.github.com/runner-scale-set-name": ars_name,
                    "actions.github.com/runner-spec-hash": "6b7d9c5f8",
                    **(annotations or {}),
                },
                "finalizers": RUNNER_FINALIZERS,
                "ownerReferences": [self._owner(ers)],
            },
            "spec": spec if spec is not None else ers["spec"]["ephemeralRunnerSpec"],
        }
        params = {"dryRun": "All"} if dry_run else None  # admission runs, nothing is stored
        return self.rest.request("POST", self._path("ephemeralrunners"), body, params=params)

    def json_patch(
        self, runner: Mapping[str, Any], operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        path = self._path("ephemeralrunners", runner["metadata"]["name"])
        return self.rest.request("PATCH", path, operations, content_type=JSON_PATCH)

    def patch_status(self, runner: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        name = runner["metadata"]["name"]
        return self.rest.merge_patch(
            self._path("ephemeralrunners", name, "status"), {"status": status}
        )

    def register(self, runner: Mapping[str, Any]) -> dict[str, Any]:
        """The JIT config is made: runnerId/runnerName, then the pod starts (Pending)."""
        runner = self.patch_status(
            runner, {"runnerId": next(_ids), "runnerName": runner["metadata"]["name"]}
        )
        return self.patch_status(runner, {"phase": "Pending", "ready": False})

    def pod_running(self, runner: Mapping[str, Any]) -> dict[str, Any]:
        return self.patch_status(runner, {"phase": "Running", "ready": True})

    def start_job(self, runner: Mapping[str, Any], job: Job) -> dict[str, Any]:
        """JobStarted: the listener merge-patches all job fields at once."""
        return self.patch_status(runner, job.status(self.version))

    def fail_invalid_pod(self, runner: Mapping[str, Any]) -> dict[str, Any]:
        return self.patch_status(
            runner,
            {
                "phase": "Failed",
                "ready": False,
                "reason": "InvalidPod",
                "message": "Failed to create the pod: pods is forbidden: violates PodSecurity",
            },
        )

    def succeed(self, runner: Mapping[str, Any]) -> dict[str, Any]:
        """ARC <= 0.12: the runner exited 0 after its job."""
        return self.patch_status(runner, {"phase": "Succeeded", "ready": False})

    def delete_runner(self, runner: Mapping[str, Any]) -> None:
        """Delete as ARC does: deletionTimestamp first (finalizers), then ARC removes its
        own finalizers; anyone else's (the snapshotter's) stay and keep the object."""
        self._delete("ephemeralrunners", runner["metadata"]["name"], RUNNER_FINALIZERS)

    def _delete(self, plural: str, name: str, own: Sequence[str]) -> None:
        path = self._path(plural, name)
        try:
            obj = self.rest.delete(path)
        except RestError as e:
            if e.status == 404:  # already gone
                return
            raise
        for _ in range(20):
            if obj.get("kind") == "Status":
                return  # deleted at once: it had no finalizers
            remaining = [f for f in obj["metadata"].get("finalizers", []) if f not in own]
            patch = {
                "metadata": {
                    "finalizers": remaining or None,
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                }
            }
            try:
                self.rest.merge_patch(path, patch)
            except RestError as e:
                if e.status == 404:
                    return
                if e.status != 409:  # 409: changed meanwhile; read it again and retry
                    raise
            else:
                return
            obj = self.rest.get(path)
        raise RuntimeError(f"could not remove ARC's finalizers from {plural}/{name}")

    # -- whole lifecycles --------------------------------------------------------

    def run_job(
        self,
        ers: Mapping[str, Any],
        job: Job | None = None,
        *,
        lifetime: float = 0.0,
        wait: threading.Event | None = None,
    ) -> FinishedRunner:
        """One runner from creation to gone, running `job` for about `lifetime` seconds."""
        job = job or Job.new()
        pause = wait or threading.Event()
        runner = self.pod_running(self.register(self.create_runner(ers)))
        record = FinishedRunner(
            uid=runner["metadata"]["uid"],
            name=runner["metadata"]["name"],
            job=job,
            created_at=utc_now(),
            job_started_at=None,
        )
        self.start_job(runner, job)
        record.job_started_at = utc_now()
        pause.wait(lifetime)
        if self.version == "0.12":
            self.succeed(runner)
        record.finished_at = utc_now()
        self.delete_runner(runner)
        with self._lock:
            self.finished.append(record)
        return record

    def idle_runner(self, ers: Mapping[str, Any], *, lifetime: float = 0.0) -> FinishedRunner:
        """A runner that comes up and is scaled down without ever getting a job."""
        runner = self.register(self.create_runner(ers))
        record = FinishedRunner(
            uid=runner["metadata"]["uid"],
            name=runner["metadata"]["name"],
            job=None,
            created_at=utc_now(),
            job_started_at=None,
        )
        threading.Event().wait(lifetime)
        self.delete_runner(runner)
        record.finished_at = utc_now()
        return record

    def run_jobs(
        self,
        ers: Mapping[str, Any],
        jobs: Iterable[Job],
        *,
        lifetimes: Iterable[float],
        concurrency: int = 8,
    ) -> list[FinishedRunner]:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [
                pool.submit(self.run_job, ers, job, lifetime=lifetime)
                for job, lifetime in zip(jobs, lifetimes, strict=True)
            ]
            return [f.result() for f in futures]

    def delete_runner_set(self, ars: Mapping[str, Any]) -> None:
        """ARS deletion as ARC does it: runners, then runner sets, then the pool itself."""
        name = ars["metadata"]["name"]
        for runner in self.list("ephemeralrunners"):
            if runner["metadata"]["labels"].get("actions.github.com/scale-set-name") == name:
                self.delete_runner(runner)
        for ers in self.list("ephemeralrunnersets"):
            if ers["metadata"]["labels"].get("actions.github.com/scale-set-name") == name:
                self._delete(
                    "ephemeralrunnersets",
                    ers["metadata"]["name"],
                    ["ephemeralrunner.actions.github.com/finalizer"],
                )
        self._delete("autoscalingrunnersets", name, [ARS_FINALIZER])

    def get_runner(self, name: str) -> dict[str, Any] | None:
        try:
            return self.rest.get(self._path("ephemeralrunners", name))
        except RestError as e:
            if e.status == 404:
                return None
            raise

    def list(self, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.rest.get(self._path(plural))["items"]
        return items
