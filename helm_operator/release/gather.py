"""Gather what a decision needs: the inputs (chart, values, their digest and
the fingerprint that lets a settled release skip all of it) and the facts
from helm's storage and the status (`state.Facts`).

Place in the flow: the first half of observe -> decide; nothing here
decides or acts. Failures to fetch or compose are recorded (once per
distinct message) and retried on the backoff.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import time
from typing import Any

from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import ConditionType, Phase
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef, format_antecedent
from helm_operator.chartsource import ChartFetchError
from helm_operator.helm import classify
from helm_operator.helm.storage import RevisionMeta, owner_label, parse_owner
from helm_operator.kube import KubeError
from helm_operator.release import ownership
from helm_operator.release.base import EngineBase, Inputs, Result, log
from helm_operator.release.history import head
from helm_operator.release.record import IN_PROGRESS, Outcome
from helm_operator.release.state import Facts, digest_in, retry_delay
from helm_operator.release.values import ValuesError, compose_values, configuration_digest, referenced_objects
from helm_operator.runtime.logs import fields


class GatherMixin(EngineBase):
    def _index(self, hr: HelmRelease) -> None:
        """What the watches and the Git poller need to find this HelmRelease."""
        self.references[hr.key] = referenced_objects(hr)
        if hr.chart.kind.value == "git":
            self.git_releases[hr.key] = hr
        else:
            self.git_releases.pop(hr.key, None)
        for dependency in hr.controls.depends_on:
            self.dependants.setdefault(dependency.key, set()).add(hr.key)

    def _fingerprint(self, hr: HelmRelease) -> tuple[Any, ...] | None:
        """Everything the desired configuration and the decision depend on, from caches."""
        revision = self.charts.known_revision(hr)
        if revision is None or any(s.kind.value == "externalSourceRef" for s in hr.values_from):
            return None  # a URL may change without an event: compose the values again
        sources = tuple(sorted((kind, ns, name, self.versions.get(kind, ns, name))
                               for kind, ns, name in self.references.get(hr.key, set())))
        newest = self.storage.revisions(hr.target_namespace, hr.release_name)[:1]
        return (hr.uid, hr.generation, revision, sources, newest)

    async def _inputs(self, hr: HelmRelease, obj: dict[str, Any]) -> tuple[HelmRelease, Inputs] | Result:
        """Fetch the chart and compose values; record failures."""
        try:
            chart = await self.charts.fetch(hr)
        except ChartFetchError as e:
            log.warning("chart fetch failed: %s", e, extra=fields(object=hr.key, action="fetch", error=e))
            return await self._failed_before_helm(hr, obj, Outcome(Phase.CHART_FETCH_FAILED, str(e)))
        chart_cond = get_condition(hr.status.get("conditions"), ConditionType.CHART_FETCHED)
        if not chart_cond or chart_cond.get("status") != "True":
            self._chart_news[hr.key] = f"chart fetched: {hr.chart}"  # written with the next record
        try:
            values = await compose_values(self.kube, hr, chart.path, self.lockdown.external_hosts,
                                          self.yaml_limits)
        except (ValuesError, KubeError) as e:
            log.warning("values: %s", e, extra=fields(object=hr.key, action="compose-values", error=e))
            return await self._failed_before_helm(
                hr, obj, Outcome(Phase.FAILED, f"could not compose values: {e}"))
        desired = configuration_digest(hr, chart.revision, values)
        return hr, Inputs(chart, values, desired)

    async def _failed_before_helm(self, hr: HelmRelease, obj: dict[str, Any], outcome: Outcome) -> Result:
        """A failure before any helm call: recorded once per distinct message, retried with backoff."""
        ready = get_condition(hr.status.get("conditions"), ConditionType.READY) or {}
        repeated = (hr.status.get("phase") == outcome.phase.value and ready.get("message") == outcome.message
                    and hr.status.get("observedGeneration") == hr.generation)
        if repeated:
            outcome = dataclasses.replace(outcome, event=False)
        hr = await self._record(hr, obj, outcome)
        return Result(retry_delay(int(hr.status.get("failures") or 1)))

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
            objects = await asyncio.to_thread(ownership.manifest_objects, record.manifest,
                                              hr.target_namespace) if record else []
            self._owner_checked[cache_key] = await ownership.foreign_owner(self.cluster, objects, hr.antecedent)
        return self._owner_checked[cache_key]


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

