"""Uninstall a release: one `helm uninstall`. A release already gone is a success."""

from __future__ import annotations

from helm_operator.helm import HelmError, ReleaseNotFound
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.runtime.metrics import Metrics


async def uninstall(helm: HelmActions, metrics: Metrics, release_name: str, namespace: str,
                    timeout: int) -> ActionResult:
    try:
        with metrics.time_action("uninstall", namespace, release_name):
            await helm.uninstall(release_name, namespace, timeout)
    except ReleaseNotFound:
        pass
    except HelmError as e:
        return ActionResult(False, e.message, e.kind)
    return ActionResult(True, f"uninstalled {release_name}")
