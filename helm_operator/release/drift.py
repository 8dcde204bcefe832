"""Detect live objects of a release that were changed by hand.

For each object of the release's manifest, a server-side apply dry run as
helm's field manager (`helm`) shows what the object would be if the release
were applied again; if that differs from the live object, or the object is
gone, the release has drifted and the reconciler re-applies it. The API
server does the normalisation (defaults, quantities, ordering), so charts
are not flagged for spelling values differently. Reports name objects and
field paths, never values (a Secret's data is a value).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import yaml

from helm_operator.kube import KubeError
from helm_operator.kube.apply import ClusterApi, Discovery

log = logging.getLogger(__name__)

HELM_FIELD_MANAGER = "helm"  # helm v4's kube.ManagedFieldsManager
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def differing_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dot paths where two JSON-like values differ (values not included). Pure."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            paths += differing_paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return paths
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        paths = []
        for i, (x, y) in enumerate(zip(a, b)):
            paths += differing_paths(x, y, f"{prefix}[{i}]")
        return paths
    return [] if a == b else [prefix or "(root)"]


def _add_ownership(meta: dict[str, Any], release_name: str, release_namespace: str) -> None:
    """The metadata helm adds to every object when it applies it (not in the manifest)."""
    meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {**(meta.get("annotations") or {}), "meta.helm.sh/release-name": release_name,
                           "meta.helm.sh/release-namespace": release_namespace}


class DriftDetector:
    """Compares a release's manifest with the live objects."""

    def __init__(self, api: ClusterApi, rediscover_after: float = 60.0) -> None:
        self.api = api
        self._discovery: Discovery | None = None
        self._discovered_at = 0.0
        self._rediscover_after = rediscover_after

    async def _lookup(self, api_version: str, kind: str) -> Any:
        """Discovery once, again only for an unknown kind and at most once a minute."""
        now = time.monotonic()
        if self._discovery is None or (self._discovery.lookup(api_version, kind) is None
                                       and now - self._discovered_at >= self._rediscover_after):
            self._discovery = await self.api.discover()
            self._discovered_at = now
        return self._discovery.lookup(api_version, kind)

    async def drift(self, manifest: str, release_name: str, release_namespace: str) -> list[str]:
        """One line per drifted object: `Kind ns/name: path, path` or `... is missing`."""
        found: list[str] = []
        for doc in yaml.load_all(manifest, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not isinstance(doc, dict) or not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
                continue
            rt = await self._lookup(doc.get("apiVersion", ""), doc["kind"])
            if rt is None:
                continue
            meta = doc.setdefault("metadata", {})
            _add_ownership(meta, release_name, release_namespace)
            namespace = (meta.get("namespace") or release_namespace) if rt.namespaced else None
            if namespace:
                meta["namespace"] = namespace
            where = f"{doc['kind']} {namespace + '/' if namespace else ''}{meta['name']}"
            try:
                live = await self.api.get(rt, namespace, meta["name"])
                if live is None:
                    found.append(f"{where} is missing")
                    continue
                wanted = await self.api.apply(rt, doc, field_manager=HELM_FIELD_MANAGER, force=True, dry_run=True)
            except KubeError as e:
                log.debug("drift check of %s skipped: %s", where, e)
                continue
            paths = differing_paths(_comparable(wanted), _comparable(live))
            if paths:
                found.append(f"{where}: {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}")
        return found
