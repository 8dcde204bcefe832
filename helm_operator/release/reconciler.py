"""Reconcile one HelmRelease: observe, decide one action, act, record; repeat
until the release is settled or a step fails.

Flow for a queue key:
    get the HelmRelease -> deletion? uninstall and drop the finalizer
    -> parse (bad spec: Failed, wait for a change) -> fetch chart -> values
    -> digest of the desired configuration
    -> settled with this digest already? done, without any helm call
    -> helm history -> ownership -> state.determine -> act -> record

The result tells the queue what to do next: nothing special (the periodic
resync comes back), retry with backoff, or wait for a change.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import FINALIZER, NO_CHART_SOURCE, REASON_SYNCED, ConditionType, Phase
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef, InvalidSpec, parse, parse_ref
from helm_operator.api.values import values_digest
from helm_operator.chartsource import ChartFetchError, FetchedChart
from helm_operator.helm import Helm, HelmError, HistoryEntry, ReleaseNotFound, UpgradeOptions
from helm_operator.kube import Kube, KubeError
from helm_operator.release import ownership
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.drift import DriftDetector
from helm_operator.release.record import Outcome, Recorder
from helm_operator.release.state import Action, Decision, State, describe_digest, determine
from helm_operator.release.values import ValuesError, compose_values, referenced_objects
from helm_operator.runtime.metrics import Metrics

log = logging.getLogger(__name__)

MAX_STEPS = 4  # actions per reconcile (e.g. recover, then upgrade, then test)


class Result(Enum):
    OK = "ok"              # settled; the periodic resync checks again
    RETRY = "retry"        # failed; try again with backoff
    WAIT = "wait"          # cannot progress until the HelmRelease changes


@dataclass
class _Attempt:
    """What this reconcile is working with, threaded through the steps."""

    obj: dict[str, Any]
    hr: HelmRelease
    chart: FetchedChart
    values: dict[str, Any]
    desired: str


class Reconciler:
    """Makes HelmReleases true; one instance per operator, called per key."""

    def __init__(self, kube: Kube, helm: Helm, charts: ChartFetcher, recorder: Recorder,
                 metrics: Metrics, default_git_ref: str = "master",
                 drift: DriftDetector | None = None, drift_interval: float = 0.0,
                 yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> None:
        self.kube = kube
        self.yaml_limits = yaml_limits  # inline values and every valuesFrom source
        self.helm = helm
        self.charts = charts
        self.recorder = recorder
        self.metrics = metrics
        self.default_git_ref = default_git_ref
        self.drift = drift
        self.drift_interval = drift_interval
        self._drift_checked: dict[str, float] = {}  # key -> monotonic time of the last check
        # key -> digest of the configuration last seen settled (deployed or
        # deliberately left alone): the resync fast path compares with it.
        self.settled: dict[str, str] = {}
        # key -> ConfigMaps/Secrets its values come from (for the watch).
        self.references: dict[str, set[tuple[str, str, str]]] = {}
        # key -> digest of the configuration last sent to helm upgrade.
        self.attempted: dict[str, str] = {}
        # keys whose chart comes from Git (for the Git poller).
        self.git_keys: set[str] = set()

    # ------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        obj = await self.kube.get_helmrelease(namespace, name)
        if obj is None:
            self._forget(key)
            return Result.OK
        ref = parse_ref(obj)
        if ref.is_deleting:
            return await self._delete(ref, obj)
        if not ref.has_finalizer:
            obj = await self._add_finalizer(ref, obj)
            ref = parse_ref(obj)
        try:
            hr = parse(obj, default_git_ref=self.default_git_ref, limits=self.yaml_limits)
        except InvalidSpec as e:
            log.warning("%s: invalid HelmRelease: %s", key, e)
            self.settled.pop(key, None)
            phase = Phase.CHART_FETCH_FAILED if str(e) == NO_CHART_SOURCE else Phase.FAILED
            await self.recorder.record(ref, obj, Outcome(phase, str(e)))
            return Result.WAIT
        self.references[key] = referenced_objects(hr)
        if hr.chart.kind.value == "git":
            self.git_keys.add(key)
        else:
            self.git_keys.discard(key)
        attempt = await self._prepare(hr, obj)
        if attempt is None:
            return Result.RETRY
        if self._is_settled(attempt):
            if self._drift_check_due(key):
                return await self._repair_drift(attempt)
            log.debug("%s: unchanged (config %s): nothing to do", key, attempt.desired[:12])
            return Result.OK
        return await self._converge(attempt)

    def _drift_check_due(self, key: str) -> bool:
        if self.drift is None or self.drift_interval <= 0:
            return False
        last = self._drift_checked.get(key)
        if last is None:  # first settle: start the clock, no check right after a deploy
            self._drift_checked[key] = time.monotonic()
            return False
        return time.monotonic() - last >= self.drift_interval

    async def _repair_drift(self, a: _Attempt) -> Result:
        """Re-apply the release if live objects were changed by hand (1 helm call when clean)."""
        assert self.drift is not None
        self._drift_checked[a.hr.key] = time.monotonic()
        try:
            manifest = await self.helm.manifest(a.hr.release_name, a.hr.target_namespace)
            drifted = await self.drift.drift(manifest, a.hr.release_name, a.hr.target_namespace)
        except (HelmError, KubeError) as e:
            log.warning("%s: drift check failed: %s", a.hr.key, e)
            return Result.OK
        if not drifted:
            return Result.OK
        log.warning("%s: objects changed outside Git, restoring: %s", a.hr.key, "; ".join(drifted))
        await self.kube.emit_event(a.obj, "Normal", REASON_SYNCED,
                                            "restoring objects changed by hand: " + "; ".join(drifted)[:800])
        history = await self._history(a.hr)
        return await self._deploy(a, install=False, history=history, repair=True) or Result.OK

    def _forget(self, key: str) -> None:
        self.settled.pop(key, None)
        self._drift_checked.pop(key, None)
        self.attempted.pop(key, None)
        self.references.pop(key, None)
        self.git_keys.discard(key)

    def _is_settled(self, a: _Attempt) -> bool:
        return (self.settled.get(a.hr.key) == a.desired
                and a.hr.status.get("observedGeneration") == a.hr.generation)

    # ---- observe -------------------------------------------------------
    async def _prepare(self, hr: HelmRelease, obj: dict[str, Any]) -> _Attempt | None:
        """Fetch the chart and compose values; record failures. None on failure."""
        try:
            chart = await self.charts.fetch(hr)
        except ChartFetchError as e:
            log.warning("%s: chart fetch failed: %s", hr.key, e)
            self.settled.pop(hr.key, None)
            await self.recorder.record(hr, obj, Outcome(Phase.CHART_FETCH_FAILED, str(e)))
            return None
        chart_cond = get_condition(hr.status.get("conditions"), ConditionType.CHART_FETCHED)
        if not chart_cond or chart_cond.get("status") != "True":
            hr = self._with_status(hr, await self.recorder.record(
                hr, obj, Outcome(Phase.CHART_FETCHED, f"chart fetched: {hr.chart}"), event=False))
        try:
            values = await compose_values(self.kube, hr, chart.path, self.yaml_limits)
        except (ValuesError, KubeError) as e:
            log.warning("%s: values: %s", hr.key, e)
            self.settled.pop(hr.key, None)
            await self.recorder.record(hr, obj, Outcome(Phase.FAILED, f"could not compose values: {e}"))
            return None
        desired = values_digest({
            "chart": hr.chart.describe(), "revision": chart.revision, "values": values,
            "release": hr.release_name, "namespace": hr.target_namespace,
            "resetValues": hr.reset_values, "skipCRDs": hr.skip_crds,
        })
        return _Attempt(obj, hr, chart, values, desired)

    @staticmethod
    def _with_status(hr: HelmRelease, status: dict[str, Any]) -> HelmRelease:
        return dataclasses.replace(hr, status=status)

    async def _history(self, hr: HelmRelease) -> list[HistoryEntry] | None:
        try:
            return await self.helm.history(hr.release_name, hr.target_namespace)
        except ReleaseNotFound:
            return None

    # ---- decide and act, until settled ---------------------------------
    async def _converge(self, a: _Attempt) -> Result:
        history = await self._history(a.hr)
        if history:
            refused = await self._foreign_owner(a.hr)
            if refused:
                msg = (f"release {a.hr.release_name} appears to be managed by {refused}; "
                       "rename one of the releases (spec.releaseName)")
                log.warning("%s: %s", a.hr.key, msg)
                await self.recorder.record(a.hr, a.obj, Outcome(Phase.FAILED, msg))
                return Result.WAIT
        for _ in range(MAX_STEPS):
            decision = determine(a.hr, history, a.desired, int(a.hr.status.get("rollbackCount") or 0),
                                 self._attempted(a))
            log.info("%s: %s: %s", a.hr.key, decision.state.value, decision.reason)
            if decision.action is Action.NONE:
                return await self._settle(a, decision, history)
            result = await self._act(a, decision, history)
            if result is not None:
                return result
            history = await self._history(a.hr)
        return Result.RETRY

    def _attempted(self, a: _Attempt) -> str | None:
        """The configuration last tried; after a restart, the status tells it."""
        if a.hr.key in self.attempted:
            return self.attempted[a.hr.key]
        st = a.hr.status
        if (st.get("observedGeneration") == a.hr.generation
                and st.get("phase") in (Phase.ROLLED_BACK.value, Phase.ROLLBACK_FAILED.value)
                and st.get("lastAttemptedRevision") == a.chart.revision):
            return a.desired
        return None

    async def _settle(self, a: _Attempt, decision: Decision, history: list[HistoryEntry] | None) -> Result:
        self.settled[a.hr.key] = a.desired
        status = history[-1].status if history else None
        if decision.state is State.ROLLED_BACK:
            if a.hr.status.get("phase") not in (Phase.ROLLED_BACK.value,):
                await self.recorder.record(a.hr, a.obj, Outcome(Phase.ROLLED_BACK, decision.reason,
                                                                release_status=status), event=False)
            return Result.WAIT
        phase = a.hr.status.get("phase")
        same_generation = a.hr.status.get("observedGeneration") == a.hr.generation
        if phase == Phase.TEST_FAILED.value and same_generation:
            return Result.OK  # deployed, but its tests failed: keep saying so
        if phase != Phase.SUCCEEDED.value or not same_generation:
            await self.recorder.record(a.hr, a.obj, Outcome(
                Phase.SUCCEEDED, f"release {a.hr.release_name} is deployed and in sync",
                release_status=status, revision=a.chart.revision, attempted_revision=a.chart.revision),
                event=False)
        return Result.OK

    async def _act(self, a: _Attempt, d: Decision, history: list[HistoryEntry] | None) -> Result | None:
        """Run one action. None: observe again and continue; else the final result."""
        if d.action in (Action.INSTALL, Action.UPGRADE):
            return await self._deploy(a, install=d.action is Action.INSTALL, history=history)
        if d.action is Action.ROLLBACK:
            return await self._rollback(a, d.rollback_to)
        if d.action is Action.UNINSTALL:
            ok = await self._uninstall(a.hr, a.obj)
            return None if ok else Result.RETRY
        if d.action is Action.RECOVER:
            if d.rollback_to is not None:
                ok = await self._helm_rollback(a.hr, d.rollback_to)
            else:
                ok = await self._uninstall(a.hr, a.obj)
            return None if ok else Result.RETRY
        return Result.OK

    async def _deploy(self, a: _Attempt, install: bool, history: list[HistoryEntry] | None,
                      repair: bool = False) -> Result | None:
        hr = a.hr
        phase = Phase.INSTALLING if install else Phase.UPGRADING
        verb = "install" if install else "upgrade"
        hr = a.hr = self._with_status(hr, await self.recorder.record(
            hr, a.obj, Outcome(phase, f"running helm {verb} of {hr.release_name} ({hr.chart})",
                               attempted_revision=a.chart.revision), event=False))
        before = history[-1].revision if history else 0
        opts = UpgradeOptions(
            timeout_seconds=hr.timeout, wait=hr.wait, force=hr.force_upgrade and not install,
            reset_values=hr.reset_values is not False, skip_crds=hr.skip_crds,
            max_history=hr.max_history, disable_openapi_validation=hr.disable_openapi_validation,
            description=describe_digest(a.desired), force_conflicts=repair,
        )
        self.settled.pop(hr.key, None)
        self.attempted[hr.key] = a.desired
        try:
            with self.metrics.time_action(verb, hr.target_namespace, hr.release_name):
                await self.helm.upgrade_install(hr.release_name, a.chart.path, hr.target_namespace,
                                                a.values, opts)
        except HelmError as e:
            after = await self._history(hr)
            produced = bool(after and after[-1].revision > before)
            release_status = after[-1].status if after else None
            log.warning("%s: helm %s failed%s: %s", hr.key, verb,
                        "" if produced else " (no revision was created)", e.message)
            hr = a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
                Phase.DEPLOY_FAILED, f"helm {verb} failed: {e.message}", release_status=release_status)))
            if after and produced and not install and hr.rollback.enable:
                target = next((h.revision for h in reversed(after[:-1])
                               if h.status in ("deployed", "superseded")), None)
                await self._rollback(a, target)
            return Result.RETRY
        hr = a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
            Phase.DEPLOYED, f"helm {verb} of {hr.release_name} succeeded", release_status="deployed"),
            event=False))
        await self._stamp(hr)
        if hr.test.enable:
            result = await self._test(a, install)
            if result is not None:
                return result
        await self.recorder.record(a.hr, a.obj, Outcome(
            Phase.SUCCEEDED, f"release {hr.release_name} {'installed' if install else 'upgraded'} "
                             f"with chart {hr.chart}",
            release_status="deployed", revision=a.chart.revision, attempted_revision=a.chart.revision))
        self.settled[hr.key] = a.desired
        return Result.OK

    async def _test(self, a: _Attempt, install: bool) -> Result | None:
        hr = a.hr = self._with_status(a.hr, await self.recorder.record(
            a.hr, a.obj, Outcome(Phase.TESTING, f"running helm test of {a.hr.release_name}"), event=False))
        try:
            with self.metrics.time_action("test", hr.target_namespace, hr.release_name):
                await self.helm.test(hr.release_name, hr.target_namespace, hr.test.timeout)
        except HelmError as e:
            log.warning("%s: helm test failed: %s", hr.key, e.message)
            hr = a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
                Phase.TEST_FAILED, f"helm test failed: {e.message}")))
            if hr.test.ignore_failures:
                return None  # keep the release; the caller records success
            if install:
                await self._uninstall(hr, a.obj)
                return Result.RETRY
            if hr.rollback.enable:
                return await self._rollback(a, None)
            self.settled[hr.key] = a.desired  # deployed but failing its tests: wait for a change
            return Result.WAIT
        a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
            Phase.TESTED, f"helm test of {hr.release_name} passed"), event=False))
        return None

    async def _rollback(self, a: _Attempt, revision: int | None) -> Result:
        hr = a.hr
        hr = a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
            Phase.ROLLING_BACK, f"rolling back {hr.release_name}"), event=False))
        try:
            with self.metrics.time_action("rollback", hr.target_namespace, hr.release_name):
                await self.helm.rollback(hr.release_name, hr.target_namespace, revision,
                                         timeout_seconds=hr.rollback.timeout, wait=hr.rollback.wait,
                                         force=hr.rollback.force, disable_hooks=hr.rollback.disable_hooks,
                                         max_history=hr.max_history)
        except HelmError as e:
            a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
                Phase.ROLLBACK_FAILED, f"rollback failed: {e.message}")))
            return Result.RETRY
        a.hr = self._with_status(hr, await self.recorder.record(hr, a.obj, Outcome(
            Phase.ROLLED_BACK, f"rolled back {hr.release_name} after a failed upgrade",
            release_status="deployed")))
        return Result.RETRY if hr.rollback.retry else Result.WAIT

    async def _helm_rollback(self, hr: HelmRelease, revision: int) -> bool:
        try:
            await self.helm.rollback(hr.release_name, hr.target_namespace, revision,
                                     timeout_seconds=hr.rollback.timeout, wait=False, force=False,
                                     disable_hooks=False, max_history=hr.max_history)
            return True
        except HelmError as e:
            log.warning("%s: recovering by rollback to %s failed: %s", hr.key, revision, e.message)
            return False

    async def _uninstall(self, hr: HelmReleaseRef, obj: dict[str, Any]) -> bool:
        timeout = getattr(hr, "timeout", 300)
        try:
            with self.metrics.time_action("uninstall", hr.target_namespace, hr.release_name):
                await self.helm.uninstall(hr.release_name, hr.target_namespace, timeout)
        except ReleaseNotFound:
            pass
        except HelmError as e:
            log.warning("%s: helm uninstall failed: %s", hr.key, e.message)
            await self.recorder.record(hr, obj, Outcome(Phase.FAILED, f"helm uninstall failed: {e.message}"))
            return False
        self.settled.pop(hr.key, None)
        return True

    # ---- ownership -------------------------------------------------------
    async def _objects(self, hr: HelmReleaseRef) -> list[ownership.ObjectRef]:
        try:
            manifest = await self.helm.manifest(hr.release_name, hr.target_namespace)
        except HelmError:
            return []
        return ownership.manifest_objects(manifest, hr.target_namespace)

    async def _foreign_owner(self, hr: HelmReleaseRef) -> str | None:
        return await ownership.foreign_owner(self.kube, await self._objects(hr), hr.antecedent)

    async def _stamp(self, hr: HelmReleaseRef) -> None:
        await ownership.stamp(self.kube, await self._objects(hr), hr.antecedent)

    # ---- finalizer and delete -------------------------------------------
    async def _add_finalizer(self, ref: HelmReleaseRef, obj: dict[str, Any]) -> dict[str, Any]:
        finalizers = list(ref.finalizers) + [FINALIZER]
        return await self.kube.patch_helmrelease_metadata(
            ref.namespace, ref.name, {"finalizers": finalizers, "resourceVersion": ref.resource_version})

    async def _delete(self, ref: HelmReleaseRef, obj: dict[str, Any]) -> Result:
        if not ref.has_finalizer:
            return Result.OK
        history = None
        try:
            history = await self.helm.history(ref.release_name, ref.target_namespace)
        except ReleaseNotFound:
            pass
        except HelmError as e:
            log.warning("%s: reading release before uninstall failed: %s", ref.key, e.message)
            return Result.RETRY
        if history:
            owner = await self._foreign_owner(ref)
            if owner:
                log.warning("%s: deleted, but release %s belongs to %s: leaving it", ref.key,
                            ref.release_name, owner)
            else:
                started = time.monotonic()
                log.info("%s: HelmRelease deleted: uninstalling %s", ref.key, ref.release_name)
                if not await self._uninstall(ref, obj):
                    return Result.RETRY
                log.info("%s: uninstalled in %.1fs", ref.key, time.monotonic() - started)
        self.metrics.forget_release(ref.target_namespace, ref.release_name)
        remaining = [f for f in ref.finalizers if f != FINALIZER]
        try:
            await self.kube.patch_helmrelease_metadata(
                ref.namespace, ref.name, {"finalizers": remaining, "resourceVersion": ref.resource_version})
        except KubeError as e:
            log.warning("%s: could not remove finalizer: %s", ref.key, e)
            return Result.RETRY
        self._forget(ref.key)
        return Result.OK
