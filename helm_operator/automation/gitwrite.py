"""Commit and push changes to the Git repository that holds the HelmReleases.

One working clone per repository. `GitWriter.change` runs an edit on a clean
checkout of the branch head, commits what changed, and pushes. When the push
is rejected because someone else pushed first, it fetches, re-applies the
edit on the new head and tries again with backoff (tenacity): two writers
racing lose no commit, and an edit that the other writer already made yields
no duplicate commit (the edit then changes nothing).

Every git command goes through `helm_operator.gitrunner`: a timeout on each,
retries of transient network failures, credentials written into the URL
taken out of it and handed to git through the environment only (never the
checkout's config, argv or a message), and the user's own git configuration
(credential helpers, ssh config) left in force, since the CLI runs this for
a person.

An edit is a function of the checkout directory that returns a `Change`:
the paths it changed, the commit message, and any `detail` the caller wants
back. `change` returns the `Change` of the attempt that counted (the last
one, after lost races) with the commit, so no state leaks out of the edit.
Finding the HelmRelease file is `releasefiles`; the edits themselves are
pure functions elsewhere (`yamledit`, `annotations`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from tenacity import (
    AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential,
    wait_random_exponential,
)

from helm_operator.gitrunner import DEFAULT_TIMEOUT, Credentials, GitError, GitRunner, PushRejected, Remote
from helm_operator.redaction import redact_text

log = logging.getLogger(__name__)


class GitWriteError(Exception):
    """A Git operation needed to commit a change failed; the message says which (URL credentials removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


@dataclass(frozen=True)
class GitTarget:
    """Where and as whom changes are committed.

    Credentials written into an http(s) `url` are moved to `credentials`, so
    `url` is safe to log and show.
    """

    url: str
    branch: str = "master"
    paths: tuple[str, ...] = ()
    author_name: str = "helm-operator"
    author_email: str = "helm-operator@users.noreply.local"
    committer_name: str | None = None
    committer_email: str | None = None
    ssh_command: str | None = None
    ci_skip: bool = False
    ci_skip_message: str = "[ci skip]"
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    credentials: Credentials | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        remote = Remote(self.url, credentials=self.credentials)
        object.__setattr__(self, "url", remote.url)
        object.__setattr__(self, "credentials", remote.credentials)


T = TypeVar("T")


@dataclass(frozen=True)
class Change(Generic[T]):
    """What an edit did to a checkout: the paths to commit (none: nothing to commit),
    the commit message, and whatever the caller needs back from the attempt."""

    paths: Sequence[str] = ()
    subject: str = ""
    body: str = ""
    detail: T | None = None


@dataclass(frozen=True)
class Written(Generic[T]):
    """The outcome of `GitWriter.change`: the pushed commit (None: nothing changed)
    and the `Change` the edit returned on the head it was pushed onto."""

    commit: str | None
    change: Change[T]


Edit = Callable[[Path], Change[T]]  # edits files under the checkout, in a thread


class GitWriter:
    """Commits edits to one branch of one repository, safely under races."""

    def __init__(self, target: GitTarget, workdir: Path, attempts: int = 6,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target
        self.dir = workdir
        self.attempts = attempts
        self._lock = asyncio.Lock()
        self._origin_checked = False
        self.remote = Remote(target.url, credentials=target.credentials, ssh_command=target.ssh_command,
                             auth_advice="check the credentials for the repository (in the URL, or your git "
                                         "credential helper) and that they may push")
        env = {"GIT_AUTHOR_NAME": target.author_name, "GIT_AUTHOR_EMAIL": target.author_email,
               "GIT_COMMITTER_NAME": target.committer_name or target.author_name,
               "GIT_COMMITTER_EMAIL": target.committer_email or target.author_email, **target.extra_env}
        self._runner = GitRunner(self.remote, timeout=timeout, isolated=False, env=env)

    @property
    def shown(self) -> str:
        """The repository URL as messages show it."""
        return self.remote.shown

    async def _git(self, *args: str, cwd: Path | None = None, check: bool = True) -> tuple[int, str]:
        try:
            done = await self._runner.arun(*args, cwd=cwd or self.dir, check=check)
        except PushRejected:
            raise
        except GitError as e:
            raise GitWriteError(f"{e.op} failed for {self.shown} ({self.target.branch}): {e.explanation}") from None
        return done.status, done.text

    async def _checkout_head(self) -> None:
        """A clean working tree at the remote branch head."""
        branch = self.target.branch
        if not (self.dir / ".git").exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            await self._git("clone", "--quiet", "--branch", branch, "--", self.remote.url, str(self.dir),
                            cwd=self.dir.parent)
            self._origin_checked = True
            return
        if not self._origin_checked:   # a checkout from an older version may hold credentials in its URL
            await self._git("remote", "set-url", "origin", self.remote.url)
            self._origin_checked = True
        await self._git("fetch", "--quiet", "origin", branch)
        await self._git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
        await self._git("reset", "--quiet", "--hard", f"origin/{branch}")
        await self._git("clean", "-qfdx")

    def message(self, subject: str, body: str = "") -> str:
        if self.target.ci_skip:
            subject = f"{subject} {self.target.ci_skip_message}"
        return f"{subject}\n\n{body}".strip() + "\n"

    async def head(self) -> str:
        _, out = await self._git("rev-parse", "HEAD")
        return out.strip()

    async def change(self, edit: Edit[T]) -> Written[T]:
        """Apply `edit` to the branch head, commit and push what it changed.

        A lost push race re-runs the edit on the new head, so what the edit
        returns there (paths, message, detail) is what counts.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(PushRejected), stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=8) + wait_random_exponential(multiplier=0.5, max=8),
            before_sleep=self._rejected, reraise=True)
        async with self._lock:
            try:
                return await retrying(self._attempt, edit)
            except PushRejected:
                raise GitWriteError(f"could not push to {self.shown} ({self.target.branch}) after "
                                    f"{self.attempts} attempts: the branch keeps moving") from None

    async def _attempt(self, edit: Edit[T]) -> Written[T]:
        """One try on the current head; `PushRejected` when someone pushed first."""
        await self._checkout_head()
        change = await asyncio.to_thread(edit, self.dir)
        if not change.paths:
            return Written(None, change)
        await self._git("add", "--", *change.paths)
        code, _ = await self._git("diff", "--cached", "--quiet", check=False)
        if code == 0:
            return Written(None, change)
        await self._git("commit", "--quiet", "-m", self.message(change.subject, change.body))
        await self._git("push", "--quiet", "origin", f"HEAD:{self.target.branch}")
        commit = await self.head()
        log.info("pushed %s to %s %s: %s", commit[:12], self.shown, self.target.branch, change.subject)
        return Written(commit, change)

    def _rejected(self, state: RetryCallState) -> None:
        log.info("push to %s was rejected (someone pushed first); re-applying on the new head "
                 "(attempt %d of %d)", self.shown, state.attempt_number, self.attempts)
