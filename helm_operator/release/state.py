"""Name the state of a release and the one action it calls for. Pure.

The observed state comes from `helm history` (newest revision last) and the
digest of the desired configuration. Each revision this operator makes
carries that digest in its description, so "is the release what the
HelmRelease asks for?" is a string comparison, and a failed attempt at the
same configuration is recognised after a restart too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm import HistoryEntry

DIGEST_PREFIX = "helm-operator config "
_DIGEST = re.compile(r"helm-operator config ([0-9a-f]{16,64})")


def describe_digest(digest: str) -> str:
    """The helm `--description` that records which configuration a revision applied."""
    return f"{DIGEST_PREFIX}{digest}"


def digest_of(entry: HistoryEntry) -> str | None:
    m = _DIGEST.search(entry.description)
    return m.group(1) if m else None


class State(StrEnum):
    ABSENT = "Absent"                # no release: install
    PENDING = "Pending"              # pending-* left by a killed helm: recover
    FAILED_INSTALL = "FailedInstall" # never deployed and failed: uninstall, then install again
    FAILED = "Failed"                # last upgrade of this config failed: roll back or retry
    ROLLED_BACK = "RolledBack"       # rolled back from this config: wait for a change, or retry
    OUT_OF_SYNC = "OutOfSync"        # deployed, but not with this config: upgrade
    IN_SYNC = "InSync"               # deployed with this config: nothing to do


class Action(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    RECOVER = "recover"
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    state: State
    action: Action
    reason: str                      # one line for the log: why this action
    rollback_to: int | None = None   # for ROLLBACK / RECOVER by rollback


def _last_deployed(history: Sequence[HistoryEntry]) -> HistoryEntry | None:
    for entry in reversed(history):
        if entry.status in ("deployed", "superseded"):
            return entry
    return None


def _rolled_back_from(history: Sequence[HistoryEntry]) -> HistoryEntry | None:
    """If the current revision is a rollback, the revision it undid.

    That is the revision current when the rollback ran: `failed` after a
    failed upgrade, `superseded` after an upgrade whose tests failed.
    """
    if len(history) < 2 or not history[-1].description.startswith("Rollback to"):
        return None
    return history[-2]


def determine(hr: HelmRelease, history: Sequence[HistoryEntry] | None, desired: str,
              rollback_count: int = 0, attempted: str | None = None) -> Decision:
    """Decide the next action for `hr` given its release history.

    `attempted` is the digest of the configuration the operator last tried
    to deploy: helm replaces a failed revision's description with its error,
    so the failed revision itself no longer tells which configuration failed.
    """
    if not history:
        return Decision(State.ABSENT, Action.INSTALL, "release does not exist: install")
    current = history[-1]
    status = current.status
    if status.startswith("pending-"):
        previous = _last_deployed(history[:-1])
        return Decision(State.PENDING, Action.RECOVER,
                        f"release is stuck in {status} (an interrupted helm call): recover",
                        rollback_to=previous.revision if previous else None)
    if status == "failed":
        if _last_deployed(history[:-1]) is None:
            return Decision(State.FAILED_INSTALL, Action.UNINSTALL,
                            "release failed before it was ever deployed: uninstall, then install again")
        failed_digest = digest_of(current) or attempted
        if failed_digest == desired and hr.rollback.enable:
            target = _last_deployed(history[:-1])
            return Decision(State.FAILED, Action.ROLLBACK,
                            f"upgrade to revision {current.revision} failed: roll back",
                            rollback_to=target.revision if target else None)
        why = "retry the failed upgrade" if failed_digest == desired else "configuration changed"
        return Decision(State.FAILED, Action.UPGRADE, f"release is failed: {why}")
    if status == "deployed":
        if digest_of(current) == desired:
            return Decision(State.IN_SYNC, Action.NONE, "release is deployed with this configuration")
        undone = _rolled_back_from(history)
        if undone is not None and (digest_of(undone) or attempted) == desired:
            if may_retry_after_rollback(hr, rollback_count):
                return Decision(State.ROLLED_BACK, Action.UPGRADE,
                                f"retry the upgrade rolled back {rollback_count} time(s)")
            return Decision(State.ROLLED_BACK, Action.NONE,
                            f"revision {undone.revision} with this configuration was rolled back; "
                            "change the HelmRelease or enable rollback.retry to try again")
        return Decision(State.OUT_OF_SYNC, Action.UPGRADE, "configuration changed: upgrade")
    # superseded, uninstalling, unknown...: helm can still upgrade over it
    return Decision(State.OUT_OF_SYNC, Action.UPGRADE, f"release is {status}: upgrade")


def may_retry_after_rollback(hr: HelmRelease, rollback_count: int) -> bool:
    """COMPAT: retry while rollbackCount <= maxRetries (0 = unlimited)."""
    if not hr.rollback.retry:
        return False
    return hr.rollback.max_retries == 0 or rollback_count <= hr.rollback.max_retries
