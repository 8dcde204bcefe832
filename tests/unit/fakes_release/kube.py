"""Fakes of what the Reconciler and Recorder call besides helm: the Kubernetes
API (`FakeKube`), the chart fetcher (`FakeChartFetcher`) and the clock
(`FakeClock`).

`FakeKube` keeps HelmReleases (status and metadata merge patches as the API
server applies them: resourceVersion bumped on every write, a conflict on a
stale resourceVersion, the object gone once it is being deleted and has no
finalizer), the objects helm applied (for the ownership check and stamp),
ConfigMaps and Secrets values come from, and the events emitted. Changes
queue watch events like the real watches deliver: HelmReleases in full,
ConfigMaps and Secrets as metadata only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.chartsource import ChartFetchError, FetchedChart
from helm_operator.kube import KubeError, NotFound, ObjectRef

WatchHandler = Callable[[str, dict[str, Any]], None]
START = 1_800_000_000.0  # 2027-01-15: any fixed instant will do


class FakeClock:
    """Wall and monotonic time the reconciler and recorder see; moves only when told."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self._ticks = 0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - START

    def unix(self) -> int:
        return int(self.now)

    def rfc3339(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now))

    def helm_time(self) -> str:
        """helm's timestamps have nanoseconds: two revisions never share one."""
        self._ticks += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.now)) + f".{self._ticks:09d}Z"

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route the reconciler's `time` and the recorder's condition timestamps to this clock."""
        shim = SimpleNamespace(time=self.time, monotonic=self.monotonic, strptime=time.strptime)
        for room in ("reconciler", "gather", "driftcheck", "deletion"):  # every engine room that reads time
            monkeypatch.setattr(f"helm_operator.release.{room}.time", shim)
        monkeypatch.setattr("helm_operator.release.record.now_rfc3339", self.rfc3339)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies `application/merge-patch+json`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube:
    """The Kubernetes API calls of the release engine, in memory."""

    def __init__(self) -> None:
        self.helmreleases: dict[str, dict[str, Any]] = {}
        self.objects: dict[ObjectRef, dict[str, Any]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []  # (type, reason, message)
        self.calls: Counter[str] = Counter()
        self._rv = 1
        self._pending: list[tuple[str, str, dict[str, Any]]] = []  # (resource, event type, object)
        self.watchers: dict[str, list[WatchHandler]] = {"helmreleases": [], "configmaps": [], "secrets": []}

    def _bump(self, meta: dict[str, Any]) -> None:
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)

    # ---- HelmReleases ---------------------------------------------------------
    def put_helmrelease(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace (kubectl apply): generation moves when the spec changes."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = f"{meta['namespace']}/{meta['name']}"
        held = self.helmreleases.get(key)
        if held is None:
            meta.setdefault("uid", f"uid-{meta['name']}")
            meta["generation"] = 1
            event = "ADDED"
        else:
            meta = obj["metadata"] = {**held["metadata"], **{k: v for k, v in meta.items()
                                                             if k not in ("resourceVersion", "generation")}}
            meta["generation"] = held["metadata"]["generation"] + (obj.get("spec") != held.get("spec"))
            obj["status"] = held.get("status", {})
            event = "MODIFIED"
        self._bump(meta)
        self.helmreleases[key] = obj
        self._pending.append(("helmreleases", event, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def delete_helmrelease(self, namespace: str, name: str) -> None:
        """kubectl delete: with finalizers the object only gets a deletionTimestamp."""
        obj = self.helmreleases[f"{namespace}/{name}"]
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
            self._bump(obj["metadata"])
            self._pending.append(("helmreleases", "MODIFIED", copy.deepcopy(obj)))
        else:
            self._gone(f"{namespace}/{name}")

    def _gone(self, key: str) -> None:
        obj = self.helmreleases.pop(key)
        self._pending.append(("helmreleases", "DELETED", copy.deepcopy(obj)))

    def _helmrelease(self, namespace: str, name: str, what: str) -> dict[str, Any]:
        obj = self.helmreleases.get(f"{namespace}/{name}")
        if obj is None:
            raise NotFound(f"{what} HelmRelease {namespace}/{name}: helmreleases.helm.fluxcd.io "
                           f'"{name}" not found', 404)
        return obj

    async def patch_helmrelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.calls["patch_helmrelease_status"] += 1
        obj = self._helmrelease(namespace, name, "update status of")
        obj["status"] = merge_patch(obj.get("status") or {}, json.loads(json.dumps(status)))
        self._bump(obj["metadata"])
        self._pending.append(("helmreleases", "MODIFIED", copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    async def patch_helmrelease_metadata(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls["patch_helmrelease_metadata"] += 1
        obj = self._helmrelease(namespace, name, "patch")
        wanted = patch.get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise KubeError(f"patch HelmRelease {namespace}/{name}: Operation cannot be fulfilled: "
                            "the object has been modified; please apply your changes to the latest version", 409)
        obj["metadata"] = merge_patch(obj["metadata"], {k: v for k, v in patch.items() if k != "resourceVersion"})
        self._bump(obj["metadata"])
        stored = copy.deepcopy(obj)
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            self._gone(f"{namespace}/{name}")
        else:
            self._pending.append(("helmreleases", "MODIFIED", copy.deepcopy(obj)))
        return stored

    async def emit_event(self, involved: dict[str, Any], event_type: str, reason: str,
                         message: str, component: str = "helm-operator") -> None:
        self.calls["emit_event"] += 1
        self.events.append((event_type, reason, message))

    # ---- release objects --------------------------------------------------------
    async def get_object(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls["get_object"] += 1
        obj = self.objects.get(ref)
        return copy.deepcopy(obj) if obj is not None else None

    async def annotate(self, ref: ObjectRef, annotations: dict[str, str | None]) -> None:
        self.calls["annotate"] += 1
        obj = self.objects.get(ref)
        if obj is None:
            raise NotFound(f"annotate {ref}: not found", 404)
        obj["metadata"] = merge_patch(obj["metadata"], {"annotations": annotations})

    def apply_manifest(self, namespace: str, release: str, manifest: str, previous: str = "") -> None:
        """What helm's apply does to the objects: create or update, delete those no longer rendered.

        Annotations other field managers set (the antecedent, when patched) survive, as with
        server-side apply; those in the manifest (the post-rendered antecedent) are applied.
        """
        wanted = {}
        for doc in _docs(manifest):
            ref = ObjectRef(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], namespace)
            meta = {**doc["metadata"], "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": {**doc["metadata"].get("annotations", {}),
                                    "meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}}
            held = self.objects.get(ref)
            if held is not None:
                meta["annotations"] = {**held["metadata"].get("annotations", {}), **meta["annotations"]}
            wanted[ref] = {**doc, "metadata": meta}
        for doc in _docs(previous):
            ref = ObjectRef(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], namespace)
            if ref not in wanted:
                self.objects.pop(ref, None)
        self.objects.update(wanted)

    def delete_manifest(self, namespace: str, manifest: str) -> None:
        for doc in _docs(manifest):
            self.objects.pop(ObjectRef(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], namespace), None)

    # ---- values sources -----------------------------------------------------------
    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self._put(self.configmaps, "configmaps", namespace, name, data)

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self._put(self.secrets, "secrets", namespace, name, data)

    def _put(self, where: dict[tuple[str, str], dict[str, Any]], resource: str, namespace: str, name: str,
             data: dict[str, str]) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        self._bump(meta)
        where[(namespace, name)] = {"metadata": meta, "data": dict(data)}
        self._pending.append((resource, "MODIFIED", {"metadata": dict(meta)}))

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        self.calls["get_configmap_data"] += 1
        if (namespace, name) not in self.configmaps:
            raise NotFound(f'get ConfigMap {namespace}/{name}: configmaps "{name}" not found', 404)
        return dict(self.configmaps[(namespace, name)]["data"])

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        self.calls["get_secret_data"] += 1
        if (namespace, name) not in self.secrets:
            raise NotFound(f'get Secret {namespace}/{name}: secrets "{name}" not found', 404)
        return dict(self.secrets[(namespace, name)]["data"])

    # ---- the watches ----------------------------------------------------------------
    def flush(self) -> int:
        events, self._pending = self._pending, []
        for resource, event_type, obj in events:
            for handler in self.watchers[resource]:
                handler(event_type, copy.deepcopy(obj))
        return len(events)


def _docs(manifest: str) -> list[dict[str, Any]]:
    out = []
    for chunk in manifest.split("\n---\n"):
        body = "\n".join(line for line in chunk.splitlines() if line.strip() and not line.startswith(("#", "---")))
        if body:
            out.append(json.loads(body))
    return out


class FakeChartFetcher:
    """`ChartFetcher.fetch`/`known_revision` for Helm repository charts: the version is the revision."""

    def __init__(self) -> None:
        self.fetches = 0
        self._fail: list[str] = []

    def fail_next(self, message: str) -> None:
        self._fail.append(message)

    async def fetch(self, hr: HelmRelease) -> FetchedChart:
        self.fetches += 1
        if self._fail:
            raise ChartFetchError(self._fail.pop(0))
        assert hr.chart.name and hr.chart.version
        return FetchedChart(Path("/charts") / hr.chart.name / hr.chart.version, hr.chart.version)

    def known_revision(self, hr: HelmRelease) -> str | None:
        return hr.chart.version


@dataclass(frozen=True)
class _FakeType:
    api_version: str
    kind: str
    namespaced: bool = True


class FakeClusterApi:
    """The any-kind calls (`kube.apply.ClusterApi`) the engine makes for ownership, on FakeKube's objects."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    async def resource_type(self, api_version: str, kind: str) -> _FakeType:
        return _FakeType(api_version, kind, kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding"))

    async def get(self, rt: _FakeType, namespace: str | None, name: str) -> dict[str, Any] | None:
        return await self.kube.get_object(ObjectRef(rt.api_version, rt.kind, name, namespace))

    async def merge_patch(self, rt: _FakeType, namespace: str | None, name: str,
                          patch: dict[str, Any]) -> dict[str, Any]:
        await self.kube.annotate(ObjectRef(rt.api_version, rt.kind, name, namespace),
                                 patch["metadata"]["annotations"])
        return {}
