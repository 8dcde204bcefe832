"""Commit and push changes to the Git repository that holds the HelmReleases.

One working clone per repository. `GitWriter.change` runs an edit on a clean
checkout of the branch head, commits what changed, and pushes. When the push
is rejected because someone else pushed first, it fetches, re-applies the
edit on the new head and tries again with backoff: two writers racing lose no
commit, and an edit that the other writer already made yields no duplicate
commit (the edit then changes nothing). Credentials travel in the git
process's environment only. Finding the HelmRelease file is `locate`; the
edits themselves are pure functions elsewhere (`yamledit`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helm_operator import boundedyaml
from helm_operator.redaction import redact_text

log = logging.getLogger(__name__)


class GitWriteError(Exception):
    """A Git operation needed to commit a change failed; the message says which (URL credentials removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


@dataclass(frozen=True)
class GitTarget:
    """Where and as whom changes are committed."""

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
    extra_env: dict[str, str] = field(default_factory=dict)


Edit = Callable[[Path], Sequence[str]]  # edits files under the checkout; returns the changed paths
Message = Callable[[], tuple[str, str]]  # (subject, body), asked after the edit ran on the head


class GitWriter:
    """Commits edits to one branch of one repository, safely under races."""

    def __init__(self, target: GitTarget, workdir: Path, attempts: int = 6) -> None:
        self.target = target
        self.dir = workdir
        self.attempts = attempts
        self._lock = asyncio.Lock()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": self.target.author_name,
                    "GIT_AUTHOR_EMAIL": self.target.author_email,
                    "GIT_COMMITTER_NAME": self.target.committer_name or self.target.author_name,
                    "GIT_COMMITTER_EMAIL": self.target.committer_email or self.target.author_email})
        if self.target.ssh_command:
            env["GIT_SSH_COMMAND"] = self.target.ssh_command
        env.update(self.target.extra_env)
        return env

    async def _git(self, *args: str, cwd: Path | None = None, check: bool = True) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "git", *args, cwd=str(cwd or self.dir), env=self._env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode("utf-8", errors="replace")
        if check and proc.returncode != 0:
            raise GitWriteError(f"git {args[0]} failed for {self.target.url} ({self.target.branch}): "
                                f"{text.strip()[-500:]}")
        return proc.returncode or 0, text

    async def _checkout_head(self) -> None:
        """A clean working tree at the remote branch head."""
        if not (self.dir / ".git").exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            await self._git("clone", "--quiet", "--branch", self.target.branch, "--", self.target.url,
                            str(self.dir), cwd=self.dir.parent)
            return
        await self._git("fetch", "--quiet", "origin", self.target.branch)
        await self._git("checkout", "--quiet", "-B", self.target.branch, f"origin/{self.target.branch}")
        await self._git("reset", "--quiet", "--hard", f"origin/{self.target.branch}")
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
        async with self._lock:
            delay = 0.5
            for attempt in range(1, self.attempts + 1):
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
                code, out = await self._git("push", "--quiet", "origin", f"HEAD:{self.target.branch}", check=False)
                if code == 0:
                    commit = await self.head()
                    log.info("pushed %s to %s %s: %s", commit[:12], self.target.url, self.target.branch, subject)
                    return commit
                if not _rejected(out):
                    raise GitWriteError(f"git push to {self.target.url} ({self.target.branch}) failed: "
                                        f"{out.strip()[-500:]}")
                log.info("push to %s was rejected (someone pushed first); re-applying on the new head "
                         "(attempt %d of %d)", self.target.url, attempt, self.attempts)
                await asyncio.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, 8.0)
            raise GitWriteError(f"could not push to {self.target.url} ({self.target.branch}) after "
                                f"{self.attempts} attempts: the branch keeps moving")


def _rejected(output: str) -> bool:
    text = output.lower()
    return any(s in text for s in ("non-fast-forward", "fetch first", "[rejected]", "failed to update ref",
                                   "cannot lock ref", "stale info"))


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
