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

from helm_operator.api.conditions import get_condition, ready_for_generation
from helm_operator.api.controls import DriftMode
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
from helm_operator.helm.storage import MAX_DIGEST_IN_LABEL, RevisionMeta, owner_label, parse_owner, secret_name
from helm_operator.kube import Kube, KubeError
from helm_operator.kube.apply import ClusterApi
from helm_operator.release import ownership, tenancy
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.actions.deploy import DeployRequest, deploy
from helm_operator.release.actions.recover import recover
from helm_operator.release.actions.rollback import roll_back
from helm_operator.release.actions.test import run_tests
from helm_operator.release.actions.uninstall import uninstall
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.drift import DriftDetector
from helm_operator.release.driftrules import ignored_paths, relevant
from helm_operator.release.history import Snapshot, head
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage
from helm_operator.release.record import IN_PROGRESS, Note, Outcome, Recorder
from helm_operator.release.state import (
    Action,
    Decision,
    Facts,
    State,
    determine,
    digest_in,
    precondition,
    retry_delay,
)
from helm_operator.release.values import ValuesError, compose_values, referenced_objects
from helm_operator.runtime.metrics import Metrics
from helm_operator.runtime.queueing import jittered

log = logging.getLogger(__name__)

MAX_STEPS = 6  # actions per reconcile (e.g. recover, upgrade, test, rollback)
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
class _Inputs:
    chart: FetchedChart
    values: dict[str, Any]
    desired: str


class Reconciler:
    """Makes HelmReleases true; one instance per operator, called per key."""

    def __init__(self, kube: Kube, helm: HelmActions, charts: ChartFetcher, recorder: Recorder,
                 metrics: Metrics, store: HelmReleaseStore, storage: ReleaseStorage,
                 versions: ObjectVersions, default_git_ref: str = "master",
                 drift: DriftDetector | None = None, drift_interval: float = 0.0,
                 default_drift_mode: DriftMode = DriftMode.WARN, cluster: ClusterApi | None = None,
                 lockdown: tenancy.TenancyPolicy | None = None) -> None:
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
        # any-kind access with one shared discovery (ownership checks, stamps, drift)
        self.cluster = cluster or (drift.api if drift is not None else ClusterApi(kube.api_client))
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
        self._stamped: dict[str, set[ownership.ObjectRef]] = {}
        self._chart_news: dict[str, str] = {}  # ChartFetched=True to write with the next record

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
        refused = tenancy.refusal(hr, self.lockdown)
        if refused:
            return await self._refused(hr, obj, refused)
        self._index(hr)
        hold = precondition(hr, *self._dependencies(hr))
        if hold is not None:
            return await self._hold(hr, obj, hold)
        hr = await self._release_holds(hr, obj)
        requests = hr.requests
        if requests.reset and requests.reset != hr.status.get("lastHandledResetAt"):
            hr = await self._note(hr, obj, Note(fields={"failures": 0, "rollbackCount": 0,
                                                        "lastHandledResetAt": requests.reset}))
            log.info("%s: failure and rollback counters reset (reconcile.fluxcd.io/resetAt)", key)
        manual = bool(requests.reconcile) and requests.reconcile != hr.status.get("lastHandledReconcileAt")
        force = bool(requests.force) and requests.force != hr.status.get("lastHandledForceAt")
        fingerprint = self._fingerprint(hr)
        if not (manual or force) and fingerprint is not None and self.settled.get(key) == fingerprint:
            if self._drift_check_due(hr):
                result = await self._check_drift(hr, obj)
                return result if result.retry else self._next_drift_check(hr)
            return self._next_drift_check(hr)
        self.settled.pop(key, None)
        prepared = await self._inputs(hr, obj)
        if isinstance(prepared, Result):
            return prepared
        hr, result = await self._converge(*prepared, manual=manual, force=force)
        news = self._chart_news.pop(key, None)
        if news is not None:
            hr = await self._note(hr, self.store.get(key) or obj, Note(conditions=(
                (ConditionType.CHART_FETCHED, "True", Phase.CHART_FETCHED.value, news),)))
        handled = {}
        if manual:
            handled["lastHandledReconcileAt"] = requests.reconcile
        if force:
            handled["lastHandledForceAt"] = requests.force
        if handled:
            await self._note(hr, self.store.get(key) or obj, Note(fields=handled))
        return result

    def _index(self, hr: HelmRelease) -> None:
        """What the watches and the Git poller need to find this HelmRelease."""
        self.references[hr.key] = referenced_objects(hr)
        if hr.chart.kind.value == "git":
            self.git_releases[hr.key] = hr
        else:
            self.git_releases.pop(hr.key, None)
        for dependency in hr.controls.depends_on:
            self.dependants.setdefault(dependency.key, set()).add(hr.key)

    def _dependencies(self, hr: HelmRelease) -> tuple[list[str], list[str] | None]:
        """Which dependencies are not Ready (from the watch cache), and a dependency cycle, if any."""
        waiting = []
        for dependency in hr.controls.depends_on:
            obj = self.store.get(dependency.key)
            if obj is None:
                waiting.append(f"HelmRelease {dependency.key} not found")
                continue
            ready, why = ready_for_generation(obj)
            if not ready:
                waiting.append(f"{dependency.key} is not Ready ({why})")
        return waiting, self._cycle(hr) if hr.controls.depends_on else None

    def _cycle(self, hr: HelmRelease) -> list[str] | None:
        """The dependency chain from `hr` back to itself, if there is one."""
        def deps(key: str) -> list[str]:
            obj = self.store.get(key) or {}
            namespace = key.partition("/")[0]
            out = []
            for item in (obj.get("spec") or {}).get("dependsOn") or []:
                if isinstance(item, dict) and item.get("name"):
                    out.append(f"{item.get('namespace') or namespace}/{item['name']}")
            return out

        stack: list[tuple[str, list[str]]] = [(d.key, [hr.key, d.key]) for d in hr.controls.depends_on]
        seen: set[str] = set()
        while stack:
            key, path = stack.pop()
            if key == hr.key:
                return path
            if key in seen:
                continue
            seen.add(key)
            stack.extend((d, path + [d]) for d in deps(key))
        return None

    async def _hold(self, hr: HelmRelease, obj: dict[str, Any], d: Decision) -> Result:
        """Suspended or waiting for dependencies: say so, act on nothing."""
        self.settled.pop(hr.key, None)
        if d.state is State.SUSPENDED:
            if get_condition(hr.status.get("conditions"), SUSPENDED) is None:
                log.info("%s: %s", hr.key, d.reason)
            await self._note(hr, obj, Note(conditions=((SUSPENDED, "True", "Suspended", d.reason),),
                                           fields={"observedGeneration": hr.generation}))
            return DONE
        log.info("%s: %s: %s", hr.key, d.state.value, d.reason)
        await self._note(hr, obj, Note(conditions=((ConditionType.READY, "False", d.state.value, d.reason),),
                                       fields={"observedGeneration": hr.generation}))
        return DONE  # a dependency becoming Ready enqueues this one (watching.HelmReleaseEvents)

    async def _release_holds(self, hr: HelmRelease, obj: dict[str, Any]) -> HelmRelease:
        """Resumed, or its dependencies are Ready: clear what said it was held."""
        conditions = hr.status.get("conditions")
        ready = get_condition(conditions, ConditionType.READY) or {}
        if get_condition(conditions, SUSPENDED) is not None:
            log.info("%s: resumed", hr.key)
            hr = await self._note(hr, obj, Note(remove=(SUSPENDED,)))
        if ready.get("reason") == State.WAITING.value:
            hr = await self._note(hr, obj, Note(conditions=(
                (ConditionType.READY, "Unknown", "DependenciesReady", "dependencies are Ready"),)))
        return hr

    async def _note(self, hr: HelmRelease, obj: dict[str, Any], note: Note) -> HelmRelease:
        return dataclasses.replace(hr, status=await self.recorder.note(hr, obj, note))

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
            self._chart_news[hr.key] = f"chart fetched: {hr.chart}"  # written with the next record
        try:
            values = await compose_values(self.kube, hr, chart.path, self.lockdown.external_hosts)
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
            acting=hr.status.get("phase") in {p.value for p in IN_PROGRESS},
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
            self._owner_checked[cache_key] = await ownership.foreign_owner(self.cluster, objects, hr.antecedent)
        return self._owner_checked[cache_key]

    # ---- decide and act, until settled -----------------------------------
    async def _converge(self, hr: HelmRelease, inputs: _Inputs, manual: bool = False,
                        force: bool = False) -> tuple[HelmRelease, Result]:
        fresh = False
        acted: list[str] = []
        for _ in range(MAX_STEPS):
            facts = dataclasses.replace(await self._facts(hr, inputs.desired), manual=manual, force=force)
            decision = determine(hr, facts)
            if decision.remediation and not fresh:
                # Undo nothing on a cache a moment behind: read the API server first.
                # (Install and upgrade need not: helm itself starts from what is there.)
                await self._refresh(hr)
                fresh = True
                continue
            log.info("%s: %s: %s", hr.key, decision.state.value, decision.reason)
            if decision.action is Action.NONE:
                return await self._settle(hr, inputs, facts, decision, acted)
            hr, ok = await self._act(hr, inputs, facts, decision)
            manual = force = False  # each request acts once
            acted.append(decision.action.value)
            if not ok and decision.remediation:
                break  # a remediation that fails is retried with backoff, not at once
        return hr, Result(retry_delay(int(hr.status.get("failures") or 1)))

    async def _refresh(self, hr: HelmReleaseRef) -> None:
        try:
            await self.storage.refresh(hr.target_namespace, hr.release_name)
        except KubeError as e:
            log.warning("%s: reading release storage failed: %s", hr.key, e)

    async def _settle(self, hr: HelmRelease, inputs: _Inputs, facts: Facts, d: Decision,
                      acted: list[str]) -> tuple[HelmRelease, Result]:
        obj = self.store.get(hr.key) or {}
        newest = facts.newest
        st = hr.status
        current = st.get("observedGeneration") == hr.generation
        if d.state is State.UNOWNED:
            if not (current and st.get("phase") == Phase.FAILED.value
                    and (get_condition(st.get("conditions"), ConditionType.READY) or {}).get("message") == d.reason):
                hr = await self._record(hr, obj, Outcome(Phase.FAILED, d.reason))
            return hr, DONE
        if d.requeue_after is not None:
            return hr, Result(d.requeue_after, backoff=d.retry)  # the last failure stays on the object meanwhile
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
            return hr, self._next_drift_check(hr)
        return hr, DONE

    async def _act(self, hr: HelmRelease, inputs: _Inputs, facts: Facts, d: Decision,
                   ) -> tuple[HelmRelease, bool]:
        """Run one action and record its result; returns the HelmRelease as recorded and success."""
        obj = self.store.get(hr.key) or {}
        if d.action in (Action.INSTALL, Action.UPGRADE):
            return await self._deploy(hr, obj, inputs, facts, d.action is Action.INSTALL)
        if d.action is Action.TEST:
            return await self._test(hr, obj, inputs, facts)
        if d.action is Action.ROLLBACK:
            return await self._rollback(hr, obj, d, "rollback")
        if d.action is Action.RECOVER:
            if d.target is None:
                result = await recover(self.helm, self.metrics, hr, None, self._as(hr))
                self._log_result(hr, "recover", result)
                await self._refresh(hr)
                if not result.ok:
                    hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"recovering failed: {result.message}"))
                return hr, result.ok
            return await self._rollback(hr, obj, d, "rollback" if d.details.get("finishes") else "recover")
        if d.action is Action.UNINSTALL:
            result = await uninstall(self.helm, self.metrics, hr.release_name, hr.target_namespace, hr.timeout,
                                     self._as(hr))
            self._log_result(hr, "uninstall", result)
            if result.ok:
                self.storage.forget(hr.target_namespace, hr.release_name)
            else:
                await self._refresh(hr)
            self._stamped.pop(hr.key, None)
            if not result.ok:
                hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"helm uninstall failed: {result.message}"))
            return hr, result.ok
        return hr, True

    async def _deploy(self, hr: HelmRelease, obj: dict[str, Any], inputs: _Inputs, facts: Facts,
                      install: bool) -> tuple[HelmRelease, bool]:
        verb = "install" if install else "upgrade"
        newest = facts.newest
        hr = await self._record(hr, obj, Outcome(
            Phase.INSTALLING if install else Phase.UPGRADING,
            f"running helm {verb} of {hr.release_name} ({hr.chart})",
            attempted_revision=inputs.chart.revision, attempted_digest=inputs.desired, event=False))
        req = DeployRequest(hr, inputs.chart.path, inputs.values, inputs.desired,
                            (newest.revision if newest else 0) + 1, install, self._as(hr))
        result = await deploy(self.helm, self.metrics, req)
        self._log_result(hr, verb, result)
        if result.ok and result.record is not None and result.record.revision == req.next_revision:
            self.storage.observed(hr.target_namespace, hr.release_name, RevisionMeta(
                revision=result.record.revision, status=result.record.status,
                attempt_revision=req.next_revision, attempt_digest=inputs.desired[:MAX_DIGEST_IN_LABEL],
                owner=owner_label(hr.namespace, hr.name),
                secret=secret_name(hr.release_name, result.record.revision)))
        else:
            await self._refresh(hr)  # what did the failed call leave? (or our cache was behind)
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
        await self._stamp(hr, record.manifest, fresh=install)
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
        result = await run_tests(self.helm, self.metrics, hr, self._as(hr))
        self._log_result(hr, "test", result)
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
        if d.action is Action.RECOVER:  # unlock: helm's defaults (no wait), also when finishing a rollback
            result = await recover(self.helm, self.metrics, hr, d.target, self._as(hr))
        else:
            result = await roll_back(self.helm, self.metrics, hr, d.target, self._as(hr))
        self._log_result(hr, action, result)
        if not result.ok:
            before = self.storage.revisions(hr.target_namespace, hr.release_name)
            after = await self.storage.refresh(hr.target_namespace, hr.release_name)
            made = after[0] if after and (not before or after[0].revision > before[0].revision) else None
            snapshot = Snapshot(revision=made.revision, action="rollback", status=made.status) if made else None
            return await self._record(hr, obj, Outcome(Phase.ROLLBACK_FAILED, f"rollback failed: {result.message}",
                                                       snapshot=snapshot)), False
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
        news = self._chart_news.pop(hr.key, None)
        if news is not None:
            outcome = dataclasses.replace(outcome, chart_fetched=news)
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

    # ---- tenancy -------------------------------------------------------------
    def _as(self, hr: HelmReleaseRef) -> str | None:
        """Who helm acts as for `hr` (tenancy: its ServiceAccount), None for the operator."""
        return tenancy.impersonation(hr, self.lockdown)

    async def _refused(self, hr: HelmRelease, obj: dict[str, Any], refused: str) -> Result:
        """The tenancy policy refuses this HelmRelease: say why once, act on nothing."""
        log.warning("%s: refused: %s", hr.key, refused)
        self.settled.pop(hr.key, None)
        ready = get_condition(hr.status.get("conditions"), ConditionType.READY) or {}
        if not (hr.status.get("observedGeneration") == hr.generation and ready.get("message") == refused):
            await self.recorder.record(hr, obj, Outcome(Phase.FAILED, refused))
        return DONE

    async def _uninstall_refusal(self, ref: HelmReleaseRef) -> str | None:
        """Why deleting `ref` must not uninstall: outside its namespace under the policy, or
        its ServiceAccount is gone (a namespace being deleted; nothing could act as it)."""
        refused = tenancy.delete_refusal(ref, self.lockdown)
        account = tenancy.service_account(ref, self.lockdown)
        if refused is None and account is not None:
            rt = await self.cluster.resource_type("v1", "ServiceAccount")
            sa = await self.cluster.get(rt, ref.namespace, account) if rt else None
            if sa is None:
                refused = f"its ServiceAccount {ref.namespace}/{account} no longer exists"
        return refused

    # ---- ownership stamp -----------------------------------------------------
    async def _stamp(self, hr: HelmReleaseRef, manifest: str, fresh: bool) -> None:
        """Annotate the release's objects with their antecedent; only those not stamped yet."""
        objects = ownership.manifest_objects(manifest, hr.target_namespace)
        done = set() if fresh else self._stamped.get(hr.key, set())
        todo = [o for o in objects if o not in done]
        if todo:
            await ownership.stamp(self.cluster, todo, hr.antecedent)
        self._stamped[hr.key] = set(objects)

    # ---- drift ---------------------------------------------------------------
    def _drift_mode(self, hr: HelmRelease) -> DriftMode:
        return hr.controls.drift.mode or self.default_drift_mode

    def _next_drift_check(self, hr: HelmRelease) -> Result:
        """Come back when this release's next drift check is due (its own timer, not the resync's)."""
        if self.drift is None or self.drift_interval <= 0 or self._drift_mode(hr) is DriftMode.DISABLED:
            return DONE
        last = self._drift_checked.setdefault(hr.key, time.monotonic())
        wait = max(0.1, last + self.drift_interval - time.monotonic())
        return Result(jittered(wait, 0.1), backoff=False)

    def _drift_check_due(self, hr: HelmRelease) -> bool:
        if self.drift is None or self.drift_interval <= 0 or self._drift_mode(hr) is DriftMode.DISABLED:
            return False
        last = self._drift_checked.get(hr.key)
        if last is None:
            self._drift_checked[hr.key] = time.monotonic()
            return False
        return time.monotonic() - last >= self.drift_interval

    async def _check_drift(self, hr: HelmRelease, obj: dict[str, Any]) -> Result:
        """Compare the live objects with the release's manifest; warn, or re-apply, as the mode says."""
        assert self.drift is not None
        self._drift_checked[hr.key] = time.monotonic()
        revisions = self.storage.revisions(hr.target_namespace, hr.release_name)
        if not revisions:
            return DONE
        try:
            record = await self.storage.record(hr.target_namespace, revisions[0], with_manifest=True)
            if record is None:
                return DONE
            found = await self.drift.drift(record.manifest, hr.release_name, hr.target_namespace)
        except KubeError as e:
            log.warning("%s: drift check failed: %s", hr.key, e)
            return DONE
        drifted = relevant(found, hr.controls.drift.ignore)
        was = (get_condition(hr.status.get("conditions"), DRIFTED) or {}).get("status")
        if not drifted:
            log.debug("%s: drift check: live objects match revision %d", hr.key, revisions[0].revision)
            if was == "True":
                await self._note(hr, obj, Note(conditions=((DRIFTED, "False", "NoDrift",
                                                            "live objects match the release"),)))
            return DONE
        summary = "; ".join(str(d) for d in drifted)[:800]
        mode = self._drift_mode(hr)
        log.warning("%s: objects changed outside Git (drift %s): %s", hr.key, mode.value, summary)
        if mode is not DriftMode.ENABLED:
            await self._note(hr, obj, Note(
                conditions=((DRIFTED, "True", "DriftDetected", summary),),
                event=("Warning", "DriftDetected",
                       f"objects changed by hand, not put back (driftDetection.mode: warn): {summary}")))
            return DONE
        ignore = hr.controls.drift.ignore
        failed = await self.drift.correct(drifted, {i: ignored_paths(d, ignore) for i, d in enumerate(drifted)})
        if failed:
            message = f"objects changed by hand could not all be put back: {'; '.join(failed)[:600]}"
            await self._note(hr, obj, Note(conditions=((DRIFTED, "True", "DriftCorrectionFailed", message),),
                                           event=("Warning", "DriftCorrectionFailed", message)))
            return Result(retry_delay(1), backoff=False)
        recreated = [ownership.ObjectRef(d.api_version, d.kind, d.name, d.namespace) for d in drifted if d.missing]
        if recreated:
            await ownership.stamp(self.cluster, recreated, hr.antecedent)
        await self._note(hr, obj, Note(
            conditions=((DRIFTED, "False", "DriftCorrected", f"put back: {summary}"),),
            event=("Normal", REASON_SYNCED, f"restoring objects changed by hand: {summary}")))
        return DONE

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
        suspended = (obj.get("spec") or {}).get("suspend") is True
        if revisions and suspended:
            log.warning("%s: deleted while suspended: leaving release %s installed", ref.key, ref.release_name)
            await self.kube.emit_event(obj, "Normal", "ReleaseLeftInstalled",
                                       f"deleted while suspended (spec.suspend): release {ref.release_name} "
                                       "is left installed")
        elif revisions:
            owner = await self._foreign_owner(ref, revisions[0])
            refused = None if owner else await self._uninstall_refusal(ref)
            if owner:
                log.warning("%s: deleted, but release %s belongs to %s: leaving it", ref.key,
                            ref.release_name, owner)
            elif refused:
                log.warning("%s: deleted, but not uninstalling release %s: %s", ref.key, ref.release_name,
                            refused)
            else:
                started = time.monotonic()
                log.info("%s: HelmRelease deleted: uninstalling %s", ref.key, ref.release_name)
                timeout = getattr(ref, "timeout", 300)
                try:
                    timeout = parse(obj, default_git_ref=self.default_git_ref).timeout
                except InvalidSpec:
                    pass
                result = await uninstall(self.helm, self.metrics, ref.release_name, ref.target_namespace, timeout,
                                         self._as(ref))
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
        for dependants in self.dependants.values():
            dependants.discard(key)


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
