"""The Helm chart (charts/github-runners-snapshotter), with helm v3.22 built from its Go
module and the real API server as the judge of what it renders.

- `helm lint`, with the defaults and with every option on;
- a matrix of values (leader election off, namespaced, metrics off, network policy,
  finalizer capture, alerts, dashboard, name and namespace overrides): each rendered
  set is sent to the API server (namespaced objects created, cluster-scoped ones
  with a server-side dry run: validated and admitted, not stored), with the
  Prometheus Operator's own CRDs for the ServiceMonitor and the PrometheusRule, and
  its configuration is loaded as the snapshotter loads it;
- values.schema.json refuses unknown keys and wrong types, and the chart refuses a
  database URL in the values;
- the ServiceAccount can do what it needs and nothing more (SelfSubjectAccessReviews
  with its own token), cluster-wide and namespaced;
- the ValidatingAdmissionPolicy lets the ServiceAccount change the snapshotter's
  finalizer of an EphemeralRunner and nothing else;
- config/deploy/ is the chart rendered (hack/render_manifests.py --check);
- the snapshotter runs with the chart's RBAC (its ServiceAccount's token) and the
  chart's rendered configuration, leader election included, and records jobs.
"""

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from snapshotter.settings import load_settings
from snapshotter.sync.finalizers import FINALIZER
from tests.conftest import skip_or_fail
from tests.support.apiserver import REPO, TestCluster, built_binaries
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.rest import JSON_PATCH, MERGE_PATCH, Rest, RestError
from tests.support.waiting import eventually

CHART = REPO / "charts" / "github-runners-snapshotter"
KUBE_VERSION = "1.35.4"
EVERYTHING = (
    "config.finalizer_capture.enabled=true",
    "admissionPolicy.enabled=true",
    "admissionPolicy.runnerNamespaces={arc-runners}",
    "serviceMonitor.enabled=true",
    "networkPolicy.enabled=true",
    "prometheusRule.enabled=true",
    "dashboards.enabled=true",
)
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
DIGEST = "sha256:" + "ab" * 32
_releases = itertools.count()

Documents = list[dict[str, Any]]


@pytest.fixture(scope="session")
def helm() -> Path:
    bindir = built_binaries("helm")
    if bindir is None:
        skip_or_fail("helm is not built: run hack/testbin/build.sh helm")
    return bindir / "helm"


@pytest.fixture(scope="session")
def monitoring_crds(kube: TestCluster) -> None:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, as published."""
    crds = built_binaries("monitoring-crds")
    if crds is None:
        skip_or_fail(
            "the monitoring CRDs are not fetched: run hack/testbin/build.sh monitoring-crds"
        )
    kube.install_crds(sorted(crds.glob("*.yaml")))


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def run_helm(helm: Path, *args: str) -> str:
    result = helm_run(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def template_args(release: str, namespace: str, values: tuple[str, ...]) -> list[str]:
    command = ["template", release, str(CHART), "--namespace", namespace]
    command += ["--kube-version", KUBE_VERSION]
    for value in values:
        command += ["--set", value]
    return command


def rendered(helm: Path, release: str, namespace: str, *values: str) -> Documents:
    output = run_helm(helm, *template_args(release, namespace, values))
    return [d for d in yaml.safe_load_all(output) if d]


def of_kind(documents: Documents, kind: str) -> Documents:
    return [d for d in documents if d["kind"] == kind]


def one(documents: Documents, kind: str) -> dict[str, Any]:
    [document] = of_kind(documents, kind)
    return document


def container(documents: Documents) -> dict[str, Any]:
    [first] = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = first
    return found


@pytest.fixture
def release(kube: TestCluster) -> tuple[str, str]:
    n = next(_releases)
    name, namespace = f"snap{n}", f"chart-{n}"
    kube.create_namespace(namespace)
    return name, namespace


def test_the_chart_lints_with_its_defaults_and_every_option(helm: Path) -> None:
    assert "1 chart(s) linted, 0 chart(s) failed" in run_helm(helm, "lint", str(CHART))
    options = [arg for value in EVERYTHING for arg in ("--set", value)]
    assert "0 chart(s) failed" in run_helm(helm, "lint", str(CHART), *options)


# -- the matrix -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Values to render, and what must then hold of the rendering; `{ns}` in a value
    is this case's release namespace, `{other}` a second namespace of its own."""

    values: tuple[str, ...]
    check: Callable[[Documents, str, str], None]
    needs: tuple[str, ...] = field(default=())  # namespaces the rendering names


def _defaults(documents: Documents, namespace: str, _other: str) -> None:
    deployment = one(documents, "Deployment")["spec"]
    pod = deployment["template"]["spec"]
    assert deployment["replicas"] == 2
    assert "strategy" not in deployment  # rolling: the standby takes over
    [spread] = pod["topologySpreadConstraints"]
    labels = deployment["template"]["metadata"]["labels"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    probes = container(documents)
    assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert (
        probes["startupProbe"]["failureThreshold"] * probes["startupProbe"]["periodSeconds"] >= 300
    )
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert (
        one(documents, "PodDisruptionBudget")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    )
    assert len(of_kind(documents, "ClusterRole")) == 1
    lease = one(documents, "Role")
    assert lease["metadata"]["namespace"] == namespace
    assert [r.get("resourceNames") for r in lease["rules"]] == [
        ["github-runners-snapshotter"],
        None,
    ]
    assert [r["verbs"] for r in lease["rules"]] == [["get", "update"], ["create"]]
    assert not of_kind(documents, "NetworkPolicy") + of_kind(documents, "PrometheusRule")


def _without_leader_election(documents: Documents, _ns: str, _other: str) -> None:
    deployment = one(documents, "Deployment")["spec"]
    assert deployment["replicas"] == 1  # replicaCount=3 is ignored: no fence, one writer
    assert deployment["strategy"] == {"type": "Recreate"}
    assert not of_kind(documents, "Role") + of_kind(documents, "PodDisruptionBudget")


def _namespaced(documents: Documents, namespace: str, other: str) -> None:
    assert not of_kind(documents, "ClusterRole") + of_kind(documents, "ClusterRoleBinding")
    roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"]) for r in of_kind(documents, "Role")
    }
    release = one(documents, "Deployment")["metadata"]["name"]
    assert roles == {
        (namespace, release),
        (other, release),
        ("kube-system", f"{release}-cluster-identity"),
        (namespace, f"{release}-leader-election"),
    }


def _metrics_off(documents: Documents, _ns: str, _other: str) -> None:
    kinds = {d["kind"] for d in documents}
    assert not kinds & {"Service", "ServiceMonitor"}
    probes = {"ports", "startupProbe", "livenessProbe", "readinessProbe"}
    assert not probes & container(documents).keys()
    assert one(documents, "NetworkPolicy")["spec"]["ingress"] is None  # nothing may come in


def _network_policy(documents: Documents, _ns: str, _other: str) -> None:
    spec = one(documents, "NetworkPolicy")["spec"]
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus"
    }
    ports = [[(p["port"], p["protocol"]) for p in rule["ports"]] for rule in spec["egress"]]
    assert ports == [
        [(443, "TCP"), (6443, "TCP")],
        [(5432, "TCP")],
        [(53, "TCP"), (53, "UDP")],
    ]
    assert spec["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}]


def _finalizer_capture(documents: Documents, namespace: str, other: str) -> None:
    binding = one(documents, "MutatingAdmissionPolicyBinding")["spec"]
    [rule] = binding["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert rule["values"] == [other]  # config.namespaces, not every namespace
    policy = one(documents, "ValidatingAdmissionPolicy")["spec"]
    account = one(documents, "ServiceAccount")["metadata"]["name"]
    assert (
        f"system:serviceaccount:{namespace}:{account}" in policy["matchConditions"][0]["expression"]
    )
    role = next(r for r in of_kind(documents, "Role") if r["metadata"]["namespace"] == other)
    assert ["patch"] in [r["verbs"] for r in role["rules"]]


def _alerts(documents: Documents, _ns: str, _other: str) -> None:
    rule = one(documents, "PrometheusRule")
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert "SnapshotterQueueNearCap" not in alerts  # disabled in the values
    assert alerts["SnapshotterNoLeader"]["for"] == "7m"
    assert alerts["SnapshotterDown"]["labels"] == {"severity": "critical", "team": "ci"}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    [endpoint] = one(documents, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["scrapeTimeout"], endpoint["honorLabels"]) == ("5s", True)


def _dashboard(documents: Documents, _ns: str, _other: str) -> None:
    [config_map] = [
        d for d in of_kind(documents, "ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [text] = config_map["data"].values()
    assert json.loads(text)["uid"] == "github-runners-snapshotter"


def _overrides(documents: Documents, _ns: str, other: str) -> None:
    for document in documents:
        assert document["metadata"]["name"].startswith("snap-x")
        if document["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert document["metadata"]["namespace"] == other
    deployment = one(documents, "Deployment")["spec"]
    pod = deployment["template"]["spec"]
    assert deployment["revisionHistoryLimit"] == 1
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert container(documents)["image"].endswith(f"-snapshotter@{DIGEST}")
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container(documents)["env"]
    assert container(documents)["envFrom"] == [{"configMapRef": {"name": "proxy"}}]
    assert {"name": "ca", "secret": {"secretName": "db-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/db-ca"} in container(documents)["volumeMounts"]


CASES = {
    "defaults": Case((), _defaults),
    "leader-election-off": Case(
        ("config.leader_election.enabled=false", "replicaCount=3"), _without_leader_election
    ),
    "namespaced": Case(("config.namespaces={{ns},{other}}",), _namespaced, ("{other}",)),
    "metrics-off": Case(
        ("config.metrics.port=0", "serviceMonitor.enabled=true", "networkPolicy.enabled=true"),
        _metrics_off,
    ),
    "network-policy": Case(
        (
            "networkPolicy.enabled=true",
            "networkPolicy.egress.database.to[0].ipBlock.cidr=10.1.2.3/32",
        ),
        _network_policy,
    ),
    "finalizer-capture": Case(
        (
            "config.finalizer_capture.enabled=true",
            "admissionPolicy.enabled=true",
            "config.namespaces={{other}}",
        ),
        _finalizer_capture,
        ("{other}",),
    ),
    "prometheus-rule": Case(
        (
            "prometheusRule.enabled=true",
            "prometheusRule.alerts.SnapshotterQueueNearCap.enabled=false",
            "prometheusRule.alerts.SnapshotterNoLeader.for=7m",
            "prometheusRule.ruleLabels.team=ci",
            "prometheusRule.additionalLabels.release=kube-prometheus",
            "serviceMonitor.enabled=true",
            "serviceMonitor.scrapeTimeout=5s",
            "serviceMonitor.metricRelabelings[0].action=drop",
            "serviceMonitor.metricRelabelings[0].regex=snapshotter_job_duration_seconds_bucket",
        ),
        _alerts,
    ),
    "dashboards": Case(("dashboards.enabled=true",), _dashboard),
    "overrides": Case(
        (
            "fullnameOverride=snap-x",
            "namespaceOverride={other}",
            f"image.digest={DIGEST}",
            "revisionHistoryLimit=1",
            "priorityClassName=system-cluster-critical",
            "extraEnv[0].name=HTTPS_PROXY",
            "extraEnv[0].value=http://proxy:3128",
            "envFrom[0].configMapRef.name=proxy",
            "extraVolumes[0].name=ca",
            "extraVolumes[0].secret.secretName=db-ca",
            "extraVolumeMounts[0].name=ca",
            "extraVolumeMounts[0].mountPath=/etc/db-ca",
        ),
        _overrides,
        ("{other}",),
    ),
}


def send(kube: TestCluster, documents: Documents) -> None:
    """Namespaced objects are created; cluster-scoped ones are validated and admitted
    by a server-side dry run (a real MutatingAdmissionPolicy without a namespace
    selector would hold the other tests' runners)."""
    for document in documents:
        namespaced = "namespace" in document["metadata"]
        created = kube.create(document, dry_run=not namespaced)
        assert created["metadata"]["name"] == document["metadata"]["name"]


def config_loads(documents: Documents, tmp_path: Path) -> None:
    """The rendered snapshotter.yaml is a configuration the snapshotter accepts."""
    [config_map] = [d for d in of_kind(documents, "ConfigMap") if "snapshotter.yaml" in d["data"]]
    path = tmp_path / "snapshotter.yaml"
    path.write_text(config_map["data"]["snapshotter.yaml"])
    load_settings(path)


@pytest.mark.usefixtures("monitoring_crds")
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_api_server_accepts_every_rendering_of_the_matrix(
    case: str, helm: Path, kube: TestCluster, release: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = release
    other = f"{namespace}-b"
    spec = CASES[case]
    for needed in spec.needs:
        kube.create_namespace(needed.format(ns=namespace, other=other))
    values = tuple(v.replace("{ns}", namespace).replace("{other}", other) for v in spec.values)
    documents = rendered(helm, name, namespace, *values)
    spec.check(documents, namespace, other)
    send(kube, documents)
    config_loads(documents, tmp_path)


def test_every_option_at_once_renders_what_the_api_server_accepts(
    helm: Path, kube: TestCluster, release: tuple[str, str], monitoring_crds: None
) -> None:
    name, namespace = release
    documents = rendered(helm, name, namespace, *EVERYTHING)
    assert sorted({d["kind"] for d in documents}) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    send(kube, documents)


# -- what the chart refuses -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicas=2", "'replicas'"),  # not a key of the chart
        ("serviceMonitor.labels.team=ci", "'labels'"),
        ("config.intervl_seconds=5", "'intervl_seconds'"),  # nor of the snapshotter
        ("config.watch.enable=false", "'enable'"),
        ("replicaCount=two", "/replicaCount"),
        ("config.interval_seconds=true", "/config/interval_seconds"),
        ("config.interval_seconds=0", "/config/interval_seconds"),
        ("config.metrics.job_labels={branch}", "/config/metrics/job_labels/0"),
        ("image.digest=latest", "/image/digest"),
        (
            "prometheusRule.alerts.SnapshotterDown.for=soon",
            "/prometheusRule/alerts/SnapshotterDown/for",
        ),
        ("rbac.namespaced=true", "rbac.namespaced needs config.namespaces"),
    ],
)
def test_the_chart_refuses_unknown_keys_and_wrong_types(
    helm: Path, value: str, message: str
) -> None:
    result = helm_run(helm, *template_args("snap", "ns", (value,)))
    assert result.returncode != 0
    assert message in result.stderr


def test_the_chart_refuses_a_database_url_in_its_values(helm: Path) -> None:
    url = "config.database.url=postgresql://lens:s3cret@db:5432/lens"
    result = helm_run(helm, *template_args("snap", "ns", (url,)))
    assert result.returncode != 0
    assert "database.existingSecret" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


# -- what the ServiceAccount may do -----------------------------------------------


def create_rbac(kube: TestCluster, documents: Documents, account_namespace: str) -> Rest:
    """Create the rendering's RBAC for real and log in as its ServiceAccount."""
    for document in documents:
        if document["kind"] in RBAC_KINDS:
            kube.create(document)
    account = one(documents, "ServiceAccount")["metadata"]["name"]
    token = kube.service_account_token(account_namespace, account)
    return Rest(kube.server, token, str(kube.ca_file))


def allowed(rest: Rest, verb: str, resource: str, namespace: str = "", name: str = "") -> bool:
    """A SelfSubjectAccessReview; `resource` is plural, group/plural or
    group/plural/subresource."""
    parts = resource.split("/")
    if len(parts) == 1:  # the core group
        parts = ["", *parts]
    group, plural, subresource = [*parts, ""][:3]
    attributes = {
        "verb": verb,
        "group": group,
        "resource": plural,
        "subresource": subresource,
        "namespace": namespace,
        "name": name,
    }
    review = rest.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    return bool(review["status"]["allowed"])


ARC = "actions.github.com"
LEASES = "coordination.k8s.io/leases"


def test_the_service_account_can_do_what_it_needs_and_no_more(
    helm: Path, kube: TestCluster, release: tuple[str, str]
) -> None:
    name, namespace = release
    leases = f"{namespace}-leases"
    kube.create_namespace(leases)
    documents = rendered(
        helm,
        name,
        namespace,
        "config.finalizer_capture.enabled=true",
        "config.cluster_name=east",
        f"config.leader_election.namespace={leases}",
    )
    rest = create_rbac(kube, documents, namespace)
    can = [
        *(
            ("list", f"{ARC}/{p}", "")
            for p in ("ephemeralrunners", "autoscalingrunnersets", "ephemeralrunnersets")
        ),
        ("watch", f"{ARC}/ephemeralrunners", ""),
        ("get", f"{ARC}/ephemeralrunners", "arc-runners", "runner-1"),
        ("patch", f"{ARC}/ephemeralrunners", "arc-runners", "runner-1"),
        ("get", "namespaces", "kube-system", "kube-system"),
        ("get", LEASES, leases, "github-runners-snapshotter-east"),
        ("update", LEASES, leases, "github-runners-snapshotter-east"),
        ("create", LEASES, leases),
    ]
    cannot = [
        ("delete", f"{ARC}/ephemeralrunners", "arc-runners", "runner-1"),
        ("create", f"{ARC}/ephemeralrunners", "arc-runners"),
        ("update", f"{ARC}/ephemeralrunners", "arc-runners", "runner-1"),
        ("patch", f"{ARC}/ephemeralrunners/status", "arc-runners", "runner-1"),
        ("patch", f"{ARC}/autoscalingrunnersets", "arc-runners", "pool"),
        ("get", "secrets", namespace, "primus-lens-database"),
        ("list", "secrets", "arc-runners"),
        ("list", "pods", ""),
        ("get", "namespaces", "default", "default"),
        ("list", "namespaces", ""),
        ("update", LEASES, leases, "another-lease"),
        ("get", LEASES, leases, "github-runners-snapshotter"),  # not this cluster's Lease
        ("update", LEASES, namespace, "github-runners-snapshotter-east"),  # other namespace
        ("delete", LEASES, leases, "github-runners-snapshotter-east"),
    ]
    assert [c for c in can if not allowed(rest, *c)] == []
    assert [c for c in cannot if allowed(rest, *c)] == []


def test_namespaced_rbac_reads_only_its_namespaces(
    helm: Path, kube: TestCluster, release: tuple[str, str]
) -> None:
    name, namespace = release
    runners = f"{namespace}-runners"
    kube.create_namespace(runners)
    documents = rendered(
        helm,
        name,
        namespace,
        f"config.namespaces={{{runners}}}",
        "config.leader_election.enabled=false",
    )
    rest = create_rbac(kube, documents, namespace)
    can = [
        *(
            ("list", f"{ARC}/{p}", runners)
            for p in ("ephemeralrunners", "autoscalingrunnersets", "ephemeralrunnersets")
        ),
        ("watch", f"{ARC}/ephemeralrunners", runners),
        ("get", "namespaces", "kube-system", "kube-system"),  # through a Role in kube-system
    ]
    cannot = [
        ("list", f"{ARC}/ephemeralrunners", ""),  # no cluster-wide list
        ("list", f"{ARC}/ephemeralrunners", namespace),
        ("patch", f"{ARC}/ephemeralrunners", runners, "runner-1"),  # finalizer capture is off
        ("get", LEASES, namespace, "github-runners-snapshotter"),  # leader election is off
        ("create", LEASES, namespace),
        ("list", "secrets", runners),
    ]
    assert [c for c in can if not allowed(rest, *c)] == []
    assert [c for c in cannot if allowed(rest, *c)] == []


# -- the finalizer patch policy ---------------------------------------------------


def _patch(rest: Rest, path: str, body: Any, content_type: str = JSON_PATCH) -> int:
    """The status of a patch: 200, or the policy's refusal (anything else fails)."""
    try:
        rest.request("PATCH", path, body, content_type=content_type)
    except RestError as e:
        refusal = e
    else:
        return 200
    assert "denied request" in refusal.body, refusal.body  # the policy's, not RBAC's
    return refusal.status


def test_the_service_account_may_change_its_finalizer_and_nothing_else(
    helm: Path,
    kube: TestCluster,
    release: tuple[str, str],
    sim: SimulatedArc,
    ers: dict[str, Any],
) -> None:
    name, namespace = release
    documents = rendered(helm, name, namespace, "config.finalizer_capture.enabled=true")
    rest = create_rbac(kube, documents, namespace)
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        kube.create(one(documents, kind))  # it matches this release's ServiceAccount only
    runner = sim.create_runner(ers)
    runners = f"/apis/{ARC}/v1alpha1/namespaces/{sim.namespace}/ephemeralrunners"
    path = f"{runners}/{runner['metadata']['name']}"
    labels = itertools.count()
    # the policy is in force once the API server has loaded it
    eventually(
        lambda: (
            _patch(rest, path, {"metadata": {"labels": {"x": str(next(labels))}}}, MERGE_PATCH)
            == 422
        )
    )
    finalizers = kube.rest().get(path)["metadata"]["finalizers"]
    assert finalizers  # ARC's own
    assert FINALIZER not in finalizers
    add = [{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]
    assert _patch(rest, path, add) == 200
    refused = [
        [{"op": "remove", "path": "/metadata/finalizers/0"}],  # ARC's finalizer
        [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}],
        [{"op": "add", "path": "/spec/githubConfigUrl", "value": "https://github.com/x"}],
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/other"}],
    ]
    assert [_patch(rest, path, ops) for ops in refused] == [422] * len(refused)
    remove = [{"op": "remove", "path": f"/metadata/finalizers/{len(finalizers)}"}]
    assert _patch(rest, path, remove) == 200
    assert kube.rest().get(path)["metadata"]["finalizers"] == finalizers
    kube.rest().merge_patch(path, {"metadata": {"labels": {"by": "arc"}}})  # others: not matched


def test_config_deploy_is_the_chart_rendered(helm: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "render_manifests.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def daemon_with(
    kube: TestCluster, pg_engine: Engine, tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(namespace: str, env: dict[str, str], **config: Any) -> DaemonProcess:
        daemon = DaemonProcess(kube, namespace, pg_engine, tmp_path, env=env, **config)
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.mark.timeout(300)
def test_the_snapshotter_runs_with_the_charts_rbac_and_config(
    helm: Path,
    kube: TestCluster,
    release: tuple[str, str],
    sim: SimulatedArc,
    ers: dict[str, Any],
    daemon_with: Callable[..., DaemonProcess],
) -> None:
    name, namespace = release
    documents = rendered(helm, name, namespace, f"config.namespaces={{{sim.namespace}}}")
    for document in documents:
        if document["kind"] in RBAC_KINDS:
            kube.create(document)
    assert not of_kind(documents, "ClusterRole")  # namespaced: Roles only
    account = one(documents, "ServiceAccount")["metadata"]["name"]
    kube.tokens[name] = kube.service_account_token(namespace, account)
    kubeconfig = kube.write_kubeconfig(name)
    config_map = one(documents, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["snapshotter.yaml"])
    assert config["leader_election"]["enabled"] is True
    config |= {  # where this test's cluster and database are, and a config matching every job
        "kubernetes": {"kubeconfig": str(kubeconfig)},
        "metrics": {"port": 0},
        "workflow_configs": [{"name": "all-jobs", "runner_set_name": ""}],
    }
    daemon = daemon_with(
        sim.namespace, {"POD_NAME": f"{name}-0", "POD_NAMESPACE": namespace}, **config
    )
    eventually(daemon.started, timeout=60)
    jobs = [sim.run_job(ers, lifetime=0.05) for _ in range(3)]
    engine = daemon.engine
    eventually(
        lambda: (
            {j.uid for j in jobs}
            <= {r["workload_uid"] for r in rows(engine, "github_workflow_runs")}
        ),
        timeout=60,
    )
    lease = kube.rest().get(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/github-runners-snapshotter"
    )
    assert lease["spec"]["holderIdentity"] == f"{name}-0"
    assert "cluster identity unknown" not in daemon.log.read_text()  # the kube-system Role
