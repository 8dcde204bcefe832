"""Roll back to a named revision: one `helm rollback`, with `spec.rollback`'s options."""

from __future__ import annotations

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm import HelmError
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.tenancy import explain_forbidden
from helm_operator.runtime.metrics import Metrics


async def roll_back(helm: HelmActions, metrics: Metrics, hr: HelmRelease, target: int | None,
                    impersonate: str | None = None) -> ActionResult:
    try:
        with metrics.time_action("rollback", hr.target_namespace, hr.release_name):
            await helm.rollback(hr.release_name, hr.target_namespace, target,
                                timeout_seconds=hr.rollback.timeout, wait=hr.rollback.wait,
                                force=hr.rollback.force, disable_hooks=hr.rollback.disable_hooks,
                                max_history=hr.max_history, impersonate=impersonate)
    except HelmError as e:
        return ActionResult(False, explain_forbidden(e.message) or e.message, e.kind)
    where = f"revision {target}" if target is not None else "the previous revision"
    return ActionResult(True, f"rolled back {hr.release_name} to {where}")
