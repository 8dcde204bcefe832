"""Discovery: which kinds the API server serves, at which path, with which verbs.

Place in the flow: one `DiscoveryCache` per process, held by its one
`apply.ClusterApi`, shared by everything that handles objects of any kind:
in the syncer, apply, garbage collection, the sync status and the marker;
in the operator, drift checks, ownership checks and stamps, and the
uninstall guard of deletion.

How: the aggregated discovery documents (`/api` and `/apis` answered as
`apidiscovery.k8s.io/v2` APIGroupDiscoveryList, GA since Kubernetes 1.30):
two requests for every kind the server serves. An API server without them
answers the plain group list; then each group version is read on its own,
as kubectl did before 1.30. The syncer refreshes once per pass
(`refresh`), so each pass sees the cluster as it is; lookups
(`resource_type`) rediscover only for an unknown kind, at most once per
`rediscover_after` seconds (a CRD installed since).

What this module does NOT do: read or write objects; `apply.ClusterApi` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from helm_operator.kube.errors import NotFound
from helm_operator.kube.rest import RestClient

AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
              "application/json")


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


def _group_version_path(group_version: str) -> str:
    return "/api/v1" if group_version == "v1" else f"/apis/{group_version}"


def parse_aggregated(doc: dict[str, Any], into: Discovery) -> None:
    """Add the kinds of one APIGroupDiscoveryList (v2 or v2beta1) to `into`. Pure.

    Versions come in the server's order of preference: the first is preferred.
    """
    for group in doc.get("items") or ():
        name = (group.get("metadata") or {}).get("name") or ""
        for i, version in enumerate(group.get("versions") or ()):
            gv = f"{name}/{version['version']}" if name else str(version["version"])
            into.add([ResourceType(gv, r["responseKind"]["kind"], r["resource"], r.get("scope") == "Namespaced",
                                   frozenset(r.get("verbs") or ()))
                      for r in version.get("resources") or ()
                      if (r.get("responseKind") or {}).get("kind") and r.get("resource")],
                     preferred=i == 0)


def parse_group_version(group_version: str, doc: dict[str, Any]) -> list[ResourceType]:
    """The kinds of one APIResourceList (subresources left out). Pure."""
    return [ResourceType(group_version, r["kind"], r["name"], bool(r.get("namespaced")),
                         frozenset(r.get("verbs") or ()))
            for r in doc.get("resources") or () if "/" not in r.get("name", "")]


class DiscoveryCache:
    """The one discovery of a process: refreshed whole, or looked up with rediscovery on a miss."""

    def __init__(self, rest: RestClient, rediscover_after: float = 60.0) -> None:
        self.rest = rest
        self.current: Discovery | None = None
        self._discovered_at = 0.0
        self._rediscover_after = rediscover_after
        self._lock = asyncio.Lock()

    async def _read_group_version(self, group_version: str) -> list[ResourceType]:
        try:
            doc = await self.rest.request(f"discover {group_version}", "GET", _group_version_path(group_version))
        except NotFound:
            return []
        return parse_group_version(group_version, doc)

    async def group_version(self, group_version: str) -> list[ResourceType]:
        """The kinds of one group version, read now (an empty list when it is not served);
        they are added to the cache too (a CRD established a moment ago)."""
        types = await self._read_group_version(group_version)
        if self.current is not None:
            self.current.add(types, preferred=False)
        return types

    async def _discover(self) -> Discovery:
        core, groups = await asyncio.gather(
            self.rest.request("discover the core API", "GET", "/api", accept=AGGREGATED),
            self.rest.request("discover API groups", "GET", "/apis", accept=AGGREGATED))
        discovery = Discovery()
        if core.get("kind") == "APIGroupDiscoveryList" and groups.get("kind") == "APIGroupDiscoveryList":
            parse_aggregated(core, discovery)
            parse_aggregated(groups, discovery)
            return discovery
        versions: list[tuple[str, bool]] = [("v1", True)]  # an API server older than aggregated discovery
        for g in groups.get("groups") or ():
            preferred = (g.get("preferredVersion") or {}).get("groupVersion")
            versions += [(v["groupVersion"], v["groupVersion"] == preferred) for v in g.get("versions") or ()]
        results = await asyncio.gather(*(self._read_group_version(gv) for gv, _ in versions))
        for (_, preferred), types in zip(versions, results):
            discovery.add(types, preferred)
        return discovery

    async def refresh(self) -> Discovery:
        """Discover every served kind now; the result becomes the shared cache."""
        async with self._lock:
            return self._replace(await self._discover())

    def _replace(self, discovery: Discovery) -> Discovery:
        self.current, self._discovered_at = discovery, time.monotonic()
        return discovery

    async def resource_type(self, api_version: str, kind: str) -> ResourceType | None:
        """The served kind from the cache; an unknown kind rediscovers, at most once per
        `rediscover_after` seconds."""
        async with self._lock:
            known = self.current.lookup(api_version, kind) if self.current else None
            if known is None and (self.current is None
                                  or time.monotonic() - self._discovered_at >= self._rediscover_after):
                known = self._replace(await self._discover()).lookup(api_version, kind)
            return known
