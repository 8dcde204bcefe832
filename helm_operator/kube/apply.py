"""Objects of any kind: server-side apply, merge patch, get, list by label,
delete, and waiting for a CRD to be Established; with the process's one
discovery.

Place in the flow: the syncer's only door to the API server (`gitsync.apply`,
`gc`, `status`, `marker`), and the operator's for a release's own objects
(`release.drift`, `release.ownership`, the uninstall guard in
`release.deletion`). Each process builds exactly one `ClusterApi` (the
operator's is `client.Kube.cluster`), so they all share its
`discovery.DiscoveryCache`. Requests go through `rest.RestClient`; failures
are `errors.KubeError` with the verb, the object and the API server's message.

What this module does NOT do: it decides nothing (order, ownership, what is
stale) and never logs object contents.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_operator.kube.discovery import Discovery, DiscoveryCache, ResourceType
from helm_operator.kube.errors import KubeError, NotFound
from helm_operator.kube.rest import APPLY_PATCH, MAX_REQUEST_BYTES, MERGE_PATCH, RestClient

CONFIGMAP = ResourceType("v1", "ConfigMap", "configmaps", True, frozenset({"list", "get"}))
_CRD = ResourceType("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False)


@dataclass(frozen=True)
class ObjectRef:
    """Enough to find one object of any kind."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


def _ref(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class ClusterApi:
    """Async any-kind access over one `RestClient`, with one shared discovery."""

    def __init__(self, rest: RestClient, discovery: DiscoveryCache | None = None) -> None:
        self.rest = rest
        self.discovery = discovery or DiscoveryCache(rest)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None, *, context: str | None = None,
                        max_request_bytes: int = MAX_REQUEST_BYTES) -> "ClusterApi":
        return cls(RestClient.from_kubeconfig(kubeconfig, context=context, max_request_bytes=max_request_bytes))

    # ---- discovery (shared) ------------------------------------------------
    async def discover(self) -> Discovery:
        """Every served kind, discovered now; it becomes the shared cache too."""
        return await self.discovery.refresh()

    async def discover_group_version(self, group_version: str) -> list[ResourceType]:
        """The kinds of one group version, read now; an empty list when it is not served."""
        return await self.discovery.group_version(group_version)

    async def resource_type(self, api_version: str, kind: str) -> ResourceType | None:
        """The served kind, from the shared discovery (see `DiscoveryCache.resource_type`)."""
        return await self.discovery.resource_type(api_version, kind)

    # ---- objects -----------------------------------------------------------
    async def merge_patch(self, rt: ResourceType, namespace: str | None, name: str,
                          patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.rest.request(
            f"patch {rt.kind} {_ref(namespace, name)}", "PATCH", rt.path(namespace, name), body=patch,
            content_type=MERGE_PATCH)
        return result

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.rest.request(
                f"get {rt.kind} {_ref(namespace, name)}", "GET", rt.path(namespace, name))
        except NotFound:
            return None
        return result

    async def apply(self, rt: ResourceType, body: dict[str, Any], *, field_manager: str,
                    force: bool = True, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `body`; returns the object as stored (or as it would be, with dry_run)."""
        meta = body.get("metadata") or {}
        query = [("fieldManager", field_manager)] + ([("force", "true")] if force else [])
        if dry_run:
            query.append(("dryRun", "All"))
        result: dict[str, Any] = await self.rest.request(
            f"apply {rt.kind} {_ref(meta.get('namespace'), meta.get('name', ''))}", "PATCH",
            rt.path(meta.get("namespace"), meta.get("name")), query=query, body=body, content_type=APPLY_PATCH)
        return result

    async def delete(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            await self.rest.request(f"delete {rt.kind} {_ref(namespace, name)}", "DELETE",
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
            page = await self.rest.request(f"list {rt.plural}.{rt.group_version}", "GET",
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
        deadline = time.monotonic() + timeout
        while True:
            obj = await self.get(_CRD, None, name)
            conditions = ((obj or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise KubeError(f"CustomResourceDefinition {name} not Established after {timeout:.0f}s")
            await asyncio.sleep(0.2)
