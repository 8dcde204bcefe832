"""One change to one workload through Git: the plumbing of `release`, `automate`, `lock`, `policy`, ...

Place in the flow: a command's `Plan` (text and parsed document -> new text
and commit subject, pure) ─▶ **change_in_git**: a fresh checkout of the
branch in a temporary directory (`gitwrite.GitWriter`), the HelmRelease
document found through the one index of the checkout (`releasefiles`), the
plan run on its file's text, one commit, and a push that re-runs the plan on
the new head if someone pushed first. The Git flags (``--git-url``, ...) and
the parser of such a subcommand (`git_command`) are defined here too.

A command that would change nothing makes no commit and says so (`report`,
exit 0). What this module does NOT do: decide the edit (the commands'
plans, `yamledit`, `annotations`), or read the cluster.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_operator.automation import yamledit
from helm_operator.automation.gitwrite import Change, GitTarget, GitWriteError, GitWriter
from helm_operator.automation.releasefiles import ReleaseIndex
from helm_operator.cli.errors import CommandError
from helm_operator.cli.registryaccess import add_registry_flags
from helm_operator.cli.workload import (
    Workload, add_default_namespace_flag, add_kubeconfig_flag, add_workload_flag, unknown_workload,
)
from helm_operator.gitrunner import GitError, GitRunner

# An edit of one HelmRelease file: (text, parsed document) -> (new text, commit subject)
Plan = Callable[[str, dict[str, Any]], tuple[str, str]]


@dataclass(frozen=True)
class Edited:
    """The file a plan ran on, and the diff it made there (also for ``--dry-run``)."""

    path: str
    diff: str


@dataclass(frozen=True)
class Outcome:
    commit: str | None = None
    subject: str = ""
    path: str = ""
    diff: str = ""


def git_config(key: str) -> str | None:
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
                     author_name=args.git_user or git_config("user.name") or "helm-operator",
                     author_email=args.git_email or git_config("user.email")
                     or "helm-operator@users.noreply.local")


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))


async def change_in_git(args: argparse.Namespace, workload: Workload, plan: Plan, *,
                        dry_run: bool = False) -> Outcome:
    """Run `plan` on the workload's file in a fresh checkout; one commit unless nothing changed."""
    target = git_target(args)
    default_ns = args.k8s_default_namespace

    def edit(root: Path) -> Change[Edited]:
        index = ReleaseIndex.scan(root, target.paths, default_ns)
        found = index.get(workload.namespace, workload.name)
        if found is None:
            where = f"in {target.url} (branch {target.branch}" + \
                (f", paths {', '.join(target.paths)})" if target.paths else ")")
            raise unknown_workload(workload, [Workload(f.namespace, f.name) for f in index], where)
        text = found.read_text()
        try:
            new_text, subject = plan(text, found.document)
        except yamledit.EditError as e:
            raise CommandError(f"{workload}: cannot edit {found.rel} safely: {e}; edit the file by hand") from None
        edited = Edited(found.rel, unified_diff(found.rel, text, new_text))
        if new_text == text or dry_run:
            return Change((), subject, detail=edited)
        found.write_text(new_text)
        return Change((found.rel,), subject, detail=edited)

    with tempfile.TemporaryDirectory(prefix="helm-operator-cli-") as tmp:
        writer = GitWriter(target, Path(tmp) / "checkout")
        try:
            written = await writer.change(edit)
        except GitWriteError as e:
            raise CommandError(f"{workload}: {e}; check --git-url, --git-branch and your access") from None
    edited = written.change.detail or Edited("", "")
    return Outcome(written.commit, written.change.subject, edited.path, edited.diff)


def report(outcome: Outcome, workload: Workload, nothing: str) -> int:
    if outcome.commit:
        print(f"committed {outcome.commit[:12]}: {outcome.subject}")
    else:
        print(f"{workload}: {nothing}; no commit")
    return 0


def add_git_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Git (where the change is committed)")
    g.add_argument("--git-url", default=None, metavar="URL",
                   help="repository holding the HelmRelease files (default: $HELM_OPERATOR_GIT_URL)")
    g.add_argument("--git-branch", default="master", metavar="BRANCH", help="branch to commit to (default: master)")
    g.add_argument("--git-path", action="append", default=[], metavar="PATH",
                   help="paths with HelmReleases (repeatable; default: the whole repository)")
    g.add_argument("--git-user", default=None, metavar="NAME",
                   help="commit author name (default: git config user.name)")
    g.add_argument("--git-email", default=None, metavar="EMAIL",
                   help="commit author email (default: git config user.email)")


def git_command(subparsers: argparse._SubParsersAction, name: str,  # type: ignore[type-arg]
                text: str, *, registry: bool = False) -> argparse.ArgumentParser:
    """A subcommand that changes one workload through Git; the registry flags listed only when it reads tags.

    ``--kubeconfig`` (and the registry flags, when unused) stay accepted, unlisted: scripts pass them.
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        name, help=text,
        description=f"{text[0].upper()}{text[1:]}: one commit to the HelmRelease's file in Git (the cluster "
                    "is not changed; the syncer applies the commit). Exit code 0 when committed, or when "
                    "there was nothing to change (no commit); 1 when refused or failed (one line on stderr "
                    "says why; nothing is committed).")
    add_kubeconfig_flag(p, shown=False)
    add_default_namespace_flag(p)
    add_registry_flags(p, shown=registry)
    add_git_flags(p)
    add_workload_flag(p)
    return p
