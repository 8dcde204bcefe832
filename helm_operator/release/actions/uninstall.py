"""Uninstall a release: one `helm uninstall`. A release already gone is a success."""

from __future__ import annotations

from helm_operator.helm import HelmError, ReleaseNotFound
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.tenancy import explain_forbidden
from helm_operator.runtime.metrics import Metrics


async def uninstall(helm: HelmActions, metrics: Metrics, release_name: str, namespace: str,
                    timeout: int, impersonate: str | None = None) -> ActionResult:
    try:
        with metrics.time_action("uninstall", namespace, release_name):
            await helm.uninstall(release_name, namespace, timeout, impersonate=impersonate)
    except ReleaseNotFound:
        pass
    except HelmError as e:
        return ActionResult(False, explain_forbidden(e.message) or e.message, e.kind)
    return ActionResult(True, f"uninstalled {release_name}")
