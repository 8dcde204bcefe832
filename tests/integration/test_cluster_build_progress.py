"""A build of the local cluster that waits on another build's lock says so,
and the test suite shows that progress instead of capturing it.

Each scenario points build.sh at a cache folder of its own
($HELM_OPERATOR_CACHE) whose lock a `flock ... sleep` holds, and marks the
folder complete while the second build waits, as the first build would: no
Go build runs. (Here rather than in tests/unit: build.sh needs Go installed.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.cluster.localcluster import HERE

REPO = HERE.parents[1]


def build_folder(cache: Path) -> Path:
    """The folder build.sh builds into for `cache`: the same key as build.sh computes."""
    parts = [HERE / "versions.env", *sorted(HERE.glob("gomod/*/go.mod")), *sorted(HERE.glob("gomod/*/go.sum")),
             HERE / "recipe.sh"]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:16]
    return cache / "cluster" / key


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another build holding the lock: its pid and command in the holder file, a progress line."""
    (folder / "bin").mkdir(parents=True)
    holder = subprocess.Popen(["flock", str(folder / ".lock"), "sleep", str(seconds)])
    deadline = time.monotonic() + 5
    while subprocess.run(["flock", "-n", str(folder / ".lock"), "true"]).returncode == 0:
        assert time.monotonic() < deadline, "the holder did not take the lock"
        time.sleep(0.05)
    (folder / ".lock.holder").write_text(f"{holder.pid} (pytest tests/integration) since 12:00:00\n")
    (folder / ".progress").write_text("[cluster-build 12:00:01] kube-apiserver: building "
                                      "k8s.io/kubernetes/cmd/kube-apiserver (cold builds take minutes)\n")
    return holder


def finish_after(folder: Path, seconds: float) -> subprocess.Popen[bytes]:
    """The holder's build completing: the stamp appears, then the lock is let go."""
    return subprocess.Popen(["bash", "-c", f"sleep {seconds}; echo done > '{folder}/.complete'"])


def test_a_build_waiting_on_the_lock_says_who_holds_it_and_how_long_it_waited(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "cache")
    holder = hold_lock(folder, 4.5)
    done = finish_after(folder, 4)
    try:
        proc = subprocess.run(["bash", str(HERE / "build.sh")], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HELM_OPERATOR_CACHE": str(tmp_path / "cache"),
                                   "HELM_OPERATOR_BUILD_REPORT": "1"})
    finally:
        holder.wait()
        done.wait()
    print(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(folder / "bin")
    lines = proc.stderr.splitlines()
    assert f"waiting for the build lock {folder}/.lock, held by pid {holder.pid} (pytest tests/integration) " \
           "since 12:00:00" in lines[0]
    waits = [line for line in lines if "still waiting for the build lock after" in line]
    assert len(waits) >= 2, lines
    assert waits[-1].endswith("its last step: kube-apiserver: building k8s.io/kubernetes/cmd/kube-apiserver "
                              "(cold builds take minutes)")
    assert any("got the build lock after" in line for line in lines)
    assert lines[-1].endswith(f"built meanwhile by the other build: {folder}/bin")


def test_the_test_suite_shows_the_build_progress_past_its_output_capture(tmp_path: Path) -> None:
    """A pytest run (output captured, as by default) whose test needs the binaries shows the wait as it goes."""
    folder = build_folder(tmp_path / "cache")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_needs_binaries.py").write_text(textwrap.dedent("""
        from tests.cluster.localcluster import ensure_binaries

        def test_needs_binaries():
            assert ensure_binaries().name == "bin"
        """))
    holder = hold_lock(folder, 3.5)
    done = finish_after(folder, 3)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={REPO}",
             "-c", str(REPO / "pyproject.toml"), f"--confcutdir={REPO}", str(REPO / "tests" / "conftest.py"),
             str(inner / "test_needs_binaries.py"), f"--basetemp={tmp_path / 'inner-pt'}"],
            capture_output=True, text=True, timeout=120, cwd=REPO,
            env={**os.environ, "HELM_OPERATOR_CACHE": str(tmp_path / "cache"), "HELM_OPERATOR_BUILD_REPORT": "1",
                 "PYTHONPATH": str(REPO)})
    finally:
        holder.wait()
        done.wait()
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode == 0, out
    assert "1 passed" in out
    assert "waiting for the build lock" in out and "still waiting for the build lock after" in out
