"""record.next_status: the status after one outcome. Pure, so each rule is a
small sequence of outcomes applied to an empty status."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from helm_operator.api.constants import Phase
from helm_operator.api.helmrelease import parse_ref
from helm_operator.release.history import Snapshot
from helm_operator.release.record import Outcome, next_status

REF = parse_ref({"metadata": {"name": "web", "namespace": "apps", "generation": 3}, "spec": {}})
T0, T1, T2, T3 = "2027-01-15T08:00:00Z", "2027-01-15T08:00:05Z", "2027-01-15T08:00:10Z", "2027-01-15T08:00:20Z"


def run(*steps: tuple[Outcome, str], status: dict[str, Any] | None = None, max_history: int = 10) -> dict[str, Any]:
    st = status or {}
    for outcome, now in steps:
        st = next_status(st, REF, outcome, now, max_history)
    return st


def cond(st: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions", []) if c["type"] == ctype), None)


def brief(st: dict[str, Any], ctype: str) -> tuple[str, str, str] | None:
    c = cond(st, ctype)
    return (c["status"], c["reason"], c["message"]) if c else None


UPGRADING = Outcome(Phase.UPGRADING, "running helm upgrade", attempted_digest="d1", attempted_revision="1.1.0")
FAILED = Outcome(Phase.DEPLOY_FAILED, "helm upgrade failed: boom")
SUCCEEDED = Outcome(Phase.SUCCEEDED, "release upgraded", revision="1.1.0", release_status="deployed")
ROLLED_BACK = Outcome(Phase.ROLLED_BACK, "rolled back to revision 1", rolled_back=True)


def test_a_first_attempt_shows_progress_and_ready_unknown() -> None:
    st = run((UPGRADING, T0))
    assert st["phase"] == "Upgrading"
    assert brief(st, "Reconciling") == ("True", "Upgrading", "running helm upgrade")
    assert brief(st, "Ready") == ("Unknown", "Progressing", "running helm upgrade")
    assert (st["lastAttemptedConfigDigest"], st["lastAttemptedRevision"]) == ("d1", "1.1.0")


def test_ready_stays_false_with_the_failure_during_the_next_attempt() -> None:
    st = run((UPGRADING, T0), (FAILED, T1), (UPGRADING, T2))
    assert st["phase"] == "Upgrading"
    assert brief(st, "Ready") == ("False", "DeployFailed", "helm upgrade failed: boom")
    assert cond(st, "Ready")["lastUpdateTime"] == T1  # type: ignore[index]  # the backoff clock is not moved
    assert brief(st, "Released") == ("False", "DeployFailed", "helm upgrade failed: boom")
    assert brief(st, "Reconciling") == ("True", "Upgrading", "running helm upgrade")


def test_reconciling_is_cleared_by_every_final_outcome() -> None:
    for final in (FAILED, SUCCEEDED, ROLLED_BACK, Outcome(Phase.TEST_FAILED, "t"), Outcome(Phase.DEPLOYED, "d")):
        assert cond(run((UPGRADING, T0), (final, T1)), "Reconciling") is None, final.phase


def test_failures_count_consecutive_failures_and_success_resets_them() -> None:
    st = run((UPGRADING, T0), (FAILED, T1), (UPGRADING, T2), (FAILED, T3))
    assert st["failures"] == 2
    st = run((UPGRADING, T3), (SUCCEEDED, T3), status=st)
    assert st["failures"] == 0
    assert brief(st, "Ready") == ("True", "Succeeded", "release upgraded")
    assert (st["revision"], st["releaseStatus"]) == ("1.1.0", "deployed")


@pytest.mark.parametrize(("outcome", "counted"), [
    (Outcome(Phase.CHART_FETCH_FAILED, "x"), 1),
    (Outcome(Phase.FAILED, "x"), 1),
    (Outcome(Phase.ROLLBACK_FAILED, "x"), 1),
    (Outcome(Phase.TEST_FAILED, "x"), 1),
    (Outcome(Phase.TEST_FAILED, "ignored", counts_as_failure=False), 0),
    (Outcome(Phase.ROLLED_BACK, "recovered"), 0),
    (Outcome(Phase.DEPLOYED, "x"), 0),
    (Outcome(Phase.TESTED, "x"), 0),
])
def test_which_outcomes_count_as_failures(outcome: Outcome, counted: int) -> None:
    assert run((outcome, T0))["failures"] == counted


def test_rollback_count_grows_with_rollbacks_and_success_resets_it_and_clears_rolled_back() -> None:
    st = run((FAILED, T0), (ROLLED_BACK, T1), (FAILED, T2), (ROLLED_BACK, T3))
    assert st["rollbackCount"] == 2
    assert brief(st, "RolledBack") == ("True", "RolledBack", "rolled back to revision 1")
    assert brief(st, "Ready") == ("False", "RolledBack", "rolled back to revision 1")
    st = run((SUCCEEDED, T3), status=st)
    assert (st["rollbackCount"], cond(st, "RolledBack")) == (0, None)


def test_a_recovery_is_not_counted_as_a_rollback() -> None:
    st = run((Outcome(Phase.ROLLED_BACK, "recovered apps-web", counts_as_failure=False), T0))
    assert (st["rollbackCount"], st["failures"]) == (0, 0)


def test_v1_fields_and_defaults_are_written() -> None:
    st = run((Outcome(Phase.CHART_FETCHED, "chart fetched"), T0))
    assert (st["observedGeneration"], st["releaseName"], st["rollbackCount"], st["failures"]) == (3, "apps-web", 0, 0)
    assert brief(st, "ChartFetched") == ("True", "ChartFetched", "chart fetched")
    assert cond(st, "Ready") is None  # nothing known yet


def test_last_transition_time_moves_only_when_the_value_changes() -> None:
    st = run((FAILED, T0), (FAILED, T1))
    ready = cond(st, "Ready")
    assert ready is not None and (ready["lastTransitionTime"], ready["lastUpdateTime"]) == (T0, T1)
    ready = cond(run((SUCCEEDED, T2), status=st), "Ready")
    assert ready is not None and ready["lastTransitionTime"] == T2


def test_history_is_newest_first_and_trimmed_to_five_or_max_history() -> None:
    outcomes = [(Outcome(Phase.SUCCEEDED, f"r{n}", snapshot=Snapshot(n, "upgrade", f"d{n}", "deployed")), T0)
                for n in range(1, 9)]
    assert [h["revision"] for h in run(*outcomes)["history"]] == [8, 7, 6, 5, 4]
    assert [h["revision"] for h in run(*outcomes, max_history=2)["history"]] == [8, 7]
    assert [h["revision"] for h in run(*outcomes, max_history=0)["history"]] == [8, 7, 6, 5, 4]


def test_a_test_result_is_merged_into_the_revision_it_belongs_to() -> None:
    deployed = Snapshot(2, "upgrade", "d2", "deployed", "podinfo", "6.0.0", "6.0.0", None, "t0", "t1")
    st = run((Outcome(Phase.DEPLOYED, "up", snapshot=deployed), T0),
             (Outcome(Phase.TESTED, "ok", snapshot=Snapshot(2, "upgrade", status="deployed", test_result="passed")),
              T1))
    assert st["history"] == [{"revision": 2, "action": "upgrade", "configDigest": "d2", "status": "deployed",
                              "chartName": "podinfo", "chartVersion": "6.0.0", "appVersion": "6.0.0",
                              "testResult": "passed", "firstDeployed": "t0", "lastDeployed": "t1"}]


def test_the_old_status_is_not_mutated() -> None:
    old = run((UPGRADING, T0), (FAILED, T1))
    kept = copy.deepcopy(old)
    run((SUCCEEDED, T2), status=old)
    assert old == kept


def test_a_reinstall_that_reuses_the_revision_number_keeps_nothing_of_the_old_revision() -> None:
    old = Snapshot(1, "install", "d1", "deployed", "podinfo", "6.0.0", "6.0.0", "failed", "t0", "t0")
    new = Snapshot(1, "install", "d1", "deployed", "podinfo", "6.0.0", "6.0.0", None, "t9", "t9")
    st = run((Outcome(Phase.TEST_FAILED, "x", snapshot=old), T0), (Outcome(Phase.DEPLOYED, "y", snapshot=new), T1))
    assert [(h["revision"], h["lastDeployed"], h.get("testResult")) for h in st["history"]] == [(1, "t9", None)]
