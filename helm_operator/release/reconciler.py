"""Reconcile one HelmRelease: observe, decide one action, act, record, and
observe again, until the release is settled or must wait.

Flow for a queue key:
    the HelmRelease from the watch cache -> being deleted? uninstall, drop the finalizer
    -> parse (a bad spec: Failed, wait for a change)
    -> inputs unchanged since the release was last settled? done: no helm call, no API request
    -> fetch the chart, compose the values, digest the desired configuration
    -> facts from helm's storage and the status -> `state.determine`
    -> act (one helm call, `actions/`) -> record (`record`) -> refresh storage -> decide again

All policy is in `state.determine`; this module gathers facts and carries
out decisions. The memory it keeps is a cache of what the cluster says (the
fingerprint of a settled release's inputs, ownership already checked,
objects already stamped); losing it costs work, never correctness.
"""

from __future__ import annotations

import calendar
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import FINALIZER, NO_CHART_SOURCE, REASON_SYNCED, ConditionType, Phase
from helm_operator.api.helmrelease import (
    HelmRelease,
    HelmReleaseRef,
    InvalidSpec,
    format_antecedent,
    parse,
    parse_ref,
)
from helm_operator.api.values import values_digest
from helm_operator.chartsource import ChartFetchError, FetchedChart
from helm_operator.helm import classify
from helm_operator.helm.storage import RevisionMeta, owner_label, parse_owner
from helm_operator.kube import Kube, KubeError
from helm_operator.release import ownership
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.actions.deploy import DeployRequest, deploy
from helm_operator.release.actions.recover import recover
from helm_operator.release.actions.rollback import roll_back
from helm_operator.release.actions.test import run_tests
from helm_operator.release.actions.uninstall import uninstall
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.drift import DriftDetector
from helm_operator.release.history import Snapshot, head
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage
from helm_operator.release.record import Outcome, Recorder
from helm_operator.release.state import Action, Decision, Facts, State, determine, digest_in, retry_delay
from helm_operator.release.values import ValuesError, compose_values, referenced_objects
from helm_operator.runtime.metrics import Metrics

log = logging.getLogger(__name__)

MAX_STEPS = 6  # actions per reconcile (e.g. recover, upgrade, test, rollback)


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
class _Inputs:
    chart: FetchedChart
    values: dict[str, Any]
    desired: str


class Reconciler:
    """Makes HelmReleases true; one instance per operator, called per key."""

    def __init__(self, kube: Kube, helm: HelmActions, charts: ChartFetcher, recorder: Recorder,
                 metrics: Metrics, store: HelmReleaseStore, storage: ReleaseStorage,
                 versions: ObjectVersions, default_git_ref: str = "master",
                 drift: DriftDetector | None = None, drift_interval: float = 0.0) -> None:
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
        # key -> fingerprint of the inputs when the release was last settled
        self.settled: dict[str, tuple[Any, ...]] = {}
        # key -> ConfigMaps/Secrets its values come from (for the watch)
        self.references: dict[str, set[tuple[str, str, str]]] = {}
        # keys whose chart comes from Git (for the Git poller), with their parsed spec
        self.git_releases: dict[str, HelmRelease] = {}
        # (namespace, release) -> the HelmRelease key owning it (for the storage watch)
        self.release_keys: dict[tuple[str, str], str] = {}
        self._drift_checked: dict[str, float] = {}
        self._owner_checked: dict[tuple[str, int], str | None] = {}
        self._stamped: dict[str, set[ownership.ObjectRef]] = {}

    # ------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        obj = self.store.get(key)
        if obj is None:
            self._forget(key)
            return DONE
        try:
            ref = parse_ref(obj)
        except InvalidSpec as e:
            log.warning("%s: invalid HelmRelease metadata: %s", key, e)
            return DONE
        self.release_keys[(ref.target_namespace, ref.release_name)] = key
        if ref.is_deleting:
            return await self._finalize(ref, obj)
        if not ref.has_finalizer:
            obj = await self._add_finalizer(ref)
        try:
            hr = parse(obj, default_git_ref=self.default_git_ref)
        except InvalidSpec as e:
            return await self._invalid(ref, obj, e)
        self.references[key] = referenced_objects(hr)
        if hr.chart.kind.value == "git":
            self.git_releases[key] = hr
        else:
            self.git_releases.pop(key, None)
        fingerprint = self._fingerprint(hr)
        if fingerprint is not None and self.settled.get(key) == fingerprint:
            if self._drift_check_due(key):
                return await self._check_drift(hr, obj)
            return DONE
        self.settled.pop(key, None)
        prepared = await self._inputs(hr, obj)
        if isinstance(prepared, Result):
            return prepared
        return await self._converge(*prepared)

    # ---- observe: inputs ------------------------------------------------
    def _fingerprint(self, hr: HelmRelease) -> tuple[Any, ...] | None:
        """Everything the desired configuration and the decision depend on, from caches."""
        revision = self.charts.known_revision(hr)
        if revision is None or any(s.kind.value == "externalSourceRef" for s in hr.values_from):
            return None  # a URL may change without an event: compose the values again
        sources = tuple(sorted((kind, ns, name, self.versions.get(kind, ns, name))
                               for kind, ns, name in self.references.get(hr.key, set())))
        newest = self.storage.revisions(hr.target_namespace, hr.release_name)[:1]
        return (hr.uid, hr.generation, revision, sources, newest)

    async def _inputs(self, hr: HelmRelease, obj: dict[str, Any]) -> tuple[HelmRelease, _Inputs] | Result:
        """Fetch the chart and compose values; record failures."""
        try:
            chart = await self.charts.fetch(hr)
        except ChartFetchError as e:
            log.warning("%s: chart fetch failed: %s", hr.key, e)
            return await self._failed_before_helm(hr, obj, Outcome(Phase.CHART_FETCH_FAILED, str(e)))
        chart_cond = get_condition(hr.status.get("conditions"), ConditionType.CHART_FETCHED)
        if not chart_cond or chart_cond.get("status") != "True":
            hr = await self._record(hr, obj, Outcome(Phase.CHART_FETCHED, f"chart fetched: {hr.chart}",
                                                     event=False))
        try:
            values = await compose_values(self.kube, hr, chart.path)
        except (ValuesError, KubeError) as e:
            log.warning("%s: values: %s", hr.key, e)
            return await self._failed_before_helm(
                hr, obj, Outcome(Phase.FAILED, f"could not compose values: {e}"))
        desired = values_digest({
            "chart": hr.chart.describe(), "revision": chart.revision, "values": values,
            "release": hr.release_name, "namespace": hr.target_namespace,
            "resetValues": hr.reset_values, "skipCRDs": hr.skip_crds,
        })
        return hr, _Inputs(chart, values, desired)

    async def _failed_before_helm(self, hr: HelmRelease, obj: dict[str, Any], outcome: Outcome) -> Result:
        """A failure before any helm call: recorded once per distinct message, retried with backoff."""
        ready = get_condition(hr.status.get("conditions"), ConditionType.READY) or {}
        repeated = (hr.status.get("phase") == outcome.phase.value and ready.get("message") == outcome.message
                    and hr.status.get("observedGeneration") == hr.generation)
        if repeated:
            outcome = dataclasses.replace(outcome, event=False)
        hr = await self._record(hr, obj, outcome)
        return Result(retry_delay(int(hr.status.get("failures") or 1)))

    # ---- observe: facts --------------------------------------------------
    async def _facts(self, hr: HelmRelease, desired: str) -> Facts:
        revisions = self.storage.revisions(hr.target_namespace, hr.release_name)
        newest = revisions[0] if revisions else None
        newest_failure = None
        legacy = None
        if newest is not None and newest.status == "failed" and newest.matches(desired):
            record = await self.storage.record(hr.target_namespace, newest)
            newest_failure = classify(record.description) if record else None
        elif newest is not None and newest.status == "deployed" and newest.attempt_revision is None:
            record = await self.storage.record(hr.target_namespace, newest)
            legacy = digest_in(record.description) if record else None
        return Facts(
            desired=desired, revisions=revisions, newest_failure=newest_failure,
            newest_legacy_digest=legacy, foreign_owner=await self._foreign_owner(hr, newest),
            failures=int(hr.status.get("failures") or 0),
            last_attempted_digest=hr.status.get("lastAttemptedConfigDigest"),
            last_failure_at=_last_failure_at(hr.status), head=head(hr.status),
            rollback_count=int(hr.status.get("rollbackCount") or 0), now=time.time(),
        )

    async def _foreign_owner(self, hr: HelmReleaseRef, newest: RevisionMeta | None) -> str | None:
        """The other HelmRelease that owns this release, if any (storage label, else its objects)."""
        if newest is None:
            return None
        if newest.owner:
            if newest.owner == owner_label(hr.namespace, hr.name):
                return None
            parsed = parse_owner(newest.owner)
            return format_antecedent(*parsed) if parsed else "another HelmRelease"
        cache_key = (hr.key, newest.revision)
        if cache_key not in self._owner_checked:
            record = await self.storage.record(hr.target_namespace, newest, with_manifest=True)
            objects = ownership.manifest_objects(record.manifest, hr.target_namespace) if record else []
            self._owner_checked[cache_key] = await ownership.foreign_owner(self.kube, objects, hr.antecedent)
        return self._owner_checked[cache_key]

    # ---- decide and act, until settled -----------------------------------
    async def _converge(self, hr: HelmRelease, inputs: _Inputs, repair: bool = False) -> Result:
        fresh = False
        acted: list[str] = []
        for _ in range(MAX_STEPS):
            facts = await self._facts(hr, inputs.desired)
            decision = determine(hr, facts)
            if repair and decision.state is State.IN_SYNC:
                decision = Decision(State.OUT_OF_SYNC, Action.UPGRADE, "objects changed by hand: re-apply them")
            if decision.action is not Action.NONE and not fresh:
                await self._refresh(hr)  # act only on what the API server says now
                fresh = True
                continue
            log.info("%s: %s: %s", hr.key, decision.state.value, decision.reason)
            if decision.action is Action.NONE:
                return await self._settle(hr, inputs, facts, decision, acted)
            hr, ok = await self._act(hr, inputs, facts, decision, repair)
            repair = False
            acted.append(decision.action.value)
            if not ok and decision.remediation:
                break  # a remediation that fails is retried with backoff, not at once
        return Result(retry_delay(int(hr.status.get("failures") or 1)))

    async def _refresh(self, hr: HelmReleaseRef) -> None:
        try:
            await self.storage.refresh(hr.target_namespace, hr.release_name)
        except KubeError as e:
            log.warning("%s: reading release storage failed: %s", hr.key, e)

    async def _settle(self, hr: HelmRelease, inputs: _Inputs, facts: Facts, d: Decision,
                      acted: list[str]) -> Result:
        obj = self.store.get(hr.key) or {}
        newest = facts.newest
        st = hr.status
        current = st.get("observedGeneration") == hr.generation
        if d.state is State.UNOWNED:
            if not (current and st.get("phase") == Phase.FAILED.value
                    and (get_condition(st.get("conditions"), ConditionType.READY) or {}).get("message") == d.reason):
                await self._record(hr, obj, Outcome(Phase.FAILED, d.reason))
            return DONE
        if d.requeue_after is not None:
            return Result(d.requeue_after, backoff=d.retry)  # the last failure stays on the object meanwhile
        if d.state is State.IN_SYNC:
            ready = get_condition(st.get("conditions"), ConditionType.READY) or {}
            if not current or st.get("phase") != Phase.SUCCEEDED.value or ready.get("status") != "True":
                verb = "installed" if "install" in acted else "upgraded" if "upgrade" in acted else "in sync"
                message = (f"release {hr.release_name} {verb} with chart {hr.chart}" if acted
                           else f"release {hr.release_name} is deployed and in sync")
                hr = await self._record(hr, obj, Outcome(
                    Phase.SUCCEEDED, message, release_status=newest.status if newest else None,
                    revision=inputs.chart.revision, attempted_revision=inputs.chart.revision,
                    event=bool(acted)))
        elif d.state is State.ROLLED_BACK and st.get("phase") != Phase.ROLLED_BACK.value:
            hr = await self._record(hr, obj, Outcome(Phase.ROLLED_BACK, d.reason, event=False,
                                                     counts_as_failure=False))
        elif d.state is State.TEST_FAILED and st.get("phase") != Phase.TEST_FAILED.value:
            hr = await self._record(hr, obj, Outcome(Phase.TEST_FAILED, d.reason, event=False,
                                                     counts_as_failure=False))
        if d.settled:
            fingerprint = self._fingerprint(hr)
            if fingerprint is not None:
                self.settled[hr.key] = fingerprint
            self._drift_checked.setdefault(hr.key, time.monotonic())
        return DONE

    async def _act(self, hr: HelmRelease, inputs: _Inputs, facts: Facts, d: Decision,
                   repair: bool) -> tuple[HelmRelease, bool]:
        """Run one action and record its result; returns the HelmRelease as recorded and success."""
        obj = self.store.get(hr.key) or {}
        if d.action in (Action.INSTALL, Action.UPGRADE):
            return await self._deploy(hr, obj, inputs, facts, d.action is Action.INSTALL, repair)
        if d.action is Action.TEST:
            return await self._test(hr, obj, inputs, facts)
        if d.action is Action.ROLLBACK:
            return await self._rollback(hr, obj, d, "rollback")
        if d.action is Action.RECOVER:
            if d.target is None:
                result = await recover(self.helm, self.metrics, hr, None)
                self._log_result(hr, "recover", result)
                await self._refresh(hr)
                if not result.ok:
                    hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"recovering failed: {result.message}"))
                return hr, result.ok
            return await self._rollback(hr, obj, d, "rollback" if d.details.get("finishes") else "recover")
        if d.action is Action.UNINSTALL:
            result = await uninstall(self.helm, self.metrics, hr.release_name, hr.target_namespace, hr.timeout)
            self._log_result(hr, "uninstall", result)
            await self._refresh(hr)
            self._stamped.pop(hr.key, None)
            if not result.ok:
                hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"helm uninstall failed: {result.message}"))
            return hr, result.ok
        return hr, True

    async def _deploy(self, hr: HelmRelease, obj: dict[str, Any], inputs: _Inputs, facts: Facts,
                      install: bool, repair: bool) -> tuple[HelmRelease, bool]:
        verb = "install" if install else "upgrade"
        newest = facts.newest
        hr = await self._record(hr, obj, Outcome(
            Phase.INSTALLING if install else Phase.UPGRADING,
            f"running helm {verb} of {hr.release_name} ({hr.chart})",
            attempted_revision=inputs.chart.revision, attempted_digest=inputs.desired, event=False))
        req = DeployRequest(hr, inputs.chart.path, inputs.values, inputs.desired,
                            (newest.revision if newest else 0) + 1, install, repair)
        result = await deploy(self.helm, self.metrics, req)
        self._log_result(hr, verb, result)
        await self._refresh(hr)
        if not result.ok:
            after = self.storage.revisions(hr.target_namespace, hr.release_name)
            made = after[0] if after and (newest is None or after[0].revision > newest.revision) else None
            message = f"helm {verb} failed: {result.message}"
            if made is None:
                message += " (no revision was made)"
            elif result.failure is not None and result.failure.value == "Rejected" and newest is not None:
                message += (f" (the API server rejected revision {made.revision}; "
                            f"revision {newest.revision} stays deployed)")
            snapshot = Snapshot(revision=made.revision, action=verb, config_digest=inputs.desired,
                                status=made.status) if made else None
            return await self._record(hr, obj, Outcome(Phase.DEPLOY_FAILED, message,
                                                       release_status=made.status if made else None,
                                                       snapshot=snapshot)), False
        record = result.record
        assert record is not None
        await self._stamp(hr, record.manifest, fresh=install or repair)
        snapshot = Snapshot.of(record, verb, inputs.desired)
        if hr.test.enable:
            hr = await self._record(hr, obj, Outcome(
                Phase.DEPLOYED, f"helm {verb} of {hr.release_name} succeeded (revision {record.revision})",
                release_status=record.status, snapshot=snapshot, event=False))
        else:
            hr = await self._record(hr, obj, Outcome(
                Phase.SUCCEEDED, f"release {hr.release_name} {verb}{'ed' if install else 'd'} with chart "
                                 f"{hr.chart} (revision {record.revision})",
                release_status=record.status, revision=inputs.chart.revision,
                attempted_revision=inputs.chart.revision, snapshot=snapshot))
        return hr, True

    async def _test(self, hr: HelmRelease, obj: dict[str, Any], inputs: _Inputs,
                    facts: Facts) -> tuple[HelmRelease, bool]:
        newest = facts.newest
        assert newest is not None
        hr = await self._record(hr, obj, Outcome(Phase.TESTING, f"running helm test of {hr.release_name}",
                                                 event=False))
        result = await run_tests(self.helm, self.metrics, hr)
        self._log_result(hr, "test", result)
        await self._refresh(hr)
        last = head(hr.status)
        action = last.action if last and last.revision == newest.revision else "upgrade"
        snapshot = Snapshot(revision=newest.revision, action=action, status=newest.status,
                            test_result="passed" if result.ok else "failed")
        if result.ok:
            hr = await self._record(hr, obj, Outcome(Phase.TESTED, result.message, snapshot=snapshot,
                                                     event=False))
            return hr, True
        message = f"helm test failed: {result.message}"
        if hr.test.ignore_failures:
            message += " (ignored: test.ignoreFailures)"
        return await self._record(hr, obj, Outcome(Phase.TEST_FAILED, message, snapshot=snapshot,
                                                   counts_as_failure=not hr.test.ignore_failures)), result.ok

    async def _rollback(self, hr: HelmRelease, obj: dict[str, Any], d: Decision,
                        action: str) -> tuple[HelmRelease, bool]:
        hr = await self._record(hr, obj, Outcome(Phase.ROLLING_BACK, d.reason, event=False))
        if action == "recover":
            result = await recover(self.helm, self.metrics, hr, d.target)
        else:
            result = await roll_back(self.helm, self.metrics, hr, d.target)
        self._log_result(hr, action, result)
        if not result.ok:
            await self._refresh(hr)
            return await self._record(hr, obj, Outcome(Phase.ROLLBACK_FAILED,
                                                       f"rollback failed: {result.message}")), False
        revisions = await self.storage.refresh(hr.target_namespace, hr.release_name)
        snapshot = None
        if revisions:
            record = await self.storage.record(hr.target_namespace, revisions[0])
            snapshot = Snapshot.of(record, action) if record else Snapshot(
                revision=revisions[0].revision, action=action, status=revisions[0].status)
        if action == "recover":
            message = f"recovered {hr.release_name}: {d.reason.split(': ', 1)[-1]}"
            return await self._record(hr, obj, Outcome(Phase.ROLLED_BACK, message, release_status="deployed",
                                                       snapshot=snapshot, counts_as_failure=False)), True
        return await self._record(hr, obj, Outcome(
            Phase.ROLLED_BACK, f"rolled back {hr.release_name} to revision {d.target} after a failed "
                               f"{'test' if d.state is State.TEST_FAILED else 'upgrade'}",
            release_status="deployed", snapshot=snapshot, rolled_back=True)), True

    def _log_result(self, hr: HelmReleaseRef, action: str, result: ActionResult) -> None:
        if result.ok:
            log.info("%s: %s: %s", hr.key, action, result.message)
        else:
            log.warning("%s: helm %s failed (%s): %s", hr.key, action,
                        result.failure.value if result.failure else "error", result.message)

    # ---- record ------------------------------------------------------------
    async def _record(self, hr: HelmRelease, obj: dict[str, Any], outcome: Outcome) -> HelmRelease:
        status = await self.recorder.record(hr, obj, outcome, max_history=hr.max_history)
        return dataclasses.replace(hr, status=status)

    async def _invalid(self, ref: HelmReleaseRef, obj: dict[str, Any], e: InvalidSpec) -> Result:
        log.warning("%s: invalid HelmRelease: %s", ref.key, e)
        self.settled.pop(ref.key, None)
        phase = Phase.CHART_FETCH_FAILED if str(e) == NO_CHART_SOURCE else Phase.FAILED
        ready = get_condition(ref.status.get("conditions"), ConditionType.READY) or {}
        if not (ref.status.get("observedGeneration") == ref.generation and ready.get("message") == str(e)):
            await self.recorder.record(ref, obj, Outcome(phase, str(e)))
        return DONE  # nothing to retry until the HelmRelease changes

    # ---- ownership stamp -----------------------------------------------------
    async def _stamp(self, hr: HelmReleaseRef, manifest: str, fresh: bool) -> None:
        """Annotate the release's objects with their antecedent; only those not stamped yet."""
        objects = ownership.manifest_objects(manifest, hr.target_namespace)
        done = set() if fresh else self._stamped.get(hr.key, set())
        todo = [o for o in objects if o not in done]
        if todo:
            await ownership.stamp(self.kube, todo, hr.antecedent)
        self._stamped[hr.key] = set(objects)

    # ---- drift ---------------------------------------------------------------
    def _drift_check_due(self, key: str) -> bool:
        if self.drift is None or self.drift_interval <= 0:
            return False
        last = self._drift_checked.get(key)
        if last is None:
            self._drift_checked[key] = time.monotonic()
            return False
        return time.monotonic() - last >= self.drift_interval

    async def _check_drift(self, hr: HelmRelease, obj: dict[str, Any]) -> Result:
        """Compare the live objects with the release's manifest; re-apply when changed by hand."""
        assert self.drift is not None
        self._drift_checked[hr.key] = time.monotonic()
        revisions = self.storage.revisions(hr.target_namespace, hr.release_name)
        if not revisions:
            return DONE
        try:
            record = await self.storage.record(hr.target_namespace, revisions[0], with_manifest=True)
            if record is None:
                return DONE
            drifted = await self.drift.drift(record.manifest, hr.release_name, hr.target_namespace)
        except KubeError as e:
            log.warning("%s: drift check failed: %s", hr.key, e)
            return DONE
        if not drifted:
            log.debug("%s: drift check: live objects match revision %d", hr.key, revisions[0].revision)
            return DONE
        log.warning("%s: objects changed outside Git, restoring: %s", hr.key, "; ".join(drifted))
        await self.kube.emit_event(obj, "Normal", REASON_SYNCED,
                                   "restoring objects changed by hand: " + "; ".join(drifted)[:800])
        self.settled.pop(hr.key, None)
        self._stamped.pop(hr.key, None)
        prepared = await self._inputs(hr, obj)
        if isinstance(prepared, Result):
            return prepared
        return await self._converge(*prepared, repair=True)

    # ---- finalizer and delete --------------------------------------------------
    async def _add_finalizer(self, ref: HelmReleaseRef) -> dict[str, Any]:
        finalizers = list(ref.finalizers) + [FINALIZER]
        obj = await self.kube.patch_helmrelease_metadata(
            ref.namespace, ref.name, {"finalizers": finalizers, "resourceVersion": ref.resource_version})
        self.store.update(obj)
        return obj

    async def _finalize(self, ref: HelmReleaseRef, obj: dict[str, Any]) -> Result:
        if not ref.has_finalizer:
            return DONE
        try:
            revisions = await self.storage.refresh(ref.target_namespace, ref.release_name)
        except KubeError as e:
            log.warning("%s: reading release before uninstall failed: %s", ref.key, e)
            return Result(retry_delay(1))
        if revisions:
            owner = await self._foreign_owner(ref, revisions[0])
            if owner:
                log.warning("%s: deleted, but release %s belongs to %s: leaving it", ref.key,
                            ref.release_name, owner)
            else:
                started = time.monotonic()
                log.info("%s: HelmRelease deleted: uninstalling %s", ref.key, ref.release_name)
                timeout = getattr(ref, "timeout", 300)
                try:
                    timeout = parse(obj, default_git_ref=self.default_git_ref).timeout
                except InvalidSpec:
                    pass
                result = await uninstall(self.helm, self.metrics, ref.release_name, ref.target_namespace, timeout)
                if not result.ok:
                    log.warning("%s: helm uninstall failed: %s", ref.key, result.message)
                    await self.recorder.record(ref, obj, Outcome(Phase.FAILED,
                                                                 f"helm uninstall failed: {result.message}"))
                    return Result(retry_delay(1))
                log.info("%s: uninstalled in %.1fs", ref.key, time.monotonic() - started)
        self.metrics.forget_release(ref.target_namespace, ref.release_name)
        remaining = [f for f in ref.finalizers if f != FINALIZER]
        try:
            stored = await self.kube.patch_helmrelease_metadata(
                ref.namespace, ref.name, {"finalizers": remaining, "resourceVersion": ref.resource_version})
            self.store.update(stored)
        except KubeError as e:
            log.warning("%s: could not remove finalizer: %s", ref.key, e)
            return Result(retry_delay(1))
        self._forget(ref.key)
        return DONE

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


def _last_failure_at(status: dict[str, Any]) -> float | None:
    """When the last failure was recorded: Ready=False's lastUpdateTime (epoch seconds)."""
    if not int(status.get("failures") or 0):
        return None
    ready = get_condition(status.get("conditions"), ConditionType.READY) or {}
    if ready.get("status") != "False":
        return None
    stamp = ready.get("lastUpdateTime") or ready.get("lastTransitionTime")
    try:
        return float(calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


__all__ = ["DONE", "Reconciler", "Result"]
