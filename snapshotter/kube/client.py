"""Configuration loading and paginated lists of the ARC resources.

Lists go page by page (`limit`/`continue`) without a resourceVersion, which asks
for a consistent read; recent API servers (1.31+) serve it from the watch cache.
Pages are handed over as they arrive (`list_pages`), so memory holds one page at a
time, never the whole list. An expired continue token (410) surfaces as
ResourceVersionExpired: the caller restarts the list, as client-go's pager does.

The client never retries an HTTP answer itself (`NO_STATUS_RETRIES`): every error
status reaches the caller at once, and our loops (the watcher's fast retry and
backoff, the next poll cycle, the lease renewal) decide when to try again.
"""

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils.keepalive import tcp_keepalive_socket_options
from urllib3.util.retry import Retry

from snapshotter.errors import KubeUnavailable, ResourceVersionExpired, StartupError
from snapshotter.kube.decode import DecodedPage, ListedObject, decode_page
from snapshotter.kube.errors import translated_errors
from snapshotter.kube.resources import GROUP, VERSION, Resource
from snapshotter.kube.watch import WatchStream

log = logging.getLogger(__name__)

RawObject = Mapping[str, Any]
Page = DecodedPage
__all__ = ["KubeClient", "ListedObject", "Listing", "Page", "load_api_client"]


@dataclass(frozen=True, slots=True)
class Listing:
    """A complete list of one resource in one scope, at one resourceVersion."""

    resource: Resource
    namespace: str | None
    items: list[RawObject]
    resource_version: str


DEFAULT_KUBECONFIG = "~/.kube/config"

# Without `configuration.retries` the client's urllib3 pool uses urllib3's default
# Retry (3 retries, respect_retry_after_header=True): a GET answered 413, 429 or 503
# with a Retry-After header is repeated inside the one call, sleeping as told each
# time. A restarted API server answers custom resource requests 503 with
# `Retry-After: 5` until its CRD handler is ready, then watches 429 with
# `Retry-After: 1` until the watch cache is filled: one watch call slept 5 s or more
# without returning, hiding the restart from the watcher's 0.25 s retry. Without
# respect_retry_after_header (and no status_forcelist) no status is retried.
# A read error (a timeout, a connection closed mid-answer) is not retried either: urllib3
# would send the GET again three times, so a server that accepts and never answers held
# one call for four request timeouts (a lease renewal past its deadline). Connection
# errors (nothing sent yet) are still retried at once, on a new connection.
NO_STATUS_RETRIES = Retry(3, read=0, respect_retry_after_header=False)


def _kubeconfig_file(kubeconfig: Path | None) -> str:
    """The kubeconfig to read: the configured one, else $KUBECONFIG (a list, joined
    with `:`), else ~/.kube/config. StartupError naming it when none of it exists.

    A missing kubeconfig is a start-up error (exit 3), not a configuration error
    (exit 2): the configuration names a file of the machine or the pod (a mounted
    Secret), like the database URL names a server, and it is checked where it is
    used. `config check` validates the configuration anywhere, and a missing
    $KUBECONFIG or ~/.kube/config, which no key names, fails the same way.
    """
    if kubeconfig is not None:
        named, files = f"kubeconfig {kubeconfig}", [str(kubeconfig)]
    elif os.environ.get("KUBECONFIG"):
        value = os.environ["KUBECONFIG"]
        named, files = f"kubeconfig {value} ($KUBECONFIG)", value.split(os.pathsep)
    else:
        named, files = (
            f"kubeconfig {DEFAULT_KUBECONFIG} (not in a pod, no kubernetes.kubeconfig, "
            "no $KUBECONFIG)",
            [DEFAULT_KUBECONFIG],
        )
    if not any(Path(file).expanduser().exists() for file in files if file):
        raise StartupError(f"{named}: no such file")
    return os.pathsep.join(files)


def load_api_client(*, kubeconfig: Path | None, context: str | None) -> Any:
    """An ApiClient from the given kubeconfig, else in-cluster config, else
    $KUBECONFIG or ~/.kube/config."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=_kubeconfig_file(kubeconfig),
                context=context,
                client_configuration=configuration,
            )
    except (ConfigException, OSError) as e:
        raise StartupError(f"cannot load Kubernetes configuration: {e}") from e
    # TCP keepalive probes notice a watch connection that died silently (idle 30 s,
    # then 3 probes 10 s apart); the watch's read timeout is the second line of defence.
    configuration.socket_options = tcp_keepalive_socket_options(idle=30, interval=10, count=3)
    configuration.retries = NO_STATUS_RETRIES
    return k8s.ApiClient(configuration)


class KubeClient:
    """Lists the ARC resources, in all namespaces or in each configured one."""

    def __init__(
        self,
        api_client: Any,
        *,
        page_size: int = 500,
        request_timeout: float = 30,
    ) -> None:
        self.api_client = api_client
        self.api = k8s.CustomObjectsApi(api_client)
        self.page_size = page_size
        self.request_timeout = request_timeout

    def close(self) -> None:
        self.api_client.close()

    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]:
        """The pages of one complete list, as they arrive. Raises
        ResourceVersionExpired when a continue token expired (restart the list)."""
        token: str | None = None
        while True:
            page = self._list_page(resource, namespace, token)
            yield page
            token = page.continue_token
            if token is None:
                return

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        """Every object of `resource` as plain dicts; restarts once if a page expired.
        For small lists (finalizer release); the sync engine streams `list_pages`."""
        try:
            return self._listing(resource, namespace)
        except ResourceVersionExpired:
            log.info("list continue token expired, restarting resource=%s", resource.plural)
            return self._listing(resource, namespace)

    def _listing(self, resource: Resource, namespace: str | None) -> Listing:
        items: list[RawObject] = []
        rv = ""
        for page in self.list_pages(resource, namespace):
            items.extend(item.body() for item in page.items)
            rv = page.resource_version
        return Listing(resource, namespace, items, rv)

    def _list_page(self, resource: Resource, namespace: str | None, token: str | None) -> Page:
        with translated_errors(f"list {resource.plural}"):
            response: Any = self.list_request(
                resource,
                namespace,
                limit=self.page_size,
                _continue=token,
                _preload_content=False,
                # An EphemeralRunner is ~7 KB of JSON and compresses about 10x: reading
                # a gzipped page costs a third of the CPU of reading it plain.
                _headers={"Accept-Encoding": "gzip"},
            )
            data: bytes = response.data
        try:
            return decode_page(data)
        except ValueError as e:
            raise KubeUnavailable(f"list {resource.plural}: {e}") from e

    def list_request(self, resource: Resource, namespace: str | None, **kwargs: Any) -> Any:
        """The raw list (or, with watch=True, watch) call, cluster-wide or in one namespace."""
        kwargs["_request_timeout"] = kwargs.get("_request_timeout", self.request_timeout)
        if namespace is None:
            return self.api.list_cluster_custom_object(GROUP, VERSION, resource.plural, **kwargs)
        return self.api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, resource.plural, **kwargs
        )

    def open_watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> WatchStream:
        """Start a watch from `resource_version` with bookmarks; iterate the result."""
        what = f"watch {resource.plural}"
        with translated_errors(what):
            response = self.list_request(
                resource,
                namespace,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(self.request_timeout, read_timeout),
            )
        return WatchStream(response, what)

    def json_patch(
        self, resource: Resource, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None:
        """Apply an RFC 6902 JSON patch; a failing `test` operation is a KubeConflict
        (the API server answers it with 422, not 409)."""
        with translated_errors(
            f"patch {resource.plural} {namespace}/{name}", invalid_is_conflict=True
        ):
            self.api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                resource.plural,
                name,
                operations,
                _content_type="application/json-patch+json",
                _request_timeout=self.request_timeout,
            )

    def cluster_identity(self) -> str:
        """The uid of the kube-system namespace: stable for the life of a cluster and
        different in every cluster. Raises KubeForbidden without `get` on it."""
        with translated_errors("get namespace kube-system"):
            uid: str = json.loads(self._get("/api/v1/namespaces/kube-system"))["metadata"]["uid"]
        return uid

    def _get(self, path: str) -> bytes:
        """A GET of one API path, as raw JSON. (The generated CoreV1Api would do, but
        importing it costs about 20 MB and a second of CPU at start.)"""
        request = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=self.request_timeout)
        data: bytes = response.read()
        if not 200 <= response.status <= 299:  # noqa: PLR2004 - HTTP success range
            raise ApiException(http_resp=response)
        return data

    def check_resource(self, resource: Resource, namespace: str | None = None) -> None:
        """Fail with KubeNotFound (CRD missing) or KubeForbidden (RBAC) before starting."""
        with translated_errors(f"list {resource.plural}"):
            self.list_request(resource, namespace, limit=1)
