"""Image automation inside the operator: scan registries for the images of
automated HelmReleases, and commit tag updates to Git.

Two phases per pass:
1. scan: from the HelmReleases in the cluster, collect each automated
   container's repository, filter and current tag, and list each
   repository's tags once (`registry`), with the build times that glob and
   regexp filters order by: of the tags they allow, and of the current tags
   too, which a forced release may have put outside the filter;
2. edit: on a fresh checkout of the Git branch, for every automated, unlocked
   HelmRelease document, pick the newest allowed tag against the tag *in Git*
   (`policy.choose`, so a release never moves back from what Git holds; a
   current tag Git holds but the scan did not date, because the cluster has
   not caught up with Git yet, is dated here, through the same cache),
   rewrite only those scalars (`yamledit`), and commit once for the pass
   (`gitwrite`, which re-runs the edit on a new head after a lost push race).

A pass runs every `interval`, and at once when a registry poll finds a tag it
had not seen. Bad annotations or filters are reported as `ImageAutomationFailed`
events on the HelmRelease and in the log; a release kept at its tag because
that tag cannot be compared (gone from the registry, not a version, no build
time) gets one `ImageAutomationHeld` Warning event per distinct problem. Neither
stops the other releases. Scans and passes log their registry request
counts at debug level.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from helm_operator import boundedyaml
from helm_operator.automation import yamledit
from helm_operator.automation.gitwrite import GitWriteError, GitWriter, locate
from helm_operator.automation.images import find_images, read_policy, updates_for
from helm_operator.automation.policy import (
    InvalidFilter, TagFilter, TagInfo, choose, needs_build_time_of, needs_timestamps, parse_filter,
)
from helm_operator.automation.registry import InvalidResponse, NotFound, RegistryClient, RegistryError
from helm_operator.runtime.metrics import AutomationMetrics

log = logging.getLogger(__name__)

DEFAULT_FILTER = "glob:*"
REASON_AUTOMATION_FAILED = "ImageAutomationFailed"
REASON_AUTOMATION_HELD = "ImageAutomationHeld"

EventSink = Callable[[dict[str, Any], str, str, str], Awaitable[None]]  # (object, type, reason, message)
DateLookup = Callable[[str, str], "datetime | None"]  # (repository, tag) -> build time, from the edit thread


@dataclass(frozen=True)
class Release:
    """One image update that a pass committed."""

    key: str            # namespace/name of the HelmRelease
    container: str
    old: str
    new: str


@dataclass
class ScanResult:
    """Tags per image repository, from one scan."""

    tags: dict[str, list[TagInfo]] = field(default_factory=dict)
    new_tags_seen: bool = False
    automated: list[str] = field(default_factory=list)  # namespace/name of automated HelmReleases
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # namespace/name -> object, for events
    tried: dict[str, set[str]] = field(default_factory=dict)  # repository -> tags the scan asked build times of
    requests: int = 0  # registry requests the scan made


@dataclass
class DocumentPlan:
    """The updates for one HelmRelease document, and why containers are held at their tag."""

    releases: list[Release] = field(default_factory=list)
    writes: list[tuple[Any, str]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


@dataclass
class PassPlan:
    """What the last run of a pass's edit found (a lost push race runs it again)."""

    releases: list[Release] = field(default_factory=list)
    held: dict[tuple[str, str], None] = field(default_factory=dict)  # (namespace/name, message), in order


def container_filter(filters: Mapping[str, str], container: str) -> str:
    return filters.get(container, DEFAULT_FILTER)


def commit_subject(releases: Sequence[Release]) -> tuple[str, str]:
    """Flux v1's messages: `Auto-release <image>` or `Auto-release multiple (N) images`."""
    images = sorted({r.new for r in releases})
    if len(images) == 1:
        return f"Auto-release {images[0]}", ""
    return f"Auto-release multiple ({len(images)}) images", "\n".join(f" - {i}" for i in images)


class Automator:
    """Runs image automation passes for one Git branch."""

    def __init__(self, list_helmreleases: Callable[[], Awaitable[list[dict[str, Any]]]],
                 writer: GitWriter, registry: RegistryClient, emit_event: EventSink,
                 interval: float = 300.0, poll_interval: float = 300.0,
                 default_namespace: str = "default",
                 yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents,
                 metrics: AutomationMetrics | None = None) -> None:
        self.metrics = metrics
        self.list_helmreleases = list_helmreleases
        self.yaml_limits = yaml_limits
        self.writer = writer
        self.registry = registry
        self.emit_event = emit_event
        self.interval = interval
        self.poll_interval = poll_interval
        self.default_namespace = default_namespace
        self._known_tags: dict[str, set[str]] = {}
        self._reported: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self.last_scan = ScanResult()

    async def _report(self, obj: dict[str, Any], message: str) -> None:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        log.warning("%s: image automation: %s", key, message)
        if (key, message) in self._reported:
            return  # one event per distinct problem, not one per pass
        self._reported.add((key, message))
        await self.emit_event(obj, "Warning", REASON_AUTOMATION_FAILED, message)

    def _request_count(self) -> int:
        return sum(self.registry.requests.values())

    # ---- phase 1 ----------------------------------------------------------
    async def scan(self) -> ScanResult:
        """List the tags of every automated container's repository, once per repository."""
        wanted: dict[str, dict[str, TagFilter]] = {}
        current: dict[str, set[str]] = {}
        result = ScanResult()
        for obj in await self.list_helmreleases():
            meta = obj.get("metadata") or {}
            policy = read_policy(meta.get("annotations"))
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if policy.automated:
                # the lock is re-read from Git at edit time: it may be newer there
                result.automated.append(key)
                result.objects[key] = obj
            if not policy.automated or policy.locked or policy.ignored:
                continue
            found = find_images(obj)
            for error in found.errors:
                await self._report(obj, str(error))
            for c in found.containers:
                raw = container_filter(policy.filters, c.name)
                try:
                    f = parse_filter(raw)
                except InvalidFilter as e:
                    await self._report(obj, f"container {c.name}: {e}; it matches nothing until fixed")
                    continue
                wanted.setdefault(c.repository, {})[str(f)] = f
                if needs_build_time_of(f, c.tag) and not f.matches(c.tag):
                    current.setdefault(c.repository, set()).add(c.tag)
        before = self._request_count()
        for repository, filters in sorted(wanted.items()):
            asked = current.get(repository, set())
            try:
                tags = await self.registry.scan(repository, *filters.values(), current=sorted(asked))
            except RegistryError as e:
                log.warning("image automation: scanning %s failed: %s", repository, e)
                if self.metrics is not None:
                    self.metrics.scanned(False)
                continue
            if self.metrics is not None:
                self.metrics.scanned(True)
            result.tags[repository] = tags
            timed = [f for f in filters.values() if needs_timestamps(f)]
            result.tried[repository] = asked | {t.tag for t in tags if any(f.matches(t.tag) for f in timed)}
            seen = {t.tag for t in tags}
            if repository in self._known_tags and seen - self._known_tags[repository]:
                result.new_tags_seen = True
                log.info("image automation: new tag(s) for %s: %s", repository,
                         ", ".join(sorted(seen - self._known_tags[repository])))
            self._known_tags[repository] = seen
        result.requests = self._request_count() - before
        log.debug("image automation scan: %d image repositories, %d registry requests",
                  len(result.tags), result.requests)
        self.last_scan = result
        return result

    # ---- phase 2 ----------------------------------------------------------
    def _automated_containers(self, doc: dict[str, Any]) -> Iterable[tuple[Any, TagFilter]]:
        """(container, parsed filter) of a document automation may change; bad filters skipped."""
        policy = read_policy((doc.get("metadata") or {}).get("annotations"))
        if not policy.automated or policy.locked or policy.ignored:
            return
        for c in find_images(doc).containers:
            try:
                yield c, parse_filter(container_filter(policy.filters, c.name))
            except InvalidFilter:
                continue  # reported by the scan

    def plan_document(self, doc: dict[str, Any], tags: Mapping[str, list[TagInfo]]) -> DocumentPlan:
        """Updates for one HelmRelease document as it is in Git. Pure."""
        meta = doc.get("metadata") or {}
        key = f"{meta.get('namespace') or self.default_namespace}/{meta.get('name')}"
        plan = DocumentPlan()
        for c, f in self._automated_containers(doc):
            if c.repository not in tags:
                continue  # not scanned (failed, or not in the cluster yet): decide nothing
            choice = choose(f, tags[c.repository], c.tag or None)
            if choice.held:
                plan.held.append(f"container {c.name} ({c.repository}): {choice.held}")
            elif choice.tag and choice.tag != c.tag:
                plan.releases.append(Release(key, c.name, c.image_ref, str(c.ref.with_tag(choice.tag))))
                plan.writes.extend(updates_for(c, choice.tag))
        return plan

    def date_current_tags(self, doc: dict[str, Any], scan: ScanResult, tags: dict[str, list[TagInfo]],
                          date: DateLookup) -> dict[str, list[TagInfo]]:
        """`tags` plus the build times of this document's current tags that the scan did not date.

        Git can be ahead of the cluster the scan read (a forced release not
        synced yet): such a current tag, listed by the registry and needed by
        a build-time filter, is dated here. Raises RegistryError when the
        registry cannot answer now.
        """
        for c, f in self._automated_containers(doc):
            listed = tags.get(c.repository)
            if (listed is None or not needs_build_time_of(f, c.tag)
                    or c.tag in scan.tried.get(c.repository, ())):
                continue  # the scan dated it already (or tried to)
            info = next((t for t in listed if t.tag == c.tag), None)
            if info is None or info.created is not None:
                continue
            created = date(c.repository, c.tag)
            tags[c.repository] = [TagInfo(t.tag, created) if t.tag == c.tag else t for t in listed]
        return tags

    def edit_checkout(self, root: Path, scan: ScanResult, plan: PassPlan,
                      date: DateLookup | None = None) -> list[str]:
        """Rewrite the automated HelmReleases' files under `root`; returns changed paths."""
        changed: list[str] = []
        plan.releases.clear()
        plan.held.clear()
        tags = dict(scan.tags)
        for key in scan.automated:
            ns, _, name = key.partition("/")
            file = locate(root, self.writer.target.paths, "HelmRelease", ns, name, self.default_namespace,
                          self.yaml_limits)
            if file is None:
                continue
            text = file.read_text()
            try:
                docs = boundedyaml.load_all(text, str(file.relative_to(root)), self.yaml_limits)
            except boundedyaml.YamlError as e:  # changed since locate read it
                log.warning("%s: image automation cannot read %s", key, e)
                continue
            doc = next((d for d in docs if isinstance(d, dict)
                        and d.get("kind") == "HelmRelease" and (d.get("metadata") or {}).get("name") == name
                        and ((d.get("metadata") or {}).get("namespace") or self.default_namespace) == ns), None)
            if doc is None:
                continue
            if date is not None:
                try:
                    tags = self.date_current_tags(doc, scan, tags, date)
                except RegistryError as e:
                    log.warning("%s: image automation skipped this pass: cannot read the build time of "
                                "its current image: %s", key, e)
                    continue
            found = self.plan_document(doc, tags)
            plan.held.update(((key, message), None) for message in found.held)
            if not found.writes:
                continue
            try:
                new_text = yamledit.set_values(text, "HelmRelease", ns, name, found.writes,
                                               default_namespace=self.default_namespace,
                                               limits=self.yaml_limits)
            except yamledit.EditError as e:
                log.warning("%s: image automation cannot edit %s: %s", key, file.relative_to(root), e)
                continue
            if new_text != text:
                file.write_text(new_text)
                rel = str(file.relative_to(root))
                if rel not in changed:
                    changed.append(rel)
                plan.releases.extend(found.releases)
        return changed

    def _date_in_loop(self, loop: asyncio.AbstractEventLoop) -> DateLookup:
        """A build-time lookup the edit thread can call; it runs on the loop, through the cache."""
        def date(repository: str, tag: str) -> datetime | None:
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:  # waiting here for the loop would wait forever
                raise RuntimeError("the automation edit must run off the event loop (in a thread)")
            try:
                return asyncio.run_coroutine_threadsafe(self.registry.image_created(repository, tag), loop).result()
            except (NotFound, InvalidResponse) as e:
                log.warning("image automation: no build time for the current image %s:%s: %s", repository, tag, e)
                return None
        return date

    async def _report_held(self, scan: ScanResult, plan: PassPlan) -> None:
        """One Warning event per distinct (release, problem), as for ImageAutomationFailed."""
        for key, message in plan.held:
            if (key, message) in self._reported:
                continue  # the pass's debug line still counts it
            self._reported.add((key, message))
            log.warning("%s: image automation keeps the current tag: %s", key, message)
            await self.emit_event(scan.objects[key], "Warning", REASON_AUTOMATION_HELD, message)

    async def run_pass(self, scan: ScanResult | None = None) -> list[Release]:
        """One automation pass: commit every due update in one commit."""
        scan = scan or await self.scan()
        if not scan.automated or not scan.tags:
            return []
        plan = PassPlan()
        date = functools.cache(self._date_in_loop(asyncio.get_running_loop()))  # once a pass, races included

        def edit(root: Path) -> list[str]:
            return self.edit_checkout(root, scan, plan, date)

        before = self._request_count()
        commit: str | None = None
        try:
            commit = await self.writer.change(edit, lambda: commit_subject(plan.releases))
        except GitWriteError as e:
            log.error("image automation: %s", e)
            if self.metrics is not None:
                self.metrics.committed(False)
        await self._report_held(scan, plan)   # held is decided before the push, whatever became of it
        log.debug("image automation pass: %d update(s) committed, %d container(s) held, "
                  "%d registry requests for current tags", len(plan.releases) if commit else 0,
                  len(plan.held), self._request_count() - before)
        if commit and self.metrics is not None:
            self.metrics.committed(True, len(plan.releases))
        if commit:
            for r in plan.releases:
                log.info("%s: released %s (was %s) in %s", r.key, r.new, r.old, commit[:12])
        return plan.releases if commit else []

    # ---- loop ---------------------------------------------------------------
    def trigger(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll registries every poll_interval; run a pass every interval or on a new tag."""
        loop = asyncio.get_running_loop()
        next_pass = loop.time()
        while not stopping.is_set():
            try:
                scan = await self.scan()
                if scan.new_tags_seen or loop.time() >= next_pass or self._wake.is_set():
                    self._wake.clear()
                    await self.run_pass(scan)
                    next_pass = loop.time() + self.interval
            except Exception:  # noqa: BLE001 - automation must never take the operator down
                log.exception("image automation pass failed; trying again next poll")
            wait = max(0.1, min(self.poll_interval, next_pass - loop.time()))
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({waiter, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

