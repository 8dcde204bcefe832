"""A fake of helm's release storage as the Kubernetes API serves it.

Implements `release.observe.StorageReader` (metadata-only LIST, one-Secret
GET) over Secrets shaped exactly as helm v4's `storage/driver/secrets.go`
writes them: named `sh.helm.release.v1.<name>.v<revision>`, type
`helm.sh/release.v1`, labelled with the release's custom labels plus
`name`, `owner=helm`, `status`, `version` and `createdAt` (on create) or
`modifiedAt` (on update), the custom labels being dropped from the JSON
(`json:"-"`); `data.release` is the API's base64 of helm's base64 of the
gzipped release JSON. Every write bumps a resourceVersion and queues a
metadata-only watch event, delivered when the test (or `World`) flushes,
as a real watch delivers them a moment later.

Records are decoded back from the Secrets when helm reads them, so what
the fake helm sees went through the same encoding the operator decodes.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helm_operator.kube import NotFound

SYSTEM_LABELS = ("name", "owner", "status", "version", "createdAt", "modifiedAt")
WatchHandler = Callable[[str, dict[str, Any]], None]


def secret_name(release: str, version: int) -> str:
    return f"sh.helm.release.v1.{release}.v{version}"


@dataclass
class StoredRelease:
    """One revision, the fields of helm's `release.Release` the engine can see."""

    name: str
    namespace: str
    version: int
    status: str
    description: str
    chart_name: str = "podinfo"
    chart_version: str = "6.0.0"
    app_version: str = "6.0.0"
    config: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    first_deployed: str = ""
    last_deployed: str = ""
    rollback_revision: int | None = None

    def to_json(self) -> dict[str, Any]:
        info: dict[str, Any] = {"first_deployed": self.first_deployed, "last_deployed": self.last_deployed,
                                "description": self.description, "status": self.status}
        if self.rollback_revision is not None:
            info["rollback_revision"] = self.rollback_revision
        return {
            "name": self.name, "info": info,
            "chart": {"metadata": {"name": self.chart_name, "version": self.chart_version, "apiVersion": "v2",
                                   "appVersion": self.app_version}, "templates": [], "values": {}},
            "config": self.config, "manifest": self.manifest, "hooks": self.hooks,
            "version": self.version, "namespace": self.namespace, "apply_method": "ssa",
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], labels: dict[str, str]) -> StoredRelease:
        info = doc.get("info") or {}
        meta = (doc.get("chart") or {}).get("metadata") or {}
        return cls(name=doc["name"], namespace=doc["namespace"], version=int(doc["version"]),
                   status=info.get("status", "unknown"), description=info.get("description", ""),
                   chart_name=meta.get("name", ""), chart_version=meta.get("version", ""),
                   app_version=meta.get("appVersion", ""), config=doc.get("config") or {},
                   manifest=doc.get("manifest", ""), hooks=list(doc.get("hooks") or []),
                   labels={k: v for k, v in labels.items() if k not in SYSTEM_LABELS},
                   first_deployed=info.get("first_deployed", ""), last_deployed=info.get("last_deployed", ""),
                   rollback_revision=info.get("rollback_revision"))


def encode_release(rel: StoredRelease) -> str:
    """`data.release` as the API returns it: base64(helm's base64(gzip(JSON)))."""
    helm_value = base64.b64encode(gzip.compress(json.dumps(rel.to_json()).encode(), compresslevel=9))
    return base64.b64encode(helm_value).decode()


def decode_stored(data: str) -> dict[str, Any]:
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(data))))


class FakeStorage:
    """Helm's release Secrets in a fake API server (all namespaces)."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = 1000
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self.watchers: list[WatchHandler] = []
        self.lists = 0  # list_release_secrets calls (metadata LISTs)
        self.gets = 0   # get_release_data calls (Secret GETs)

    # ---- StorageReader -------------------------------------------------------
    async def list_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        self.lists += 1
        return [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                 "metadata": copy.deepcopy(s["metadata"])}
                for (ns, _), s in sorted(self.secrets.items()) if ns == namespace
                and s["metadata"]["labels"].get("owner") == "helm" and s["metadata"]["labels"].get("name") == release]

    async def get_release_data(self, namespace: str, secret: str) -> str | None:
        self.gets += 1
        obj = self.secrets.get((namespace, secret))
        if obj is None:
            raise NotFound(f"get Secret {namespace}/{secret}: not found", 404)
        return str(obj["data"]["release"])

    # ---- helm's driver --------------------------------------------------------
    def history(self, namespace: str, release: str) -> list[StoredRelease]:
        """Every revision, oldest first, decoded from its Secret."""
        out = []
        for (ns, _), s in self.secrets.items():
            labels = s["metadata"]["labels"]
            if ns == namespace and labels.get("owner") == "helm" and labels.get("name") == release:
                out.append(StoredRelease.from_json(decode_stored(s["data"]["release"]), labels))
        return sorted(out, key=lambda r: r.version)

    def get(self, namespace: str, release: str, version: int) -> StoredRelease | None:
        return next((r for r in self.history(namespace, release) if r.version == version), None)

    def create(self, rel: StoredRelease, now: int) -> None:
        key = (rel.namespace, secret_name(rel.name, rel.version))
        if key in self.secrets:
            raise RuntimeError(f"create: failed to create: secrets {key[1]!r} already exists")
        self._write(rel, {"createdAt": str(now)}, "ADDED")

    def update(self, rel: StoredRelease, now: int) -> None:
        self._write(rel, {"modifiedAt": str(now)}, "MODIFIED")

    def delete(self, namespace: str, release: str, version: int) -> None:
        obj = self.secrets.pop((namespace, secret_name(release, version)), None)
        if obj is not None:
            self._rv += 1
            meta = {**obj["metadata"], "resourceVersion": str(self._rv)}
            self._pending.append(("DELETED", {"metadata": copy.deepcopy(meta)}))

    def _write(self, rel: StoredRelease, stamp: dict[str, str], event: str) -> None:
        labels = {**rel.labels, **stamp, "name": rel.name, "owner": "helm", "status": rel.status,
                  "version": str(rel.version)}
        self._rv += 1
        name = secret_name(rel.name, rel.version)
        obj = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
               "metadata": {"name": name, "namespace": rel.namespace, "labels": labels,
                            "resourceVersion": str(self._rv)},
               "data": {"release": encode_release(rel)}}
        self.secrets[(rel.namespace, name)] = obj
        self._pending.append((event, {"metadata": copy.deepcopy(obj["metadata"])}))

    # ---- the watch ------------------------------------------------------------
    def flush(self) -> int:
        """Deliver the queued watch events (metadata only); returns how many."""
        events, self._pending = self._pending, []
        for event_type, obj in events:
            for handler in self.watchers:
                handler(event_type, copy.deepcopy(obj))
        return len(events)

    def drop_pending(self) -> None:
        """Forget undelivered events (a watch that restarts lists again)."""
        self._pending = []

    def relist(self, handler: WatchHandler) -> None:
        """A new watch's initial list: ADDED for every Secret there is."""
        for obj in list(self.secrets.values()):
            handler("ADDED", {"metadata": copy.deepcopy(obj["metadata"])})
