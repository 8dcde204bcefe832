"""Charts from Git repositories: one bare mirror per URL and credentials,
exports per revision.

Place in the flow: the release reconciler asks `GitMirrors.fetch` for
``(url, ref, path)`` and gets a chart directory plus a revision. This module
runs the `git` CLI (never blocking the loop); it does not run helm, read
Secrets (credentials come in as a tuple) or write to any repository.

Cache layout::

    <cache_dir>/git/<access key>/mirror.git      bare mirror, shared by the releases
                                                 that read it with the same credentials
    <cache_dir>/git/<access key>/<revision>/     the tree at commit <revision>
    <cache_dir>/git/<access key>/<revision>/<path>   the directory returned

The access key (`cachedir.AccessKeys`) names the URL and the https
credentials together, so a release without credentials (or with others)
never reads a mirror that another release's credentials cloned: it gets a
mirror of its own, and the server's answer to its own credentials. ssh
sources all use the operator's key, so they share one mirror per URL.

The revision is the newest commit at or before `ref` that touches `path`, so
commits elsewhere in the repository are not chart changes. The whole tree at
that commit is exported (not only `path`) so a chart's ``file://../lib``
dependencies resolve as they did in a full checkout under Flux v1; and since
a commit's tree never changes, every path whose revision is that commit can
share the export.

The mirror is fetched at most once per `poll_interval` per URL; `refresh()`
makes the next use fetch. A ref that is not in the mirror makes one fetch
at once, so a new branch or a just-pushed commit is found without waiting.

Every git command goes through `helm_operator.gitrunner` (a thread, a
timeout, retries of transient network failures, one error tree turned into
`ChartFetchError` here). Credentials never touch the disk, a URL, a command
line or a message: for https they reach git through the runner's credential
helper, from the environment of each git process; credentials written into
the URL are taken out first. The URL is a user's: git may only use the
file, git, http, https and ssh transports for it, and ignores the machine's
credential helpers and hooks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from helm_operator.chartsource.cachedir import AccessKeys, KeyedLocks, extract_tar, publish
from helm_operator.chartsource.model import ChartFetchError, FetchedChart, split_userinfo
from helm_operator.gitrunner import SAFE_PROTOCOLS, Completed, Credentials, GitError, GitRunner, Remote

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{")


@dataclass(frozen=True)
class _Remote:
    url: str                  # what git is given: no credentials in it
    shown: str                # for messages and logs
    key: str                  # cache directory name: URL and credentials (AccessKeys)
    git: GitRunner


class GitMirrors:
    """Bare mirrors of chart repositories and the chart trees exported from them."""

    def __init__(self, cache_dir: Path, poll_interval: float, *, timeout: float = DEFAULT_TIMEOUT,
                 git: str = "git") -> None:
        self._root = Path(cache_dir) / "git"
        self._keys = AccessKeys(Path(cache_dir))
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._git = git
        self._fetched_at: dict[str, float] = {}   # access key -> monotonic time of last clone/fetch
        self._keys_of_url: dict[str, set[str]] = {}  # bare URL -> its access keys, for refresh(url)
        self._mirror_locks = KeyedLocks()
        self._export_locks = KeyedLocks()

    # ----------------------------------------------------------------- API

    async def fetch(self, url: str, ref: str, path: str, auth: tuple[str, str] | None = None,
                    ssh_command: str | None = None) -> FetchedChart:
        """Export the chart at `path` as of `ref`; revision is the last commit touching `path`."""
        remote = self._remote(url, auth, ssh_command)
        chart_path = _normalise_path(path, remote.shown)
        revision = await self._revision(remote, ref, chart_path)
        tree = await self._export(remote, revision)
        target = tree / chart_path if chart_path else tree
        return FetchedChart(path=target, revision=revision)

    async def revision(self, url: str, ref: str, path: str, auth: tuple[str, str] | None = None,
                       ssh_command: str | None = None) -> str:
        """The revision `fetch` would return, without exporting anything."""
        remote = self._remote(url, auth, ssh_command)
        return await self._revision(remote, ref, _normalise_path(path, remote.shown))

    async def resolve(self, url: str, ref: str, auth: tuple[str, str] | None = None,
                      ssh_command: str | None = None) -> str:
        """The commit SHA `ref` (branch, tag, full or short SHA) points to in the mirror."""
        remote = self._remote(url, auth, ssh_command)
        commit, _ = await self._resolve(remote, ref)
        return commit

    async def heads(self, url: str, auth: tuple[str, str] | None = None,
                    ssh_command: str | None = None) -> dict[str, str]:
        """Ask the remote (``git ls-remote``, no mirror update) for its refs.

        Returns ``{"refs/heads/main": sha, "refs/tags/v1": sha, ...}``; tags are
        peeled to the commit they name. Cheap enough to poll for changes.
        """
        remote = self._remote(url, auth, ssh_command)
        out = await self._run(remote, ["ls-remote", "--", remote.url])
        refs: dict[str, str] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            sha, _, name = line.partition("\t")
            if not name:
                continue
            if name.endswith("^{}"):
                refs[name[:-3]] = sha
            else:
                refs.setdefault(name, sha)
        return refs

    def refresh(self, url: str | None = None) -> None:
        """Make the next use of `url` (or of every URL) fetch from the remote."""
        if url is None:
            self._fetched_at.clear()
            return
        bare, _ = split_userinfo(url.strip())
        for key in self._keys_of_url.get(bare, ()):
            self._fetched_at.pop(key, None)

    def mirror_dir(self, url: str, auth: tuple[str, str] | None = None) -> Path:
        """Where the bare mirror of `url` read with `auth` (or the URL's own userinfo) lives."""
        bare, url_auth = split_userinfo(url.strip())
        return self._root / self._access_key(bare, auth or url_auth) / "mirror.git"

    def _access_key(self, bare: str, auth: tuple[str, str] | None) -> str:
        """Only https credentials reach git (see `_remote`), so only they name a mirror."""
        scheme = urlsplit(bare).scheme.lower() if "://" in bare else ""
        return self._keys.key(bare, auth if scheme in ("http", "https") else None)

    # ------------------------------------------------------------ internals

    def _remote(self, url: str, auth: tuple[str, str] | None, ssh_command: str | None) -> _Remote:
        url = url.strip()
        if not url:
            raise ChartFetchError("git URL is empty; set spec.chart.git")
        remote = Remote(url, credentials=Credentials(*auth) if auth else None, ssh_command=ssh_command or None,
                        auth_advice="check the username and password in spec.chart.secretRef",
                        not_found_advice="check the repository URL in spec.chart.git")
        runner = GitRunner(remote, timeout=self._timeout, git=self._git, protocols=SAFE_PROTOCOLS)
        _, url_auth = split_userinfo(url)
        key = self._access_key(remote.url, auth or url_auth)
        self._keys_of_url.setdefault(remote.url, set()).add(key)
        return _Remote(url=remote.url, shown=remote.shown, key=key, git=runner)

    def _mirror(self, remote: _Remote) -> Path:
        return self._root / remote.key / "mirror.git"

    async def _update_mirror(self, remote: _Remote, *, force: bool) -> bool:
        """Clone or fetch as the poll interval (or `force`) says; True when it did."""
        mirror = self._mirror(remote)
        async with self._mirror_locks(remote.key):
            last = self._fetched_at.get(remote.key)
            started = time.monotonic()
            if mirror.is_dir():
                if not force and last is not None and started - last < self._poll_interval:
                    return False
                await self._run(remote, ["fetch", "--prune", "--quiet", "--", remote.url, "+refs/*:refs/*"],
                                git_dir=mirror)
                log.debug("fetched git mirror of %s", remote.shown)
            else:
                mirror.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=".mirror.tmp-", dir=mirror.parent))
                try:
                    await self._run(remote, ["clone", "--mirror", "--quiet", "--", remote.url, str(tmp)])
                    os.rename(tmp, mirror)
                finally:
                    await asyncio.to_thread(_remove, tmp)
                log.info("cloned git mirror of %s", remote.shown)
            self._fetched_at[remote.key] = started
            return True

    async def _resolve(self, remote: _Remote, ref: str) -> tuple[str, bool]:
        """The commit for `ref` and whether the mirror was updated on the way."""
        ref = ref.strip()
        if not ref or ref.startswith("-") or _BAD_REF.search(ref):
            raise ChartFetchError(f"invalid git ref {ref!r} for {remote.shown}; use a branch, tag or commit SHA")
        updated = await self._update_mirror(remote, force=False)
        commit = await self._lookup_ref(remote, ref)
        if commit is None and not updated:
            updated = await self._update_mirror(remote, force=True)
            commit = await self._lookup_ref(remote, ref)
        if commit is None:
            raise ChartFetchError(
                f"ref {ref} not found in {remote.shown}; check spec.chart.ref (a branch, tag or commit SHA)",
                url=remote.shown,
            )
        return commit, updated

    async def _lookup_ref(self, remote: _Remote, ref: str) -> str | None:
        if ref.startswith("refs/"):
            candidates = [ref]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
            if _HEX.match(ref) or ref == "HEAD":
                candidates.append(ref)
        for candidate in candidates:
            out = await self._run(remote, ["rev-parse", "--verify", "--quiet", "--end-of-options",
                                           f"{candidate}^{{commit}}"], git_dir=self._mirror(remote), allow_fail=True)
            sha = out.decode().strip()
            if sha:
                return sha
        return None

    async def _revision(self, remote: _Remote, ref: str, path: str) -> str:
        commit, _ = await self._resolve(remote, ref)
        mirror = self._mirror(remote)
        if path:
            probe = f"{commit}:{path}\n{commit}:{path}/Chart.yaml\n".encode()
            out = await self._run(remote, ["cat-file", "--batch-check"], git_dir=mirror, stdin=probe)
            lines = out.decode("utf-8", "replace").splitlines()
            kind = lines[0].split()[1] if lines and len(lines[0].split()) == 3 else "missing"
            if kind == "missing":
                raise ChartFetchError(f"path {path} not found in {remote.shown} at {ref}; check spec.chart.path",
                                      url=remote.shown)
            if kind != "tree":
                raise ChartFetchError(f"path {path} in {remote.shown} at {ref} is a file, not a chart directory",
                                      url=remote.shown)
            if len(lines) < 2 or lines[1].endswith("missing"):
                raise ChartFetchError(f"path {path} in {remote.shown} at {ref} holds no Chart.yaml; "
                                      f"check spec.chart.path", url=remote.shown)
            out = await self._run(remote, ["log", "-1", "--format=%H", commit, "--", path], git_dir=mirror)
            revision = out.decode().strip()
            return revision or commit
        return commit

    async def _export(self, remote: _Remote, revision: str) -> Path:
        final = self._root / remote.key / revision
        if final.is_dir():
            return final
        async with self._export_locks((remote.key, revision)):
            if final.is_dir():
                return final
            archive = self._root / remote.key / f".{revision}.tar.tmp-{os.getpid()}"
            try:
                with open(archive, "wb") as sink:
                    await self._run(remote, ["archive", "--format=tar", revision],
                                    git_dir=self._mirror(remote), stdout=sink)
                await asyncio.to_thread(
                    publish, final,
                    lambda tmp: extract_tar(archive, tmp, what=f"commit {revision} of {remote.shown}"),
                )
            finally:
                archive.unlink(missing_ok=True)
            log.info("exported %s at %s", remote.shown, revision[:12])
        return final

    async def _run(self, remote: _Remote, args: list[str], *, git_dir: Path | None = None,
                   stdin: bytes | None = None, stdout: IO[bytes] | None = None, allow_fail: bool = False) -> bytes:
        """Run git; return its stdout (empty when it failed and `allow_fail`), or raise ChartFetchError."""
        try:
            done: Completed = await remote.git.arun(*args, git_dir=git_dir, stdin=stdin, stdout=stdout,
                                                    check=not allow_fail)
        except GitError as e:
            raise ChartFetchError(str(e), url=remote.shown) from None
        return done.stdout if done.status == 0 else b""


def _normalise_path(path: str, shown: str) -> str:
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ChartFetchError(f"path {path} must stay inside the repository {shown}; check spec.chart.path")
    return "/".join(parts)


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
