"""Configuration loading and paginated lists of the ARC resources.

Lists go page by page (`limit`/`continue`) without a resourceVersion, which asks
for a consistent read; recent API servers (1.31+) serve it from the watch cache.
An expired continue token (410) restarts the list from the beginning, as
client-go's pager does.
"""

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from snapshotter.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeUnavailable,
    ResourceVersionExpired,
    StartupError,
)
from snapshotter.kube.resources import GROUP, VERSION, Resource

log = logging.getLogger(__name__)

RawObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Listing:
    """A complete list of one resource in one scope, at one resourceVersion."""

    resource: Resource
    namespace: str | None
    items: list[RawObject]
    resource_version: str


def load_api_client(*, kubeconfig: Path | None, context: str | None) -> Any:
    """An ApiClient from the given kubeconfig, else in-cluster config, else ~/.kube/config."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        path = str(kubeconfig) if kubeconfig else None
        return k8s_config.new_client_from_config(config_file=path, context=context)
    except (ConfigException, OSError) as e:
        raise StartupError(f"cannot load Kubernetes configuration: {e}") from e


def error_from(e: ApiException) -> KubeError:
    """Our error type for an API error status."""
    status = e.status or 0
    detail = f"HTTP {status} {e.reason or ''}".strip()
    if status == 410:  # noqa: PLR2004 - Gone: resourceVersion or continue token compacted
        return ResourceVersionExpired(detail)
    if status in (401, 403):
        return KubeForbidden(detail)
    if status == 404:  # noqa: PLR2004
        return KubeNotFound(detail)
    if status == 409:  # noqa: PLR2004
        return KubeConflict(detail)
    return KubeUnavailable(detail)


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Turn client and connection exceptions into our KubeError tree."""
    try:
        yield
    except ApiException as e:
        error = error_from(e)
        raise type(error)(f"{what}: {error}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeUnavailable(f"{what}: {e}") from e


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

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        """Every object of `resource`, page by page; restarts once if a page expired."""
        try:
            return self._list_pages(resource, namespace)
        except ResourceVersionExpired:
            log.info("list continue token expired, restarting list resource=%s", resource.plural)
            return self._list_pages(resource, namespace)

    def _list_pages(self, resource: Resource, namespace: str | None) -> Listing:
        items: list[RawObject] = []
        token: str | None = None
        while True:
            page = self._list_page(resource, namespace, token)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return Listing(resource, namespace, items, str(metadata.get("resourceVersion", "")))

    def _list_page(
        self, resource: Resource, namespace: str | None, token: str | None
    ) -> dict[str, Any]:
        with translated_errors(f"list {resource.plural}"):
            response: Any = self._list(
                resource, namespace, limit=self.page_size, _continue=token, _preload_content=False
            )
            data: dict[str, Any] = json.loads(response.data)
        return data

    def _list(self, resource: Resource, namespace: str | None, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout", self.request_timeout)
        if namespace is None:
            return self.api.list_cluster_custom_object(GROUP, VERSION, resource.plural, **kwargs)
        return self.api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, resource.plural, **kwargs
        )

    def check_resource(self, resource: Resource, namespace: str | None = None) -> None:
        """Fail with KubeNotFound (CRD missing) or KubeForbidden (RBAC) before starting."""
        with translated_errors(f"list {resource.plural}"):
            self._list(resource, namespace, limit=1)
