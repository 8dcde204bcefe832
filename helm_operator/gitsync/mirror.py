"""A local bare mirror of one branch of a Git remote, driven by the `git` CLI.

Place in the flow: first step of a pass. `fetch` brings the branch up to date
and returns its head commit; `list_files` and `read_files` hand the tree of a
commit to `manifests`; `move_tag` moves and pushes the sync tag for `marker`.
Every git call is an asyncio subprocess, so nothing blocks the event loop.

Credentials:
- ssh: a private key (``-i``, ``IdentitiesOnly``) and strict host key
  checking against a known_hosts file; an unknown or changed host key is
  refused with `HostKeyRefused`, which says how to add the key.
- https: basic auth handed to git through ``GIT_ASKPASS`` and environment
  variables of the git process only: never in the URL, argv, files or logs.

What this module does NOT do: parse manifests, decide anything about the
cluster, or retry (the syncer's next poll is the retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from helm_operator.gitsync.plan import safe_url
from helm_operator.redaction import redact_text, redact_url

log = logging.getLogger(__name__)

GIT_TIMEOUT = 120.0
TAGGER_NAME = "helm-operator"
TAGGER_EMAIL = "helm-operator@localhost"

_ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$HELM_OPERATOR_GIT_USERNAME" ;;
  *) printf '%s\\n' "$HELM_OPERATOR_GIT_PASSWORD" ;;
esac
"""


class GitError(Exception):
    """A git operation failed; the message names the operation and remote (URL credentials removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


class HostKeyRefused(GitError):
    """The ssh host is not in known_hosts (or its key changed)."""


@dataclass(frozen=True)
class HttpsCredentials:
    username: str
    password: str = field(repr=False)

    @classmethod
    def from_dir(cls, directory: Path) -> "HttpsCredentials":
        """From a mounted Secret: files `username` and `password`."""
        try:
            return cls((directory / "username").read_text().strip(),
                       (directory / "password").read_text().strip())
        except OSError as e:
            raise GitError(f"cannot read https credentials from {directory}: {e.strerror}; "
                           "it must hold files `username` and `password`") from e

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


def _ssh_host(url: str) -> tuple[str, str | None]:
    """(host, port or None) of an ssh URL or scp-like address."""
    m = re.match(r"^ssh://(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?", url)
    if m:
        return m[1], m[2]
    m = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)
    return (m[1], None) if m else (url, None)


class GitMirror:
    """A bare mirror of `branch` of `url` in a folder under `workdir`."""

    def __init__(self, url: str, branch: str, workdir: Path, auth: GitAuth | None = None) -> None:
        self.url = url
        self.branch = branch
        self.auth = auth or GitAuth()
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.path = workdir / f"mirror-{key}"
        self._initialised = False

    @property
    def display_url(self) -> str:
        return redact_url(safe_url(self.url))  # a token is often the https user name

    # ---- running git -------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if self.auth.known_hosts_file is not None:
            ssh += ["-o", f"UserKnownHostsFile={self.auth.known_hosts_file}",
                    "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.auth.ssh_key_file is not None:
            ssh += ["-i", str(self.auth.ssh_key_file), "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(a) for a in ssh)
        if self.auth.https is not None:
            askpass = self.path.parent / "git-askpass.sh"
            if not askpass.exists():
                askpass.write_text(_ASKPASS)
                askpass.chmod(0o700)
            env.update(GIT_ASKPASS=str(askpass),
                       HELM_OPERATOR_GIT_USERNAME=self.auth.https.username,
                       HELM_OPERATOR_GIT_PASSWORD=self.auth.https.password)
        return env

    def _redact(self, text: str) -> str:
        text = re.sub(r"(://[^/:@\s]+):[^@\s]+@", r"\1:***@", text)
        if self.auth.https is not None and self.auth.https.password:
            text = text.replace(self.auth.https.password, "***")
        return text

    async def _git(self, what: str, *args: str, stdin: bytes | None = None,
                   cwd: Path | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "git", *args, cwd=str(cwd or self.path), env=self._env(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), GIT_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise GitError(f"{what} of {self.display_url}: timed out after {GIT_TIMEOUT:.0f}s") from None
        if proc.returncode != 0:
            raise self._error(what, err.decode(errors="replace"))
        return out

    def _error(self, what: str, stderr: str) -> GitError:
        detail = self._redact(" ".join(line.strip() for line in stderr.strip().splitlines()[-3:]))
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            host, port = _ssh_host(self.url)
            known = self.auth.known_hosts_file or "~/.ssh/known_hosts"
            where = f"{host} port {port}" if port else host
            scan = f"ssh-keyscan -p {port} {host}" if port else f"ssh-keyscan {host}"
            return HostKeyRefused(
                f"{what} of {self.display_url}: refused to connect: the SSH host key of {where} "
                f"is not in {known} or does not match it. Verify the host's fingerprint, then add "
                f"it (for example `{scan} >> {known}`).")
        if "Permission denied (publickey" in stderr:
            return GitError(f"{what} of {self.display_url}: the SSH server refused the key "
                            f"{self.auth.ssh_key_file or '(default key)'}; add its public key as a "
                            f"deploy key with the needed access. ({detail})")
        if "Authentication failed" in stderr or "could not read Username" in stderr:
            return GitError(f"{what} of {self.display_url}: https authentication failed; check the "
                            f"username and password (token) given to the syncer. ({detail})")
        return GitError(f"{what} of {self.display_url} failed: {detail}")

    # ---- operations --------------------------------------------------------
    async def _ensure(self) -> None:
        if self._initialised:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            await self._git("git init", "init", "--quiet", "--bare")
        remotes = (await self._git("git remote", "remote")).decode().split()
        if "origin" in remotes:
            await self._git("git remote set-url", "remote", "set-url", "origin", self.url)
        else:
            await self._git("git remote add", "remote", "add", "origin", self.url)
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
        try:
            out = await self._git("git rev-parse", "rev-parse", "--verify", "--quiet",
                                  f"refs/tags/{tag}^{{commit}}")
        except GitError:
            return None
        return out.decode().strip() or None

    async def move_tag(self, tag: str, commit: str, message: str = "Sync pointer") -> bool:
        """Point annotated tag `tag` at `commit` and force-push it; False if already there."""
        await self._ensure()
        if await self.tag_commit(tag) == commit:
            return False
        await self._git("git tag", "-c", f"user.name={TAGGER_NAME}", "-c", f"user.email={TAGGER_EMAIL}",
                        "tag", "--force", "--annotate", "--message", message, tag, commit)
        await self._git(f"pushing tag {tag}", "push", "--quiet", "--force", "origin",
                        f"refs/tags/{tag}:refs/tags/{tag}")
        return True
