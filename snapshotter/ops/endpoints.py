"""The daemon's HTTP endpoints on one port (SPEC §6).

- `/metrics`: the Prometheus exposition of the daemon's registry;
- `/healthz`: the process and its loops are alive (a wedged writer or watch loop
  fails it: the kubelet then restarts the container);
- `/readyz`: the daemon does its job (initial sync done, database and Kubernetes
  answering recently); a standby replica is ready when it is warm.

A failing probe answers 503 with one problem per line.
"""

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], list[str]]  # problems; empty when all is well


class Endpoints:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        address: str,
        port: int,
        health: Check,
        ready: Check,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(health),
            "/readyz": lambda: _probe(ready),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, kind, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http " + format, *args)  # noqa: G003

        self._server = ThreadingHTTPServer((address, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        self._thread.start()
        log.info("serving /metrics /healthz /readyz port=%d", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _probe(check: Check) -> tuple[int, str, bytes]:
    try:
        problems = check()
    except Exception as e:  # noqa: BLE001 - a probe answers, whatever broke
        problems = [f"the check itself failed: {e}"]
    if problems:
        return 503, "text/plain; charset=utf-8", ("\n".join(problems) + "\n").encode()
    return 200, "text/plain; charset=utf-8", b"ok\n"
