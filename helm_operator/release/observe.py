"""What the cluster says, kept from the watches: HelmReleases, helm's release
storage, and the versions of the ConfigMaps and Secrets values come from.

Place in the flow: the watches (`kube.watch`) feed these indexes on the
event loop; the reconciler reads them instead of asking the API server or
running `helm history`/`helm status`/`helm get manifest`. Only what decisions
need is kept: HelmRelease objects, each revision's storage labels (revision,
status, our attempt and owner labels) and object resourceVersions. A
revision's record (manifest, description, test hooks) is read with one GET
and decoded only when an action or a report needs it.

After an action the reconciler calls `ReleaseStorage.refresh`, one
metadata-only LIST of that release's Secrets, so the next decision sees what
helm just wrote even if the watch is a moment behind; watch events older
than what is known never move the index back.

What this module does NOT do: it decides nothing and never keeps values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from helm_operator.helm.storage import (
    ReleaseRecord,
    RevisionMeta,
    StorageDecodeError,
    decode_release,
    revision_meta,
)
from helm_operator.kube import Kube, NotFound
from helm_operator.kube.watch import object_key

log = logging.getLogger(__name__)

ReleaseKey = tuple[str, str]  # (namespace, release name)


def _rv(obj: dict[str, Any]) -> int | None:
    """resourceVersion as a number, when it is one (etcd's are), to refuse stale events."""
    value = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(value))
    except ValueError:
        return None


class HelmReleaseStore:
    """The HelmRelease objects the watch delivered, by `namespace/name`.

    Our own status and metadata patches are written through (`update`), so
    a reconcile right after one reads what it wrote; a watch event older
    than the object held is ignored.
    """

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def keys(self) -> list[str]:
        return list(self._objects)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._objects.get(key)

    def update(self, obj: dict[str, Any]) -> bool:
        """Keep `obj` unless an object with a newer resourceVersion is held; True when kept."""
        key = object_key(obj)
        held = self._objects.get(key)
        if held is not None:
            old, new = _rv(held), _rv(obj)
            if old is not None and new is not None and new < old:
                return False
        self._objects[key] = obj
        return True

    def remove(self, key: str) -> None:
        self._objects.pop(key, None)


class ObjectVersions:
    """resourceVersions of ConfigMaps and Secrets, by (kind, namespace, name)."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, str], str] = {}

    def get(self, kind: str, namespace: str, name: str) -> str | None:
        return self._versions.get((kind, namespace, name))

    def update(self, kind: str, event_type: str, obj: dict[str, Any]) -> bool:
        """Record one event; True when the object changed (new, updated or gone)."""
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            return self._versions.pop(key, None) is not None
        rv = str(meta.get("resourceVersion", ""))
        if self._versions.get(key) == rv:
            return False
        self._versions[key] = rv
        return True


class StorageReader(Protocol):
    """What `ReleaseStorage` needs from the API (the real one is `Kube`)."""

    async def list_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]: ...

    async def get_release_data(self, namespace: str, secret: str) -> str | None: ...


class ReleaseStorage:
    """Helm's release Secrets, indexed by release, from their labels."""

    def __init__(self, reader: StorageReader, on_change: Callable[[str, str], None] | None = None,
                 record_cache: int = 512) -> None:
        self._reader = reader
        self._on_change = on_change
        self._revisions: dict[ReleaseKey, dict[int, RevisionMeta]] = {}
        self._secret_rv: dict[tuple[str, str], int | None] = {}       # (ns, secret) -> resourceVersion
        self._secret_release: dict[tuple[str, str], tuple[str, int]] = {}  # (ns, secret) -> (release, revision)
        self._records: OrderedDict[tuple[str, str, str], ReleaseRecord] = OrderedDict()
        self._record_cache = record_cache
        self.reads = 0  # GETs of a revision's record, for benchmarks and tests

    # ---- reading --------------------------------------------------------
    def revisions(self, namespace: str, release: str) -> tuple[RevisionMeta, ...]:
        """Known revisions of a release, newest first; () when it does not exist."""
        revs = self._revisions.get((namespace, release))
        if not revs:
            return ()
        return tuple(sorted(revs.values(), key=lambda r: r.revision, reverse=True))

    def releases(self) -> list[ReleaseKey]:
        return list(self._revisions)

    async def refresh(self, namespace: str, release: str) -> tuple[RevisionMeta, ...]:
        """Read one release's revisions from the API now (one metadata LIST)."""
        items = await self._reader.list_release_secrets(namespace, release)
        fresh: dict[int, RevisionMeta] = {}
        for item in items:
            meta = item.get("metadata") or {}
            parsed = revision_meta(meta)
            if parsed is None or parsed[0] != release:
                continue
            fresh[parsed[1].revision] = parsed[1]
            sid = (namespace, meta.get("name", ""))
            self._secret_rv[sid] = _rv(item)
            self._secret_release[sid] = (release, parsed[1].revision)
        for sid, (rel, _) in list(self._secret_release.items()):
            if sid[0] == namespace and rel == release and not any(
                    m.secret == sid[1] for m in fresh.values()):
                self._secret_release.pop(sid, None)
                self._secret_rv.pop(sid, None)
        if fresh:
            self._revisions[(namespace, release)] = fresh
        else:
            self._revisions.pop((namespace, release), None)
        return self.revisions(namespace, release)

    def observed(self, namespace: str, release: str, revision: RevisionMeta) -> None:
        """What helm reported it just did (its `-o json` output), ahead of the watch.

        The watch event that follows carries the same labels and changes
        nothing, so it nudges no one.
        """
        revs = self._revisions.setdefault((namespace, release), {})
        for number, older in list(revs.items()):
            if older.status == "deployed" and number < revision.revision and revision.status == "deployed":
                revs[number] = replace(older, status="superseded")
        revs[revision.revision] = revision
        self._secret_release[(namespace, revision.secret)] = (release, revision.revision)

    def forget(self, namespace: str, release: str) -> None:
        """The release was uninstalled (helm said so); the watch will confirm."""
        self._revisions.pop((namespace, release), None)

    async def record(self, namespace: str, meta: RevisionMeta, *,
                     with_manifest: bool = False) -> ReleaseRecord | None:
        """The decoded record of one revision (one GET); None if gone.

        Records are cached by (Secret, status) without their manifest; asking
        `with_manifest` always reads the Secret.
        """
        key = (namespace, meta.secret, meta.status)
        cached = None if with_manifest else self._records.get(key)
        if cached is not None:
            self._records.move_to_end(key)
            return cached
        self.reads += 1
        try:
            data = await self._reader.get_release_data(namespace, meta.secret)
        except NotFound:
            return None
        if data is None:
            return None
        try:
            record = await asyncio.to_thread(decode_release, data)
        except StorageDecodeError as e:
            log.warning("release Secret %s/%s cannot be decoded: %s", namespace, meta.secret, e)
            return None
        # Keep the record without its manifest: manifests are read when needed.
        summary = ReleaseRecord(**{**record.__dict__, "manifest": ""})
        self._records[key] = summary
        while len(self._records) > self._record_cache:
            self._records.popitem(last=False)
        return record

    # ---- the watch --------------------------------------------------------
    def on_event(self, event_type: str, obj: dict[str, Any]) -> None:
        """A Secret's metadata from the watch; only helm's release Secrets count."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        sid = (namespace, name)
        if event_type == "DELETED":
            known = self._secret_release.pop(sid, None)
            self._secret_rv.pop(sid, None)
            if known is None:
                return
            release, revision = known
            revs = self._revisions.get((namespace, release))
            if revs is not None:
                revs.pop(revision, None)
                if not revs:
                    del self._revisions[(namespace, release)]
            self._changed(namespace, release)
            return
        parsed = revision_meta(meta)
        if parsed is None:
            return
        release, meta_rev = parsed
        new_rv, old_rv = _rv(obj), self._secret_rv.get(sid)
        if old_rv is not None and new_rv is not None and new_rv <= old_rv:
            return  # stale or repeated (a relist): nothing new
        self._secret_rv[sid] = new_rv
        self._secret_release[sid] = (release, meta_rev.revision)
        revs = self._revisions.setdefault((namespace, release), {})
        if revs.get(meta_rev.revision) == meta_rev:
            return
        revs[meta_rev.revision] = meta_rev
        self._changed(namespace, release)

    def _changed(self, namespace: str, release: str) -> None:
        if self._on_change is not None:
            self._on_change(namespace, release)


class KubeStorageReader:
    """`StorageReader` over `Kube`: metadata-only LIST and one-Secret GET."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def list_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        return await self._kube.list_metadata("v1", "secrets", namespace, f"owner=helm,name={release}")

    async def get_release_data(self, namespace: str, secret: str) -> str | None:
        data = await self._kube.get_secret_raw(namespace, secret)
        return data.get("release")
