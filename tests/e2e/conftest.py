"""Fixtures for end-to-end tests: the real API server, simulated ARC, real PostgreSQL."""

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter import daemon
from snapshotter.settings import Settings
from tests.conftest import skip_or_fail
from tests.support.apiserver import TestCluster, start_cluster, testbin_dir
from tests.support.arc_sim import SimulatedArc

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def kube() -> Iterator[TestCluster]:
    bindir = testbin_dir()
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
def sim(kube: TestCluster, namespace: str) -> Iterator[SimulatedArc]:
    rest = kube.rest(pool_size=32)
    yield SimulatedArc(rest, namespace)
    rest.close()


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


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
