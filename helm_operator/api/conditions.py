"""Status conditions of a HelmRelease, as pure list-to-list functions.

Place in the flow: `release/record.py` builds the next `status.conditions`
with `set_condition` and patches it; metrics read `condition_value`. A
condition is the dict the API stores: type, status ("True", "False",
"Unknown"), reason (the phase), message, lastUpdateTime, lastTransitionTime.
Inputs are never mutated. `now_rfc3339` is the only impure helper; every
other function takes the time as an argument so tests can fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
STATUS_VALUES: dict[str, int] = {"False": -1, "Unknown": 0, "True": 1}


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes it: `2026-11-26T05:00:00Z`."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: Sequence[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type, or None when absent."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: Sequence[dict[str, Any]] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with that condition set, in place of an older one.

    lastUpdateTime is always `now`; lastTransitionTime only moves when the
    status value changes, so it answers "since when is this True?".
    """
    if status not in STATUS_VALUES:
        raise ValueError(f"condition status must be True, False or Unknown, got {status!r}")
    previous = get_condition(conditions, type_)
    transition = now
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    updated = {
        "type": str(type_),
        "status": status,
        "reason": str(reason),
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
    }
    result = [dict(c) if c.get("type") != type_ else updated for c in conditions or ()]
    if previous is None:
        result.append(updated)
    return result


def remove_condition(conditions: Sequence[dict[str, Any]] | None, type_: str) -> list[dict[str, Any]]:
    """A new list without that type (Succeeded clears RolledBack)."""
    return [dict(c) for c in conditions or () if c.get("type") != type_]


def condition_value(status: str | None) -> int:
    """-1 False, 0 Unknown, 1 True: `release_condition_info`'s metric value.

    Anything else (absent, malformed) reads as Unknown: a metric must not
    raise.
    """
    return STATUS_VALUES.get(status or "Unknown", 0)


def ready_for_generation(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether a HelmRelease is Ready for its current generation, and if not, why (one line).

    What `dependsOn` waits for: Ready=True, observed at the object's
    current `metadata.generation`.
    """
    status = obj.get("status") or {}
    ready = get_condition(status.get("conditions"), "Ready")
    generation = (obj.get("metadata") or {}).get("generation")
    if ready is None:
        return False, "not reconciled yet"
    if status.get("observedGeneration") != generation:
        return False, "its latest spec is not reconciled yet"
    if ready.get("status") != "True":
        message = str(ready.get("message") or "")
        return False, f"{ready.get('reason', 'NotReady')}: {message[:160]}"
    return True, ""
