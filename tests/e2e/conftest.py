"""Fixtures for end-to-end tests: the real API server, simulated ARC, real PostgreSQL."""

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from snapshotter import daemon
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.settings import Settings
from snapshotter.sync.finalizers import FINALIZER
from tests.conftest import skip_or_fail
from tests.support.apiserver import REPO, TestCluster, built_binaries, start_cluster
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import database_url
from tests.support.postgres import PostgresServer, find_bindir
from tests.support.waiting import eventually

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def kube() -> Iterator[TestCluster]:
    bindir = built_binaries()
    if bindir is None:
        skip_or_fail("kube-apiserver/etcd are not built: run hack/testbin/build.sh")
    cluster = start_cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def namespace(kube: TestCluster) -> str:
    name = f"e2e-{next(_namespaces)}"
    kube.create_namespace(name)
    return name


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, for tests that stop or pause it."""
    bindir = find_bindir()
    assert bindir is not None  # the session's server started from the same binaries
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_engine(own_postgres: PostgresServer) -> Iterator[Engine]:
    """A migrated database on `own_postgres`."""
    engine = db_engine.make_engine(own_postgres.create_database("snapshotter"))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sim(kube: TestCluster, namespace: str) -> Iterator[SimulatedArc]:
    rest = kube.rest(pool_size=32)
    yield SimulatedArc(rest, namespace)
    rest.close()


@pytest.fixture
def make_settings(
    kube: TestCluster, pg_engine: Engine, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Settings for a snapshotter reading this test's namespace into this test's DB."""
    for name in list(os.environ):
        if name.startswith("SNAPSHOTTER_"):
            monkeypatch.delenv(name)

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "cluster_name": "e2e",
            "interval_seconds": 1,
            "namespaces": [namespace],
            "kubernetes": {"kubeconfig": str(kube.kubeconfig())},
            "database": {"url": database_url(pg_engine)},
            "metrics": {"port": 0},
        }
        values.update(overrides)
        return Settings(**values)

    return build


@contextmanager
def running_daemon(settings: Settings) -> Iterator[threading.Thread]:
    """The daemon in a thread, stopped (and joined) at the end like a SIGTERM would."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            daemon.run(settings, stop)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(e)

    thread = threading.Thread(target=target, name="daemon", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the daemon did not stop within 60 s"
    if errors:
        raise errors[0]


DEPLOY = REPO / "config" / "deploy"
POLICY = DEPLOY / "finalizer-capture-policy.yaml"


@pytest.fixture(scope="session")
def finalizer_rbac(kube: TestCluster) -> None:
    """The shipped extra RBAC (patch on ephemeralrunners) for the snapshotter account."""
    kube.apply_manifest(DEPLOY / "rbac-finalizer-capture.yaml")


@pytest.fixture
def ers(sim: SimulatedArc) -> dict[str, Any]:
    return sim.create_ephemeral_runner_set(sim.create_runner_set("pool"))


@pytest.fixture
def admission_policy(
    kube: TestCluster, namespace: str, sim: SimulatedArc, ers: dict[str, Any]
) -> Iterator[None]:
    """The shipped policy, its binding narrowed to this test's namespace, in force."""
    selector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    binding = next(
        d
        for d in yaml.safe_load_all(POLICY.read_text())
        if d["kind"] == "MutatingAdmissionPolicyBinding"
    )
    kube.apply_manifest(
        POLICY,
        {
            "MutatingAdmissionPolicyBinding": {
                "spec": {**binding["spec"], "matchResources": selector}
            }
        },
    )
    eventually(lambda: FINALIZER in sim.create_runner(ers, dry_run=True)["metadata"]["finalizers"])
    yield
    kube.delete_manifest(POLICY)
