"""Image automation inside the operator: scan registries for the images of
automated HelmReleases, and commit tag updates to Git.

Two phases per pass:
1. scan: from the HelmReleases in the cluster, collect each automated
   container's repository, filter and current tag, and list each
   repository's tags once (`registry`), with the build times that glob and
   regexp filters order by: of the tags they allow, and of the current tags
   too, which a forced release may have put outside the filter;
2. edit: on a fresh checkout of the Git branch, find every automated
   HelmRelease document (`releasefiles`), decide its updates against the tag
   *in Git* (`plan`, so a release never moves back from what Git holds; a
   current tag Git holds but the scan did not date, because the cluster has
   not caught up with Git yet, is dated here, through the same cache),
   rewrite only those scalars (`yamledit`), and commit once for the pass
   (`gitwrite`, which re-runs the edit on a new head after a lost push race).

A pass runs every `interval`, and at once when a registry poll finds a tag it
had not seen. Whatever keeps automation from working for a HelmRelease (a bad
annotation or filter, a registry it cannot read, a tag it cannot compare, a
file it cannot find or edit, a push that fails) is a `reporting.Problem` of
that HelmRelease: after every scan and pass, `reporting` says which Warning
events to emit (once per distinct problem) and what the `ImageAutomation`
condition is, which goes to `note_status` (the operator writes it through
the release engine's recorder). None of it stops the other releases. Scans
and passes log their registry request counts at debug level.

What this module does NOT do: write HelmRelease status itself, or decide
tags (`policy`, `plan`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api.automation import CONDITION_IMAGE_AUTOMATION, AutomationPolicy, policy_of
from helm_operator.api.conditions import get_condition
from helm_operator.automation import reporting, yamledit
from helm_operator.automation.detect import find_images
from helm_operator.automation.gitwrite import Change, GitWriteError, GitWriter
from helm_operator.automation.plan import (
    DateLookup, PassPlan, Release, commit_subject, date_current_tags, plan_document,
)
from helm_operator.automation.policy import (
    InvalidFilter, TagFilter, TagInfo, needs_build_time_of, needs_timestamps, parse_filter,
)
from helm_operator.automation.registry import InvalidResponse, NotFound, RegistryClient, RegistryError
from helm_operator.automation.releasefiles import ReleaseIndex
from helm_operator.automation.reporting import Condition, Problem, ProblemBook, Stage
from helm_operator.runtime.metrics import AutomationMetrics

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any], str, str, str], Awaitable[None]]  # (object, type, reason, message)
StatusSink = Callable[[str, Condition | None], Awaitable[None]]  # (namespace/name, condition; None: remove)


@dataclass
class ScanResult:
    """Tags per image repository, and what automation found per HelmRelease, from one scan."""

    tags: dict[str, list[TagInfo]] = field(default_factory=dict)
    new_tags_seen: bool = False
    # an automated container whose image this operator had not scanned for its release before (a
    # release just applied, an annotation just added): its newest tag may already be in the registry,
    # so it is no "new tag", but waiting the whole interval for it would surprise the user
    new_users_seen: bool = False
    automated: list[str] = field(default_factory=list)  # namespace/name of automated HelmReleases
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # namespace/name -> object, for events
    policies: dict[str, AutomationPolicy] = field(default_factory=dict)  # of the automated ones
    containers: dict[str, int] = field(default_factory=dict)  # automated containers per HelmRelease
    conditioned: list[str] = field(default_factory=list)  # not automated, but with the condition set
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    tried: dict[str, set[str]] = field(default_factory=dict)  # repository -> tags the scan asked build times of
    requests: int = 0  # registry requests the scan made


class Automator:
    """Runs image automation passes for one Git branch."""

    def __init__(self, list_helmreleases: Callable[[], Awaitable[list[dict[str, Any]]]],
                 writer: GitWriter, registry: RegistryClient, emit_event: EventSink,
                 interval: float = 300.0, poll_interval: float = 300.0,
                 default_namespace: str = "default",
                 yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents,
                 note_status: StatusSink | None = None,
                 metrics: AutomationMetrics | None = None) -> None:
        self.metrics = metrics
        self.list_helmreleases = list_helmreleases
        self.yaml_limits = yaml_limits
        self.writer = writer
        self.registry = registry
        self.emit_event = emit_event
        self.note_status = note_status
        self.interval = interval
        self.poll_interval = poll_interval
        self.default_namespace = default_namespace
        self.book = ProblemBook()
        self._known_tags: dict[str, set[str]] = {}
        self._known_users: set[tuple[str, str]] | None = None  # (namespace/name, repository); None before a scan
        self._wake = asyncio.Event()
        self.last_scan = ScanResult()

    def _request_count(self) -> int:
        return sum(self.registry.requests.values())

    # ---- phase 1 ----------------------------------------------------------
    async def scan(self) -> ScanResult:
        """List the tags of every automated container's repository, once per repository."""
        wanted: dict[str, dict[str, TagFilter]] = {}
        current: dict[str, set[str]] = {}
        users: dict[str, set[str]] = {}  # repository -> HelmReleases using it
        result = ScanResult()
        for obj in await self.list_helmreleases():
            meta = obj.get("metadata") or {}
            policy = policy_of(obj)
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if (obj.get("spec") or {}).get("suspend") is True:
                continue  # spec.suspend stops every action, automation commits included (COMPAT 4)
            if not policy.automated:
                conditions = (obj.get("status") or {}).get("conditions")
                if get_condition(conditions, CONDITION_IMAGE_AUTOMATION) is not None:
                    result.conditioned.append(key)
                continue
            # the lock is re-read from Git at edit time: it may be newer there
            result.automated.append(key)
            result.objects[key], result.policies[key] = obj, policy
            if not policy.acts:
                continue
            problems = result.problems.setdefault(key, [])
            found = find_images(obj)
            problems += [Problem(reporting.INVALID_ANNOTATION, str(e)) for e in found.errors]
            if not found.containers and not found.errors:
                problems.append(Problem(reporting.NO_IMAGES, "no container images found in spec.values; name "
                                        "them with repository.fluxcd.io/<container> (and tag.fluxcd.io/<container>)"))
            for c in found.containers:
                try:
                    f = parse_filter(policy.filter_for(c.name))
                except InvalidFilter as e:
                    problems.append(Problem(reporting.INVALID_FILTER,
                                            f"container {c.name}: {e}; it matches nothing until fixed"))
                    continue
                result.containers[key] = result.containers.get(key, 0) + 1
                wanted.setdefault(c.repository, {})[str(f)] = f
                users.setdefault(c.repository, set()).add(key)
                if needs_build_time_of(f, c.tag) and not f.matches(c.tag):
                    current.setdefault(c.repository, set()).add(c.tag)
        before = self._request_count()

        async def scan_one(repository: str) -> list[TagInfo] | RegistryError:
            try:
                return await self.registry.scan(repository, *wanted[repository].values(),
                                                current=sorted(current.get(repository, set())))
            except RegistryError as e:
                return e

        # Each image once, whatever the number of releases using it; images at
        # once (the client's per-registry rate limit and concurrency bound it).
        repositories = sorted(wanted)
        scanned = await asyncio.gather(*(scan_one(r) for r in repositories))
        for repository, tags_or_error in zip(repositories, scanned):
            filters = wanted[repository]
            asked = current.get(repository, set())
            if isinstance(tags_or_error, RegistryError):
                log.debug("image automation: scanning %s failed: %s", repository, tags_or_error)
                for key in users[repository]:
                    result.problems[key].append(reporting.registry_problem(tags_or_error))
                if self.metrics is not None:
                    self.metrics.scanned(False)
                continue
            if self.metrics is not None:
                self.metrics.scanned(True)
            tags = tags_or_error
            result.tags[repository] = tags
            timed = [f for f in filters.values() if needs_timestamps(f)]
            result.tried[repository] = asked | {t.tag for t in tags if any(f.matches(t.tag) for f in timed)}
            seen = {t.tag for t in tags}
            if repository in self._known_tags and seen - self._known_tags[repository]:
                result.new_tags_seen = True
                log.info("image automation: new tag(s) for %s: %s", repository,
                         ", ".join(sorted(seen - self._known_tags[repository])))
            self._known_tags[repository] = seen
        pairs = {(key, repository) for repository, keys in users.items() for key in keys}
        if self._known_users is not None and pairs - self._known_users:
            result.new_users_seen = True
            log.info("image automation: newly automated image(s): %s",
                     ", ".join(sorted(f"{r} in {k}" for k, r in pairs - self._known_users)))
        self._known_users = pairs
        result.requests = self._request_count() - before
        log.debug("image automation scan: %d image repositories, %d registry requests",
                  len(result.tags), result.requests)
        self.book.record(Stage.SCAN, result.problems)
        await self._publish(result)
        self.last_scan = result
        return result

    # ---- phase 2 ----------------------------------------------------------
    def edit_checkout(self, root: Path, scan: ScanResult, date: DateLookup | None = None) -> Change[PassPlan]:
        """Rewrite the automated HelmReleases' files under `root`: the paths changed and the pass's plan."""
        plan = PassPlan()
        changed: list[str] = []
        tags = dict(scan.tags)
        index = ReleaseIndex.scan(root, self.writer.target.paths, self.default_namespace, self.yaml_limits)
        for key in scan.automated:
            ns, _, name = key.partition("/")
            found = index.get(ns, name)
            if found is None:
                if scan.policies[key].acts:
                    plan.add_problem(key, Problem(reporting.NOT_IN_GIT, self._not_in_git(key)))
                continue
            if date is not None:
                try:
                    tags = date_current_tags(found.document, scan.tried, tags, date)
                except RegistryError as e:
                    plan.add_problem(key, reporting.registry_problem(e))
                    log.debug("%s: image automation skipped this pass: cannot read the build time of "
                              "its current image: %s", key, e)
                    continue
            document = plan_document(key, found.document, tags)
            for problem in document.held:
                plan.add_problem(key, problem)
            if not document.writes:
                continue
            text = found.read_text()
            try:
                new_text = yamledit.set_values(text, "HelmRelease", ns, name, document.writes,
                                               default_namespace=self.default_namespace,
                                               limits=self.yaml_limits)
            except yamledit.EditError as e:
                plan.add_problem(key, Problem(reporting.EDIT_FAILED, f"cannot edit {found.rel} safely: {e}; "
                                                                     "edit the file by hand"))
                continue
            if new_text != text:
                found.write_text(new_text)
                if found.rel not in changed:
                    changed.append(found.rel)
                plan.releases.extend(document.releases)
        subject, body = commit_subject(plan.releases)
        return Change(changed, subject, body, plan)

    def _not_in_git(self, key: str) -> str:
        target = self.writer.target
        paths = f", paths {', '.join(target.paths)}" if target.paths else ""
        return (f"no HelmRelease {key} in {self.writer.shown} (branch {target.branch}{paths}), or its file "
                "cannot be read; automation edits it there")

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

    async def run_pass(self, scan: ScanResult | None = None) -> list[Release]:
        """One automation pass: commit every due update in one commit."""
        scan = scan or await self.scan()
        if not scan.automated or not scan.tags:
            return []
        date = functools.cache(self._date_in_loop(asyncio.get_running_loop()))  # once a pass, races included
        before = self._request_count()
        commit: str | None = None
        try:
            written = await self.writer.change(lambda root: self.edit_checkout(root, scan, date))
            commit, plan = written.commit, written.change.detail or PassPlan()
        except GitWriteError as e:
            log.error("image automation: %s", e)
            plan = PassPlan()
            for key, policy in scan.policies.items():
                if policy.acts:
                    plan.add_problem(key, Problem(reporting.GIT_WRITE_FAILED, f"cannot commit image updates: {e}"))
            if self.metrics is not None:
                self.metrics.committed(False)
        self.book.record(Stage.PASS, plan.problems)   # held is decided before the push, whatever became of it
        await self._publish(scan)
        held = sum(p.reason == reporting.TAG_HELD for found in plan.problems.values() for p in found)
        log.debug("image automation pass: %d update(s) committed, %d container(s) held, "
                  "%d registry requests for current tags", len(plan.releases) if commit else 0,
                  held, self._request_count() - before)
        if commit and self.metrics is not None:
            self.metrics.committed(True, len(plan.releases))
        if commit:
            for r in plan.releases:
                log.info("%s: released %s (was %s) in %s", r.key, r.new, r.old, commit[:12])
        return plan.releases if commit else []

    async def _publish(self, scan: ScanResult) -> None:
        """Emit the events of new problems and hand each HelmRelease's condition to `note_status`."""
        for notice in self.book.report(scan.policies, scan.containers, scan.conditioned):
            for event_type, reason, message in notice.events:
                log.log(logging.WARNING if event_type == "Warning" else logging.INFO,
                        "%s: image automation: %s", notice.key, message)
                await self.emit_event(scan.objects[notice.key], event_type, reason, message)
            if self.note_status is not None:
                try:
                    await self.note_status(notice.key, notice.condition)
                except Exception:  # noqa: BLE001 - a status write must not stop automation
                    log.exception("%s: could not record the image automation condition", notice.key)

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
                if scan.new_tags_seen or scan.new_users_seen or loop.time() >= next_pass or self._wake.is_set():
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
