"""Record what happened to a HelmRelease: status (phase, conditions,
counters), a Kubernetes event, and the condition metrics.

`next_status` is pure: the old status and one outcome give the new status,
following COMPAT (reason = the phase; `Succeeded` sets Released=True, clears
RolledBack and resets rollbackCount; `RolledBack` increments it; our `Ready`
condition is True only after a success). `Recorder` writes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from helm_operator.api.conditions import ConditionStatus, now_rfc3339, remove_condition, set_condition
from helm_operator.api.constants import REASON_FAILED, REASON_SYNCED, ConditionType, Phase
from helm_operator.api.helmrelease import HelmReleaseRef
from helm_operator.kube import Kube, KubeError
from helm_operator.runtime.metrics import Metrics

log = logging.getLogger(__name__)

C = ConditionType
T: ConditionStatus = "True"
F: ConditionStatus = "False"
UNKNOWN: ConditionStatus = "Unknown"

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
_IN_PROGRESS = {Phase.INSTALLING, Phase.UPGRADING, Phase.TESTING, Phase.ROLLING_BACK, Phase.CHART_FETCHED}
FAILURE_PHASES = {Phase.CHART_FETCH_FAILED, Phase.DEPLOY_FAILED, Phase.TEST_FAILED, Phase.FAILED,
                  Phase.ROLLED_BACK, Phase.ROLLBACK_FAILED}


@dataclass(frozen=True)
class Outcome:
    """One step's result, as the status should tell it."""

    phase: Phase
    message: str
    release_status: str | None = None
    revision: str | None = None          # set on success: what is now deployed
    attempted_revision: str | None = None


def next_status(old: dict[str, Any], hr: HelmReleaseRef, outcome: Outcome, now: str) -> dict[str, Any]:
    """The status after `outcome`. Pure."""
    status = dict(old)
    conditions = list(status.get("conditions") or [])
    for ctype, value in _PHASE_CONDITIONS[outcome.phase]:
        conditions = set_condition(conditions, ctype, value, outcome.phase.value, outcome.message, now)
    if outcome.phase is Phase.SUCCEEDED:
        conditions = remove_condition(conditions, C.ROLLED_BACK)
        status["rollbackCount"] = 0
        conditions = set_condition(conditions, C.READY, T, outcome.phase.value, outcome.message, now)
    elif outcome.phase is Phase.ROLLED_BACK:
        status["rollbackCount"] = int(status.get("rollbackCount") or 0) + 1
    if outcome.phase in FAILURE_PHASES:
        conditions = set_condition(conditions, C.READY, F, outcome.phase.value, outcome.message, now)
    elif outcome.phase in _IN_PROGRESS:
        conditions = set_condition(conditions, C.READY, UNKNOWN, outcome.phase.value, outcome.message, now)
    # The Message printer column shows the Released condition's message: keep
    # it telling the latest news, also while a step is in progress.
    if outcome.phase in _IN_PROGRESS:
        conditions = set_condition(conditions, C.RELEASED, UNKNOWN, outcome.phase.value,
                                   outcome.message, now)
    status["conditions"] = conditions
    status["phase"] = outcome.phase.value
    status["observedGeneration"] = hr.generation
    status["releaseName"] = hr.release_name
    if outcome.release_status is not None:
        status["releaseStatus"] = outcome.release_status
    if outcome.revision is not None:
        status["revision"] = outcome.revision
    if outcome.attempted_revision is not None:
        status["lastAttemptedRevision"] = outcome.attempted_revision
    status.setdefault("rollbackCount", 0)
    return status


class Recorder:
    """Writes status, events and metrics for HelmReleases."""

    def __init__(self, kube: Kube, metrics: Metrics) -> None:
        self.kube = kube
        self.metrics = metrics

    async def record(self, hr: HelmReleaseRef, obj: dict[str, Any], outcome: Outcome,
                     event: bool = True) -> dict[str, Any]:
        """Patch the status for `outcome`; emit an event for final outcomes."""
        status = next_status(hr.status, hr, outcome, now_rfc3339())
        try:
            await self.kube.patch_helmrelease_status(hr.namespace, hr.name, status)
        except KubeError as e:
            log.warning("%s: could not record status %s: %s", hr.key, outcome.phase, e)
        for cond in status.get("conditions", []):
            self.metrics.set_condition(hr.target_namespace, hr.release_name, cond["type"], cond["status"])
        if event and outcome.phase not in _IN_PROGRESS:
            failed = outcome.phase in FAILURE_PHASES
            await self.kube.emit_event(
                obj, "Warning" if failed else "Normal", REASON_FAILED if failed else REASON_SYNCED,
                f"{outcome.phase.value}: {outcome.message}",
            )
        return status
