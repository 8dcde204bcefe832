"""Disk cache plumbing shared by the chart sources: locks, safe unpack, publish.

Place in the flow: below `helmrepo` and `git`. Everything here is blocking
file work meant to run through `asyncio.to_thread`, except `KeyedLocks`,
which lives on the event loop. It knows nothing about HTTP or Git.

A cache entry is written into a temporary directory next to its final
place and renamed into place, so a reader sees either nothing or a complete
entry, also across processes and after a crash.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from helm_operator.chartsource.model import ChartFetchError

# An unpacked chart (or exported Git tree) larger than this is refused.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 100_000


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
