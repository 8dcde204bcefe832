"""Scenarios for status conditions: transitions, updates, metric values."""

from __future__ import annotations

import re

import pytest

from helm_operator.api.conditions import (
    condition_value,
    get_condition,
    now_rfc3339,
    remove_condition,
    set_condition,
)
from helm_operator.api.constants import ConditionType, Phase

T0, T1 = "2026-11-26T05:00:00Z", "2026-11-26T05:05:00Z"


def test_new_condition_is_appended_with_both_times_now() -> None:
    result = set_condition([], ConditionType.RELEASED, "True", Phase.SUCCEEDED, "ok", T0)
    assert result == [{
        "type": "Released", "status": "True", "reason": "Succeeded", "message": "ok",
        "lastUpdateTime": T0, "lastTransitionTime": T0,
    }]
    assert type(result[0]["type"]) is str and type(result[0]["reason"]) is str


def test_same_status_keeps_transition_time_and_moves_update_time() -> None:
    first = set_condition([], "Released", "True", "Succeeded", "ok", T0)
    second = set_condition(first, "Released", "True", "Succeeded", "again", T1)
    assert second[0]["lastTransitionTime"] == T0
    assert second[0]["lastUpdateTime"] == T1 and second[0]["message"] == "again"


def test_status_change_moves_transition_time() -> None:
    first = set_condition([], "Released", "True", "Succeeded", "ok", T0)
    second = set_condition(first, "Released", "False", "Failed", "boom", T1)
    assert second[0]["lastTransitionTime"] == T1 and second[0]["status"] == "False"


def test_other_conditions_keep_their_place_and_input_is_not_mutated() -> None:
    conditions = set_condition([], "ChartFetched", "True", "ChartFetched", "", T0)
    conditions = set_condition(conditions, "Released", "True", "Succeeded", "", T0)
    before = [dict(c) for c in conditions]
    result = set_condition(conditions, "ChartFetched", "False", "ChartFetchFailed", "x", T1)
    assert conditions == before
    assert [c["type"] for c in result] == ["ChartFetched", "Released"]
    assert result[1] == before[1] and result[1] is not conditions[1]


def test_condition_without_transition_time_gets_now() -> None:
    result = set_condition([{"type": "Ready", "status": "True"}], "Ready", "True", "Succeeded", "", T1)
    assert result[0]["lastTransitionTime"] == T1


def test_invalid_status_is_refused() -> None:
    with pytest.raises(ValueError, match="True, False or Unknown"):
        set_condition([], "Ready", "true", "x", "", T0)  # type: ignore[arg-type]


def test_get_condition_finds_by_type_or_returns_none() -> None:
    conditions = set_condition([], "Tested", "True", "Tested", "", T0)
    assert get_condition(conditions, ConditionType.TESTED) == conditions[0]
    assert get_condition(conditions, "Ready") is None
    assert get_condition(None, "Ready") is None


def test_remove_condition_clears_one_type() -> None:
    conditions = set_condition([], "RolledBack", "True", "RolledBack", "", T0)
    conditions = set_condition(conditions, "Released", "True", "Succeeded", "", T0)
    assert [c["type"] for c in remove_condition(conditions, "RolledBack")] == ["Released"]
    assert len(conditions) == 2


@pytest.mark.parametrize(("status", "value"), [("False", -1), ("Unknown", 0), ("True", 1), (None, 0), ("x", 0)])
def test_condition_value_for_metrics(status: str | None, value: int) -> None:
    assert condition_value(status) == value


def test_now_is_rfc3339_utc_with_seconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())


def test_phases_and_condition_types_match_the_contract() -> None:
    assert [p.value for p in Phase] == [
        "ChartFetched", "ChartFetchFailed", "Installing", "Upgrading", "Deployed", "DeployFailed",
        "Testing", "TestFailed", "Tested", "Succeeded", "Failed", "RollingBack", "RolledBack",
        "RollbackFailed",
    ]
    assert [c.value for c in ConditionType] == [
        "ChartFetched", "Deployed", "Released", "RolledBack", "Tested", "Ready"]
