"""Disk cache plumbing shared by the chart sources: locks, safe unpack, publish.

Place in the flow: below `helmrepo` and `git` (and the OCI pull in
`release.charts`). Everything here is blocking file work meant to run
through `asyncio.to_thread`, except `KeyedLocks`, which lives on the event
loop, and `AccessKeys`, whose only file work happens once, when it is made.
It knows nothing about HTTP or Git.

A cache entry is written into a temporary directory next to its final
place and renamed into place, so a reader sees either nothing or a complete
entry, also across processes and after a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import os
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from helm_operator.chartsource.model import ChartFetchError

# An unpacked chart (or exported Git tree) larger than this is refused.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 100_000
ACCESS_KEY_FILE = ".access-key"


class AccessKeys:
    """Cache directory names for a source *and* the credentials that read it.

    One operator serves many tenants from one cache. A chart or Git mirror
    fetched with tenant A's credentials must not be served to tenant B, who
    has other credentials or none: B's fetch must reach the server and get
    its own 401. So every cached artifact lives under a name derived from
    the source URL and the credential identity, and a release only ever
    looks under its own name. Cost: nothing per fetch beyond one HMAC; one
    copy on disk (and, for Git, one mirror and its fetches) per distinct
    credential of a source, where most sources have exactly one.

    The name is HMAC-SHA256 of ``source, username, password`` under 32
    random bytes kept in ``<cache>/.access-key`` (mode 0600, made once and
    reused after restarts), cut to 24 hex digits. It holds no credential,
    and without that file it cannot be computed, so a ``file://`` Git
    source cannot guess the path of another tenant's mirror either.
    """

    def __init__(self, cache_dir: Path) -> None:
        self._secret = _load_or_create_secret(Path(cache_dir) / ACCESS_KEY_FILE)

    def key(self, source: str, auth: tuple[str, str] | None) -> str:
        """The directory name for `source` (a URL without userinfo) read with `auth`."""
        parts = [source, "anonymous"] if auth is None else [source, "basic", auth[0], auth[1]]
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:24]


def _load_or_create_secret(path: Path) -> bytes:
    """The cache's HMAC secret; created atomically (link fails if another process won)."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".access-key.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    data = path.read_bytes()
    if len(data) < 32:
        raise OSError(f"{path} is damaged (shorter than 32 bytes); delete it to make a new one")
    return data


class KeyedLocks:
    """One asyncio.Lock per key, created on first use."""

    def __init__(self) -> None:
        self._locks: dict[object, asyncio.Lock] = {}

    def __call__(self, key: object) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def extract_tar(archive: Path | bytes, dest: Path, *, what: str) -> None:
    """Unpack `archive` (a tar file or its bytes, optionally compressed) into `dest`.

    Members that would land outside `dest` (absolute names, ``..``, links
    pointing out), device files and oversized archives are refused with a
    ChartFetchError naming `what` (a redacted URL or description).
    """
    try:
        opened = (
            tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")
            if isinstance(archive, bytes)
            else tarfile.open(archive, mode="r:*")
        )
        with opened as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise ChartFetchError(f"{what}: archive has more than {MAX_MEMBERS} entries; refusing it")
            if sum(m.size for m in members if m.isfile()) > MAX_UNPACKED_BYTES:
                raise ChartFetchError(
                    f"{what}: archive unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB; refusing it"
                )
            for member in members:
                _check_member(member, what)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise ChartFetchError(f"{what}: refusing archive member {exc.tarinfo.name!r}: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ChartFetchError(f"{what}: not a valid chart archive ({exc})") from exc


def _check_member(member: tarfile.TarInfo, what: str) -> None:
    name = member.name.replace("\\", "/")
    if name.startswith("/") or ".." in name.split("/"):
        raise ChartFetchError(f"{what}: refusing archive member {member.name!r}: it escapes the chart directory")


def find_chart_root(directory: Path, preferred: str | None = None) -> Path | None:
    """The directory holding Chart.yaml: `directory` itself or one level down.

    A packaged chart holds ``<name>/Chart.yaml``; `preferred` names the
    subdirectory to try first.
    """
    if preferred and (directory / preferred / "Chart.yaml").is_file():
        return directory / preferred
    if (directory / "Chart.yaml").is_file():
        return directory
    try:
        children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    for child in children:
        if (child / "Chart.yaml").is_file():
            return child
    return None


def publish(final: Path, build: Callable[[Path], None]) -> Path:
    """Create `final` atomically: `build` fills a temporary sibling directory.

    When `final` already exists (another process won the race), the new
    copy is dropped and the existing one is kept. Returns `final`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
