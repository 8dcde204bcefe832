"""Record what happened to a HelmRelease: status (phase, conditions,
counters, history), a Kubernetes event, and the condition metrics.

`next_status` is pure: the old status and one outcome give the new status.
COMPAT rules: reason = the phase; `Succeeded` sets Released=True, clears
RolledBack and resets rollbackCount; a rollback increments it. Ours:

- `Ready` is True only after a success. A failure sets Ready=False with its
  reason and message, and that stays while later attempts run: an attempt in
  progress shows as the v1 phase and a `Reconciling` condition, never by
  wiping the last failure, so `kubectl get hr` shows the error during a
  retry storm. The `Released` condition (the Message column) keeps telling
  the last outcome for the same reason.
- `failures` counts consecutive failed attempts and resets on success; the
  time of the last failure is Ready's lastUpdateTime (the backoff clock).
- `lastAttemptedConfigDigest` names the configuration last sent to helm.
- `history` holds the newest revisions this operator made (`history.py`).

`Recorder` writes it, emits the event and updates the metrics; it is the
only place that does, so every action's result is recorded the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helm_operator.api.conditions import ConditionStatus, now_rfc3339, remove_condition, set_condition
from helm_operator.api.constants import REASON_FAILED, REASON_SYNCED, ConditionType, Phase
from helm_operator.api.helmrelease import HelmReleaseRef
from helm_operator.kube import Kube, KubeError
from helm_operator.release.history import Snapshot, history_limit, read_history, with_snapshot
from helm_operator.runtime.logs import fields
from helm_operator.runtime.metrics import Metrics

log = logging.getLogger(__name__)

C = ConditionType
T: ConditionStatus = "True"
F: ConditionStatus = "False"
UNKNOWN: ConditionStatus = "Unknown"
RECONCILING = "Reconciling"

# phase -> conditions it sets (type, status); Ready follows separately.
_PHASE_CONDITIONS: dict[Phase, tuple[tuple[ConditionType, ConditionStatus], ...]] = {
    Phase.CHART_FETCHED: ((C.CHART_FETCHED, T),),
    Phase.CHART_FETCH_FAILED: ((C.CHART_FETCHED, F), (C.RELEASED, F)),
    Phase.INSTALLING: (),
    Phase.UPGRADING: (),
    Phase.DEPLOYED: ((C.DEPLOYED, T),),
    Phase.DEPLOY_FAILED: ((C.DEPLOYED, F), (C.RELEASED, F)),
    Phase.TESTING: (),
    Phase.TESTED: ((C.TESTED, T),),
    Phase.TEST_FAILED: ((C.TESTED, F), (C.RELEASED, F)),
    Phase.SUCCEEDED: ((C.RELEASED, T),),
    Phase.FAILED: ((C.RELEASED, F),),
    Phase.ROLLING_BACK: (),
    Phase.ROLLED_BACK: ((C.ROLLED_BACK, T), (C.RELEASED, F)),
    Phase.ROLLBACK_FAILED: ((C.ROLLED_BACK, F), (C.RELEASED, F)),
}
IN_PROGRESS = {Phase.INSTALLING, Phase.UPGRADING, Phase.TESTING, Phase.ROLLING_BACK}
FAILURE_PHASES = {Phase.CHART_FETCH_FAILED, Phase.DEPLOY_FAILED, Phase.TEST_FAILED, Phase.FAILED,
                  Phase.ROLLBACK_FAILED}
NOT_READY_PHASES = FAILURE_PHASES | {Phase.ROLLED_BACK}


@dataclass(frozen=True)
class Outcome:
    """One step's result, as the status should tell it."""

    phase: Phase
    message: str
    release_status: str | None = None
    revision: str | None = None           # set on success: the chart revision now deployed
    attempted_revision: str | None = None # the chart revision being tried
    attempted_digest: str | None = None   # the configuration being tried
    snapshot: Snapshot | None = None      # a revision made or changed
    rolled_back: bool = False             # a rollback of a failed configuration completed
    counts_as_failure: bool | None = None # default: the phase is a failure phase
    event: bool = True                    # emit an event (final outcomes only)
    chart_fetched: str | None = None      # also set ChartFetched=True with this message

    @property
    def failed(self) -> bool:
        return self.phase in FAILURE_PHASES if self.counts_as_failure is None else self.counts_as_failure


def next_status(old: dict[str, Any], hr: HelmReleaseRef, outcome: Outcome, now: str,
                max_history: int = 10) -> dict[str, Any]:
    """The status after `outcome`. Pure."""
    status = dict(old)
    conditions = list(status.get("conditions") or [])
    phase, message = outcome.phase, outcome.message
    if outcome.chart_fetched is not None:
        conditions = set_condition(conditions, C.CHART_FETCHED, T, Phase.CHART_FETCHED.value,
                                   outcome.chart_fetched, now)
    for ctype, value in _PHASE_CONDITIONS[phase]:
        conditions = set_condition(conditions, ctype, value, phase.value, message, now)
    if phase in IN_PROGRESS:
        conditions = set_condition(conditions, RECONCILING, T, phase.value, message, now)
        ready = next((c for c in conditions if c.get("type") == C.READY), None)
        if ready is None or ready.get("status") == T:
            conditions = set_condition(conditions, C.READY, UNKNOWN, "Progressing", message, now)
    else:
        conditions = remove_condition(conditions, RECONCILING)
    if phase is Phase.SUCCEEDED:
        conditions = remove_condition(conditions, C.ROLLED_BACK)
        status["rollbackCount"] = 0
        status["failures"] = 0
        conditions = set_condition(conditions, C.READY, T, phase.value, message, now)
    if outcome.rolled_back:
        status["rollbackCount"] = int(status.get("rollbackCount") or 0) + 1
    if outcome.failed:
        status["failures"] = int(status.get("failures") or 0) + 1
    if phase in NOT_READY_PHASES:
        conditions = set_condition(conditions, C.READY, F, phase.value, message, now)
    status["conditions"] = conditions
    status["phase"] = phase.value
    status["observedGeneration"] = hr.generation
    status["releaseName"] = hr.release_name
    if outcome.release_status is not None:
        status["releaseStatus"] = outcome.release_status
    if outcome.revision is not None:
        status["revision"] = outcome.revision
    if outcome.attempted_revision is not None:
        status["lastAttemptedRevision"] = outcome.attempted_revision
    if outcome.attempted_digest is not None:
        status["lastAttemptedConfigDigest"] = outcome.attempted_digest
    if outcome.snapshot is not None:
        history = with_snapshot(read_history(status), outcome.snapshot, history_limit(max_history))
        status["history"] = [s.to_status() for s in history]
    status.setdefault("rollbackCount", 0)
    status.setdefault("failures", 0)
    return status


@dataclass(frozen=True)
class Note:
    """A status change that is not an attempt's outcome: a condition that
    holds the release (Suspended, DependencyNotReady, Drifted), a request
    handled (lastHandled*At), counters reset."""

    fields: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[tuple[str, ConditionStatus, str, str], ...] = ()  # (type, status, reason, message)
    remove: tuple[str, ...] = ()
    event: tuple[str, str, str] | None = None  # (type, reason, message), emitted when the status changed


def noted_status(old: dict[str, Any], note: Note, now: str) -> dict[str, Any]:
    """The status with `note` applied. Pure."""
    status = dict(old)
    status.update(note.fields)
    conditions = list(status.get("conditions") or [])
    for ctype, value, reason, message in note.conditions:
        conditions = set_condition(conditions, ctype, value, reason, message, now)
    for ctype in note.remove:
        conditions = remove_condition(conditions, ctype)
    status["conditions"] = conditions
    return status


def _same_except_times(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for conditions' lastUpdateTime (a repeated note writes nothing)."""
    def strip(st: dict[str, Any]) -> dict[str, Any]:
        out = dict(st)
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastUpdateTime"}
                             for c in st.get("conditions") or []]
        return out
    return strip(a) == strip(b)


class Recorder:
    """Writes status, events and metrics for HelmReleases."""

    def __init__(self, kube: Kube, metrics: Metrics,
                 on_stored: Callable[[dict[str, Any]], object] | None = None) -> None:
        self.kube = kube
        self.metrics = metrics
        self._on_stored = on_stored  # the HelmRelease cache, written through
        self._events: set[asyncio.Task[None]] = set()  # events are sent beside the work, not before it

    async def record(self, hr: HelmReleaseRef, obj: dict[str, Any], outcome: Outcome,
                     max_history: int = 10) -> dict[str, Any]:
        """Patch the status for `outcome`, emit an event for final outcomes; return the new status."""
        status = next_status(hr.status, hr, outcome, now_rfc3339(), max_history)
        if status != hr.status:
            try:
                stored = await self.kube.patch_helmrelease_status(hr.namespace, hr.name, status)
                if self._on_stored is not None and isinstance(stored, dict):
                    self._on_stored(stored)
            except KubeError as e:
                log.warning("could not record status %s: %s", outcome.phase.value, e,
                            extra=fields(object=hr.key, error=e))
        for cond in status.get("conditions", []):
            if cond.get("type") != RECONCILING:
                self.metrics.set_condition(hr.target_namespace, hr.release_name, cond["type"], cond["status"],
                                           obj=(hr.namespace, hr.name))
        if outcome.event and outcome.phase not in IN_PROGRESS:
            failed = outcome.phase in NOT_READY_PHASES
            self._emit(obj, "Warning" if failed else "Normal", REASON_FAILED if failed else REASON_SYNCED,
                       f"{outcome.phase.value}: {outcome.message}")
        return status

    def _emit(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """Send an event without waiting for it (`emit_event` never raises; `drain` awaits the rest)."""
        task = asyncio.create_task(self.kube.emit_event(obj, event_type, reason, message))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def drain(self) -> None:
        """Wait for the events still being sent (at shutdown, and in tests)."""
        if self._events:
            await asyncio.gather(*list(self._events), return_exceptions=True)

    async def note(self, hr: HelmReleaseRef, obj: dict[str, Any], note: Note) -> dict[str, Any]:
        """Apply `note` to the status when it changes anything; return the status."""
        status = noted_status(hr.status, note, now_rfc3339())
        if _same_except_times(status, hr.status):
            return hr.status
        try:
            stored = await self.kube.patch_helmrelease_status(hr.namespace, hr.name, status)
            if self._on_stored is not None and isinstance(stored, dict):
                self._on_stored(stored)
        except KubeError as e:
            log.warning("could not record status: %s", e, extra=fields(object=hr.key, error=e))
        for cond in status.get("conditions", []):
            if cond.get("type") in (C.READY, C.RELEASED):
                self.metrics.set_condition(hr.target_namespace, hr.release_name, cond["type"], cond["status"],
                                           obj=(hr.namespace, hr.name))
        if note.event is not None:
            self._emit(obj, *note.event)
        return status
