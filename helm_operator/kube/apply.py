"""Any-kind object access for the manifest syncer: discovery, server-side
apply, get, list by label, delete, and waiting for a CRD to be Established.

Place in the flow: `gitsync.apply`, `gitsync.gc`, `gitsync.status` and
`gitsync.marker` call this adapter; it is the syncer's only door to the API
server. Requests go through the `kubernetes` ApiClient's REST layer as plain
JSON (no generated models), each blocking call in `asyncio.to_thread`.
Failures become `KubeError` (404: `NotFound`) with the verb, the object and
the API server's message.

What this module does NOT do: it decides nothing (order, ownership, what is
stale) and never logs object contents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from helm_operator.kube.client import KubeError, NotFound

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0
# kube-apiserver's default --max-request-bytes. A larger body is not refused
# with a status: the server drops the connection (an SSL EOF at the client).
MAX_REQUEST_BYTES = 3 * 1024 * 1024
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ResourceType:
    """One kind served by the API server, as discovery describes it."""

    group_version: str  # "v1", "apps/v1"
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        ns = f"/namespaces/{quote(namespace, safe='')}" if self.namespaced and namespace else ""
        tail = f"/{quote(name, safe='')}" if name else ""
        return f"{base}{ns}/{self.plural}{tail}"


@dataclass
class Discovery:
    """Every (apiVersion, kind) the server serves; `preferred` holds one
    version per group, for listing without duplicates."""

    types: dict[tuple[str, str], ResourceType] = field(default_factory=dict)
    preferred: list[ResourceType] = field(default_factory=list)

    def lookup(self, api_version: str, kind: str) -> ResourceType | None:
        return self.types.get((api_version, kind))

    def namespaced(self, api_version: str, kind: str) -> bool | None:
        rt = self.lookup(api_version, kind)
        return None if rt is None else rt.namespaced

    def add(self, types: Iterable[ResourceType], preferred: bool) -> None:
        for rt in types:
            self.types[(rt.group_version, rt.kind)] = rt
            if preferred and "list" in rt.verbs:
                self.preferred.append(rt)


def _message(what: str, e: ApiException | None, status: int, data: bytes | None) -> KubeError:
    message = getattr(e, "reason", None) or f"HTTP {status}"
    if data:
        try:
            message = json.loads(data).get("message", message)
        except (ValueError, AttributeError):
            pass
    cls = NotFound if status == 404 else KubeError
    return cls(f"{what}: {message}", status)


class ClusterApi:
    """Async any-kind access over one `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: client.ApiClient, rediscover_after: float = 60.0, *,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.api_client = api_client
        self.max_request_bytes = max_request_bytes
        self._discovery: Discovery | None = None
        self._discovered_at = 0.0
        self._rediscover_after = rediscover_after
        self._discovering = asyncio.Lock()

    # ---- raw requests ------------------------------------------------------
    def _request_sync(self, what: str, method: str, path: str, *,
                      query: list[tuple[str, str]] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        if body is not None and self.max_request_bytes:
            _check_request_size(what, body, self.max_request_bytes)
        params = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*params, _request_timeout=REQUEST_TIMEOUT)
            data = response.read()
        except ApiException as e:
            raise _message(what, e, e.status or 0, getattr(e, "body", None)) from e
        except Exception as e:  # urllib3 connection errors and the like
            raise KubeError(f"{what}: {type(e).__name__}: {e}") from e
        if not 200 <= response.status < 300:
            raise _message(what, None, response.status, data)
        return json.loads(data) if data else {}

    async def _request(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._request_sync, what, method, path, **kwargs)

    # ---- discovery ---------------------------------------------------------
    async def discover_group_version(self, group_version: str) -> list[ResourceType]:
        """The kinds of one group version; an empty list when it is not served."""
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        try:
            doc = await self._request(f"discover {group_version}", "GET", path)
        except NotFound:
            return []
        out = []
        for r in doc.get("resources", []):
            if "/" in r.get("name", ""):
                continue  # subresource
            out.append(ResourceType(group_version, r["kind"], r["name"], bool(r.get("namespaced")),
                                    frozenset(r.get("verbs") or ())))
        return out

    async def discover(self) -> Discovery:
        """All kinds of all served group versions."""
        groups = await self._request("discover API groups", "GET", "/apis")
        versions: list[tuple[str, bool]] = [("v1", True)]
        for g in groups.get("groups", []):
            preferred = (g.get("preferredVersion") or {}).get("groupVersion")
            for v in g.get("versions", []):
                versions.append((v["groupVersion"], v["groupVersion"] == preferred))
        results = await asyncio.gather(*(self.discover_group_version(gv) for gv, _ in versions))
        discovery = Discovery()
        for (_, preferred), types in zip(versions, results):
            discovery.add(types, preferred)
        return discovery

    async def resource_type(self, api_version: str, kind: str) -> ResourceType | None:
        """The served kind, from one discovery shared by every caller of this ClusterApi.

        Discovery runs once, and again only when a kind is unknown, at most
        once per `rediscover_after` seconds (a CRD installed since).
        """
        async with self._discovering:
            now = time.monotonic()
            known = self._discovery.lookup(api_version, kind) if self._discovery else None
            if known is None and (self._discovery is None or now - self._discovered_at >= self._rediscover_after):
                self._discovery = await self.discover()
                self._discovered_at = now
                known = self._discovery.lookup(api_version, kind)
            return known

    # ---- objects -----------------------------------------------------------
    async def merge_patch(self, rt: ResourceType, namespace: str | None, name: str,
                          patch: dict[str, Any]) -> dict[str, Any]:
        return await self._request(f"patch {rt.kind} {_ref(namespace, name)}", "PATCH",
                                   rt.path(namespace, name), body=patch,
                                   content_type="application/merge-patch+json")

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self._request(f"get {rt.kind} {_ref(namespace, name)}", "GET",
                                       rt.path(namespace, name))
        except NotFound:
            return None

    async def apply(self, rt: ResourceType, body: dict[str, Any], *, field_manager: str,
                    force: bool = True, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `body`; returns the object as stored (or as it would be, with dry_run)."""
        meta = body.get("metadata") or {}
        query = [("fieldManager", field_manager)] + ([("force", "true")] if force else [])
        if dry_run:
            query.append(("dryRun", "All"))
        return await self._request(
            f"apply {rt.kind} {_ref(meta.get('namespace'), meta.get('name', ''))}", "PATCH",
            rt.path(meta.get("namespace"), meta.get("name")), query=query, body=body,
            content_type=APPLY_CONTENT_TYPE,
        )

    async def delete(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            await self._request(f"delete {rt.kind} {_ref(namespace, name)}", "DELETE",
                                rt.path(namespace, name), body={"propagationPolicy": "Background"})
        except NotFound:
            return False
        return True

    async def list_labelled(self, rt: ResourceType, selector: str,
                            namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind matching a label selector, in `namespace` or all."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("labelSelector", selector), ("limit", "500")]
            if token:
                query.append(("continue", token))
            page = await self._request(f"list {rt.plural}.{rt.group_version}", "GET",
                                       rt.path(namespace), query=query)
            for item in page.get("items", []):
                item.setdefault("apiVersion", rt.group_version)
                item.setdefault("kind", rt.kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    async def wait_crd_established(self, name: str, timeout: float = 60.0) -> None:
        """Wait until CRD `name` has condition Established=True."""
        crd = ResourceType("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                           "customresourcedefinitions", False)
        deadline = time.monotonic() + timeout
        while True:
            obj = await self.get(crd, None, name)
            conditions = ((obj or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise KubeError(f"CustomResourceDefinition {name} not Established after {timeout:.0f}s")
            await asyncio.sleep(0.2)


CONFIGMAP = ResourceType("v1", "ConfigMap", "configmaps", True, frozenset({"list", "get"}))


def _check_request_size(what: str, body: Any, limit: int) -> None:
    """Refuse, with a message, a body the API server would cut off mid-request."""
    size = len(json.dumps(body, default=str).encode("utf-8"))
    if size > limit:
        raise KubeError(
            f"{what}: the object is {size / 2**20:.1f} MiB as JSON, more than the "
            f"{limit / 2**20:g} MiB the API server accepts in one request (its --max-request-bytes; "
            "this process's --max-request-bytes must match it); split it into smaller objects", 413)


def _ref(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def kubeconfig_namespace(kubeconfig: str | None, context: str | None = None) -> str | None:
    """The namespace of the kubeconfig's current context, or of `context` (kubectl's default), if set."""
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, TypeError):
        return None
    if context is not None:
        current = next((c for c in contexts or () if c.get("name") == context), None)
    return ((current or {}).get("context") or {}).get("namespace") or None
