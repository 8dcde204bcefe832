"""Two GitWriters (two separate checkouts of one real bare remote) racing:
no commit is lost, history stays linear, and the same edit made by both
becomes one commit."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from pathlib import Path

import pytest

from helm_operator.automation.gitwrite import Change, GitTarget, GitWriter

CHANGES = 10
FORCED_RACES = (0, 4, 8)   # changes both writers start from the same head, so one push must be rejected


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _remote(tmp_path: Path) -> Path:
    work = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README").write_text("seed\n")
    _git(work, "add", "README")
    _git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "seed")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    return remote


def _writers(tmp_path: Path, remote: Path) -> tuple[GitWriter, GitWriter]:
    def writer(name: str) -> GitWriter:
        target = GitTarget(url=f"file://{remote}", branch="main", author_name=name,
                           author_email=f"{name}@example.com")
        return GitWriter(target, tmp_path / f"checkout-{name}", attempts=20)
    return writer("a"), writer("b")


def _append(name: str, line: str, subject: str, barrier: threading.Barrier | None = None):  # noqa: ANN202 - an Edit
    first = [True]

    def edit(root: Path) -> Change[None]:
        if barrier is not None and first[0]:
            first[0] = False
            barrier.wait(timeout=30)   # both checkouts are at the same head now
        file = root / f"{name}.txt"
        file.write_text((file.read_text() if file.exists() else "") + line + "\n")
        return Change([file.name], subject)
    return edit


async def test_two_writers_racing_lose_no_commit_and_stay_linear(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    remote = _remote(tmp_path)
    a, b = _writers(tmp_path, remote)
    barriers = {i: threading.Barrier(2) for i in FORCED_RACES}

    async def run(writer: GitWriter, name: str) -> list[str | None]:
        commits = []
        for i in range(CHANGES):
            written = await writer.change(_append(name, f"{name}-{i}", f"{name} change {i}", barriers.get(i)))
            commits.append(written.commit)
            await asyncio.sleep(0.02)
        return commits

    with caplog.at_level(logging.INFO, logger="helm_operator.automation.gitwrite"):
        results = await asyncio.gather(run(a, "a"), run(b, "b"))

    assert all(commit for commits in results for commit in commits)
    log = _git(remote, "log", "--format=%s", "main").splitlines()
    assert sorted(log) == sorted(["seed"] + [f"{n} change {i}" for n in "ab" for i in range(CHANGES)])
    assert _git(remote, "rev-list", "--merges", "main") == ""        # linear
    assert [line.split()[0] for line in _git(remote, "rev-list", "--parents", "main").splitlines()
            if len(line.split()) > 2] == []
    for name in "ab":   # each writer's changes all landed, in its order
        assert _git(remote, "show", f"main:{name}.txt").splitlines() == [f"{name}-{i}" for i in range(CHANGES)]
    # the races really happened, and were won by re-applying on the new head
    rejected = [r for r in caplog.records if "was rejected" in r.getMessage()]
    assert len(rejected) >= len(FORCED_RACES)
    authors = _git(remote, "log", "--reverse", "--format=%an", "main").split()[1:]
    assert authors != sorted(authors) and authors != sorted(authors, reverse=True)


async def test_the_same_edit_by_two_writers_is_one_commit(tmp_path: Path) -> None:
    remote = _remote(tmp_path)
    a, b = _writers(tmp_path, remote)

    def same(root: Path) -> Change[None]:
        (root / "release.yaml").write_text("image: repo/app:1.0.1\n")
        return Change(["release.yaml"], "again")

    for round_ in range(3):   # both edit the same head; the loser's re-applied edit changes nothing
        barrier = threading.Barrier(2)

        def edit(root: Path, n: int = round_, calls: list[int] = []) -> Change[None]:  # noqa: B006
            calls.append(1)
            if len(calls) <= 2:
                barrier.wait(timeout=30)
            (root / "release.yaml").write_text(f"image: repo/app:1.0.{n}\n")
            return Change(["release.yaml"], f"Release 1.0.{n}")
        commits = [w.commit for w in await asyncio.gather(a.change(edit), b.change(edit))]
        assert len([c for c in commits if c]) == 1, commits
    log = _git(remote, "log", "--format=%s", "main").splitlines()
    assert log == ["Release 1.0.2", "Release 1.0.1", "Release 1.0.0", "seed"]
    assert (await a.change(same)).commit is not None
    assert (await b.change(same)).commit is None
