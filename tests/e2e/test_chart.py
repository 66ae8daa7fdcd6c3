"""The Helm chart (charts/github-runners-snapshotter), with helm v3.22 built from its Go
module and the real API server as the judge of what it renders.

- `helm lint`, with the defaults and with every option on;
- `helm template`: namespaced objects are created for real, cluster-scoped ones with
  a server-side dry run (validated and admitted, not stored);
- config/deploy/ is the chart rendered (hack/render_manifests.py --check);
- the snapshotter runs with the chart's RBAC (its ServiceAccount's token) and the
  chart's rendered configuration, leader election included, and records jobs.
"""

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from tests.conftest import skip_or_fail
from tests.support.apiserver import REPO, TestCluster, built_binaries
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.waiting import eventually

CHART = REPO / "charts" / "github-runners-snapshotter"
KUBE_VERSION = "1.35.4"
EVERYTHING = (
    "config.finalizer_capture.enabled=true",
    "admissionPolicy.enabled=true",
    "admissionPolicy.runnerNamespaces={arc-runners}",
    "serviceMonitor.enabled=true",
)
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
_releases = itertools.count()


@pytest.fixture(scope="session")
def helm() -> Path:
    bindir = built_binaries("helm")
    if bindir is None:
        skip_or_fail("helm is not built: run hack/testbin/build.sh helm")
    return bindir / "helm"


def run_helm(helm: Path, *args: str) -> str:
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(helm: Path, release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    command = ["template", release, str(CHART), "--namespace", namespace]
    command += ["--kube-version", KUBE_VERSION]
    for value in values:
        command += ["--set", value]
    return [d for d in yaml.safe_load_all(run_helm(helm, *command)) if d]


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


def test_the_api_server_accepts_everything_the_chart_renders(
    helm: Path, kube: TestCluster, release: tuple[str, str]
) -> None:
    name, namespace = release
    documents = rendered(helm, name, namespace, *EVERYTHING[:3])
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    for document in documents:
        namespaced = "namespace" in document["metadata"]
        created = kube.create(document, dry_run=not namespaced)
        assert created["metadata"]["name"] == document["metadata"]["name"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {e["name"] for e in container["env"]} == {"POD_NAME", "SNAPSHOTTER_DATABASE__URL"}
    read_only = rendered(helm, name, namespace)
    verbs = {
        verb
        for d in read_only
        if d["kind"] == "ClusterRole"
        for rule in d["rules"]
        for verb in rule["verbs"]
    }
    assert verbs == {"get", "list", "watch"}  # read-only unless finalizer capture is on


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
    account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]["name"]
    kube.tokens[name] = kube.service_account_token(namespace, account)
    kubeconfig = kube.write_kubeconfig(name)
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
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
