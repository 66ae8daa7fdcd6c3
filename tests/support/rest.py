"""A small JSON client for the test API server, used by the harness and the simulator.

The product talks to Kubernetes through the official client (snapshotter.kube); the
tests drive the cluster with this thin layer over urllib3 instead, because the
simulator needs raw control (merge patches on /status, finalizer removal) at high
rates. It talks to the real kube-apiserver; nothing here imitates one.
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"


class RestError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Rest:
    def __init__(self, server: str, token: str, ca_file: str, *, pool_size: int = 16) -> None:
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": JSON}
        self.pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            block=True,
            ca_certs=ca_file,
            cert_reqs="CERT_REQUIRED",
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=False,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | list[Any] | None = None,
        *,
        content_type: str = JSON,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = self.server + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        response = self.pool.request(method, url, body=data, headers=headers)
        text = response.data.decode()
        if response.status >= 300:
            raise RestError(method, path, response.status, text)
        result: dict[str, Any] = json.loads(text) if text else {}
        return result

    def healthy(self, path: str = "/readyz") -> bool:
        """Whether a health endpoint answers 200 (its body is plain text)."""
        response = self.pool.request("GET", self.server + path, headers=self.headers)
        return response.status == 200

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)

    def close(self) -> None:
        self.pool.clear()
