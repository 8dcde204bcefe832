"""Support for the manifest syncer's integration tests: real Git remotes,
the `helm-operator sync` process, and reading objects with kubectl."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import LocalCluster
from tests.integration.helpers import eventually

HELM_OPERATOR = [sys.executable, "-m", "helm_operator.cli"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", **(env or {})}
    return subprocess.run(["git", *args], cwd=cwd, env=full_env, check=True, text=True,
                          capture_output=True).stdout.strip()


class GitRemote:
    """A bare repository (the remote) and a working clone that commits to it."""

    def __init__(self, root: Path, branch: str = "master") -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.branch = branch
        self.bare.mkdir(parents=True)
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", cwd=self.bare)
        git("clone", "--quiet", str(self.bare), str(self.work), cwd=root)
        git("checkout", "--quiet", "-B", branch, cwd=self.work)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def write(self, path: str, text: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, path: str) -> None:
        git("rm", "--quiet", "-r", path, cwd=self.work)

    def commit(self, message: str = "change") -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", f"HEAD:{self.branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str = "flux-sync") -> str | None:
        out = git("ls-remote", str(self.bare), f"refs/tags/{name}^{{}}", cwd=self.work)
        return out.split()[0] if out else None


def sync_once(cluster: LocalCluster, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `helm-operator sync --once`; returns the finished process."""
    return subprocess.run(
        [*HELM_OPERATOR, "sync", "--once", "--kubeconfig", str(cluster.kubeconfig),
         "--namespace", "default", "--workdir", str(workdir), "--listen-port", "0", *args],
        cwd=REPO_ROOT, env=cluster.env(), text=True, capture_output=True, timeout=300,
    )


def sync_status(cluster: LocalCluster, source: str) -> dict[str, Any]:
    out = subprocess.run(
        [*HELM_OPERATOR, "sync-status", "--kubeconfig", str(cluster.kubeconfig),
         "--namespace", "default", "-o", "json"],
        cwd=REPO_ROOT, env=cluster.env(), text=True, capture_output=True, timeout=60)
    statuses = {s["source"]: s for s in json.loads(out.stdout)}
    return statuses[source]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SyncerProcess:
    """A long-running `helm-operator sync` for loop, trigger and HTTP tests."""

    def __init__(self, cluster: LocalCluster, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.log = workdir / "syncer.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [*HELM_OPERATOR, "sync", "--kubeconfig", str(cluster.kubeconfig), "--namespace", "default",
             "--workdir", str(workdir), "--listen", "127.0.0.1", "--listen-port", str(self.port), *args],
            cwd=REPO_ROOT, env=cluster.env(), stdout=self._out, stderr=subprocess.STDOUT, text=True)
        eventually(lambda: self.get("/healthz") == "ok\n", timeout=30, what="syncer /healthz")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.read().decode()

    def post(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()

    def __enter__(self) -> "SyncerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get_obj(cluster: LocalCluster, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--show-managed-fields"] + (["-n", namespace] if namespace else [])
    proc = cluster.kubectl(*args, check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return json.loads(proc.stdout)


def wait_gone(cluster: LocalCluster, kind: str, name: str, namespace: str | None = None) -> None:
    eventually(lambda: get_obj(cluster, kind, name, namespace) is None, timeout=60,
               what=f"{kind} {name} deleted")


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started
