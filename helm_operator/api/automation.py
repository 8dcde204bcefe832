"""Image automation's part of the HelmRelease contract (COMPAT section 2):
the annotation keys, what they ask of automation, and the changes that set them.

Place in the flow: image automation (`automation/automator.py`) and the
policy commands (`cli/imagepolicy.py`) read a HelmRelease's annotations
with `read_policy`; the commands write them with the `*_change` builders
(pairs of annotations to set and to remove, applied to the YAML text by
`automation/annotations.py`). The `ImageAutomation` condition and the event
reasons automation reports with are named here too, beside the v1 names in
`constants`.

Only the string ``"true"`` switches a flag on; the ``fluxcd.io/`` prefix wins
over the legacy ``flux.weave.works/`` one when both are set. What this module
does NOT do: parse a filter (`automation/policy.py`), find images in values
(`automation/detect.py`), or edit any text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --- annotation keys ---------------------------------------------------------

POLICY_PREFIXES = ("fluxcd.io/", "flux.weave.works/")  # first one wins when both are set
NEW_PREFIX = POLICY_PREFIXES[0]  # what we write; the legacy prefix is only read and removed
AUTOMATED = "automated"
LOCKED = "locked"
LOCKED_USER = "locked_user"
LOCKED_MSG = "locked_msg"
IGNORE = "ignore"  # "true": skip entirely; "sync_only": synced, never garbage-collected
IGNORE_ANNOTATIONS = tuple(prefix + IGNORE for prefix in POLICY_PREFIXES)
FILTER_PREFIX = "filter.fluxcd.io/"  # filter.fluxcd.io/<c>
TAG_POLICY = "tag."  # fluxcd.io/tag.<c> and flux.weave.works/tag.<c>
REGISTRY_PREFIX = "registry.fluxcd.io/"
REPOSITORY_PREFIX = "repository.fluxcd.io/"
TAG_PREFIX = "tag.fluxcd.io/"

DEFAULT_FILTER = "glob:*"  # a container without a filter annotation

# --- what automation reports on the HelmRelease -------------------------------

CONDITION_IMAGE_AUTOMATION = "ImageAutomation"  # True: automation works for it; False: reason, message
REASON_AUTOMATION_FAILED = "ImageAutomationFailed"  # Warning event: a problem that stops automation
REASON_AUTOMATION_HELD = "ImageAutomationHeld"  # Warning event: a tag kept because it cannot be compared
REASON_AUTOMATION_RECOVERED = "ImageAutomationRecovered"  # Normal event: the problems cleared


@dataclass(frozen=True)
class AutomationPolicy:
    """What a HelmRelease's annotations ask of automation; filters are raw strings."""

    automated: bool = False
    locked: bool = False
    locked_user: str = ""
    locked_msg: str = ""
    ignored: bool = False  # fluxcd.io/ignore: "true" (sync_only does not stop automation)
    filters: Mapping[str, str] = field(default_factory=dict)  # container -> "<type>:<expr>" as written

    @property
    def acts(self) -> bool:
        """Whether automation may change the release now (automated, not locked, not ignored)."""
        return self.automated and not self.locked and not self.ignored

    def filter_for(self, container: str) -> str:
        """The raw filter of one container; the default filter when none is set."""
        return self.filters.get(container, DEFAULT_FILTER)

    def words(self) -> str:
        """``automated,locked,ignore``: the flags that are on, for a listing."""
        return ",".join(w for w, on in (("automated", self.automated), ("locked", self.locked),
                                        ("ignore", self.ignored)) if on)

    def lock_description(self) -> str:
        """``locked by alice (incident 42)``, for messages."""
        who = f" by {self.locked_user}" if self.locked_user else ""
        why = f" ({self.locked_msg})" if self.locked_msg else ""
        return f"locked{who}{why}"


def read_policy(annotations: Mapping[str, Any] | None) -> AutomationPolicy:
    """Read the automation annotations; only the string "true" switches a flag on."""
    ann = annotations or {}
    return AutomationPolicy(
        automated=_policy(ann, AUTOMATED) == "true",
        locked=_policy(ann, LOCKED) == "true",
        locked_user=_policy(ann, LOCKED_USER) or "",
        locked_msg=_policy(ann, LOCKED_MSG) or "",
        ignored=_policy(ann, IGNORE) == "true",
        filters=_filters(ann),
    )


def policy_of(obj: Mapping[str, Any]) -> AutomationPolicy:
    """`read_policy` of an object's ``metadata.annotations``."""
    metadata = obj.get("metadata") or {}
    return read_policy(metadata.get("annotations") if isinstance(metadata, Mapping) else None)


def _policy(ann: Mapping[str, Any], name: str) -> str | None:
    """The value under the new prefix, else the legacy one; non-strings count as unset."""
    for prefix in POLICY_PREFIXES:
        value = ann.get(prefix + name)
        if isinstance(value, str):
            return value.strip()
    return None


def _filters(ann: Mapping[str, Any]) -> dict[str, str]:
    """Container -> raw filter; ``filter.fluxcd.io/`` beats ``fluxcd.io/tag.`` beats legacy."""
    found: dict[str, str] = {}
    prefixes = (FILTER_PREFIX, *(p + TAG_POLICY for p in POLICY_PREFIXES))
    for prefix in reversed(prefixes):  # later (stronger) prefixes overwrite
        for key, value in ann.items():
            if isinstance(key, str) and key.startswith(prefix) and len(key) > len(prefix) and isinstance(value, str):
                found[key[len(prefix):]] = value.strip()
    return found


# --- changes that set a policy (the policy commands) ----------------------------

AnnotationChange = tuple[dict[str, str], list[str]]  # (set, remove)


def automate_change() -> AnnotationChange:
    return {NEW_PREFIX + AUTOMATED: "true"}, []


def deautomate_change() -> AnnotationChange:
    return {}, [p + AUTOMATED for p in POLICY_PREFIXES]


def lock_change(user: str, message: str | None) -> AnnotationChange:
    to_set = {NEW_PREFIX + LOCKED: "true", NEW_PREFIX + LOCKED_USER: user}
    remove = [POLICY_PREFIXES[1] + k for k in (LOCKED, LOCKED_USER, LOCKED_MSG)]
    if message:
        to_set[NEW_PREFIX + LOCKED_MSG] = message
    else:
        remove.append(NEW_PREFIX + LOCKED_MSG)   # an old reason would describe another lock
    return to_set, remove


def unlock_change() -> AnnotationChange:
    return {}, [p + k for p in POLICY_PREFIXES for k in (LOCKED, LOCKED_USER, LOCKED_MSG)]


def filter_change(filters: Mapping[str, str]) -> AnnotationChange:
    """`filters` are container -> normalized filter; the default filter removes the annotation."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for container, value in filters.items():
        remove.extend(p + TAG_POLICY + container for p in POLICY_PREFIXES)
        if value == DEFAULT_FILTER:
            remove.append(FILTER_PREFIX + container)
        else:
            to_set[FILTER_PREFIX + container] = value
    return to_set, remove
