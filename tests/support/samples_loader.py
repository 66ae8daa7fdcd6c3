"""Loads the shared ARC 0.14.2 sample objects into a real API server.

Objects are created with strict field validation (the CRD schema is the judge), their
`status` is written through the /status subresource, and the EphemeralRunners'
owner reference points at a real EphemeralRunnerSet. Namespaces can be renamed so
that each test gets its own.
"""

from collections.abc import Mapping
from typing import Any

from tests.support import arc_objects as arc
from tests.support.rest import Rest, RestError

API = "/apis/actions.github.com/v1alpha1"
PLURALS = {
    "AutoscalingRunnerSet": "autoscalingrunnersets",
    "EphemeralRunnerSet": "ephemeralrunnersets",
    "EphemeralRunner": "ephemeralrunners",
}
SAMPLE_NAMESPACES = ("arc-runners", "arc-payments")


def _in_namespace(obj: Mapping[str, Any], namespaces: Mapping[str, str]) -> dict[str, Any]:
    result = arc.merged(obj, {})
    meta = result["metadata"]
    meta["namespace"] = namespaces[meta["namespace"]]
    labels = meta.get("labels", {})
    if "actions.github.com/scale-set-namespace" in labels:
        labels["actions.github.com/scale-set-namespace"] = meta["namespace"]
    return result


def create(rest: Rest, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Create `obj` strictly validated, then write its status via /status."""
    meta = obj["metadata"]
    collection = f"{API}/namespaces/{meta['namespace']}/{PLURALS[obj['kind']]}"
    body = {k: v for k, v in obj.items() if k != "status"}
    created = rest.request("POST", collection, body, params={"fieldValidation": "Strict"})
    if "status" in obj:
        created = rest.request(
            "PATCH",
            f"{collection}/{created['metadata']['name']}/status",
            {"status": obj["status"]},
            content_type="application/merge-patch+json",
            params={"fieldValidation": "Strict"},
        )
    return created


def ensure_namespace(rest: Rest, name: str) -> None:
    try:
        rest.post("/api/v1/namespaces", {"metadata": {"name": name}})
    except RestError as e:
        if e.status != 409:
            raise


def load_samples(rest: Rest, namespaces: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create every sample (plus the EphemeralRunnerSet they name); returns them by name."""
    names = dict(namespaces or {n: n for n in SAMPLE_NAMESPACES})
    for namespace in names.values():
        ensure_namespace(rest, namespace)
    samples = {k: _in_namespace(v, names) for k, v in arc.all_samples().items()}
    created = {name: create(rest, samples[name]) for name in ("ars-org", "ars-repo-ghes")}
    ers = arc.ephemeral_runner_set(created["ars-org"], name="arc-linux-x64-7x9kq", replicas=3)
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        del ers["metadata"][key]
    ers["spec"]["ephemeralRunnerSpec"] = samples["er-pending"]["spec"]
    ers["status"] = {
        "currentReplicas": 3,
        "pendingEphemeralRunners": 1,
        "runningEphemeralRunners": 1,
        "failedEphemeralRunners": 1,
    }
    created["ers"] = create(rest, ers)
    for name in ("er-pending", "er-running-job", "er-failed"):
        runner = samples[name]
        runner["metadata"]["ownerReferences"][0]["uid"] = created["ers"]["metadata"]["uid"]
        created[name] = create(rest, runner)
    return created
