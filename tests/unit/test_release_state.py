"""state.determine, as a table: every State and the facts that lead to it.

Each row gives the HelmRelease spec, the facts the reconciler would gather
(helm's storage as revision labels, the status' counters and history) and
the decision expected. Revisions are written newest first, as storage
reads them; `ours(n, D)` is a revision this operator made with
configuration D (its attempt label names itself), `copied(n, m, D)` one
whose labels were copied from revision m (a rollback) or inherited from it
(a hand `helm upgrade`), `bare(n)` one without our labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from helm_operator.api.helmrelease import HelmRelease, parse
from helm_operator.helm.failures import FailureKind
from helm_operator.helm.storage import MAX_DIGEST_IN_LABEL, RevisionMeta
from helm_operator.release.history import Snapshot
from helm_operator.release.state import (
    Action,
    Decision,
    Facts,
    State,
    determine,
    may_retry_after_rollback,
    precondition,
    retry_delay,
)

DESIRED = "d" * 64   # the configuration the HelmRelease asks for
OLD = "0" * 64       # an earlier configuration
OTHER = "e" * 64     # yet another one
NOW = 1_800_000_000.0
OWNER = "apps.web"


def ours(n: int, status: str, digest: str = DESIRED) -> RevisionMeta:
    return RevisionMeta(n, status, n, digest[:MAX_DIGEST_IN_LABEL], OWNER, f"sh.helm.release.v1.apps-web.v{n}")


def copied(n: int, status: str, source: int, digest: str = DESIRED) -> RevisionMeta:
    return RevisionMeta(n, status, source, digest[:MAX_DIGEST_IN_LABEL], OWNER, f"sh.helm.release.v1.apps-web.v{n}")


def bare(n: int, status: str) -> RevisionMeta:
    return RevisionMeta(n, status, secret=f"sh.helm.release.v1.apps-web.v{n}")


def snap(revision: int, action: str, test_result: str | None = None) -> Snapshot:
    return Snapshot(revision=revision, action=action, status="deployed", test_result=test_result)


def hr(**spec: Any) -> HelmRelease:
    base: dict[str, Any] = {"chart": {"repository": "https://charts.example.com/", "name": "podinfo",
                                      "version": "6.0.0"}}
    base.update(spec)
    return parse({"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
                  "metadata": {"name": "web", "namespace": "apps", "generation": 1}, "spec": base})


ROLLBACK = {"rollback": {"enable": True}}
RETRY = {"rollback": {"enable": True, "retry": True, "maxRetries": 2}}
UNLIMITED = {"rollback": {"enable": True, "retry": True, "maxRetries": 0}}
TEST = {"test": {"enable": True}}
TEST_ROLLBACK = {"test": {"enable": True}, "rollback": {"enable": True}}
TEST_IGNORE = {"test": {"enable": True, "ignoreFailures": True}}

# A failed attempt of DESIRED, `ago` seconds before NOW, as the status records it.
def failed_before(failures: int = 1, ago: float = 1.0, digest: str = DESIRED) -> dict[str, Any]:
    return {"failures": failures, "last_attempted_digest": digest, "last_failure_at": NOW - ago}


@dataclass(frozen=True)
class Row:
    name: str
    revisions: tuple[RevisionMeta, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    state: State = State.IN_SYNC
    action: Action = Action.NONE
    target: int | None = None
    retry: bool = False
    remediation: bool = False
    requeue_after: float | None = None
    settled: bool = False
    reason: str = ""  # a phrase the reason must hold
    xfail: str = ""   # a known engine bug: why the row fails


ROWS = [
    # ---- Absent ------------------------------------------------------------------
    Row("absent: install", (), state=State.ABSENT, action=Action.INSTALL, reason="does not exist"),
    Row("absent after a hand uninstall: install again", (), facts={"head": snap(1, "install")},
        state=State.ABSENT, action=Action.INSTALL, reason="uninstalled outside this operator"),
    Row("uninstalled with --keep-history: install", (bare(2, "uninstalled"), bare(1, "superseded")),
        state=State.ABSENT, action=Action.INSTALL),
    Row("absent while the retry of a failed install waits for its backoff", (),
        facts=failed_before(1, ago=2.0), state=State.ABSENT, action=Action.NONE, requeue_after=3.0,
        retry=True, reason="waiting 3s before attempt 2"),
    Row("absent after the backoff: install again (a retry)", (), facts=failed_before(1, ago=5.0),
        state=State.ABSENT, action=Action.INSTALL, retry=True),
    Row("the backoff doubles with each failure: 20s after the third", (), facts=failed_before(3, ago=19.0),
        state=State.ABSENT, action=Action.NONE, requeue_after=1.0, retry=True),
    Row("... and is over at 20s", (), facts=failed_before(3, ago=20.0),
        state=State.ABSENT, action=Action.INSTALL, retry=True),
    Row("a changed configuration does not wait for the backoff of the old one", (),
        facts=failed_before(4, ago=1.0, digest=OLD), state=State.ABSENT, action=Action.INSTALL),
    Row("a failure without a recorded time is not held", (),
        facts={"failures": 2, "last_attempted_digest": DESIRED, "last_failure_at": None},
        state=State.ABSENT, action=Action.INSTALL, retry=True),
    # ---- Unowned -------------------------------------------------------------------
    Row("owned by another HelmRelease (its owner label or its objects' antecedent): leave it",
        (ours(1, "deployed", OLD),), facts={"foreign_owner": "apps:helmrelease/other"},
        state=State.UNOWNED, action=Action.NONE, reason="managed by apps:helmrelease/other"),
    Row("owned by another HelmRelease even while failed", (ours(2, "failed"), ours(1, "deployed", OLD)),
        spec=ROLLBACK, facts={"foreign_owner": "apps:helmrelease/other"}, state=State.UNOWNED),
    # ---- Pending: an interrupted helm call -----------------------------------------------
    Row("pending-install: uninstall it", (ours(1, "pending-install"),),
        state=State.PENDING, action=Action.RECOVER, target=None, remediation=True, reason="uninstall"),
    Row("uninstalling: uninstall it", (bare(2, "uninstalling"), ours(1, "superseded")),
        state=State.PENDING, action=Action.RECOVER, target=None, remediation=True),
    Row("pending-upgrade: roll back to the deployed revision",
        (ours(2, "pending-upgrade"), ours(1, "deployed", OLD)),
        state=State.PENDING, action=Action.RECOVER, target=1, remediation=True),
    Row("pending-upgrade over a failed install: uninstall", (ours(2, "pending-upgrade"), ours(1, "failed", OLD)),
        state=State.PENDING, action=Action.RECOVER, target=None, remediation=True),
    Row("pending-rollback after a failed upgrade: finish the rollback to its target",
        (copied(3, "pending-rollback", 1, OLD), ours(2, "failed"), ours(1, "deployed", OLD)),
        spec=ROLLBACK, state=State.PENDING, action=Action.RECOVER, target=1, remediation=True,
        reason="finish the rollback to revision 1"),
    Row("pending-rollback after failed tests: finish the rollback to its target, not to the tested revision",
        (copied(3, "pending-rollback", 1, OLD), ours(2, "deployed"), ours(1, "superseded", OLD)),
        spec=TEST_ROLLBACK, state=State.PENDING, action=Action.RECOVER, target=1, remediation=True,
        reason="finish the rollback to revision 1"),
    Row("pending-rollback whose target is gone (pruned) or unlabelled: the newest deployed revision before it",
        (copied(4, "pending-rollback", 1, OLD), ours(3, "failed"), ours(2, "deployed", OTHER)),
        state=State.PENDING, action=Action.RECOVER, target=2, remediation=True,
        reason="finish the rollback to revision 2"),
    Row("pending-rollback of a hand rollback (no labels): the newest deployed revision before it",
        (bare(3, "pending-rollback"), ours(2, "failed"), ours(1, "deployed", OLD)),
        state=State.PENDING, action=Action.RECOVER, target=1, remediation=True),
    Row("remediation never waits for a backoff", (ours(2, "pending-upgrade"), ours(1, "deployed", OLD)),
        facts=failed_before(3, ago=0.0), state=State.PENDING, action=Action.RECOVER, target=1, remediation=True),
    # ---- FailedInstall -----------------------------------------------------------------
    Row("failed install: uninstall it, then install again", (ours(1, "failed"),),
        state=State.FAILED_INSTALL, action=Action.UNINSTALL, remediation=True),
    Row("failed install, right after the failure: the uninstall does not wait", (ours(1, "failed"),),
        facts=failed_before(1, ago=0.0), state=State.FAILED_INSTALL, action=Action.UNINSTALL, remediation=True),
    # ---- Failed --------------------------------------------------------------------------
    Row("failed upgrade of this configuration, rollback enabled: roll back",
        (ours(2, "failed"), ours(1, "deployed", OLD)), spec=ROLLBACK, facts=failed_before(1, ago=0.0),
        state=State.FAILED, action=Action.ROLLBACK, target=1, remediation=True),
    Row("failed upgrade, rollback enabled: the target is the newest deployed or superseded revision",
        (ours(4, "failed"), ours(3, "superseded", OLD), ours(2, "failed", OTHER), ours(1, "superseded", OLD)),
        spec=ROLLBACK, state=State.FAILED, action=Action.ROLLBACK, target=3, remediation=True),
    Row("failed upgrade, rollback disabled: retry, once the backoff is over",
        (ours(2, "failed"), ours(1, "deployed", OLD)), facts=failed_before(1, ago=1.0),
        state=State.FAILED, action=Action.NONE, requeue_after=4.0, retry=True),
    Row("failed upgrade, rollback disabled, after the backoff: upgrade again",
        (ours(2, "failed"), ours(1, "deployed", OLD)), facts=failed_before(1, ago=5.0),
        state=State.FAILED, action=Action.UPGRADE, retry=True),
    Row("upgrade rejected by the API server, rollback enabled: no rollback, no retry",
        (ours(2, "failed"), ours(1, "deployed", OLD)), spec=ROLLBACK,
        facts={**failed_before(1, ago=1.0), "newest_failure": FailureKind.REJECTED},
        state=State.FAILED, action=Action.NONE, settled=True, reason="rejected revision 2"),
    Row("upgrade rejected by the API server, long after: still waits for a change",
        (ours(2, "failed"), ours(1, "deployed", OLD)), spec=ROLLBACK,
        facts={**failed_before(1, ago=3600.0), "newest_failure": FailureKind.REJECTED},
        state=State.FAILED, action=Action.NONE, settled=True, reason="revision 1 stays deployed"),
    Row("upgrade rejected by the API server, forced: upgrade once",
        (ours(2, "failed"), ours(1, "deployed", OLD)), spec=ROLLBACK,
        facts={**failed_before(1, ago=1.0), "newest_failure": FailureKind.REJECTED, "force": True},
        state=State.FAILED, action=Action.UPGRADE, reason="forced by reconcile.fluxcd.io/forceAt"),
    Row("a retry waiting on its backoff, asked for by hand (requestedAt): goes now",
        (ours(2, "failed"), ours(1, "deployed", OLD)),
        facts={**failed_before(1, ago=1.0), "manual": True},
        state=State.FAILED, action=Action.UPGRADE, retry=True),
    Row("a timed-out upgrade is remediated (it changed the cluster)",
        (ours(2, "failed"), ours(1, "deployed", OLD)), spec=ROLLBACK,
        facts={"newest_failure": FailureKind.TIMEOUT}, state=State.FAILED, action=Action.ROLLBACK, target=1,
        remediation=True),
    Row("failed revision of another configuration: upgrade at once, no rollback",
        (ours(2, "failed", OLD), ours(1, "deployed", OLD)), spec=ROLLBACK,
        facts=failed_before(1, ago=0.0, digest=OLD), state=State.FAILED, action=Action.UPGRADE,
        reason="not this configuration"),
    Row("failed revision made by hand: upgrade", (bare(2, "failed"), ours(1, "deployed")), spec=ROLLBACK,
        state=State.FAILED, action=Action.UPGRADE),
    # ---- InSync / OutOfSync ----------------------------------------------------------------------
    Row("deployed with this configuration: nothing to do", (ours(1, "deployed"),), settled=True),
    Row("deployed with this configuration after superseded ones", (ours(3, "deployed"), ours(2, "superseded", OLD)),
        settled=True),
    Row("deployed by an older operator (digest in the description only): in sync",
        (bare(1, "deployed"),), facts={"newest_legacy_digest": DESIRED}, settled=True),
    Row("deployed by an older operator with another configuration: upgrade",
        (bare(1, "deployed"),), facts={"newest_legacy_digest": OLD},
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="configuration changed"),
    Row("installed by hand (no digest anywhere): upgrade to adopt it", (bare(1, "deployed"),),
        state=State.OUT_OF_SYNC, action=Action.UPGRADE),
    Row("configuration changed: upgrade", (ours(1, "deployed", OLD),),
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="configuration changed"),
    Row("configuration changed while an old failure's backoff runs: upgrade at once",
        (ours(1, "deployed", OLD),), facts=failed_before(5, ago=0.0, digest=OTHER),
        state=State.OUT_OF_SYNC, action=Action.UPGRADE),
    Row("hand rollback (labels copied from the target): upgrade",
        (copied(3, "deployed", 1, OLD), ours(2, "superseded"), ours(1, "superseded", OLD)),
        facts={"head": snap(2, "upgrade"), "last_attempted_digest": DESIRED},
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="made outside this operator"),
    Row("hand rollback to a revision of this very configuration: still upgrade (labels name another revision)",
        (copied(3, "deployed", 1), ours(2, "superseded", OLD), ours(1, "superseded")),
        facts={"head": snap(2, "upgrade")}, state=State.OUT_OF_SYNC, action=Action.UPGRADE,
        reason="made outside this operator"),
    Row("hand `helm upgrade --set` (labels inherited from our revision): upgrade",
        (copied(2, "deployed", 1), ours(1, "superseded")), facts={"head": snap(1, "install")},
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="made outside this operator"),
    Row("superseded as newest revision: upgrade", (ours(2, "superseded"), ours(1, "superseded", OLD)),
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="release is superseded"),
    Row("unknown status: upgrade", (bare(2, "unknown"), ours(1, "superseded")),
        state=State.OUT_OF_SYNC, action=Action.UPGRADE, reason="release is unknown"),
    Row("superseded as newest, retry of a failed configuration: waits", (ours(2, "superseded"),),
        facts=failed_before(2, ago=1.0), state=State.OUT_OF_SYNC, action=Action.NONE, requeue_after=9.0,
        retry=True),
    # ---- Untested / TestFailed --------------------------------------------------------------------------
    Row("untested: run the tests", (ours(1, "deployed"),), spec=TEST, facts={"head": snap(1, "install")},
        state=State.UNTESTED, action=Action.TEST),
    Row("untested, no history yet: run the tests", (ours(1, "deployed"),), spec=TEST,
        state=State.UNTESTED, action=Action.TEST),
    Row("untested, the history names an older revision: run the tests",
        (ours(2, "deployed"), ours(1, "superseded", OLD)), spec=TEST, facts={"head": snap(1, "install", "passed")},
        state=State.UNTESTED, action=Action.TEST),
    Row("tests passed: nothing to do", (ours(1, "deployed"),), spec=TEST,
        facts={"head": snap(1, "install", "passed")}, settled=True),
    Row("tests disabled: a failed result does not count", (ours(1, "deployed"),),
        facts={"head": snap(1, "install", "failed")}, settled=True),
    Row("test failed after install: uninstall it", (ours(1, "deployed"),), spec=TEST_ROLLBACK,
        facts={"head": snap(1, "install", "failed")}, state=State.TEST_FAILED, action=Action.UNINSTALL,
        remediation=True),
    Row("test failed after upgrade, rollback enabled: roll back",
        (ours(2, "deployed"), ours(1, "superseded", OLD)), spec=TEST_ROLLBACK,
        facts={"head": snap(2, "upgrade", "failed")}, state=State.TEST_FAILED, action=Action.ROLLBACK,
        target=1, remediation=True),
    Row("test failed after upgrade, rollback disabled: report and wait for a change",
        (ours(2, "deployed"), ours(1, "superseded", OLD)), spec=TEST,
        facts={"head": snap(2, "upgrade", "failed")}, state=State.TEST_FAILED, settled=True,
        reason="set test.ignoreFailures"),
    Row("test failed, ignoreFailures: in sync", (ours(1, "deployed"),), spec=TEST_IGNORE,
        facts={"head": snap(1, "install", "failed")}, settled=True),
    # ---- RolledBack ----------------------------------------------------------------------------------
    Row("rolled back from this configuration, no retry: wait for a change",
        (copied(3, "deployed", 1, OLD), ours(2, "failed"), ours(1, "superseded", OLD)), spec=ROLLBACK,
        facts={"head": snap(3, "rollback"), "last_attempted_digest": DESIRED, "rollback_count": 1,
               "failures": 1, "last_failure_at": NOW},
        state=State.ROLLED_BACK, settled=True, reason="enable rollback.retry"),
    Row("rolled back, retry within maxRetries, backoff running: wait",
        (copied(3, "deployed", 1, OLD), ours(2, "failed"), ours(1, "superseded", OLD)), spec=RETRY,
        facts={"head": snap(3, "rollback"), "rollback_count": 2, **failed_before(1, ago=1.0)},
        state=State.ROLLED_BACK, action=Action.NONE, requeue_after=4.0, retry=True),
    Row("rolled back, retry within maxRetries, after the backoff: upgrade again",
        (copied(3, "deployed", 1, OLD), ours(2, "failed"), ours(1, "superseded", OLD)), spec=RETRY,
        facts={"head": snap(3, "rollback"), "rollback_count": 2, **failed_before(1, ago=5.0)},
        state=State.ROLLED_BACK, action=Action.UPGRADE, retry=True),
    Row("rolled back more than maxRetries times: stop",
        (copied(3, "deployed", 1, OLD), ours(2, "failed"), ours(1, "superseded", OLD)), spec=RETRY,
        facts={"head": snap(3, "rollback"), "rollback_count": 3, **failed_before(1, ago=500.0)},
        state=State.ROLLED_BACK, settled=True),
    Row("maxRetries 0 retries without limit",
        (copied(3, "deployed", 1, OLD), ours(2, "failed"), ours(1, "superseded", OLD)), spec=UNLIMITED,
        facts={"head": snap(3, "rollback"), "rollback_count": 99, **failed_before(1, ago=5.0)},
        state=State.ROLLED_BACK, action=Action.UPGRADE, retry=True),
    Row("rolled back after failed tests (the undone revision was superseded): wait for a change",
        (copied(3, "deployed", 1, OLD), ours(2, "superseded"), ours(1, "superseded", OLD)), spec=TEST_ROLLBACK,
        facts={"head": snap(3, "rollback"), "last_attempted_digest": DESIRED, "rollback_count": 1},
        state=State.ROLLED_BACK, settled=True),
    Row("a new configuration after a rollback: upgrade at once",
        (copied(3, "deployed", 1, OLD), ours(2, "failed", OTHER), ours(1, "superseded", OLD)), spec=ROLLBACK,
        facts={"head": snap(3, "rollback"), "rollback_count": 1, **failed_before(1, ago=0.0, digest=OTHER)},
        state=State.OUT_OF_SYNC, action=Action.UPGRADE),
]


def facts_for(row: Row) -> Facts:
    return Facts(desired=DESIRED, revisions=row.revisions, now=NOW, **row.facts)


@pytest.mark.parametrize("row", [
    pytest.param(r, id=r.name, marks=[pytest.mark.xfail(strict=True, reason=r.xfail)] if r.xfail else [])
    for r in ROWS])
def test_determine(row: Row) -> None:
    d: Decision = determine(hr(**row.spec), facts_for(row))
    got = (d.state, d.action, d.target, d.retry, d.remediation, d.settled)
    assert got == (row.state, row.action, row.target, row.retry, row.remediation, row.settled), d.reason
    if row.requeue_after is None:
        assert d.requeue_after is None, d.reason
    else:
        assert d.requeue_after == pytest.approx(row.requeue_after), d.reason
    assert row.reason in d.reason


def test_every_state_and_action_is_in_the_table() -> None:
    decisions = [determine(hr(**r.spec), facts_for(r)) for r in ROWS]
    held = {State.SUSPENDED, State.WAITING}  # decided by `precondition`, below
    assert {d.state for d in decisions} == set(State) - held
    assert {d.action for d in decisions} == set(Action)


def test_a_suspended_release_is_held_before_anything_else() -> None:
    d = precondition(hr(suspend=True, dependsOn=[{"name": "db"}]), ["apps/db is not Ready"])
    assert d is not None and (d.state, d.action, d.settled) == (State.SUSPENDED, Action.NONE, True)


def test_a_release_waits_for_its_dependencies_and_names_them() -> None:
    d = precondition(hr(dependsOn=[{"name": "db"}]), ["apps/db is not Ready (DeployFailed: boom)"])
    assert d is not None and (d.state, d.action) == (State.WAITING, Action.NONE)
    assert "apps/db is not Ready" in d.reason and d.requeue_after is None


def test_a_dependency_cycle_is_reported_with_its_chain() -> None:
    d = precondition(hr(dependsOn=[{"name": "b"}]), [], cycle=["apps/a", "apps/b", "apps/a"])
    assert d is not None and d.reason.startswith("dependency cycle: apps/a -> apps/b -> apps/a")


def test_nothing_holds_a_release_without_suspend_or_waiting_dependencies() -> None:
    assert precondition(hr(dependsOn=[{"name": "db"}]), []) is None


def test_a_decision_that_waits_is_not_settled_and_one_that_acts_does_not_wait() -> None:
    for r in ROWS:
        d = determine(hr(**r.spec), facts_for(r))
        assert not (d.settled and d.requeue_after is not None), r.name
        if d.action is not Action.NONE:
            assert d.requeue_after is None and not d.settled, r.name


def test_retry_delay_is_5s_doubling_to_5_minutes() -> None:
    assert [retry_delay(n) for n in (0, 1, 2, 3, 4, 7, 8, 50)] == [5, 5, 10, 20, 40, 300, 300, 300]


@pytest.mark.parametrize(("spec", "count", "allowed"), [
    ({"rollback": {"enable": True}}, 0, False),
    ({"rollback": {"enable": True, "retry": True}}, 5, True),     # maxRetries defaults to 5
    ({"rollback": {"enable": True, "retry": True}}, 6, False),
    ({"rollback": {"enable": True, "retry": True, "maxRetries": 0}}, 1000, True),
])
def test_may_retry_after_rollback_follows_compat(spec: dict[str, Any], count: int, allowed: bool) -> None:
    assert may_retry_after_rollback(hr(**spec), count) is allowed
