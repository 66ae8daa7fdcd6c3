"""Who retries an API server that has just started: our loops, never the client.

The real kubernetes client and urllib3 objects are built from a kubeconfig and
asked what they would do with an answer; no request is sent.
"""

import contextlib
import socket
import threading
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from snapshotter.errors import KubeUnavailable, KubeWarmingUp
from snapshotter.kube import resources
from snapshotter.kube.client import KubeClient, load_api_client
from snapshotter.kube.errors import error_from

SERVER = "https://127.0.0.1:6443"
KUBECONFIG = f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{SERVER}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""


@pytest.mark.parametrize(("status", "retry_after"), [(429, "1"), (503, "5")])
def test_the_client_does_not_sleep_on_retry_after_itself(
    tmp_path: Path, status: int, retry_after: str
) -> None:
    """urllib3's default Retry repeats a GET answered 429 or 503 with Retry-After,
    sleeping as told, inside one call: the watcher would not see the answer."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    api_client = load_api_client(kubeconfig=path, context=None)
    try:
        pool = api_client.rest_client.pool_manager.connection_from_url(SERVER)
        assert not pool.retries.is_retry("GET", status, has_retry_after=True)
        assert pool.retries.connect is None or pool.retries.connect > 0  # still reconnects
    finally:
        api_client.close()


def answer(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.body = f'{{"kind":"Status","message":"{message}","code":{status}}}'
    return error


def test_a_starting_api_server_is_warming_up() -> None:
    """The 503 before the CRDs are served and the 429 before the watch cache is
    filled are what a restarted server answers in its first seconds."""
    paths = "the request has been made before all known HTTP paths have been installed"
    assert isinstance(error_from(answer(503, paths)), KubeWarmingUp)
    assert isinstance(error_from(answer(429, "storage is (re)initializing")), KubeWarmingUp)


def test_other_429_and_503_answers_are_not_warming_up() -> None:
    shed = error_from(answer(429, "Too many requests, please try again later."))
    unavailable = error_from(answer(503, "service unavailable"))
    for error in (shed, unavailable):
        assert isinstance(error, KubeUnavailable)
        assert not isinstance(error, KubeWarmingUp)


class SilentServer:
    """A TCP server on 127.0.0.1 that reads each request and never answers, as a hung
    API server (or a black-holed path after the handshake) does; it counts requests."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                conn.recv(65536)
                self.requests += 1
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_request_the_server_never_answers_is_sent_once(tmp_path: Path) -> None:
    """A read timeout reaches the caller after one request timeout: urllib3 would
    send the GET again on a new connection three more times (four timeouts in one
    call), holding a list, or a lease renewal past its deadline, for minutes."""
    server = SilentServer()
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace(SERVER, f"http://127.0.0.1:{server.port}"))
    client = KubeClient(load_api_client(kubeconfig=path, context=None), request_timeout=0.2)
    try:
        with pytest.raises(KubeUnavailable):
            client.list_all(resources.EPHEMERAL_RUNNERS)
        assert server.requests == 1
    finally:
        client.close()
        server.close()
