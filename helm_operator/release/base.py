"""The release engine's shared room: its dependencies, the caches it keeps,
and the few helpers every step uses (record a status, note a condition,
read storage again, who helm acts as).

Place in the flow: `reconciler.Reconciler` is assembled from the rooms
`gather` (inputs and facts), `holds` (suspend, dependencies, refusals),
`steps` (carry out one decision), `driftcheck` and `deletion`, each a mixin
over `EngineBase`. The memory kept here is a cache of what the cluster says
(fingerprints of settled releases, ownership already checked, objects
already stamped); losing it costs work, never correctness.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api.controls import DriftMode
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef
from helm_operator.chartsource import FetchedChart
from helm_operator.kube import ClusterApi, Kube, KubeError
from helm_operator.kube.apply import ObjectRef
from helm_operator.release import tenancy
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.drift import DriftDetector
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage
from helm_operator.release.record import Note, Outcome, Recorder
from helm_operator.runtime.logs import fields, since_ms
from helm_operator.runtime.metrics import Metrics

log = logging.getLogger("helm_operator.release.reconciler")

SUSPENDED = "Suspended"
DRIFTED = "Drifted"


@dataclass(frozen=True)
class Result:
    """What the queue should do next with the key."""

    requeue_after: float | None = None  # come back after this many seconds
    backoff: bool = True                # ...as a failure backoff, which periodic nudges respect

    @property
    def retry(self) -> bool:
        return self.requeue_after is not None


DONE = Result()


@dataclass
class Inputs:
    """What the HelmRelease asks for, fetched and composed: chart, values, their digest."""

    chart: FetchedChart
    values: dict[str, Any]
    desired: str


PROGRESS_DELAY = 1.0  # seconds an install/upgrade runs before the status says so (--progress-status-delay)


class ProgressWrite:
    """The in-progress status of one attempt (phase Installing/Upgrading, Reconciling=True),
    written only once the attempt has run `delay` seconds.

    Why: most installs and upgrades without `--wait` end well within a
    second, so the in-progress status would be overwritten by the result
    before anyone could read it, and a status write of a HelmRelease costs
    kube-apiserver about 5 ms of CPU (twice a ConfigMap patch: the CRD's
    schema and managedFields), which on a small cluster is taken from helm.
    A quick attempt writes one status instead of two (17 API requests per
    install instead of 18, `benchmarks/release_engine.py`). A slow attempt
    (hooks, `--wait`) still shows as in progress; `delay` 0 writes it as
    helm starts, as before.
    """

    def __init__(self, write: Callable[[], Awaitable[HelmRelease]], delay: float) -> None:
        self._write = write
        self._begun = False
        self._task = asyncio.create_task(self._run(delay))

    async def _run(self, delay: float) -> HelmRelease:
        if delay > 0:
            await asyncio.sleep(delay)
        self._begun = True
        return await self._write()

    async def settle(self, hr: HelmRelease) -> HelmRelease:
        """The attempt ended: a write not begun is dropped; one under way is awaited, so that it
        cannot land after the result. Returns the HelmRelease as last recorded."""
        if not self._begun:
            self._task.cancel()
            return hr
        return await self._task

    def cancel(self) -> None:
        self._task.cancel()


class EngineBase:
    """Dependencies and caches of the release engine (see the module docstring)."""

    def __init__(self, kube: Kube, helm: HelmActions, charts: ChartFetcher, recorder: Recorder,
                 metrics: Metrics, store: HelmReleaseStore, storage: ReleaseStorage,
                 versions: ObjectVersions, default_git_ref: str = "master",
                 drift: DriftDetector | None = None, drift_interval: float = 0.0,
                 default_drift_mode: DriftMode = DriftMode.WARN, cluster: ClusterApi | None = None,
                 lockdown: tenancy.TenancyPolicy | None = None,
                 yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents,
                 shard_labels: tuple[str, ...] = (), progress_delay: float = PROGRESS_DELAY) -> None:
        self.kube = kube
        self.helm = helm
        self.charts = charts
        self.recorder = recorder
        self.metrics = metrics
        self.store = store
        self.storage = storage
        self.versions = versions
        self.default_git_ref = default_git_ref
        self.drift = drift
        self.drift_interval = drift_interval
        self.default_drift_mode = default_drift_mode
        self.lockdown = lockdown or tenancy.TenancyPolicy()
        self.yaml_limits = yaml_limits  # inline values and every valuesFrom source
        self.shard_labels = shard_labels  # HelmRelease labels copied onto each revision (sharding)
        self.progress_delay = progress_delay  # see ProgressWrite
        # a sharded operator watches only its shard's release storage: a release may exist unseen
        self.storage_is_partial = bool(shard_labels)
        # any-kind access with the process's one discovery (ownership checks, stamps, drift)
        self.cluster = cluster or (drift.api if drift is not None else kube.cluster)
        # key -> fingerprint of the inputs when the release was last settled
        self.settled: dict[str, tuple[Any, ...]] = {}
        # key -> ConfigMaps/Secrets its values come from (for the watch)
        self.references: dict[str, set[tuple[str, str, str]]] = {}
        # keys whose chart comes from Git (for the Git poller), with their parsed spec
        self.git_releases: dict[str, HelmRelease] = {}
        # dependency key -> keys of the HelmReleases that dependsOn it (for the watch)
        self.dependants: dict[str, set[str]] = {}
        # (namespace, release) -> the HelmRelease key owning it (for the storage watch)
        self.release_keys: dict[tuple[str, str], str] = {}
        self._drift_checked: dict[str, float] = {}
        self._owner_checked: dict[tuple[str, int], str | None] = {}
        self._stamped: dict[str, set[ObjectRef]] = {}
        self._chart_news: dict[str, str] = {}  # ChartFetched=True to write with the next record

    async def _note(self, hr: HelmRelease, obj: dict[str, Any], note: Note) -> HelmRelease:
        return dataclasses.replace(hr, status=await self.recorder.note(hr, obj, note))

    async def _record(self, hr: HelmRelease, obj: dict[str, Any], outcome: Outcome) -> HelmRelease:
        news = self._chart_news.pop(hr.key, None)
        if news is not None:
            outcome = dataclasses.replace(outcome, chart_fetched=news)
        status = await self.recorder.record(hr, obj, outcome, max_history=hr.max_history)
        return dataclasses.replace(hr, status=status)

    async def _refresh(self, hr: HelmReleaseRef) -> None:
        try:
            await self.storage.refresh(hr.target_namespace, hr.release_name)
        except KubeError as e:
            log.warning("reading release storage failed: %s", e, extra=fields(object=hr.key, error=e))

    def _as(self, hr: HelmReleaseRef) -> str | None:
        """Who helm acts as for `hr` (tenancy: its ServiceAccount), None for the operator."""
        return tenancy.impersonation(hr, self.lockdown)

    def _log_result(self, hr: HelmReleaseRef, action: str, result: ActionResult, started: float,
                    revision: int | None = None) -> None:
        """One line per helm action: what it did, or why it failed, with its duration."""
        if result.record is not None:
            revision = result.record.revision
        took = fields(object=hr.key, action=action, revision=revision,
                      duration_ms=since_ms(started, time.monotonic()))
        if result.ok:
            log.info("%s: %s", action, result.message, extra=took)
        else:
            kind = result.failure.value if result.failure else "error"
            log.warning("helm %s failed (%s)", action, kind, extra={**took, "error": result.message})

    def _forget(self, key: str) -> None:
        self.settled.pop(key, None)
        self._drift_checked.pop(key, None)
        self.references.pop(key, None)
        self.git_releases.pop(key, None)
        self._stamped.pop(key, None)
        for release, owner in list(self.release_keys.items()):
            if owner == key:
                del self.release_keys[release]
        for cache_key in [k for k in self._owner_checked if k[0] == key]:
            del self._owner_checked[cache_key]
        for dependants in self.dependants.values():
            dependants.discard(key)
