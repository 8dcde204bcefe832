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

import dataclasses
import logging
import time

from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import ConditionType, Phase
from helm_operator.api.controls import parse_requests
from helm_operator.api.helmrelease import HelmRelease, InvalidSpec, parse, parse_ref
from helm_operator.release import tenancy
from helm_operator.release.base import DONE, Inputs, Result
from helm_operator.release.deletion import DeletionMixin
from helm_operator.release.driftcheck import DriftMixin
from helm_operator.release.holds import HoldsMixin
from helm_operator.release.record import Note, Outcome
from helm_operator.release.state import Action, Decision, Facts, State, determine, precondition, retry_delay
from helm_operator.release.steps import StepsMixin
from helm_operator.runtime.logs import fields

log = logging.getLogger(__name__)

MAX_STEPS = 6  # actions per reconcile (e.g. recover, upgrade, test, rollback)

__all__ = ["DONE", "Reconciler", "Result"]


class Reconciler(DeletionMixin, DriftMixin, StepsMixin, HoldsMixin):
    """Makes HelmReleases true; one instance per operator, called per key."""

    async def reconcile(self, key: str) -> Result:
        obj = self.store.get(key)
        if obj is None:
            self._forget(key)
            return DONE
        try:
            ref = parse_ref(obj)
        except InvalidSpec as e:
            log.warning("invalid HelmRelease metadata: %s", e, extra=fields(object=key, error=e))
            return DONE
        self.release_keys[(ref.target_namespace, ref.release_name)] = key
        if ref.is_deleting:
            return await self._finalize(ref, obj)
        if not ref.has_finalizer:
            obj = await self._add_finalizer(ref)
        try:
            hr = parse(obj, default_git_ref=self.default_git_ref, limits=self.yaml_limits)
        except InvalidSpec as e:
            return await self._answer_request(key, await self._invalid(ref, obj, e))
        refused = tenancy.refusal(hr, self.lockdown)
        if refused:
            return await self._answer_request(key, await self._refused(hr, obj, refused))
        self._index(hr)
        hold = precondition(hr, *self._dependencies(hr))
        if hold is not None:
            result = await self._hold(hr, obj, hold)
            return result if hold.state is State.SUSPENDED else await self._answer_request(key, result)
        hr = await self._release_holds(hr, obj)
        requests = hr.requests
        if requests.reset and requests.reset != hr.status.get("lastHandledResetAt"):
            hr = await self._note(hr, obj, Note(fields={"failures": 0, "rollbackCount": 0,
                                                        "lastHandledResetAt": requests.reset}))
            log.info("failure and rollback counters reset (reconcile.fluxcd.io/resetAt)",
                     extra=fields(object=key, action="reset"))
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
            return await self._answer_request(key, prepared)
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

    async def _answer_request(self, key: str, result: Result) -> Result:
        """Echo a reconcile request that ended before any helm call (an invalid spec, a
        refusal, dependencies not Ready, a chart or values failure) in lastHandledReconcileAt.

        The outcome is in the status already; echoing the token tells whoever asked
        (`helm-operator reconcile --wait`, Flux's CLI) that it is the answer, so they
        stop waiting. A suspended release answers nothing: it does not reconcile.
        """
        obj = self.store.get(key)  # with the status just recorded (the recorder writes through)
        if obj is None:
            return result
        ref = parse_ref(obj)
        token = parse_requests(ref.annotations).reconcile
        if token and token != ref.status.get("lastHandledReconcileAt"):
            await self.recorder.note(ref, obj, Note(fields={"lastHandledReconcileAt": token}))
        return result

    async def _converge(self, hr: HelmRelease, inputs: Inputs, manual: bool = False,
                        force: bool = False) -> tuple[HelmRelease, Result]:
        fresh = False
        acted: list[str] = []
        for _ in range(MAX_STEPS):
            facts = dataclasses.replace(await self._facts(hr, inputs.desired), manual=manual, force=force)
            decision = determine(hr, facts)
            if (decision.remediation or (decision.action is Action.INSTALL and self.storage_is_partial)) \
                    and not fresh:
                # Undo nothing on a cache a moment behind: read the API server first. A
                # sharded install too: the release may exist outside this shard's storage
                # watch (a HelmRelease handed over by another shard). An unsharded install
                # need not (the watch sees every release; `upgrade --install` starts from
                # what is there), nor an upgrade: one API request per install saved.
                await self._refresh(hr)
                fresh = True
                continue
            log.info("%s: %s", decision.state.value, decision.reason,
                     extra=fields(object=hr.key, action=decision.action.value))
            if decision.action is Action.NONE:
                return await self._settle(hr, inputs, facts, decision, acted)
            hr, ok = await self._act(hr, inputs, facts, decision)
            manual = force = False  # each request acts once
            acted.append(decision.action.value)
            if not ok and decision.remediation:
                break  # a remediation that fails is retried with backoff, not at once
        return hr, Result(retry_delay(int(hr.status.get("failures") or 1)))

    async def _settle(self, hr: HelmRelease, inputs: Inputs, facts: Facts, d: Decision,
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
