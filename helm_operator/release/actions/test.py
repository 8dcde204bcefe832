"""Run the release's tests: one `helm test`."""

from __future__ import annotations

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm import HelmError
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.tenancy import explain_forbidden
from helm_operator.runtime.metrics import Metrics


async def run_tests(helm: HelmActions, metrics: Metrics, hr: HelmRelease,
                    impersonate: str | None = None) -> ActionResult:
    try:
        with metrics.time_action("test", hr.target_namespace, hr.release_name):
            await helm.test(hr.release_name, hr.target_namespace, hr.test.timeout, impersonate=impersonate)
    except HelmError as e:
        return ActionResult(False, explain_forbidden(e.message) or e.message, e.kind)
    return ActionResult(True, f"helm test of {hr.release_name} passed")
