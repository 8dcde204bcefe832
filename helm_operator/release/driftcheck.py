"""Drift: compare a settled release's live objects with its manifest on the
release's own timer, and warn or put them back as `spec.driftDetection`
(or `--default-drift-mode`) says.

Place in the flow: the settled fast path of the reconciler; correction is
a server-side apply as helm's field manager (`drift.DriftDetector.correct`),
never a helm call, so it makes no revision.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helm_operator.api.conditions import get_condition
from helm_operator.api.constants import REASON_SYNCED
from helm_operator.api.controls import DriftMode
from helm_operator.api.helmrelease import HelmRelease
from helm_operator.kube import KubeError
from helm_operator.kube.apply import ObjectRef
from helm_operator.release import ownership
from helm_operator.release.base import DONE, DRIFTED, EngineBase, Result, log
from helm_operator.release.driftrules import ignored_paths, relevant
from helm_operator.release.record import Note
from helm_operator.release.state import retry_delay
from helm_operator.runtime.queueing import jittered
from helm_operator.runtime.logs import fields


class DriftMixin(EngineBase):
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
            log.warning("drift check failed: %s", e, extra=fields(object=hr.key, action="drift-check", error=e))
            return DONE
        drifted = relevant(found, hr.controls.drift.ignore)
        was = (get_condition(hr.status.get("conditions"), DRIFTED) or {}).get("status")
        if not drifted:
            log.debug("drift check: live objects match revision %d", revisions[0].revision,
                      extra=fields(object=hr.key, action="drift-check", revision=revisions[0].revision))
            if was == "True":
                await self._note(hr, obj, Note(conditions=((DRIFTED, "False", "NoDrift",
                                                            "live objects match the release"),)))
            return DONE
        summary = "; ".join(str(d) for d in drifted)[:800]
        mode = self._drift_mode(hr)
        log.warning("objects changed outside Git (drift %s): %s", mode.value, summary,
                    extra=fields(object=hr.key, action="drift-check", revision=revisions[0].revision))
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
        # (a cluster-scoped object's namespace differs between the two lists: match without it)
        unstamped = await asyncio.to_thread(ownership.unstamped, record.manifest, hr.target_namespace,
                                            hr.antecedent) if any(d.missing for d in drifted) else []
        lacking = {(o.api_version, o.kind, o.name) for o in unstamped}
        recreated = [ObjectRef(d.api_version, d.kind, d.name, d.namespace) for d in drifted
                     if d.missing and (d.api_version, d.kind, d.name) in lacking]
        if recreated:  # put back from a manifest without the annotation: mark them as ours
            await ownership.stamp(self.cluster, recreated, hr.antecedent)
        await self._note(hr, obj, Note(
            conditions=((DRIFTED, "False", "DriftCorrected", f"put back: {summary}"),),
            event=("Normal", REASON_SYNCED, f"restoring objects changed by hand: {summary}")))
        return DONE
