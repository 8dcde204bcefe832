"""What image automation tells users on each HelmRelease (pure).

Place in the flow: the automator's scan and pass find problems per
HelmRelease (an annotation or filter it cannot use, a registry it cannot
read, a tag it cannot compare, a file it cannot find or edit, a commit it
cannot push) ─▶ **reporting** decides what to say ─▶ the automator emits the
events and hands the condition to the operator, which writes it through the
release engine's `Recorder` (the one status writer).

What users see, per automated HelmRelease:

- a Warning event once per distinct problem (reason `ImageAutomationFailed`,
  or `ImageAutomationHeld` for a tag kept because it cannot be compared), again
  when the problem changes, and a Normal `ImageAutomationRecovered` event when
  every problem is gone;
- the `ImageAutomation` condition: True while automation works for it, False
  with the first problem's reason and every problem's message otherwise
  (reason `Locked` while it is locked); removed when automation is turned off.

Problems found by the scan and by the pass are kept apart: a scan (every
registry poll) replaces the scan's problems, a pass (every automation
interval) the pass's, and the two together make the state reported.

What this module does NOT do: emit events, write status, or log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from helm_operator.api.automation import (
    REASON_AUTOMATION_FAILED, REASON_AUTOMATION_HELD, REASON_AUTOMATION_RECOVERED, AutomationPolicy,
)
from helm_operator.automation.registry import (
    AccessDenied, AuthenticationFailed, NotFound, RegistryError, RegistryUnavailable,
)

# Reasons of the ImageAutomation condition.
WORKING = "Automated"
LOCKED = "Locked"
INVALID_ANNOTATION = "InvalidAnnotation"
INVALID_FILTER = "InvalidFilter"
NO_IMAGES = "NoImages"
TAG_HELD = "TagHeld"
NOT_IN_GIT = "NotInGit"
EDIT_FAILED = "EditFailed"
GIT_WRITE_FAILED = "GitWriteFailed"


class Stage(Enum):
    SCAN = "scan"
    PASS = "pass"


@dataclass(frozen=True)
class Problem:
    """One reason automation does not work for a HelmRelease; `message` names the container or image."""

    reason: str
    message: str

    @property
    def event_reason(self) -> str:
        return REASON_AUTOMATION_HELD if self.reason == TAG_HELD else REASON_AUTOMATION_FAILED


def registry_problem(error: RegistryError) -> Problem:
    """A registry failure as a problem, its reason naming the kind of failure."""
    if isinstance(error, RegistryUnavailable):
        reason = "RegistryUnavailable"
    elif isinstance(error, (AuthenticationFailed, AccessDenied)):
        reason = "RegistryAuthFailed"
    elif isinstance(error, NotFound):
        reason = "ImageNotFound"
    else:
        reason = "RegistryError"
    return Problem(reason, str(error))


Status = Literal["True", "False"]


@dataclass(frozen=True)
class Condition:
    status: Status
    reason: str
    message: str


@dataclass(frozen=True)
class Notice:
    """What to tell about one HelmRelease now: events to emit, and its condition (None: remove it)."""

    key: str
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)
    condition: Condition | None = None


@dataclass
class ProblemBook:
    """The problems each HelmRelease has now, and those its events already told."""

    found: dict[Stage, dict[str, list[Problem]]] = field(
        default_factory=lambda: {stage: {} for stage in Stage})
    told: dict[str, frozenset[Problem]] = field(default_factory=dict)

    def record(self, stage: Stage, problems: Mapping[str, Sequence[Problem]]) -> None:
        """Replace what `stage` found (every HelmRelease it looked at: keys without problems are clean)."""
        self.found[stage] = {key: list(dict.fromkeys(found)) for key, found in problems.items() if found}

    def problems(self, key: str) -> list[Problem]:
        return list(dict.fromkeys(p for stage in Stage for p in self.found[stage].get(key, ())))

    def report(self, policies: Mapping[str, AutomationPolicy], containers: Mapping[str, int],
               conditioned: Iterable[str] = ()) -> list[Notice]:
        """The notices for the automated HelmReleases (`policies`, with the containers automation
        follows for each) and for `conditioned`, unautomated ones that still carry the condition."""
        notices = [Notice(key) for key in conditioned if key not in policies]
        for key in list(self.told):
            if key not in policies or not policies[key].automated or policies[key].ignored:
                del self.told[key]
        for key, policy in policies.items():
            if not policy.automated or policy.ignored:
                notices.append(Notice(key))
            elif policy.locked:
                notices.append(Notice(key, condition=Condition(
                    "False", LOCKED, f"{policy.lock_description()}: automation is paused until it is unlocked")))
            else:
                notices.append(self._notice(key, containers.get(key, 0)))
        return notices

    def _notice(self, key: str, containers: int) -> Notice:
        problems = self.problems(key)
        before = self.told.get(key, frozenset())
        self.told[key] = frozenset(problems)
        events = tuple(("Warning", p.event_reason, p.message) for p in problems if p not in before)
        if not problems:
            if before:
                resolved = ", ".join(sorted({p.reason for p in before}))
                events = (("Normal", REASON_AUTOMATION_RECOVERED, f"image automation works again ({resolved} resolved)"),)
            return Notice(key, events, Condition(
                "True", WORKING, f"{containers} container image(s) follow their tag filters"))
        return Notice(key, events, Condition("False", problems[0].reason, "; ".join(p.message for p in problems)))
