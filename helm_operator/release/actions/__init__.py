"""One module per helm action, each making exactly one helm call.

Place in the flow: the reconciler runs the action `state.determine` chose and
records the `ActionResult` (in `record`), then observes the cluster again.
Actions decide nothing: which revision to roll back to, whether to wait or
to force, who helm acts as (`impersonate`, tenancy), all come in as
arguments. Errors become results, never raise; an RBAC refusal of an
impersonated ServiceAccount says what to grant (`tenancy.explain_forbidden`).

    deploy      helm upgrade --install (install and upgrade)
    test        helm test
    rollback    helm rollback to a named revision (remediation)
    uninstall   helm uninstall (remediation of a failed install, deletion)
    recover     finish or undo what an interrupted helm call left pending
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from helm_operator.helm import FailureKind, ReleaseRecord, UpgradeOptions


@dataclass(frozen=True)
class ActionResult:
    """What one helm call did."""

    ok: bool
    message: str                          # helm's error (redacted), or a one-line summary
    failure: FailureKind | None = None
    record: ReleaseRecord | None = None   # the release helm reported (deploy only)


class HelmActions(Protocol):
    """The helm calls actions make (the real one is `helm.Helm`; tests use a fake)."""

    async def upgrade_install(self, release: str, chart: Path | str, namespace: str,
                              values: dict[str, Any], opts: UpgradeOptions, *,
                              impersonate: str | None = None) -> ReleaseRecord: ...

    async def rollback(self, release: str, namespace: str, revision: int | None, *,
                       timeout_seconds: int, wait: bool, force: bool, disable_hooks: bool,
                       max_history: int, impersonate: str | None = None) -> None: ...

    async def test(self, release: str, namespace: str, timeout_seconds: int, *,
                   impersonate: str | None = None) -> None: ...

    async def uninstall(self, release: str, namespace: str, timeout_seconds: int, wait: bool = False, *,
                        impersonate: str | None = None) -> None: ...


__all__ = ["ActionResult", "HelmActions"]
