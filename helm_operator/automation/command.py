"""The fluxctl-style commands: look at workloads and images, and change them through Git.

Place in the flow: a person at a terminal ─▶ **these commands** ─▶ a commit
in the Git repository the syncer applies (the cluster is only read). Every
change is made like the operator's automation makes its own: a fresh
checkout of the branch in a temporary directory (`gitwrite.GitWriter`), the
HelmRelease document found by kind, namespace and name (`gitwrite.locate`),
an in-place edit that leaves every other byte alone (`yamledit` for image
values, `annotations` for policy annotations), one commit per command, and a
push that re-applies the edit on the new head if someone pushed first.

Commands (a workload is ``namespace:helmrelease/name``):

``list-workloads [--namespace NS]``
    HelmReleases in the cluster with their containers, images, release
    status, policies (automated, locked, ignore) and tag filters.
``list-images (--workload W | --namespace NS)``
    Per container the current image and the newest tags its filter allows
    (newest first, ``'->`` marks the current tag), from a registry scan.
``release --workload W (--update-image REPO:TAG | --update-all-images) [--dry-run] [--force]``
    Rewrites the image values of the HelmRelease in Git. Refused for a locked
    workload and for a tag the container's filter does not allow, unless
    ``--force``; refused when the tag is not in the registry (always).
    ``--dry-run`` prints the diff and commits nothing.
``automate``, ``deautomate``, ``lock [-m MSG] [--user USER]``, ``unlock``,
``policy (--tag CONTAINER=PATTERN ... | --tag-all PATTERN)``
    Set or remove the annotations of COMPAT section 2 on the HelmRelease in
    Git. A pattern without a type prefix is a glob and is written as
    ``glob:<pattern>``; ``*`` (the default filter) removes the filter.

Commit messages, as fluxctl wrote them (the ``MSG_*`` constants below):

- ``Release <image> to <workload>``; with ``--update-all-images``:
  ``Release all latest to <workload>``
- ``Automated: <workload>``, ``Deautomated: <workload>``,
  ``Locked: <workload>``, ``Unlocked: <workload>``,
  ``Updated policies: <workload>``

A command that would change nothing makes no commit and says so (exit 0).
A failure is one line on stderr naming what failed, the workload and what
to do, with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from helm_operator import boundedyaml
from helm_operator.automation import yamledit
from helm_operator.automation.annotations import edit_annotations
from helm_operator.automation.gitwrite import GitTarget, GitWriteError, GitWriter, locate
from helm_operator.automation.images import (
    AUTOMATED, FILTER_PREFIX, LOCKED, LOCKED_MSG, LOCKED_USER, POLICY_PREFIXES, TAG_POLICY,
    ContainerImage, find_images, parse_image_ref, read_policy, updates_for,
)
from helm_operator.automation.policy import (
    InvalidFilter, TagFilter, TagInfo, choose, needs_build_time_of, newest, parse_filter,
)
from helm_operator.automation.registry import CredentialStore, RegistryClient, RegistryError, parse_image_repo
from helm_operator.gitrunner import GitError, GitRunner
from helm_operator.redaction import redact_text

T = TypeVar("T")

KIND = "HelmRelease"
DEFAULT_FILTER = "glob:*"
ALL_LATEST = "all latest"

MSG_RELEASE = "Release {image} to {workload}"
MSG_AUTOMATED = "Automated: {workload}"
MSG_DEAUTOMATED = "Deautomated: {workload}"
MSG_LOCKED = "Locked: {workload}"
MSG_UNLOCKED = "Unlocked: {workload}"
MSG_POLICIES = "Updated policies: {workload}"

NEW = POLICY_PREFIXES[0]  # "fluxcd.io/": what we write; the legacy prefix is only removed


class CommandError(Exception):
    """A failure to report as one line on stderr, exit code 1 (URL credentials removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


# --- workloads ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:helmrelease/{self.name}"


def parse_workload(text: str, default_namespace: str = "default") -> Workload:
    """``ns:helmrelease/name`` (or ``helmrelease/name`` in the default namespace)."""
    namespace, colon, rest = text.strip().rpartition(":")
    if not colon:
        namespace = default_namespace
    kind, slash, name = rest.partition("/")
    if not slash or kind.lower() not in ("helmrelease", "helmreleases", "hr") or not name or not namespace \
            or "/" in name or ":" in namespace:
        raise CommandError(f"workload {text!r} is not of the form namespace:helmrelease/name; "
                           "list them with 'helm-operator list-workloads'")
    return Workload(namespace, name)


def similar(wanted: Workload, known: Iterable[Workload], limit: int = 3) -> list[str]:
    """The known workloads closest to the one asked for, best first."""
    by_key = {f"{w.namespace}/{w.name}": str(w) for w in known}   # the common ":helmrelease/" would blur scores
    close = difflib.get_close_matches(f"{wanted.namespace}/{wanted.name}", sorted(by_key), n=limit, cutoff=0.6)
    if not close:  # the right name in another namespace
        close = [k for k in sorted(by_key) if k.endswith(f"/{wanted.name}")][:limit]
    return [by_key[k] for k in close]


def unknown_workload(wanted: Workload, known: Iterable[Workload], where: str) -> CommandError:
    known = list(known)
    close = similar(wanted, known)
    if close:
        hint = "did you mean " + " or ".join(close) + "?"
    elif known:
        hint = "known workloads: " + ", ".join(sorted(str(w) for w in known)[:5]) + \
            (", ..." if len(known) > 5 else "")
    else:
        hint = "there are none; check the namespace and paths"
    return CommandError(f"unknown workload {wanted}: no HelmRelease {wanted.namespace}/{wanted.name} {where}; {hint}")


def workload_of(obj: Mapping[str, Any], default_namespace: str = "default") -> Workload:
    meta = obj.get("metadata") or {}
    return Workload(str(meta.get("namespace") or default_namespace), str(meta.get("name")))


# --- pure helpers -------------------------------------------------------------------


def normalize_filter(pattern: str) -> str:
    """The filter as written to the annotation: ``glob:`` added when no type is given.

    Raises `InvalidFilter` (a user-facing message) for a pattern that matches nothing.
    """
    text = pattern.strip()
    parsed = parse_filter(text)
    return text if ":" in text else f"{parsed.type.value}:{parsed.expression}"


def is_default_filter(normalized: str) -> bool:
    return normalized == DEFAULT_FILTER


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces."""
    table = [list(headers), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines) + "\n"


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))


def newest_first(tag_filter: TagFilter, tags: Sequence[TagInfo], limit: int) -> list[str]:
    """Up to `limit` allowed tags, newest first under the filter's own order."""
    remaining = list(tags)
    out: list[str] = []
    while remaining and len(out) < limit:
        best = newest(tag_filter, remaining)
        if best is None:
            break
        out.append(best)
        remaining = [t for t in remaining if t.tag != best]
    return out


def same_repository(a: str, b: str) -> bool:
    """``nginx`` is ``docker.io/library/nginx``; otherwise compare as written."""
    try:
        return parse_image_repo(a) == parse_image_repo(b)
    except ValueError:
        return a == b


def policy_words(annotations: Mapping[str, Any] | None) -> str:
    policy = read_policy(annotations)
    words = [w for w, on in (("automated", policy.automated), ("locked", policy.locked),
                             ("ignore", policy.ignored)) if on]
    return ",".join(words)


def lock_description(annotations: Mapping[str, Any] | None) -> str:
    policy = read_policy(annotations)
    who = f" by {policy.locked_user}" if policy.locked_user else ""
    why = f" ({policy.locked_msg})" if policy.locked_msg else ""
    return f"locked{who}{why}"


# --- policy changes (pure) ------------------------------------------------------------


AnnotationChange = tuple[dict[str, str], list[str]]  # (set, remove)


def automate_change() -> AnnotationChange:
    return {NEW + AUTOMATED: "true"}, []


def deautomate_change() -> AnnotationChange:
    return {}, [p + AUTOMATED for p in POLICY_PREFIXES]


def lock_change(user: str, message: str | None) -> AnnotationChange:
    to_set = {NEW + LOCKED: "true", NEW + LOCKED_USER: user}
    remove = [POLICY_PREFIXES[1] + k for k in (LOCKED, LOCKED_USER, LOCKED_MSG)]
    if message:
        to_set[NEW + LOCKED_MSG] = message
    else:
        remove.append(NEW + LOCKED_MSG)   # an old reason would describe another lock
    return to_set, remove


def unlock_change() -> AnnotationChange:
    return {}, [p + k for p in POLICY_PREFIXES for k in (LOCKED, LOCKED_USER, LOCKED_MSG)]


def filter_change(filters: Mapping[str, str]) -> AnnotationChange:
    """`filters` are container -> normalized filter; the default filter removes the annotation."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for container, value in filters.items():
        legacy = [p + TAG_POLICY + container for p in POLICY_PREFIXES]
        remove.extend(legacy)
        if is_default_filter(value):
            remove.append(FILTER_PREFIX + container)
        else:
            to_set[FILTER_PREFIX + container] = value
    return to_set, remove


# --- Git -------------------------------------------------------------------------


def _git_config(key: str) -> str | None:
    """The user's own git setting `key` (as `git config --get` in the current directory sees it)."""
    try:
        found = GitRunner(timeout=10, isolated=False).run("config", "--get", key, check=False)
    except GitError:
        return None
    return (found.text or None) if found.status == 0 else None


def git_target(args: argparse.Namespace) -> GitTarget:
    url = args.git_url or os.environ.get("HELM_OPERATOR_GIT_URL")
    if not url:
        raise CommandError("no Git repository: pass --git-url (or set $HELM_OPERATOR_GIT_URL) "
                           "naming the repository that holds the HelmRelease files")
    return GitTarget(url=url, branch=args.git_branch, paths=tuple(args.git_path),
                     author_name=args.git_user or _git_config("user.name") or "helm-operator",
                     author_email=args.git_email or _git_config("user.email")
                     or "helm-operator@users.noreply.local")


def _read(file: Path) -> str:
    with open(file, encoding="utf-8", newline="") as f:   # keep \r\n as it is
        return f.read()


def _write(file: Path, text: str) -> None:
    with open(file, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def helmreleases_in(root: Path, paths: Sequence[str], default_namespace: str) -> list[Workload]:
    """Every HelmRelease document under the paths (for "did you mean")."""
    found: list[Workload] = []
    bases = [root / p for p in paths] if paths else [root]
    for base in bases:
        files = [base] if base.is_file() else sorted(base.rglob("*.y*ml")) if base.is_dir() else []
        for file in files:
            if ".git" in file.relative_to(root).parts or file.suffix not in (".yaml", ".yml"):
                continue
            try:
                docs = boundedyaml.load_all(_read(file), str(file.relative_to(root)),
                                            boundedyaml.DEFAULT_LIMITS.documents)
            except (boundedyaml.YamlError, UnicodeDecodeError, OSError):
                continue
            found += [workload_of(d, default_namespace) for d in docs
                      if isinstance(d, dict) and d.get("kind") == KIND]
    return found


def find_document(text: str, workload: Workload, default_namespace: str) -> dict[str, Any]:
    try:
        docs = boundedyaml.load_all(text, str(workload), boundedyaml.DEFAULT_LIMITS.documents)
    except boundedyaml.YamlError as e:
        raise CommandError(f"{workload}: cannot read its file: {e.reason}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == KIND and workload_of(doc, default_namespace) == workload:
            return doc
    raise CommandError(f"{workload}: the HelmRelease document vanished while reading it")


# An edit of one HelmRelease file: (text, parsed document) -> (new text, commit subject)
Plan = Callable[[str, dict[str, Any]], tuple[str, str]]


@dataclass
class Outcome:
    commit: str | None = None
    subject: str = ""
    path: str = ""
    diff: str = ""


async def change_in_git(args: argparse.Namespace, workload: Workload, plan: Plan, *,
                        dry_run: bool = False) -> Outcome:
    """Run `plan` on the workload's file in a fresh checkout; one commit unless nothing changed."""
    target = git_target(args)
    default_ns = args.k8s_default_namespace
    outcome = Outcome()

    def edit(root: Path) -> list[str]:
        file = locate(root, target.paths, KIND, workload.namespace, workload.name, default_ns)
        if file is None:
            where = f"in {target.url} (branch {target.branch}" + \
                (f", paths {', '.join(target.paths)})" if target.paths else ")")
            raise unknown_workload(workload, helmreleases_in(root, target.paths, default_ns), where)
        rel = file.relative_to(root).as_posix()
        text = _read(file)
        try:
            new_text, subject = plan(text, find_document(text, workload, default_ns))
        except yamledit.EditError as e:
            raise CommandError(f"{workload}: cannot edit {rel} safely: {e}; edit the file by hand") from None
        outcome.subject, outcome.path, outcome.diff = subject, rel, unified_diff(rel, text, new_text)
        if new_text == text or dry_run:
            return []
        _write(file, new_text)
        return [rel]

    with tempfile.TemporaryDirectory(prefix="helm-operator-cli-") as tmp:
        writer = GitWriter(target, Path(tmp) / "checkout")
        try:
            outcome.commit = await writer.change(edit, lambda: (outcome.subject, ""))
        except GitWriteError as e:
            raise CommandError(f"{workload}: {e}; check --git-url, --git-branch and your access") from None
    return outcome


def report(outcome: Outcome, workload: Workload, nothing: str) -> int:
    if outcome.commit:
        print(f"committed {outcome.commit[:12]}: {outcome.subject}")
    else:
        print(f"{workload}: {nothing}; no commit")
    return 0


# --- registry ------------------------------------------------------------------------


def registry_client(args: argparse.Namespace) -> RegistryClient:
    store = CredentialStore()
    if args.docker_config is not None:
        try:
            store.add_docker_config(Path(args.docker_config).read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"cannot read --docker-config {args.docker_config}: {e}") from None
    return RegistryClient(store, plain_http_hosts=tuple(args.registry_insecure_host), attempts=3)


def _in_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the main loop from the edit thread and wait for it."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


# --- commands: release -----------------------------------------------------------------


async def release(args: argparse.Namespace) -> int:
    default_ns = args.k8s_default_namespace
    workload = parse_workload(args.workload, default_ns)
    image = None
    if args.update_image:
        try:
            image = parse_image_ref(args.update_image.strip())
        except ValueError:
            image = None
        if image is None or not image.tag or image.digest:
            raise CommandError(f"{workload}: --update-image {args.update_image!r} is not of the form "
                               "repository:tag (e.g. ghcr.io/org/app:1.2.3)")
    loop = asyncio.get_running_loop()
    changes: list[tuple[str, str, str]] = []

    async with registry_client(args) as registry:
        tag_lists: dict[str, list[str]] = {}
        scans: dict[tuple[str, str, str], list[TagInfo]] = {}

        def tags_of(repository: str, shown: str) -> list[str]:
            if repository not in tag_lists:
                try:
                    tag_lists[repository] = _in_loop(loop, registry.list_tags(repository))
                except RegistryError as e:
                    raise CommandError(f"{workload}: image {shown} is not in the registry ({e})") from None
            return tag_lists[repository]

        def scan(repository: str, tag_filter: TagFilter, current: str) -> list[TagInfo]:
            """The tags, dated where the filter orders by build time, the current tag included."""
            dated = current if needs_build_time_of(tag_filter, current) else ""
            key = (repository, str(tag_filter), dated)
            if key not in scans:
                try:
                    scans[key] = _in_loop(loop, registry.scan(repository, tag_filter, current=[dated] if dated else []))
                except RegistryError as e:
                    raise CommandError(f"{workload}: cannot list the tags of {repository}: {e}") from None
            return scans[key]

        def plan(text: str, doc: dict[str, Any]) -> tuple[str, str]:
            changes.clear()
            annotations = (doc.get("metadata") or {}).get("annotations")
            policy = read_policy(annotations)
            if policy.locked and not args.force:
                raise CommandError(f"{workload} is {lock_description(annotations)}: release refused; unlock it "
                                   f"with 'helm-operator unlock --workload {workload}' or pass --force")
            found = find_images(doc)
            writes: list[tuple[Any, str]] = []
            if image is not None:
                matching = [c for c in found.containers if same_repository(c.repository, image.repository)]
                if not matching:
                    have = ", ".join(sorted({c.repository for c in found.containers})) or "none found"
                    raise CommandError(f"{workload} has no container using {image.repository} "
                                       f"(its images: {have}); check the repository in --update-image")
                for c in matching:
                    raw = policy.filters.get(c.name, DEFAULT_FILTER)
                    if not args.force:
                        _check_allowed(workload, c, raw, image.tag)
                if image.tag not in tags_of(image.repository, str(image)):
                    raise CommandError(f"{workload}: image {image} is not in the registry (no tag {image.tag} "
                                       f"in {image.repository}); push it first or check the tag")
                for c in matching:
                    if c.tag != image.tag:
                        writes += updates_for(c, image.tag)
                        changes.append((c.name, c.image_ref, str(c.ref.with_tag(image.tag))))
                subject = MSG_RELEASE.format(image=image, workload=workload)
            else:
                for c in found.containers:
                    raw = policy.filters.get(c.name, DEFAULT_FILTER)
                    try:
                        tag_filter = parse_filter(raw)
                    except InvalidFilter as e:
                        print(f"warning: {workload}: container {c.name} skipped: {e}", file=sys.stderr)
                        continue
                    choice = choose(tag_filter, scan(c.repository, tag_filter, c.tag), c.tag or None)
                    best = choice.tag
                    if choice.held:
                        print(f"warning: {workload}: container {c.name} kept at {c.image_ref}: {choice.held}",
                              file=sys.stderr)
                    if best and best != c.tag:
                        writes += updates_for(c, best)
                        changes.append((c.name, c.image_ref, str(c.ref.with_tag(best))))
                subject = MSG_RELEASE.format(image=ALL_LATEST, workload=workload)
            if not writes:
                return text, subject
            new_text = yamledit.set_values(text, KIND, workload.namespace, workload.name, writes,
                                           default_namespace=default_ns)
            return new_text, subject

        outcome = await change_in_git(args, workload, plan, dry_run=args.dry_run)

    if changes:
        print(format_table(["WORKLOAD", "CONTAINER", "FROM", "TO"],
                           [[str(workload), name, old, new] for name, old, new in changes]), end="")
    if args.dry_run:
        print(outcome.diff, end="")
        print("dry run: nothing committed")
        return 0
    return report(outcome, workload, "every image is already at the requested tag")


def _check_allowed(workload: Workload, container: ContainerImage, raw_filter: str, tag: str) -> None:
    try:
        tag_filter = parse_filter(raw_filter)
    except InvalidFilter as e:
        raise CommandError(f"{workload}: container {container.name} has an {e}, which allows no tag; "
                           "fix it with 'helm-operator policy' or pass --force") from None
    if not tag_filter.matches(tag):
        raise CommandError(f"{workload}: tag {tag} is not allowed by the filter {raw_filter!r} of container "
                           f"{container.name}; change it with 'helm-operator policy' or pass --force")


# --- commands: policy annotations --------------------------------------------------------


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
    user = args.user or os.environ.get("USER") or args.git_user or _git_config("user.name") or "unknown"
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


# --- commands: reading the cluster ---------------------------------------------------------


async def _cluster_helmreleases(args: argparse.Namespace, namespace: str | None) -> list[dict[str, Any]]:
    from helm_operator.kube.client import Kube, KubeError

    try:
        kube = Kube.from_kubeconfig(Path(args.kubeconfig) if args.kubeconfig else None)
        items = await kube.list_helmreleases(namespace)
    except KubeError as e:
        raise CommandError(f"cannot list HelmReleases: {e}; check --kubeconfig and access") from None
    except Exception as e:  # noqa: BLE001 - kubeconfig loading raises many kinds
        raise CommandError(f"cannot reach the cluster: {type(e).__name__}: {e}; check --kubeconfig") from None
    return sorted(items, key=lambda o: workload_of(o))


def workload_rows(items: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for obj in items:
        workload = workload_of(obj)
        annotations = (obj.get("metadata") or {}).get("annotations")
        policy = read_policy(annotations)
        status = obj.get("status") or {}
        state = str(status.get("releaseStatus") or status.get("phase") or "")
        found = find_images(obj)
        first = [str(workload), state, policy_words(annotations)]
        lines = [[c.name, c.image_ref, policy.filters.get(c.name, "")]
                 for c in sorted(found.containers, key=lambda c: c.name)]
        lines += [[e.container, f"(error: {e.message})", ""] for e in found.errors]
        for i, (container, image, tag_filter) in enumerate(lines or [["", "", ""]]):
            head = first if i == 0 else ["", "", ""]
            rows.append([head[0], container, image, head[1], head[2], tag_filter])
    return rows


async def list_workloads(args: argparse.Namespace) -> int:
    items = await _cluster_helmreleases(args, args.namespace)
    print(format_table(["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY", "FILTER"], workload_rows(items)),
          end="")
    return 0


def _created(when: datetime | None) -> str:
    return when.strftime("%d %b %Y %H:%M:%S %Z") if when else ""


async def list_images(args: argparse.Namespace) -> int:
    if args.workload:
        workload = parse_workload(args.workload, args.k8s_default_namespace)
        items = await _cluster_helmreleases(args, workload.namespace)
        chosen = [o for o in items if workload_of(o) == workload]
        if not chosen:
            raise unknown_workload(workload, [workload_of(o) for o in
                                              await _cluster_helmreleases(args, None)], "in the cluster")
        items = chosen
    else:
        items = await _cluster_helmreleases(args, args.namespace)
    rows: list[list[str]] = []
    async with registry_client(args) as registry:
        scans: dict[tuple[str, str], list[TagInfo] | str] = {}
        for obj in items:
            workload = workload_of(obj)
            policy = read_policy((obj.get("metadata") or {}).get("annotations"))
            found = find_images(obj)
            if not found.containers:
                rows.append([str(workload), "", "(no images found)", ""])
            for i, c in enumerate(sorted(found.containers, key=lambda c: c.name)):
                rows.append([str(workload) if i == 0 else "", c.name, c.repository, ""])
                raw = policy.filters.get(c.name, DEFAULT_FILTER)
                try:
                    tag_filter = parse_filter(raw)
                except InvalidFilter as e:
                    rows.append(["", "", f"({e}: matches nothing)", ""])
                    continue
                key = (c.repository, str(tag_filter))
                if key not in scans:
                    try:
                        scans[key] = await registry.scan(c.repository, tag_filter)
                    except RegistryError as e:
                        scans[key] = str(e)
                scanned = scans[key]
                if isinstance(scanned, str):
                    rows.append(["", "", f"(registry: {scanned})", ""])
                    continue
                rows += image_lines(tag_filter, scanned, c.tag, args.limit)
    print(format_table(["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"], rows), end="")
    return 0


def image_lines(tag_filter: TagFilter, tags: Sequence[TagInfo], current: str, limit: int) -> list[list[str]]:
    """fluxctl's layout: ``|   tag`` per allowed tag, newest first, ``'-> tag`` the current one."""
    created = {t.tag: t.created for t in tags}
    shown = newest_first(tag_filter, tags, limit)
    lines = []
    for tag in shown:
        marker = "'->" if tag == current else "|  "
        lines.append(["", "", f"{marker} {tag}", _created(created.get(tag))])
    if current not in shown:
        note = "" if current in created else " (not in the registry)"
        if shown:
            lines.append(["", "", ":", ""])
        lines.append(["", "", f"'-> {current}{note}", _created(created.get(current))])
    if not shown and not tags:
        lines.insert(0, ["", "", "(no tags in the registry)", ""])
    return lines


# --- argument parsing ---------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default: $KUBECONFIG)")
    p.add_argument("--k8s-default-namespace", default="default",
                   help="namespace of HelmRelease documents in Git that name none (default: default)")
    p.add_argument("--registry-insecure-host", action="append", default=[],
                   help="registry host:port spoken to over plain HTTP (repeatable)")
    p.add_argument("--docker-config", type=Path, default=None, help="docker config.json with registry auths")


def _git_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Git (where the change is committed)")
    g.add_argument("--git-url", default=None, help="repository holding the HelmRelease files "
                                                   "(default: $HELM_OPERATOR_GIT_URL)")
    g.add_argument("--git-branch", default="master")
    g.add_argument("--git-path", action="append", default=[], help="paths with HelmReleases (repeatable)")
    g.add_argument("--git-user", default=None, help="commit author name (default: git config user.name)")
    g.add_argument("--git-email", default=None, help="commit author email (default: git config user.email)")


def _workload_flag(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-w", "--workload", required=required, help="namespace:helmrelease/name")


def _git_command(subparsers: argparse._SubParsersAction, name: str,  # type: ignore[type-arg]
                 text: str) -> argparse.ArgumentParser:
    """A subcommand that changes one workload through Git: shared flags added."""
    p = subparsers.add_parser(name, help=text)
    _common(p)
    _git_flags(p)
    _workload_flag(p)
    return p


Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except CommandError as e:
            one_line = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # git output
            print(f"helm-operator {args.command}: {one_line}", file=sys.stderr)
            return 1
    return run


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("list-workloads", help="HelmReleases with their containers, images and policies")
    _common(p)
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.set_defaults(handler=_runner(list_workloads))

    p = subparsers.add_parser("list-images", help="current images and the newest tags each filter allows")
    _common(p)
    _workload_flag(p, required=False)
    p.add_argument("-n", "--namespace", default=None, help="every workload of this namespace")
    p.add_argument("--limit", type=int, default=10, help="tags shown per container (default 10)")
    p.set_defaults(handler=_runner(list_images))

    p = _git_command(subparsers, "release", "set image tags of a HelmRelease in Git (one commit)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("-i", "--update-image", help="repository:tag to release")
    which.add_argument("--update-all-images", action="store_true",
                       help="every container to the newest tag its filter allows")
    p.add_argument("--dry-run", action="store_true", help="print the diff, commit nothing")
    p.add_argument("--force", action="store_true", help="release past a lock or a tag filter")
    p.set_defaults(handler=_runner(release))

    for name, handler, text in (("automate", automate, "turn image automation on (fluxcd.io/automated)"),
                                ("deautomate", deautomate, "turn image automation off")):
        p = _git_command(subparsers, name, text)
        p.set_defaults(handler=_runner(handler))

    p = _git_command(subparsers, "lock", "stop automated and manual releases (fluxcd.io/locked)")
    p.add_argument("-m", "--message", default=None, help="why (fluxcd.io/locked_msg)")
    p.add_argument("--user", default=None, help="who (fluxcd.io/locked_user; default: $USER)")
    p.set_defaults(handler=_runner(lock))

    p = _git_command(subparsers, "unlock", "remove the lock")
    p.set_defaults(handler=_runner(unlock))

    p = _git_command(subparsers, "policy", "set tag filters (filter.fluxcd.io/<container>)")
    p.add_argument("--tag", action="append", default=[], metavar="CONTAINER=PATTERN",
                   help="filter for one container, e.g. app=semver:~1.2 (repeatable; '*' removes it)")
    p.add_argument("--tag-all", default=None, metavar="PATTERN", help="filter for every container")
    p.set_defaults(handler=_runner(set_policy))
