"""What one automation pass changes in a HelmRelease document as it is in Git (pure).

Place in the flow: registry scan (tags per repository) ─▶ **plan** (for each
automated, unlocked document: the newest tag each container's filter allows,
compared with the tag *in Git*, `policy.choose`) ─▶ the scalar writes
(`detect.updates_for`) that `yamledit` makes ─▶ one commit per pass, whose
message `commit_subject` gives.

A container is decided only when its repository was scanned; one kept at its
tag because that tag cannot be compared (gone from the registry, not a
version, no build time) is a `TAG_HELD` problem for the caller to report.

What this module does NOT do: registry calls, file or Git I/O, events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from helm_operator.api.automation import policy_of
from helm_operator.automation.detect import ContainerImage, find_images, updates_for
from helm_operator.automation.paths import PathSegments
from helm_operator.automation.policy import (
    InvalidFilter, TagFilter, TagInfo, choose, needs_build_time_of, parse_filter,
)
from helm_operator.automation.reporting import TAG_HELD, Problem


@dataclass(frozen=True)
class Release:
    """One image update that a pass committed."""

    key: str            # namespace/name of the HelmRelease
    container: str
    old: str
    new: str


@dataclass
class DocumentPlan:
    """The updates for one HelmRelease document, and why containers are held at their tag."""

    releases: list[Release] = field(default_factory=list)
    writes: list[tuple[PathSegments, str]] = field(default_factory=list)
    held: list[Problem] = field(default_factory=list)


@dataclass
class PassPlan:
    """What one run of a pass's edit found (a lost push race runs it again)."""

    releases: list[Release] = field(default_factory=list)
    problems: dict[str, list[Problem]] = field(default_factory=dict)  # namespace/name -> problems

    def add_problem(self, key: str, problem: Problem) -> None:
        self.problems.setdefault(key, []).append(problem)


def commit_subject(releases: Sequence[Release]) -> tuple[str, str]:
    """Flux v1's messages: `Auto-release <image>` or `Auto-release multiple (N) images`."""
    images = sorted({r.new for r in releases})
    if len(images) == 1:
        return f"Auto-release {images[0]}", ""
    return f"Auto-release multiple ({len(images)}) images", "\n".join(f" - {i}" for i in images)


def acting_containers(doc: Mapping[str, Any]) -> Iterator[tuple[ContainerImage, TagFilter]]:
    """(container, parsed filter) of a document automation may change; bad filters skipped
    (the scan reports them)."""
    policy = policy_of(doc)
    if not policy.acts:
        return
    for c in find_images(doc).containers:
        try:
            yield c, parse_filter(policy.filter_for(c.name))
        except InvalidFilter:
            continue


def plan_document(key: str, doc: Mapping[str, Any], tags: Mapping[str, list[TagInfo]]) -> DocumentPlan:
    """Updates for one HelmRelease document as it is in Git."""
    plan = DocumentPlan()
    for c, f in acting_containers(doc):
        if c.repository not in tags:
            continue  # not scanned (failed, or not in the cluster yet): decide nothing
        choice = choose(f, tags[c.repository], c.tag or None)
        if choice.held:
            plan.held.append(Problem(TAG_HELD, f"container {c.name} ({c.repository}): {choice.held}"))
        elif choice.tag and choice.tag != c.tag:
            plan.releases.append(Release(key, c.name, c.image_ref, str(c.ref.with_tag(choice.tag))))
            plan.writes.extend(updates_for(c, choice.tag))
    return plan


DateLookup = Callable[[str, str], datetime | None]  # (repository, tag) -> build time


def date_current_tags(doc: Mapping[str, Any], tried: Mapping[str, set[str]], tags: dict[str, list[TagInfo]],
                      date: DateLookup) -> dict[str, list[TagInfo]]:
    """`tags` plus the build times of this document's current tags that the scan did not date.

    Git can be ahead of the cluster the scan read (a forced release not
    synced yet): such a current tag, listed by the registry and needed by a
    build-time filter, is dated here (`tried`: the tags the scan asked build
    times of, by repository). `date` may raise RegistryError when the
    registry cannot answer now.
    """
    for c, f in acting_containers(doc):
        listed = tags.get(c.repository)
        if listed is None or not needs_build_time_of(f, c.tag) or c.tag in tried.get(c.repository, ()):
            continue  # the scan dated it already (or tried to)
        info = next((t for t in listed if t.tag == c.tag), None)
        if info is None or info.created is not None:
            continue
        created = date(c.repository, c.tag)
        tags[c.repository] = [TagInfo(t.tag, created) if t.tag == c.tag else t for t in listed]
    return tags
