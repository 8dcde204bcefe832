"""Turn watch events into cache updates and queue keys.

HelmReleases: every event updates the HelmRelease cache; a new object, a
spec change (metadata.generation), a deletion request or a new
`reconcile.fluxcd.io/*` request enqueues it (an input changed); status-only
updates and our own finalizer writes do not, except that a HelmRelease
becoming Ready (or not) enqueues the HelmReleases that depend on it.

Secrets and ConfigMaps arrive as metadata only. A helm release Secret goes
to the release-storage index, which reports the release as changed; that
*nudges* the owning HelmRelease (a hand `helm uninstall`, `rollback` or
`upgrade` is seen within seconds, while a release waiting on its failure
backoff is left to its timer, since its own helm calls write storage too).
Any other one updates the object-version index, and a change to one that a
HelmRelease reads values from enqueues that HelmRelease.

Nothing here talks to helm or decides what a change means for a release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helm_operator.api.conditions import ready_for_generation
from helm_operator.kube.watch import object_key
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage

REQUEST_ANNOTATIONS = ("reconcile.fluxcd.io/requestedAt", "reconcile.fluxcd.io/forceAt",
                       "reconcile.fluxcd.io/resetAt")


class HelmReleaseEvents:
    """Keeps the HelmRelease cache and enqueues what needs a reconcile."""

    def __init__(self, store: HelmReleaseStore, enqueue: Callable[[str], None],
                 settled: Callable[[str], None] | None = None,
                 dependants: Callable[[str], set[str]] | None = None) -> None:
        self._store = store
        self._enqueue = enqueue
        self._settled = settled or enqueue  # listed at start and already reconciled: background work
        self._dependants = dependants
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._ready: dict[str, bool] = {}

    @property
    def keys(self) -> list[str]:
        return list(self._seen)

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        if event_type == "DELETED":
            self._seen.pop(key, None)
            self._ready.pop(key, None)
            self._store.remove(key)
            self._enqueue(key)  # the reconciler forgets it
            self._wake_dependants(key)
            return
        if not self._store.update(obj):
            return  # older than what we hold (our own write went first)
        ready = ready_for_generation(obj)[0]
        if self._ready.get(key) != ready:
            self._ready[key] = ready
            self._wake_dependants(key)
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        fingerprint = (meta.get("generation"), meta.get("deletionTimestamp") is not None, meta.get("uid"),
                       tuple(annotations.get(a) for a in REQUEST_ANNOTATIONS))
        if self._seen.get(key) != fingerprint:
            first_sight = key not in self._seen
            self._seen[key] = fingerprint
            status = obj.get("status") or {}
            if event_type == "SYNC" and first_sight and status.get("observedGeneration") == meta.get("generation"):
                self._settled(key)
            else:
                self._enqueue(key)

    def _wake_dependants(self, key: str) -> None:
        """A dependency became Ready (or stopped being so, or went): its dependants look again now."""
        if self._dependants is not None:
            for dependant in sorted(self._dependants(key)):
                self._enqueue(dependant)


class ValuesSourceEvents:
    """Enqueues the HelmReleases that read values from a changed ConfigMap or Secret."""

    def __init__(self, kind: str, versions: ObjectVersions,
                 references: Callable[[], dict[str, set[tuple[str, str, str]]]],
                 enqueue: Callable[[str], None]) -> None:
        self._kind = kind
        self._versions = versions
        self._references = references
        self._enqueue = enqueue

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        if not self._versions.update(self._kind, event_type, obj):
            return
        meta = obj.get("metadata") or {}
        wanted = (self._kind, meta.get("namespace", ""), meta.get("name", ""))
        for key, refs in self._references().items():
            if wanted in refs:
                self._enqueue(key)


class SecretEvents:
    """Sends helm's release Secrets to the storage index, the others to the values index."""

    def __init__(self, storage: ReleaseStorage, values: ValuesSourceEvents) -> None:
        self._storage = storage
        self._values = values

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        helm_owned = labels.get("owner") == "helm"
        if helm_owned or event_type == "DELETED":  # a relist's DELETED carries no labels
            self._storage.on_event(event_type, obj)
        if not helm_owned:
            self._values(event_type, obj)


def release_changed(release_keys: Callable[[], dict[tuple[str, str], str]],
                    nudge: Callable[[str], None]) -> Callable[[str, str], None]:
    """The storage index's callback: nudge the HelmRelease owning the release."""

    def on_change(namespace: str, release: str) -> None:
        key = release_keys().get((namespace, release))
        if key is not None:
            nudge(key)

    return on_change
