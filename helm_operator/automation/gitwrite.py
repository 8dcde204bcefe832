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
a person. Finding the HelmRelease file is `locate`; the edits themselves are
pure functions elsewhere (`yamledit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import (
    AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential,
    wait_random_exponential,
)

from helm_operator.gitrunner import DEFAULT_TIMEOUT, Credentials, GitError, GitRunner, PushRejected, Remote
from helm_operator import boundedyaml
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


Edit = Callable[[Path], Sequence[str]]  # edits files under the checkout; returns the changed paths
Message = Callable[[], tuple[str, str]]  # (subject, body), asked after the edit ran on the head


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

    async def change(self, edit: Edit, message: Message | str, body: str = "") -> str | None:
        """Apply `edit`, commit and push. Returns the new commit, or None if nothing changed.

        `message` may be a callable: what the edit changed on the current head
        decides the commit message, and a lost race re-runs the edit.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(PushRejected), stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=8) + wait_random_exponential(multiplier=0.5, max=8),
            before_sleep=self._rejected, reraise=True)
        async with self._lock:
            try:
                return await retrying(self._attempt, edit, message, body)
            except PushRejected:
                raise GitWriteError(f"could not push to {self.shown} ({self.target.branch}) after "
                                    f"{self.attempts} attempts: the branch keeps moving") from None

    async def _attempt(self, edit: Edit, message: Message | str, body: str) -> str | None:
        """One try on the current head; `PushRejected` when someone pushed first."""
        await self._checkout_head()
        changed = await asyncio.to_thread(edit, self.dir)
        if not changed:
            return None
        await self._git("add", "--", *changed)
        code, _ = await self._git("diff", "--cached", "--quiet", check=False)
        if code == 0:
            return None
        subject, text = message() if callable(message) else (message, body)
        await self._git("commit", "--quiet", "-m", self.message(subject, text))
        await self._git("push", "--quiet", "origin", f"HEAD:{self.target.branch}")
        commit = await self.head()
        log.info("pushed %s to %s %s: %s", commit[:12], self.shown, self.target.branch, subject)
        return commit

    def _rejected(self, state: RetryCallState) -> None:
        log.info("push to %s was rejected (someone pushed first); re-applying on the new head "
                 "(attempt %d of %d)", self.shown, state.attempt_number, self.attempts)


def locate(root: Path, paths: Sequence[str], kind: str, namespace: str, name: str,
           default_namespace: str = "default",
           limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> Path | None:
    """The YAML file under `paths` of `root` that defines this object, if any.

    Files that fail to parse or exceed the YAML `limits` are skipped (the
    syncer reports them); a document without a namespace counts as
    `default_namespace`.
    """
    bases = [root / p for p in paths] if paths else [root]
    for base in bases:
        files = [base] if base.is_file() else sorted(base.rglob("*.y*ml"))
        for file in files:
            if ".git" in file.parts or file.suffix not in (".yaml", ".yml"):
                continue
            try:
                if file.stat().st_size > limits.max_bytes:
                    continue
                docs = boundedyaml.load_all(file.read_bytes(), str(file.relative_to(root)), limits)
            except (boundedyaml.YamlError, OSError):
                continue
            for doc in docs:
                if not isinstance(doc, dict) or doc.get("kind") != kind:
                    continue
                meta = doc.get("metadata") or {}
                if meta.get("name") == name and (meta.get("namespace") or default_namespace) == namespace:
                    return file
    return None
