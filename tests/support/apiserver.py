"""A real kube-apiserver + etcd on loopback for tests and the demo (like envtest).

Binaries come from hack/testbin/build.sh (pinned Go modules). `start_cluster()`
runs etcd and kube-apiserver on free 127.0.0.1 ports in a temporary directory, with
a static-token admin identity (system:masters), RBAC authorization, and the ARC CRDs
installed; it writes a kubeconfig for the snapshotter. There is no
kube-controller-manager: no garbage collection, namespaces are never finalized, and
nothing removes finalizers except the caller.
"""

import base64
import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import urllib3
import yaml

from snapshotter.clock import monotonic
from tests.support.arc_objects import crd_files
from tests.support.postgres import free_port
from tests.support.rest import Rest, RestError

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "testbin" / "build.sh"
RBAC_MANIFEST = REPO / "config" / "deploy" / "rbac.yaml"
ADMIN_USER = "admin"
SNAPSHOTTER_USER = "snapshotter"
NOBODY_USER = "nobody"  # authenticated, but no RBAC binding at all
_ADMISSION = "/apis/admissionregistration.k8s.io/v1beta1"
_ADMISSION_V1 = "/apis/admissionregistration.k8s.io/v1"
_MONITORING = "/apis/monitoring.coreos.com/v1/namespaces/{namespace}"
_COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
    "MutatingAdmissionPolicy": f"{_ADMISSION}/mutatingadmissionpolicies",
    "MutatingAdmissionPolicyBinding": f"{_ADMISSION}/mutatingadmissionpolicybindings",
    "ValidatingAdmissionPolicy": f"{_ADMISSION_V1}/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": f"{_ADMISSION_V1}/validatingadmissionpolicybindings",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
    "ServiceMonitor": f"{_MONITORING}/servicemonitors",  # CRDs: install_crds(monitoring)
    "PrometheusRule": f"{_MONITORING}/prometheusrules",
}


def built_binaries(component: str = "kube") -> Path | None:
    """Where the built kube-apiserver and etcd (or helm) are; None: not built here."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), "--no-build", component], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip().splitlines()[-1])


def _wait_for(what: str, ready: Any, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = monotonic() + timeout
    pause = threading.Event()
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        pause.wait(0.1)


@dataclass
class TestCluster:
    """A running etcd + kube-apiserver; stop() ends both and removes their files."""

    bindir: Path
    root: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    tokens: dict[str, str] = field(default_factory=dict)
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None

    __test__ = False  # not a pytest test class

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "certs" / "apiserver.crt"

    def kubeconfig(self, user: str = SNAPSHOTTER_USER) -> Path:
        return self.root / f"kubeconfig-{user}"

    def rest(self, user: str = ADMIN_USER, *, pool_size: int = 16) -> Rest:
        return Rest(self.server, self.tokens[user], str(self.ca_file), pool_size=pool_size)

    # -- processes ---------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as log:  # the child keeps its own fd
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = self._spawn(
            "etcd",
            [
                str(self.bindir / "etcd"),
                "--name=default",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=error",
            ],
        )
        _wait_for("etcd", self._etcd_healthy, 30, self.etcd)

    def _etcd_healthy(self) -> bool:
        try:
            response = urllib3.request("GET", f"{self.etcd_url}/health", timeout=1, retries=False)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def start_apiserver(self) -> None:
        self.apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bindir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.root / 'certs'}",
                f"--token-auth-file={self.root / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={self.root / 'sa.pub'}",
                f"--service-account-signing-key-file={self.root / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                # MutatingAdmissionPolicy (beta in 1.34/1.35, off by default) lets the
                # finalizer-capture tests add a finalizer at creation, as documented.
                "--feature-gates=MutatingAdmissionPolicy=true",
                "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
                "--endpoint-reconciler-type=none",
                "--v=0",
            ],
        )
        _wait_for("kube-apiserver", self._apiserver_ready, 90, self.apiserver)

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        rest = self.rest()
        try:
            return rest.healthy("/readyz")
        except urllib3.exceptions.HTTPError:
            return False
        finally:
            rest.close()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and etcd (watch caches reset)."""
        self._stop(self.apiserver)
        self.start_apiserver()

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._stop(self.apiserver)
        self._stop(self.etcd)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- etcd --------------------------------------------------------------------

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = urllib3.request(
            "POST",
            f"{self.etcd_url}{path}",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=30,
            retries=False,
        )
        if response.status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {response.status} {response.data!r}")
        result: dict[str, Any] = json.loads(response.data)
        return result

    def etcd_revision(self) -> int:
        key = base64.b64encode(b"/registry/").decode()
        return int(self._etcd_call("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd history up to now: every older resourceVersion expires (410)."""
        revision = self.etcd_revision()
        self._etcd_call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    # -- API objects -------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        self.rest().post("/api/v1/namespaces", {"metadata": {"name": name}})

    def install_crds(self, files: Sequence[Path] | None = None) -> None:
        """Install CRDs (default: ARC's) and wait until they are served."""
        files = crd_files() if files is None else files
        rest = self.rest()
        for path in files:
            crd = yaml.safe_load(path.read_text())
            rest.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert self.apiserver is not None
        for path in files:
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            _wait_for(f"CRD {name}", partial(self._established, rest, name), 30, self.apiserver)

    @staticmethod
    def _established(rest: Rest, name: str) -> bool:
        crd = rest.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = crd.get("status", {}).get("conditions", [])
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
        plural, group = crd["spec"]["names"]["plural"], crd["spec"]["group"]
        version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served", True))
        try:  # served, and its watch cache initialised (until then: 429)
            rest.get(f"/apis/{group}/{version}/{plural}", limit=1)
        except RestError:
            return False
        return True

    def apply_manifest(
        self, path: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Create every document of a YAML manifest (kinds in _COLLECTIONS); `overrides`
        maps a kind to top-level keys that replace the document's own."""
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for document in documents:
            document.update((overrides or {}).get(document["kind"], {}))
            self.create(document)
        return documents

    def create(self, document: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create one object (kinds in _COLLECTIONS); `dry_run`: the API server validates
        and admits it, and stores nothing (server-side dry run)."""
        namespace = document["metadata"].get("namespace", "")
        collection = _COLLECTIONS[document["kind"]].format(namespace=namespace)
        params = {"dryRun": "All", "fieldValidation": "Strict"} if dry_run else None
        return self.rest().request("POST", collection, document, params=params)

    def service_account_token(self, namespace: str, name: str) -> str:
        token = self.rest().post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        value: str = token["status"]["token"]
        return value

    def delete_manifest(self, path: Path) -> None:
        rest = self.rest()
        for document in (d for d in yaml.safe_load_all(path.read_text()) if d):
            collection = _COLLECTIONS[document["kind"]].format(
                namespace=document["metadata"].get("namespace", "")
            )
            rest.delete(f"{collection}/{document['metadata']['name']}")

    def install_snapshotter_rbac(self) -> None:
        """Apply config/deploy/rbac.yaml as shipped and log in as its ServiceAccount,
        so that the tests run the snapshotter with exactly the documented rights."""
        documents = [d for d in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if d]
        account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]
        self.create_namespace(account["namespace"])
        self.apply_manifest(RBAC_MANIFEST)
        self.tokens[SNAPSHOTTER_USER] = self.service_account_token(
            account["namespace"], account["name"]
        )
        self.write_kubeconfig(SNAPSHOTTER_USER)

    def write_kubeconfig(self, user: str) -> Path:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": user, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
            "current-context": user,
        }
        path = self.kubeconfig(user)
        path.write_text(yaml.safe_dump(config))
        return path


def _prepare(root: Path, tokens: dict[str, str]) -> None:
    (root / "tokens.csv").write_text(
        f"{tokens[ADMIN_USER]},{ADMIN_USER},{ADMIN_USER},system:masters\n"
        f"{tokens[NOBODY_USER]},{NOBODY_USER},{NOBODY_USER}\n"
    )
    subprocess.run(
        ["openssl", "genrsa", "-out", str(root / "sa.key"), "2048"], check=True, capture_output=True
    )
    subprocess.run(
        ["openssl", "rsa", "-in", str(root / "sa.key"), "-pubout", "-out", str(root / "sa.pub")],
        check=True,
        capture_output=True,
    )


def start_cluster(bindir: Path, *, crds: bool = True) -> TestCluster:
    """etcd + kube-apiserver, ready, with the ARC CRDs installed and two kubeconfigs:
    `kubeconfig("admin")` (system:masters) and `kubeconfig("snapshotter")` (the
    ServiceAccount of config/deploy/rbac.yaml)."""
    root = Path(tempfile.mkdtemp(prefix="snapshotter-kube-"))
    tokens = {ADMIN_USER: secrets.token_hex(16), NOBODY_USER: secrets.token_hex(16)}
    _prepare(root, tokens)
    cluster = TestCluster(bindir=bindir, root=root, tokens=tokens)
    try:
        cluster.start_etcd()
        cluster.start_apiserver()
        cluster.write_kubeconfig(ADMIN_USER)
        cluster.write_kubeconfig(NOBODY_USER)
        if crds:
            cluster.install_crds()
        cluster.install_snapshotter_rbac()
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.stop()
        raise
    return cluster
