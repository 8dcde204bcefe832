"""A local bare mirror of one branch of a Git remote.

Place in the flow: first step of a pass. `fetch` brings the branch up to date
and returns its head commit; `list_files` and `read_files` hand the tree of a
commit to `manifests`; `move_tag` moves and pushes the sync tag for `marker`.
Every git call goes through `helm_operator.gitrunner` (a thread, a timeout,
one error tree), so nothing blocks the event loop.

Credentials:
- ssh: a private key (``-i``, ``IdentitiesOnly``) and strict host key
  checking against a known_hosts file; an unknown or changed host key is
  refused with `HostKeyRefused`, which says how to add the key.
- https: basic auth handed to git through the runner's credential helper and
  environment variables of the git process only: never in the URL, argv,
  files or logs.

What this module does NOT do: parse manifests, decide anything about the
cluster, or retry beyond the runner's retries of transient network failures
(the syncer's next poll is the retry).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from helm_operator.gitrunner import Credentials, GitError, GitRunner, HostKeyUnknown, Remote, ssh_command
from helm_operator.gitsync.plan import safe_url
from helm_operator.redaction import redact_url

__all__ = ["GitAuth", "GitError", "GitMirror", "HostKeyRefused", "HttpsCredentials"]

log = logging.getLogger(__name__)

GIT_TIMEOUT = 120.0
TAGGER_NAME = "helm-operator"
TAGGER_EMAIL = "helm-operator@localhost"

HostKeyRefused = HostKeyUnknown   # the name this module's users know


@dataclass(frozen=True)
class HttpsCredentials(Credentials):
    """The syncer's https credentials: from a mounted Secret or the environment."""

    @classmethod
    def from_dir(cls, directory: Path) -> "HttpsCredentials":
        """From a mounted Secret: files `username` and `password`."""
        try:
            return cls((directory / "username").read_text().strip(),
                       (directory / "password").read_text().strip())
        except OSError as e:
            raise GitError(f"cannot read https credentials from {directory}: {e.strerror}",
                           advice="it must hold files `username` and `password`") from None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "HttpsCredentials | None":
        env = os.environ if environ is None else environ
        user, password = env.get("GIT_HTTPS_USERNAME"), env.get("GIT_HTTPS_PASSWORD")
        return cls(user, password or "") if user else None


@dataclass(frozen=True)
class GitAuth:
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    https: HttpsCredentials | None = None


class GitMirror:
    """A bare mirror of `branch` of `url` in a folder under `workdir`."""

    def __init__(self, url: str, branch: str, workdir: Path, auth: GitAuth | None = None) -> None:
        self.url = url
        self.branch = branch
        self.auth = auth or GitAuth()
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.path = workdir / f"mirror-{key}"
        self._initialised = False
        self.remote = Remote(
            url, credentials=self.auth.https,
            ssh_command=ssh_command(self.auth.ssh_key_file, self.auth.known_hosts_file),
            ssh_key=self.auth.ssh_key_file, known_hosts=self.auth.known_hosts_file, shown=self.display_url,
            auth_advice="check the username and password (token) given to the syncer",
            not_found_advice=f"check the syncer's --git-url and that branch {branch} exists")
        self._runner = GitRunner(self.remote, timeout=GIT_TIMEOUT)

    @property
    def display_url(self) -> str:
        return redact_url(safe_url(self.url))

    async def _git(self, what: str, *args: str, stdin: bytes | None = None) -> bytes:
        return (await self._runner.arun(*args, git_dir=self.path, stdin=stdin, op=what)).stdout

    # ---- operations --------------------------------------------------------
    async def _ensure(self) -> None:
        if self._initialised:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            await self._runner.arun("init", "--quiet", "--bare", str(self.path), op="git init")
        remotes = (await self._git("git remote", "remote")).decode().split()
        if "origin" in remotes:   # also takes credentials an older version left in the URL off the disk
            await self._git("git remote set-url", "remote", "set-url", "origin", self.remote.url)
        else:
            await self._git("git remote add", "remote", "add", "origin", self.remote.url)
        self._initialised = True

    async def fetch(self) -> str:
        """Fetch the branch; return its head commit."""
        await self._ensure()
        ref = f"refs/heads/{self.branch}"
        await self._git("git fetch", "fetch", "--quiet", "--no-tags", "--force", "origin", f"+{ref}:{ref}")
        return (await self._git("git rev-parse", "rev-parse", "--verify", f"{ref}^{{commit}}")).decode().strip()

    async def list_files(self, commit: str) -> list[str]:
        """Every file path in the tree of `commit`."""
        out = await self._git("git ls-tree", "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
        return [p for p in out.decode(errors="surrogateescape").split("\0") if p]

    async def read_files(self, commit: str, paths: list[str]) -> dict[str, bytes]:
        """The content of `paths` at `commit`, in one `git cat-file --batch`."""
        if not paths:
            return {}
        request = "".join(f"{commit}:{p}\n" for p in paths).encode(errors="surrogateescape")
        out = await self._git("git cat-file", "cat-file", "--batch", stdin=request)
        files: dict[str, bytes] = {}
        pos = 0
        for path in paths:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            pos = end + 1
            if len(header) < 3 or header[1] == "missing":
                raise GitError(f"reading {path} at {commit[:12]}: not found in {self.display_url}")
            size = int(header[2])
            files[path] = out[pos:pos + size]
            pos += size + 1
        return files

    async def tag_commit(self, tag: str) -> str | None:
        """The commit the local copy of `tag` points at, if any."""
        found = await self._runner.arun("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}",
                                        git_dir=self.path, check=False)
        return (found.text or None) if found.status == 0 else None

    async def move_tag(self, tag: str, commit: str, message: str = "Sync pointer") -> bool:
        """Point annotated tag `tag` at `commit` and force-push it; False if already there."""
        await self._ensure()
        if await self.tag_commit(tag) == commit:
            return False
        await self._runner.arun("tag", "--force", "--annotate", "--message", message, tag, commit,
                                git_dir=self.path, env={"GIT_COMMITTER_NAME": TAGGER_NAME,
                                                        "GIT_COMMITTER_EMAIL": TAGGER_EMAIL})
        await self._git("git push", "push", "--quiet", "--force", "origin",
                        f"refs/tags/{tag}:refs/tags/{tag}")
        return True
