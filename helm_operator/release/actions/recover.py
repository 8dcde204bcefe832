"""Recover a release an interrupted helm call left `pending-*`: one helm call.

`pending-install` (or `uninstalling`): uninstall, so it can be installed
again. `pending-upgrade`: roll back to the last deployed revision, so the
upgrade can run again. `pending-rollback`: finish that rollback (to the same
target), never re-run the upgrade it was undoing. Rollbacks here use helm's
defaults (no wait, no force): their job is to unlock the release.
"""

from __future__ import annotations

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm import HelmError
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.actions.uninstall import uninstall
from helm_operator.runtime.metrics import Metrics


async def recover(helm: HelmActions, metrics: Metrics, hr: HelmRelease, target: int | None,
                  impersonate: str | None = None) -> ActionResult:
    if target is None:
        return await uninstall(helm, metrics, hr.release_name, hr.target_namespace, hr.timeout, impersonate)
    try:
        with metrics.time_action("rollback", hr.target_namespace, hr.release_name):
            await helm.rollback(hr.release_name, hr.target_namespace, target,
                                timeout_seconds=hr.rollback.timeout, wait=False, force=False,
                                disable_hooks=False, max_history=hr.max_history, impersonate=impersonate)
    except HelmError as e:
        return ActionResult(False, e.message, e.kind)
    return ActionResult(True, f"rolled back {hr.release_name} to revision {target}")
