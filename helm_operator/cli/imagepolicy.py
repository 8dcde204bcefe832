"""`automate`, `deautomate`, `lock`, `unlock`, `policy`: the automation annotations of one HelmRelease, in Git.

Place in the flow: a person at a terminal ─▶ **these commands** ─▶ the
annotations of COMPAT section 2 set or removed on the HelmRelease document
(`api.automation`'s changes, applied in place by `annotations`) ─▶ one
commit, made by `gitchange.change_in_git`. Neither the cluster nor a
registry is read.

``automate``, ``deautomate``, ``lock [-m MSG] [--user USER]``, ``unlock``,
``policy (--tag CONTAINER=PATTERN ... | --tag-all PATTERN)``
    A pattern without a type prefix is a glob and is written as
    ``glob:<pattern>``; ``*`` (the default filter) removes the filter.

Commit messages, as fluxctl wrote them: ``Automated: <workload>``,
``Deautomated: <workload>``, ``Locked: <workload>``, ``Unlocked: <workload>``,
``Updated policies: <workload>``. What this module does NOT do: change image
tags (`imagerelease`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from helm_operator.api.automation import (
    AnnotationChange, automate_change, deautomate_change, filter_change, lock_change, unlock_change,
)
from helm_operator.api.constants import KIND
from helm_operator.automation.annotations import edit_annotations
from helm_operator.automation.detect import find_images
from helm_operator.automation.policy import InvalidFilter, normalize_filter
from helm_operator.cli.errors import CommandError, runner
from helm_operator.cli.gitchange import change_in_git, git_command, git_config, report
from helm_operator.cli.workload import Workload, parse_workload

MSG_AUTOMATED = "Automated: {workload}"
MSG_DEAUTOMATED = "Deautomated: {workload}"
MSG_LOCKED = "Locked: {workload}"
MSG_UNLOCKED = "Unlocked: {workload}"
MSG_POLICIES = "Updated policies: {workload}"


async def annotate(args: argparse.Namespace, subject_template: str,
                   change: Callable[[Workload, dict[str, Any]], AnnotationChange], nothing: str) -> int:
    default_ns = args.k8s_default_namespace
    workload = parse_workload(args.workload, default_ns)
    subject = subject_template.format(workload=workload)

    def plan(text: str, doc: dict[str, Any]) -> tuple[str, str]:
        to_set, remove = change(workload, doc)
        return edit_annotations(text, KIND, workload.namespace, workload.name, set=to_set, remove=remove,
                                default_namespace=default_ns), subject

    outcome = await change_in_git(args, workload, plan)
    return report(outcome, workload, nothing)


async def automate(args: argparse.Namespace) -> int:
    return await annotate(args, MSG_AUTOMATED, lambda w, d: automate_change(), "already automated")


async def deautomate(args: argparse.Namespace) -> int:
    return await annotate(args, MSG_DEAUTOMATED, lambda w, d: deautomate_change(), "not automated")


async def lock(args: argparse.Namespace) -> int:
    user = args.user or os.environ.get("USER") or args.git_user or git_config("user.name") or "unknown"
    return await annotate(args, MSG_LOCKED, lambda w, d: lock_change(user, args.message),
                          "already locked that way")


async def unlock(args: argparse.Namespace) -> int:
    return await annotate(args, MSG_UNLOCKED, lambda w, d: unlock_change(), "not locked")


async def set_policy(args: argparse.Namespace) -> int:
    if not args.tag and args.tag_all is None:
        raise CommandError("policy: give --tag CONTAINER=PATTERN (repeatable) or --tag-all PATTERN")
    requested: dict[str, str] = {}
    for item in args.tag:
        container, eq, pattern = item.partition("=")
        if not eq or not container.strip():
            raise CommandError(f"{args.workload}: --tag {item!r} is not of the form CONTAINER=PATTERN")
        requested[container.strip()] = pattern
    checked = {c: _normalize(args.workload, c, p) for c, p in requested.items()}
    all_filter = _normalize(args.workload, "(all)", args.tag_all) if args.tag_all is not None else None

    def change(workload: Workload, doc: dict[str, Any]) -> AnnotationChange:
        containers = [c.name for c in find_images(doc).containers]
        unknown = [c for c in checked if c not in containers]
        if unknown:
            raise CommandError(f"{workload} has no container {', '.join(unknown)} (its containers: "
                               f"{', '.join(containers) or 'none found'}); check --tag")
        filters = dict.fromkeys(containers, all_filter) if all_filter is not None else {}
        if all_filter is not None and not containers:
            raise CommandError(f"{workload}: no containers found in its values for --tag-all; "
                               "name the container with --tag or map it with repository.fluxcd.io/<c>")
        filters.update(checked)
        return filter_change(filters)

    return await annotate(args, MSG_POLICIES, change, "the filters are already set that way")


def _normalize(workload: str, container: str, pattern: str) -> str:
    try:
        return normalize_filter(pattern)
    except InvalidFilter as e:
        raise CommandError(f"{workload}: container {container}: {e}; write glob:<pattern>, semver:<constraint>, "
                           "regexp:<re>, alphabetical:<glob> or numerical:<glob>") \
            from None


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, handler, text in (("automate", automate, "turn image automation on (fluxcd.io/automated)"),
                                ("deautomate", deautomate, "turn image automation off")):
        p = git_command(subparsers, name, text)
        p.set_defaults(handler=runner(handler))

    p = git_command(subparsers, "lock", "stop automated and manual releases (fluxcd.io/locked)")
    p.add_argument("-m", "--message", default=None, help="why (fluxcd.io/locked_msg)")
    p.add_argument("--user", default=None, help="who (fluxcd.io/locked_user; default: $USER)")
    p.set_defaults(handler=runner(lock))

    p = git_command(subparsers, "unlock", "remove the lock")
    p.set_defaults(handler=runner(unlock))

    p = git_command(subparsers, "policy", "set tag filters (filter.fluxcd.io/<container>)")
    p.add_argument("--tag", action="append", default=[], metavar="CONTAINER=PATTERN",
                   help="filter for one container, e.g. app=semver:~1.2 (repeatable; '*' removes it)")
    p.add_argument("--tag-all", default=None, metavar="PATTERN", help="filter for every container")
    p.set_defaults(handler=runner(set_policy))
