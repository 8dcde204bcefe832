"""`release`: set the image tags of one HelmRelease in Git, as fluxctl's `release` did.

Place in the flow: a person at a terminal ─▶ **release** (the registry is
read for the tags; the cluster is not read) ─▶ one commit in the Git
repository the syncer applies, made by `gitchange.change_in_git`.

``release --workload W (--update-image REPO:TAG | --update-all-images) [--dry-run] [--force]``
    Rewrites the image values of the HelmRelease in Git (`yamledit`, only
    those scalars change). Refused for a locked workload and for a tag the
    container's filter does not allow, unless ``--force``; refused when the
    tag is not in the registry (always). ``--update-all-images`` moves each
    container to the newest tag its filter allows, never below the tag in
    Git (`policy.choose`). ``--dry-run`` prints the diff and commits nothing.

Commit message, as fluxctl wrote it: ``Release <image> to <workload>``, or
``Release all latest to <workload>``. What this module does NOT do: change
policy annotations (`imagepolicy`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from helm_operator.api.automation import AutomationPolicy, policy_of
from helm_operator.api.constants import KIND
from helm_operator.automation import yamledit
from helm_operator.automation.detect import ContainerImage, find_images, updates_for
from helm_operator.automation.imageref import ImageRef, parse_image_ref, same_repository
from helm_operator.automation.paths import PathSegments
from helm_operator.automation.policy import (
    InvalidFilter, TagFilter, TagInfo, choose, needs_build_time_of, parse_filter,
)
from helm_operator.automation.registry import RegistryClient, RegistryError
from helm_operator.cli.errors import CommandError, runner
from helm_operator.cli.gitchange import change_in_git, git_command, report
from helm_operator.cli.output import format_table
from helm_operator.cli.registryaccess import registry_client
from helm_operator.cli.workload import Workload, parse_workload

T = TypeVar("T")

ALL_LATEST = "all latest"
MSG_RELEASE = "Release {image} to {workload}"

Writes = list[tuple[PathSegments, str]]
Changes = list[tuple[str, str, str]]  # (container, from, to)


def _in_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the main loop from the edit thread and wait for it."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


class _Tags:
    """The registry, from the edit thread: tag lists and scans, each asked once."""

    def __init__(self, registry: RegistryClient, loop: asyncio.AbstractEventLoop, workload: Workload) -> None:
        self.registry, self.loop, self.workload = registry, loop, workload
        self.lists: dict[str, list[str]] = {}
        self.scans: dict[tuple[str, str, str], list[TagInfo]] = {}

    def listed(self, repository: str, shown: str) -> list[str]:
        if repository not in self.lists:
            try:
                self.lists[repository] = _in_loop(self.loop, self.registry.list_tags(repository))
            except RegistryError as e:
                raise CommandError(f"{self.workload}: image {shown} is not in the registry ({e})") from None
        return self.lists[repository]

    def scan(self, repository: str, tag_filter: TagFilter, current: str) -> list[TagInfo]:
        """The tags, dated where the filter orders by build time, the current tag included."""
        dated = current if needs_build_time_of(tag_filter, current) else ""
        key = (repository, str(tag_filter), dated)
        if key not in self.scans:
            try:
                self.scans[key] = _in_loop(self.loop, self.registry.scan(repository, tag_filter,
                                                                         current=[dated] if dated else []))
            except RegistryError as e:
                raise CommandError(f"{self.workload}: cannot list the tags of {repository}: {e}") from None
        return self.scans[key]


def _parse_update_image(workload: Workload, text: str) -> ImageRef:
    try:
        image = parse_image_ref(text.strip())
    except ValueError:
        image = None
    if image is None or not image.tag or image.digest:
        raise CommandError(f"{workload}: --update-image {text!r} is not of the form "
                           "repository:tag (e.g. ghcr.io/org/app:1.2.3)")
    return image


def _check_allowed(workload: Workload, container: ContainerImage, raw_filter: str, tag: str) -> None:
    try:
        tag_filter = parse_filter(raw_filter)
    except InvalidFilter as e:
        raise CommandError(f"{workload}: container {container.name} has an {e}, which allows no tag; "
                           "fix it with 'helm-operator policy' or pass --force") from None
    if not tag_filter.matches(tag):
        raise CommandError(f"{workload}: tag {tag} is not allowed by the filter {raw_filter!r} of container "
                           f"{container.name}; change it with 'helm-operator policy' or pass --force")


def _one_image(workload: Workload, doc: dict[str, Any], policy: AutomationPolicy, image: ImageRef,
               tags: _Tags, force: bool, changes: Changes) -> Writes:
    """The writes that put every container using `image`'s repository at its tag."""
    found = find_images(doc)
    matching = [c for c in found.containers if same_repository(c.repository, image.repository)]
    if not matching:
        have = ", ".join(sorted({c.repository for c in found.containers})) or "none found"
        raise CommandError(f"{workload} has no container using {image.repository} "
                           f"(its images: {have}); check the repository in --update-image")
    if not force:
        for c in matching:
            _check_allowed(workload, c, policy.filter_for(c.name), image.tag)
    if image.tag not in tags.listed(image.repository, str(image)):
        raise CommandError(f"{workload}: image {image} is not in the registry (no tag {image.tag} "
                           f"in {image.repository}); push it first or check the tag")
    writes: Writes = []
    for c in matching:
        if c.tag != image.tag:
            writes += updates_for(c, image.tag)
            changes.append((c.name, c.image_ref, str(c.ref.with_tag(image.tag))))
    return writes


def _all_latest(workload: Workload, doc: dict[str, Any], policy: AutomationPolicy, tags: _Tags,
                changes: Changes) -> Writes:
    """The writes that move every container to the newest tag its filter allows, never back."""
    writes: Writes = []
    for c in find_images(doc).containers:
        try:
            tag_filter = parse_filter(policy.filter_for(c.name))
        except InvalidFilter as e:
            print(f"warning: {workload}: container {c.name} skipped: {e}", file=sys.stderr)
            continue
        choice = choose(tag_filter, tags.scan(c.repository, tag_filter, c.tag), c.tag or None)
        if choice.held:
            print(f"warning: {workload}: container {c.name} kept at {c.image_ref}: {choice.held}", file=sys.stderr)
        if choice.tag and choice.tag != c.tag:
            writes += updates_for(c, choice.tag)
            changes.append((c.name, c.image_ref, str(c.ref.with_tag(choice.tag))))
    return writes


async def release(args: argparse.Namespace) -> int:
    default_ns = args.k8s_default_namespace
    workload = parse_workload(args.workload, default_ns)
    image = _parse_update_image(workload, args.update_image) if args.update_image else None
    subject = MSG_RELEASE.format(image=image or ALL_LATEST, workload=workload)
    changes: Changes = []

    async with registry_client(args) as registry:
        tags = _Tags(registry, asyncio.get_running_loop(), workload)

        def plan(text: str, doc: dict[str, Any]) -> tuple[str, str]:
            changes.clear()   # a lost push race plans again on the new head
            policy = policy_of(doc)
            if policy.locked and not args.force:
                raise CommandError(f"{workload} is {policy.lock_description()}: release refused; unlock it "
                                   f"with 'helm-operator unlock --workload {workload}' or pass --force")
            writes = (_one_image(workload, doc, policy, image, tags, args.force, changes) if image is not None
                      else _all_latest(workload, doc, policy, tags, changes))
            if not writes:
                return text, subject
            return yamledit.set_values(text, KIND, workload.namespace, workload.name, writes,
                                       default_namespace=default_ns), subject

        outcome = await change_in_git(args, workload, plan, dry_run=args.dry_run)

    if changes:
        print(format_table(["WORKLOAD", "CONTAINER", "FROM", "TO"],
                           [[str(workload), name, old, new] for name, old, new in changes]), end="")
    if args.dry_run:
        print(outcome.diff, end="")
        print("dry run: nothing committed")
        return 0
    return report(outcome, workload, "every image is already at the requested tag")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = git_command(subparsers, "release", "set image tags of a HelmRelease in Git", registry=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("-i", "--update-image", metavar="REPOSITORY:TAG",
                       help="the image to release, e.g. ghcr.io/org/app:1.2.3")
    which.add_argument("--update-all-images", action="store_true",
                       help="every container to the newest tag its filter allows")
    p.add_argument("--dry-run", action="store_true", help="print the diff, commit nothing")
    p.add_argument("--force", action="store_true", help="release past a lock or a tag filter")
    p.set_defaults(handler=runner(release))
