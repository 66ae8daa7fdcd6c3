"""Raw ARC objects for tests: the shared 0.14.2 samples plus explicit overrides.

Objects are plain dicts, shaped as the API server returns them (with uid,
resourceVersion and creationTimestamp, which the sample manifests leave out).
"""

import copy
import functools
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ARC_DIR = REPO / "fixtures" / "arc-0.14.2"
SAMPLES_DIR = ARC_DIR / "samples"
CRDS_DIR = ARC_DIR / "crds"

RawObject = dict[str, Any]


def sample(name: str) -> RawObject:
    """A sample manifest by file stem, e.g. "er-running-job" (a copy of its own)."""
    return copy.deepcopy(_parsed_sample(name))


@functools.cache
def _parsed_sample(name: str) -> RawObject:
    data: RawObject = yaml.safe_load((SAMPLES_DIR / f"{name}.yaml").read_text())
    return data


def all_samples() -> dict[str, RawObject]:
    return {p.stem: sample(p.stem) for p in sorted(SAMPLES_DIR.glob("*.yaml"))}


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> RawObject:
    """Deep merge; an override value of None removes the key."""
    result = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def served(
    obj: Mapping[str, Any],
    *,
    uid: str | None = None,
    rv: str = "1",
    created: str = "2026-11-28T09:00:00Z",
    **metadata: Any,
) -> RawObject:
    """`obj` as the API server would return it: uid, resourceVersion, creationTimestamp."""
    meta = {
        "uid": uid or str(uuid.uuid4()),
        "resourceVersion": rv,
        "creationTimestamp": created,
        **metadata,
    }
    return merged(obj, {"metadata": meta})


def runner_set(name: str = "arc-linux-x64", namespace: str = "arc-runners", **kw: Any) -> RawObject:
    obj = merged(
        sample("ars-org"),
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "actions.github.com/scale-set-name": name,
                    "actions.github.com/scale-set-namespace": namespace,
                },
            }
        },
    )
    return served(obj, **kw)


def ephemeral_runner_set(
    ars: Mapping[str, Any], name: str | None = None, replicas: int = 1, **kw: Any
) -> RawObject:
    """An EphemeralRunnerSet owned by `ars` (as the ARS controller creates it)."""
    meta = ars["metadata"]
    obj = {
        "apiVersion": "actions.github.com/v1alpha1",
        "kind": "EphemeralRunnerSet",
        "metadata": {
            "name": name or f"{meta['name']}-7x9kq",
            "namespace": meta["namespace"],
            "labels": {
                "actions.github.com/scale-set-name": meta["name"],
                "actions.github.com/scale-set-namespace": meta["namespace"],
            },
            "ownerReferences": [
                {
                    "apiVersion": "actions.github.com/v1alpha1",
                    "kind": "AutoscalingRunnerSet",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"replicas": replicas, "patchID": 0},
    }
    return served(obj, **kw)


JOB_STATUS = {
    "jobRequestId": 5123987,
    "jobId": "85cb98eb-2919-5766-872c-cc997f618c1f",
    "jobRepositoryName": "acme-corp/payments-api",
    "jobWorkflowRef": "acme-corp/payments-api/.github/workflows/ci.yaml@refs/heads/main",
    "workflowRunId": 15320047781,
    "jobDisplayName": "test (3.12)",
}


def ephemeral_runner(
    ers: Mapping[str, Any] | None = None,
    *,
    name: str = "arc-linux-x64-7x9kq-runner-k8mzt",
    status: Mapping[str, Any] | None = None,
    **kw: Any,
) -> RawObject:
    """An EphemeralRunner like `er-pending` (no job), owned by `ers` when given."""
    obj = merged(sample("er-pending"), {"metadata": {"name": name}})
    obj["status"] = dict(status) if status is not None else {"phase": "Running", "ready": True}
    if ers is not None:
        meta = ers["metadata"]
        owner = {
            "apiVersion": "actions.github.com/v1alpha1",
            "kind": "EphemeralRunnerSet",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        obj = merged(obj, {"metadata": {"ownerReferences": [owner], **_set_labels(ers)}})
    return served(obj, **kw)


def _set_labels(ers: Mapping[str, Any]) -> dict[str, Any]:
    labels = ers["metadata"]["labels"]
    return {"labels": {k: v for k, v in labels.items() if k.startswith("actions.github.com/")}}


def with_job(runner: Mapping[str, Any], **job: Any) -> RawObject:
    return merged(runner, {"status": {**JOB_STATUS, **job}})


def bumped(obj: Mapping[str, Any], rv: str, **overrides: Any) -> RawObject:
    """The same object at a new resourceVersion, with deep-merged overrides."""
    return merged(
        obj, {**overrides, "metadata": {**overrides.get("metadata", {}), "resourceVersion": rv}}
    )


def crd_files() -> list[Path]:
    return sorted(CRDS_DIR.glob("*.yaml"))
