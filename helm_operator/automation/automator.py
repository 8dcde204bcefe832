"""Image automation inside the operator: scan registries for the images of
automated HelmReleases, and commit tag updates to Git.

Two phases per pass:
1. scan: from the HelmReleases in the cluster, collect each automated
   container's repository and filter, and list its tags (`registry`);
2. edit: on a fresh checkout of the Git branch, for every automated, unlocked
   HelmRelease document, pick the newest allowed tag against the tag *in Git*
   (`policy.newest`, so a release never moves back from what Git holds),
   rewrite only those scalars (`yamledit`), and commit once for the pass
   (`gitwrite`, which re-runs the edit on a new head after a lost push race).

A pass runs every `interval`, and at once when a registry poll finds a tag it
had not seen. Bad annotations or filters are reported as events on the
HelmRelease and in the log; they never stop the other releases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_operator import boundedyaml
from helm_operator.automation import yamledit
from helm_operator.automation.gitwrite import GitWriteError, GitWriter, locate
from helm_operator.automation.images import find_images, read_policy, updates_for
from helm_operator.automation.policy import InvalidFilter, TagFilter, TagInfo, newest, parse_filter
from helm_operator.automation.registry import RegistryClient, RegistryError

log = logging.getLogger(__name__)

DEFAULT_FILTER = "glob:*"
REASON_AUTOMATION_FAILED = "ImageAutomationFailed"

EventSink = Callable[[dict[str, Any], str, str, str], Awaitable[None]]  # (object, type, reason, message)


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
                 yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> None:
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

    # ---- phase 1 ----------------------------------------------------------
    async def scan(self) -> ScanResult:
        """List tags of every automated container's repository."""
        wanted: dict[str, list[TagFilter]] = {}
        automated: list[str] = []
        for obj in await self.list_helmreleases():
            meta = obj.get("metadata") or {}
            policy = read_policy(meta.get("annotations"))
            if policy.automated:
                # the lock is re-read from Git at edit time: it may be newer there
                automated.append(f"{meta.get('namespace')}/{meta.get('name')}")
            if not policy.automated or policy.locked or policy.ignored:
                continue
            found = find_images(obj)
            for error in found.errors:
                await self._report(obj, str(error))
            for c in found.containers:
                raw = container_filter(policy.filters, c.name)
                try:
                    wanted.setdefault(c.repository, []).append(parse_filter(raw))
                except InvalidFilter as e:
                    await self._report(obj, f"container {c.name}: {e}; it matches nothing until fixed")
        result = ScanResult(automated=automated)
        for repository, filters in sorted(wanted.items()):
            try:
                # the most demanding filter decides whether build times are needed
                tags: list[TagInfo] = []
                for f in sorted(filters, key=lambda f: str(f)):
                    scanned = await self.registry.scan(repository, f)
                    known = {t.tag: t for t in tags}
                    known.update({t.tag: t for t in scanned if t.created or t.tag not in known})
                    tags = list(known.values())
            except RegistryError as e:
                log.warning("image automation: scanning %s failed: %s", repository, e)
                continue
            result.tags[repository] = tags
            seen = {t.tag for t in tags}
            if repository in self._known_tags and seen - self._known_tags[repository]:
                result.new_tags_seen = True
                log.info("image automation: new tag(s) for %s: %s", repository,
                         ", ".join(sorted(seen - self._known_tags[repository])))
            self._known_tags[repository] = seen
        self.last_scan = result
        return result

    # ---- phase 2 ----------------------------------------------------------
    def plan_document(self, doc: dict[str, Any], tags: Mapping[str, list[TagInfo]]
                      ) -> tuple[list[Release], list[tuple[Any, str]]]:
        """Updates for one HelmRelease document as it is in Git. Pure."""
        meta = doc.get("metadata") or {}
        policy = read_policy(meta.get("annotations"))
        key = f"{meta.get('namespace') or self.default_namespace}/{meta.get('name')}"
        if not policy.automated or policy.locked or policy.ignored:
            return [], []
        releases: list[Release] = []
        writes: list[tuple[Any, str]] = []
        for c in find_images(doc).containers:
            try:
                f = parse_filter(container_filter(policy.filters, c.name))
            except InvalidFilter:
                continue
            best = newest(f, tags.get(c.repository, []), c.tag or None)
            if best and best != c.tag:
                releases.append(Release(key, c.name, c.image_ref, str(c.ref.with_tag(best))))
                writes.extend(updates_for(c, best))
        return releases, writes

    def edit_checkout(self, root: Path, tags: Mapping[str, list[TagInfo]], keys: Sequence[str],
                      releases: list[Release]) -> list[str]:
        """Rewrite the automated HelmReleases' files under `root`; returns changed paths."""
        changed: list[str] = []
        releases.clear()
        for key in keys:
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
            found, writes = self.plan_document(doc, tags)
            if not writes:
                continue
            try:
                new_text = yamledit.set_values(text, "HelmRelease", ns, name, writes,
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
                releases.extend(found)
        return changed

    async def run_pass(self, scan: ScanResult | None = None) -> list[Release]:
        """One automation pass: commit every due update in one commit."""
        scan = scan or await self.scan()
        keys = scan.automated
        if not keys or not scan.tags:
            return []
        releases: list[Release] = []

        def edit(root: Path) -> list[str]:
            return self.edit_checkout(root, scan.tags, keys, releases)

        try:
            commit = await self.writer.change(edit, lambda: commit_subject(releases))
        except GitWriteError as e:
            log.error("image automation: %s", e)
            return []
        if commit:
            for r in releases:
                log.info("%s: released %s (was %s) in %s", r.key, r.new, r.old, commit[:12])
        return releases if commit else []

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

