"""Name the state of a release and the one action it calls for. Pure.

Every release policy lives here: install, upgrade, test, remediation after
a failed install, upgrade or test (rollback or uninstall), recovery of a
release left `pending-*` by a killed helm, when to retry and when to wait.
The reconciler gathers `Facts` from the cluster (helm's storage, the
HelmRelease's status) and runs what `determine` returns, then observes again.

How the facts answer "which configuration is deployed?": each revision the
operator makes carries its configuration digest in a storage label that
names the revision itself (`helm.storage`), so a hand `helm upgrade` (which
inherits our labels) or `helm rollback` is told apart from our own work.
Revisions made by earlier versions of this operator carry the digest in
their description instead. A rollback made by the operator is known from
`status.history`; the configuration last attempted and the count of
consecutive failures are in the status too, so all of it survives a restart.

Retries: an action that would try again a configuration that already failed
waits until its backoff has passed (5 s doubling to 5 min, counted from the
last failure); any change of the desired configuration acts at once.
Remediation (rollback, uninstall of a failed install, recovery) never waits.
A revision the API server rejected (schema, types, immutable fields) is
neither rolled back nor retried: it changed nothing, and trying the same
configuration again cannot succeed; the status says so until a change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from helm_operator.api.helmrelease import HelmRelease
from helm_operator.helm.failures import FailureKind
from helm_operator.helm.storage import DEPLOYED_STATUSES, PENDING_STATUSES, RevisionMeta
from helm_operator.release.history import Snapshot
from helm_operator.runtime.queueing import BackoffPolicy

DIGEST_PREFIX = "helm-operator config "
_DIGEST = re.compile(r"helm-operator config ([0-9a-f]{16,64})")
RETRY_BACKOFF = BackoffPolicy(base=5.0, factor=2.0, cap=300.0)


def describe_digest(digest: str) -> str:
    """The helm `--description` that records which configuration a revision applied."""
    return f"{DIGEST_PREFIX}{digest}"


def digest_in(description: str) -> str | None:
    m = _DIGEST.search(description)
    return m.group(1) if m else None


def retry_delay(failures: int) -> float:
    """Seconds between the `failures`-th consecutive failure and the next attempt."""
    return RETRY_BACKOFF.delay(max(failures - 1, 0))


class State(StrEnum):
    SUSPENDED = "Suspended"          # spec.suspend: no action of any kind
    WAITING = "DependencyNotReady"   # spec.dependsOn: a dependency is not Ready yet
    UNOWNED = "Unowned"              # the release belongs to another HelmRelease: leave it
    ABSENT = "Absent"                # no release: install
    PENDING = "Pending"              # pending-* left by an interrupted helm: recover
    FAILED_INSTALL = "FailedInstall" # never deployed and failed: uninstall, then install again
    FAILED = "Failed"                # the newest revision failed: roll back or retry
    UNTESTED = "Untested"            # deployed with this configuration, tests not run yet
    TEST_FAILED = "TestFailed"       # deployed with this configuration, tests failed
    ROLLED_BACK = "RolledBack"       # rolled back from this configuration: wait, or retry
    OUT_OF_SYNC = "OutOfSync"        # deployed, but not with this configuration: upgrade
    IN_SYNC = "InSync"               # deployed with this configuration: nothing to do


class Action(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    TEST = "test"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    RECOVER = "recover"
    NONE = "none"


@dataclass(frozen=True)
class Facts:
    """What the cluster says about one release, gathered by the reconciler."""

    desired: str                                   # digest of the configuration the HelmRelease asks for
    revisions: tuple[RevisionMeta, ...] = ()       # helm's storage, newest first
    newest_failure: FailureKind | None = None      # why the newest revision failed (its description)
    newest_legacy_digest: str | None = None        # digest in the newest revision's description
    foreign_owner: str | None = None               # the other HelmRelease owning the release
    failures: int = 0                              # status.failures
    last_attempted_digest: str | None = None       # status.lastAttemptedConfigDigest
    last_failure_at: float | None = None           # epoch seconds of the last recorded failure
    head: Snapshot | None = None                   # status.history[0]
    rollback_count: int = 0
    now: float = 0.0
    acting: bool = False                           # the status says an attempt of ours was running
    manual: bool = False                           # reconcile.fluxcd.io/requestedAt: retry now, no backoff
    force: bool = False                            # reconcile.fluxcd.io/forceAt: one upgrade, whatever the state

    @property
    def newest(self) -> RevisionMeta | None:
        return self.revisions[0] if self.revisions else None


@dataclass(frozen=True)
class Decision:
    state: State
    action: Action
    reason: str                        # one line for the log and the status: why this action
    target: int | None = None          # revision to roll back to (ROLLBACK, RECOVER by rollback)
    retry: bool = False                # re-attempts a configuration that already failed (or waits to)
    remediation: bool = False          # undoes a failed attempt
    requeue_after: float | None = None # NONE while a retry waits for its backoff
    settled: bool = False              # NONE because there is nothing to do (not waiting)
    details: dict[str, str] = field(default_factory=dict)


def last_deployed(revisions: tuple[RevisionMeta, ...]) -> RevisionMeta | None:
    """The newest revision that was deployed (deployed or superseded)."""
    return next((r for r in revisions if r.status in DEPLOYED_STATUSES), None)


def _applied_digest(f: Facts) -> str | None:
    newest = f.newest
    if newest is None:
        return None
    if newest.ours:
        return newest.attempt_digest
    if newest.attempt_revision is None:
        return f.newest_legacy_digest
    return None


def _same(digest: str | None, desired: str) -> bool:
    return bool(digest) and desired.startswith(digest or "-")


def _is_retry(f: Facts) -> bool:
    return f.failures > 0 and f.last_attempted_digest == f.desired


def _gate(d: Decision, f: Facts) -> Decision:
    """Hold a retry until its backoff has passed; everything else goes now."""
    if not d.retry or f.last_failure_at is None or f.manual:
        return d
    due = f.last_failure_at + retry_delay(f.failures)
    if f.now >= due:
        return d
    wait = due - f.now
    return Decision(d.state, Action.NONE,
                    f"{d.reason}; waiting {wait:.0f}s before attempt {f.failures + 1} "
                    f"(backoff after {f.failures} failure(s))",
                    retry=True, requeue_after=wait)


def may_retry_after_rollback(hr: HelmRelease, rollback_count: int) -> bool:
    """COMPAT: retry while rollbackCount <= maxRetries (0 = unlimited)."""
    if not hr.rollback.retry:
        return False
    return hr.rollback.max_retries == 0 or rollback_count <= hr.rollback.max_retries


def precondition(hr: HelmRelease, dependencies: list[str], cycle: list[str] | None = None) -> Decision | None:
    """What holds `hr` before anything is fetched: suspension, then its dependencies.

    `dependencies` says, one line each, which dependencies are not Ready
    (for their current generation); `cycle` is the chain that leads back to
    `hr`, if its dependencies loop.
    """
    if hr.controls.suspend:
        return Decision(State.SUSPENDED, Action.NONE,
                        "suspended (spec.suspend): no install, upgrade, rollback, drift repair or automation "
                        "until it is resumed", settled=True)
    if cycle:
        return Decision(State.WAITING, Action.NONE,
                        f"dependency cycle: {' -> '.join(cycle)}; remove one of the dependsOn entries")
    if dependencies:
        return Decision(State.WAITING, Action.NONE, "waiting for dependencies: " + "; ".join(dependencies))
    return None


def determine(hr: HelmRelease, f: Facts) -> Decision:
    """The next action for `hr`, from the facts alone."""
    d = _determine(hr, f)
    if f.force and d.action is Action.NONE and d.state not in (State.UNOWNED, State.PENDING):
        action = Action.INSTALL if d.state is State.ABSENT else Action.UPGRADE
        return Decision(d.state, action, f"forced by reconcile.fluxcd.io/forceAt ({d.state.value}: one "
                                         f"{action.value} whatever the state)")
    return d


def _determine(hr: HelmRelease, f: Facts) -> Decision:
    if f.foreign_owner:
        return Decision(State.UNOWNED, Action.NONE,
                        f"release {hr.release_name} appears to be managed by {f.foreign_owner}; "
                        "rename one of the releases (spec.releaseName)")
    newest = f.newest
    if newest is None or newest.status == "uninstalled":
        reason = "release does not exist: install"
        if f.head is not None and not _is_retry(f):
            reason = "release was uninstalled outside this operator: install it again"
        return _gate(Decision(State.ABSENT, Action.INSTALL, reason, retry=_is_retry(f)), f)
    if newest.status in PENDING_STATUSES or newest.status == "uninstalling":
        return _pending(hr, f, newest)
    if newest.status == "failed":
        return _failed(hr, f, newest)
    if newest.status == "deployed":
        return _deployed(hr, f, newest)
    # superseded as newest, unknown...: helm can still upgrade over it
    return _gate(Decision(State.OUT_OF_SYNC, Action.UPGRADE, f"release is {newest.status}: upgrade",
                          retry=_is_retry(f)), f)


PENDING_GRACE = 30.0  # beyond the release's timeout, before a foreign pending call counts as dead


def _pending(hr: HelmRelease, f: Facts, newest: RevisionMeta) -> Decision:
    previous = last_deployed(f.revisions[1:])
    if not newest.ours and not f.acting and newest.modified_at is not None:
        # Not our revision, and no attempt of ours was running (a rollback's
        # revision carries its target's labels, so the status tells that one):
        # maybe a helm call someone runs right now. Give it the release's
        # timeout before treating it as interrupted.
        due = newest.modified_at + hr.timeout + PENDING_GRACE
        if f.now < due:
            return Decision(State.PENDING, Action.NONE,
                            f"revision {newest.revision} is {newest.status}, made outside this operator and "
                            f"probably still running; recovering it in {due - f.now:.0f}s if it stays so",
                            requeue_after=due - f.now)
    why = f"release is stuck in {newest.status} (an interrupted helm call)"
    if previous is None or newest.status in ("pending-install", "uninstalling"):
        return Decision(State.PENDING, Action.RECOVER, f"{why}: uninstall it", remediation=True)
    if newest.status == "pending-rollback":
        target = _rollback_target(f.revisions[1:], newest) or previous
        return Decision(State.PENDING, Action.RECOVER,
                        f"{why}: finish the rollback to revision {target.revision}",
                        target=target.revision, remediation=True, details={"finishes": "rollback"})
    return Decision(State.PENDING, Action.RECOVER, f"{why}: roll back to revision {previous.revision}",
                    target=previous.revision, remediation=True)


def _rollback_target(older: tuple[RevisionMeta, ...], pending: RevisionMeta) -> RevisionMeta | None:
    """The revision an interrupted rollback was restoring, when its labels name it.

    helm copies the target's labels onto the rollback's revision, so the
    attempt label of a rollback to a revision we made names that revision.
    The newest deployed revision is not the target after failed tests: the
    tested revision itself is still `deployed` while its rollback is pending.
    """
    return next((r for r in older if r.revision == pending.attempt_revision and r.status in DEPLOYED_STATUSES),
                None)


def _failed(hr: HelmRelease, f: Facts, newest: RevisionMeta) -> Decision:
    previous = last_deployed(f.revisions[1:])
    if previous is None:
        return Decision(State.FAILED_INSTALL, Action.UNINSTALL,
                        f"revision {newest.revision} failed before the release was ever deployed: "
                        "uninstall it, then install again", remediation=True)
    if f.head is not None and f.head.revision == newest.revision and f.head.action == "rollback":
        # Our rollback failed (its revision carries the target's labels): roll back
        # again once the backoff allows, never run the failing upgrade instead.
        target = _rollback_target(f.revisions[1:], newest) or previous
        return _gate(Decision(State.FAILED, Action.ROLLBACK,
                              f"the rollback to revision {target.revision} failed: roll back again",
                              target=target.revision, retry=True, remediation=True), f)
    if not newest.matches(f.desired):
        return _gate(Decision(State.FAILED, Action.UPGRADE,
                              f"revision {newest.revision} failed and is not this configuration: upgrade",
                              retry=_is_retry(f)), f)
    if f.newest_failure is FailureKind.REJECTED:
        # Deterministic, and nothing changed in the cluster: no rollback, and
        # no retry that would only add failed revisions; a change acts at once.
        return Decision(State.FAILED, Action.NONE,
                        f"the API server rejected revision {newest.revision}; revision {previous.revision} "
                        "stays deployed (nothing to roll back): fix the HelmRelease's values or chart",
                        settled=True)
    if hr.rollback.enable:
        return Decision(State.FAILED, Action.ROLLBACK,
                        f"upgrade to revision {newest.revision} failed: roll back to revision {previous.revision}",
                        target=previous.revision, remediation=True)
    return _gate(Decision(State.FAILED, Action.UPGRADE, f"upgrade to revision {newest.revision} failed: retry",
                          retry=True), f)


def _deployed(hr: HelmRelease, f: Facts, newest: RevisionMeta) -> Decision:
    head = f.head if f.head is not None and f.head.revision == newest.revision else None
    if _same(_applied_digest(f), f.desired):
        if hr.test.enable and (head is None or head.test_result is None):
            return Decision(State.UNTESTED, Action.TEST, f"revision {newest.revision} is deployed: run its tests")
        if hr.test.enable and head is not None and head.test_result == "failed" and not hr.test.ignore_failures:
            return _test_failed(hr, f, newest, head)
        return Decision(State.IN_SYNC, Action.NONE, "release is deployed with this configuration", settled=True)
    if _rolled_back_from_desired(f, newest, head):
        if may_retry_after_rollback(hr, f.rollback_count):
            return _gate(Decision(State.ROLLED_BACK, Action.UPGRADE,
                                  f"retry the upgrade rolled back {f.rollback_count} time(s)", retry=True), f)
        return Decision(State.ROLLED_BACK, Action.NONE,
                        "this configuration was rolled back; change the HelmRelease "
                        "or enable rollback.retry to try again", settled=True)
    if not newest.ours and newest.attempt_revision is not None:
        reason = (f"revision {newest.revision} was made outside this operator (helm upgrade or rollback "
                  "by hand): upgrade to the HelmRelease's configuration")
    else:
        reason = "configuration changed: upgrade"
    return _gate(Decision(State.OUT_OF_SYNC, Action.UPGRADE, reason, retry=_is_retry(f)), f)


def _rolled_back_from_desired(f: Facts, newest: RevisionMeta, head: Snapshot | None) -> bool:
    """Whether the deployed revision undid an attempt of the desired configuration.

    Known from status.history when the operator recorded its rollback; also
    when the operator died before recording it: the newest revision is a copy
    of an older one (its labels name another revision) right after a failed
    attempt of this configuration.
    """
    if f.last_attempted_digest != f.desired:
        return False
    if head is not None:  # the operator recorded what made the newest revision
        return head.action == "rollback"
    if newest.ours or newest.attempt_revision is None or len(f.revisions) < 2 or f.failures == 0:
        return False
    before = f.revisions[1]
    return before.matches(f.desired) and before.status in ("failed", "superseded")


def _test_failed(hr: HelmRelease, f: Facts, newest: RevisionMeta, head: Snapshot) -> Decision:
    if head.action == "install":
        return Decision(State.TEST_FAILED, Action.UNINSTALL,
                        f"tests of the new release (revision {newest.revision}) failed: uninstall it",
                        remediation=True)
    previous = last_deployed(f.revisions[1:])
    if hr.rollback.enable and previous is not None:
        return Decision(State.TEST_FAILED, Action.ROLLBACK,
                        f"tests of revision {newest.revision} failed: roll back to revision {previous.revision}",
                        target=previous.revision, remediation=True)
    return Decision(State.TEST_FAILED, Action.NONE,
                    f"revision {newest.revision} is deployed but its tests failed; fix the chart or values, "
                    "or set test.ignoreFailures", settled=True)
