"""Detect live objects of a release that were changed by hand.

For each object of the release's manifest, a server-side apply dry run as
helm's field manager (`helm`) shows what the object would be if the release
were applied again; if that differs from the live object, or the object is
gone, the release has drifted; `driftrules` drops what the HelmRelease
ignores, and the reconciler reports it or re-applies the release as
`spec.driftDetection.mode` says. The API
server does the normalisation (defaults, quantities, ordering), so charts
are not flagged for spelling values differently. Reports name objects and
field paths, never values (a Secret's data is a value).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import yaml

from helm_operator.kube import KubeError
from helm_operator.kube.apply import ClusterApi

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


def _escape(key: Any) -> str:
    """One JSON pointer token (RFC 6901)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def differing_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """JSON pointers where two JSON-like values differ (values not included). Pure."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            paths += differing_paths(a.get(key), b.get(key), f"{prefix}/{_escape(key)}")
        return paths
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        paths = []
        for i, (x, y) in enumerate(zip(a, b)):
            paths += differing_paths(x, y, f"{prefix}/{i}")
        return paths
    return [] if a == b else [prefix or "/"]


def without_paths(doc: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """A copy of `doc` without the fields at `pointers` (JSON pointers; absent ones ignored)."""
    out = copy.deepcopy(doc)
    for pointer in pointers:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.strip("/").split("/") if t != ""]
        node: Any = out
        for token in tokens[:-1]:
            if isinstance(node, dict):
                node = node.get(token)
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                node = None
            if node is None:
                break
        if tokens and isinstance(node, dict):
            node.pop(tokens[-1], None)
    return out


@dataclass(frozen=True)
class Drift:
    """One object of a release that differs from its manifest: where, never what."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    paths: tuple[str, ...] = ()          # JSON pointers; empty with `missing`
    missing: bool = False
    labels: dict[str, str] = field(default_factory=dict)       # the live object's, for ignore targets
    annotations: dict[str, str] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # holds values: never print

    def __str__(self) -> str:
        where = f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"
        if self.missing:
            return f"{where} is missing"
        shown = ", ".join(self.paths[:5]) + (" ..." if len(self.paths) > 5 else "")
        return f"{where}: {shown}"


def _add_ownership(meta: dict[str, Any], release_name: str, release_namespace: str) -> None:
    """The metadata helm adds to every object when it applies it (not in the manifest)."""
    meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {**(meta.get("annotations") or {}), "meta.helm.sh/release-name": release_name,
                           "meta.helm.sh/release-namespace": release_namespace}


class DriftDetector:
    """Compares a release's manifest with the live objects."""

    def __init__(self, api: ClusterApi) -> None:
        self.api = api

    async def _lookup(self, api_version: str, kind: str) -> Any:
        return await self.api.resource_type(api_version, kind)

    async def drift(self, manifest: str, release_name: str, release_namespace: str) -> list[Drift]:
        """The objects of the release that differ from the manifest, or are missing."""
        found: list[Drift] = []
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
                    found.append(Drift(doc.get("apiVersion", ""), doc["kind"], meta["name"], namespace,
                                       missing=True, desired=doc))
                    continue
                wanted = await self.api.apply(rt, doc, field_manager=HELM_FIELD_MANAGER, force=True, dry_run=True)
            except KubeError as e:
                log.debug("drift check of %s skipped: %s", where, e)
                continue
            paths = differing_paths(_comparable(wanted), _comparable(live))
            if paths:
                live_meta = live.get("metadata") or {}
                found.append(Drift(doc.get("apiVersion", ""), doc["kind"], meta["name"], namespace,
                                   tuple(paths), labels=dict(live_meta.get("labels") or {}),
                                   annotations=dict(live_meta.get("annotations") or {}), desired=doc))
        return found

    async def correct(self, drifts: list[Drift], ignored: dict[int, list[str]] | None = None) -> list[str]:
        """Put drifted objects back: server-side apply of the release's manifest as helm's
        field manager, without the fields the HelmRelease ignores. No helm call, no new
        revision. Returns one line per object that could not be put back."""
        failed = []
        for i, drift in enumerate(drifts):
            doc = without_paths(drift.desired, (ignored or {}).get(i, []))
            rt = await self._lookup(drift.api_version, drift.kind)
            if rt is None:
                continue
            try:
                await self.api.apply(rt, doc, field_manager=HELM_FIELD_MANAGER, force=True)
            except KubeError as e:
                failed.append(f"{drift.kind} {drift.name}: {e}")
        return failed
