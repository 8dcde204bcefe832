"""Install or upgrade: one `helm upgrade --install`.

The revision helm makes is labelled with its own number and the digest of
the configuration (`helm.storage.ATTEMPT_LABEL`) and with its owner, and the
digest goes in its description too, so the cluster itself tells later which
configuration each revision applied and whose it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm import HelmError, UpgradeOptions
from helm_operator.helm.storage import ATTEMPT_LABEL, OWNER_LABEL, attempt_label, owner_label
from helm_operator.release.actions import ActionResult, HelmActions
from helm_operator.release.state import describe_digest
from helm_operator.release.tenancy import explain_forbidden
from helm_operator.runtime.metrics import Metrics


@dataclass(frozen=True)
class DeployRequest:
    hr: HelmRelease
    chart_path: Path
    values: dict[str, Any]
    desired: str               # configuration digest
    next_revision: int         # the revision helm will make (newest + 1)
    install: bool
    impersonate: str | None = None  # the ServiceAccount helm acts as (tenancy)
    labels: dict[str, str] = field(default_factory=dict)  # the HelmRelease's shard label(s), for the storage watch


def options(req: DeployRequest) -> UpgradeOptions:
    hr = req.hr
    return UpgradeOptions(
        timeout_seconds=hr.timeout, wait=hr.wait, force=hr.force_upgrade and not req.install,
        reset_values=hr.reset_values is not False, skip_crds=hr.skip_crds,
        max_history=hr.max_history, disable_openapi_validation=hr.disable_openapi_validation,
        description=describe_digest(req.desired),
        # The HelmRelease's own namespace exists; helm would apply it on every call.
        create_namespace=hr.target_namespace != hr.namespace,
        antecedent=hr.antecedent,
        labels={**req.labels, ATTEMPT_LABEL: attempt_label(req.next_revision, req.desired),
                OWNER_LABEL: owner_label(hr.namespace, hr.name)},
    )


async def deploy(helm: HelmActions, metrics: Metrics, req: DeployRequest) -> ActionResult:
    hr = req.hr
    verb = "install" if req.install else "upgrade"
    try:
        with metrics.time_action(verb, hr.target_namespace, hr.release_name):
            record = await helm.upgrade_install(hr.release_name, req.chart_path, hr.target_namespace,
                                                req.values, options(req), impersonate=req.impersonate)
    except HelmError as e:
        return ActionResult(False, explain_forbidden(e.message) or e.message, e.kind)
    return ActionResult(True, f"helm {verb} of {hr.release_name} made revision {record.revision}", record=record)
