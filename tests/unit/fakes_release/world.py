"""One HelmRelease, the real release engine and the fakes around it, wired as
`operator.process` wires them: the real `Reconciler`, `Recorder`,
`ReleaseStorage`, `HelmReleaseStore`, `ObjectVersions` and watch handlers
(`operator.watching`), over `FakeKube`, `FakeStorage`, `FakeHelm` and
`FakeChartFetcher`, on a `FakeClock`.

Watch events are delivered at `flush()` (before and after every
`reconcile()`), a moment after the writes, as a real watch does. Keys the
watch handlers enqueue or nudge are kept in `enqueued`/`nudged`.
`restart()` is a new operator process: new caches, filled by the watches'
initial lists.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import API_VERSION, KIND
from helm_operator.helm.storage import RevisionMeta, revision_meta
from helm_operator.operator.watching import HelmReleaseEvents, SecretEvents, ValuesSourceEvents, release_changed
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage
from helm_operator.release.reconciler import Reconciler, Result
from helm_operator.release.record import Recorder
from helm_operator.runtime.metrics import Metrics
from tests.unit.fakes_release.helm import FakeHelm
from tests.unit.fakes_release.kube import FakeChartFetcher, FakeClock, FakeClusterApi, FakeKube
from tests.unit.fakes_release.storage import FakeStorage

NAMESPACE = "apps"
NAME = "web"
RELEASE = "apps-web"          # Flux v1's default release name: <namespace>-<name>
KEY = f"{NAMESPACE}/{NAME}"
CHART = {"repository": "https://charts.example.com/", "name": "podinfo", "version": "6.0.0"}


def helmrelease(spec: dict[str, Any] | None = None, name: str = NAME, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"chart": dict(CHART), "values": {"replicaCount": 1}, **(spec or {})}}


class World:
    """The engine and its fakes, for one scenario."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock = FakeClock()
        self.clock.install(monkeypatch)
        self.kube = FakeKube()
        self.storage = FakeStorage()
        self.helm = FakeHelm(self.storage, self.kube, self.clock)
        self.charts = FakeChartFetcher()
        self.metrics = Metrics()
        self.enqueued: list[str] = []
        self.nudged: list[str] = []
        self._start()

    def _start(self) -> None:
        """A fresh operator process over the same cluster."""
        self.store = HelmReleaseStore()
        self.versions = ObjectVersions()
        self.release_storage = ReleaseStorage(self.storage, release_changed(
            lambda: self.reconciler.release_keys, self.nudged.append))
        self.reconciler = Reconciler(
            self.kube, self.helm, self.charts,  # type: ignore[arg-type]
            Recorder(self.kube, self.metrics, on_stored=self.store.update),  # type: ignore[arg-type]
            self.metrics, self.store, self.release_storage, self.versions,
            cluster=FakeClusterApi(self.kube))  # type: ignore[arg-type]
        refs = lambda: self.reconciler.references  # noqa: E731
        hr_events = HelmReleaseEvents(self.store, self.enqueued.append)
        self.kube.watchers = {
            "helmreleases": [hr_events],
            "configmaps": [ValuesSourceEvents("ConfigMap", self.versions, refs, self.enqueued.append)],
            "secrets": [SecretEvents(self.release_storage,
                                     ValuesSourceEvents("Secret", self.versions, refs, self.enqueued.append))],
        }
        self.storage.watchers = [self.kube.watchers["secrets"][0]]
        for obj in self.kube.helmreleases.values():
            hr_events("ADDED", copy.deepcopy(obj))
        self.storage.relist(self.storage.watchers[0])

    def restart(self) -> None:
        """The operator process is replaced: every in-memory cache starts empty."""
        self.kube.flush()
        self.storage.drop_pending()
        self._start()

    # ---- acting on the cluster ------------------------------------------------------
    def apply(self, spec: dict[str, Any] | None = None, **metadata: Any) -> None:
        """kubectl apply of the HelmRelease with `spec` (over the defaults)."""
        obj = helmrelease(spec)
        obj["metadata"].update(metadata)
        self.kube.put_helmrelease(obj)

    def delete(self) -> None:
        self.kube.delete_helmrelease(NAMESPACE, NAME)

    def flush(self) -> None:
        while self.kube.flush() + self.storage.flush():
            pass

    async def reconcile(self) -> Result:
        self.flush()
        try:
            return await self.reconciler.reconcile(KEY)
        finally:
            await self.reconciler.recorder.drain()  # events are sent beside the work
            self.flush()

    async def settle(self, spec: dict[str, Any] | None = None) -> None:
        """Apply `spec` and reconcile until nothing is left to do (arranging a scenario)."""
        self.apply(spec)
        for _ in range(5):
            result = await self.reconcile()
            if result.requeue_after is None:
                return
            self.clock.advance(result.requeue_after)
        raise AssertionError(f"{KEY} did not settle: {self.status}")

    # ---- observing --------------------------------------------------------------------
    @property
    def obj(self) -> dict[str, Any] | None:
        return self.kube.helmreleases.get(KEY)

    @property
    def status(self) -> dict[str, Any]:
        return (self.obj or {}).get("status") or {}

    def condition(self, ctype: str) -> dict[str, Any]:
        return get_condition(self.status.get("conditions"), ctype) or {}

    def revisions(self, release: str = RELEASE, namespace: str = NAMESPACE) -> list[tuple[int, str]]:
        """(revision, status) in helm's storage, oldest first."""
        return [(r.version, r.status) for r in self.storage.history(namespace, release)]

    def metas(self, release: str = RELEASE, namespace: str = NAMESPACE) -> list[RevisionMeta]:
        """Each revision as its Secret's labels tell it, oldest first."""
        out = []
        for s in self.storage.secrets.values():
            parsed = revision_meta(s["metadata"])
            if parsed and parsed[0] == release and s["metadata"]["namespace"] == namespace:
                out.append(parsed[1])
        return sorted(out)

    def history(self) -> list[tuple[int, str, str]]:
        """status.history as (revision, action, status), newest first."""
        return [(h["revision"], h["action"], h.get("status", "")) for h in self.status.get("history") or []]

    def reset_counters(self) -> None:
        self.helm.calls.clear()
        self.storage.lists = self.storage.gets = 0
        self.kube.calls.clear()
        self.kube.events.clear()
        self.charts.fetches = 0
        self.enqueued.clear()
        self.nudged.clear()
