"""Turn watch events into queue keys.

HelmReleases: a new object, a spec change (metadata.generation) or a deletion
request enqueue it; status-only updates and our own finalizer writes do not. ConfigMaps and Secrets: a change to one that a HelmRelease
reads values from enqueues that HelmRelease. Nothing here talks to helm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helm_operator.kube.watch import object_key


class HelmReleaseEvents:
    """Decides which HelmRelease events need a reconcile."""

    def __init__(self, enqueue: Callable[[str], None]) -> None:
        self._enqueue = enqueue
        self._seen: dict[str, tuple[Any, ...]] = {}

    @property
    def keys(self) -> list[str]:
        return list(self._seen)

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        if event_type == "DELETED":
            self._seen.pop(key, None)
            return
        meta = obj.get("metadata", {})
        fingerprint = (meta.get("generation"), meta.get("deletionTimestamp") is not None, meta.get("uid"))
        if self._seen.get(key) != fingerprint:
            self._seen[key] = fingerprint
            self._enqueue(key)


class ValuesSourceEvents:
    """Enqueues the HelmReleases that read values from a changed ConfigMap or Secret."""

    def __init__(self, kind: str, references: Callable[[], dict[str, set[tuple[str, str, str]]]],
                 enqueue: Callable[[str], None]) -> None:
        self._kind = kind
        self._references = references
        self._enqueue = enqueue
        self._versions: dict[str, str] = {}

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        rv = meta.get("resourceVersion", "")
        oid = f"{ns}/{name}"
        if event_type == "SYNC" and self._versions.get(oid) == rv:
            return
        if event_type == "DELETED":
            self._versions.pop(oid, None)
        else:
            self._versions[oid] = rv
        wanted = (self._kind, ns, name)
        for key, refs in self._references().items():
            if wanted in refs:
                self._enqueue(key)


def metadata_only(obj: Any) -> dict[str, Any]:
    """Keep only identifying metadata of a ConfigMap or Secret (never its data)."""
    meta = obj.metadata
    return {"metadata": {"namespace": meta.namespace, "name": meta.name,
                         "resourceVersion": meta.resource_version}}
