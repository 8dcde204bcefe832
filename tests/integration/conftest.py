"""Fixtures for the operator tests: a chart repository served over HTTP, and
the real `helm-operator run` process against the local cluster.

The operator runs as a subprocess (as in production), with a `helm` wrapper
that appends each invocation's verb to a file so tests can count helm calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.chartserver import package_chart, serve_directory
from tests.integration.helpers import eventually

TESTDATA = Path(__file__).resolve().parents[1] / "testdata"


@dataclass
class ChartRepo:
    url: str
    root: Path


@pytest.fixture(scope="session")
def chart_repo(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    """A Helm chart repository: `hello` at 0.1.0, 0.2.0 and 0.3.0."""
    root = tmp_path_factory.mktemp("chart-repo")
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        package_chart(cluster.binary("helm"), TESTDATA / "charts" / "hello", version, root)
    url, server = serve_directory(root)
    subprocess.run([cluster.binary("helm"), "repo", "index", str(root), "--url", url], check=True)
    yield ChartRepo(url, root)
    server.shutdown()


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    helm_calls: Path
    args: list[str]
    env: dict[str, str]

    def calls(self, containing: str = "") -> list[str]:
        """helm command lines run so far (arguments only: values go on stdin)."""
        lines = self.helm_calls.read_text().splitlines() if self.helm_calls.exists() else []
        return [line for line in lines if containing in line]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL the operator and its helm children at once, as a node crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start_again(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _wait_healthy(self)


def _wait_healthy(op: OperatorProcess) -> None:
    import urllib.request

    def healthy() -> bool:
        if op.proc.poll() is not None:
            raise AssertionError(f"operator exited:\n{op.log_text()[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=2) as r:
            return r.status == 200

    eventually(healthy, timeout=30, what="operator /healthz")


def start_operator(cluster: LocalCluster, workdir: Path, *extra: str) -> OperatorProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    calls = workdir / "helm-calls.txt"
    wrapper = workdir / "helm"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {cluster.binary("helm")} "$@"\n')
    wrapper.chmod(0o755)
    port = free_port()
    args = [sys.executable, "-m", "helm_operator.cli", "run", "--kubeconfig", str(cluster.kubeconfig),
            "--listen", f"127.0.0.1:{port}", "--cache-dir", str(workdir / "cache"),
            "--helm-binary", str(wrapper), "--log-level", "debug", *extra]
    env = cluster.env()
    env["HELM_CACHE_HOME"] = str(workdir / "helm-cache")
    env["HELM_CONFIG_HOME"] = str(workdir / "helm-config")
    log = workdir / "operator.log"
    proc = subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    op = OperatorProcess(proc, port, log, calls, args, env)
    _wait_healthy(op)
    return op


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One `helm-operator run` shared by a module's tests (each uses its own
    namespace); module-scoped so a module may instead run its own operators."""
    op = start_operator(cluster, tmp_path_factory.mktemp("operator"), "--charts-sync-interval", "15s")
    yield op
    op.stop()
    print(f"operator log: {op.log}")
