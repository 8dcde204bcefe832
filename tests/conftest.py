"""Shared pytest fixtures.

The `cluster` fixture builds (once, cached) and starts the real local control
plane for the whole session; integration tests use it. Its logs are kept in
the session's temporary folder, and the terminal summary names them (with
their last lines when a test failed) so a failed CI run shows what happened.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import localcluster
from tests.cluster.localcluster import LocalCluster, ensure_binaries

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "helmrelease.yaml"
_started: list[LocalCluster] = []


def pytest_configure(config: pytest.Config) -> None:
    """Show the cluster build's progress as it comes, past pytest's output capture.

    A cold build takes many minutes and a second run waits on the first
    one's lock: hidden, either looks like a hung test. The quick "up to date"
    line stays hidden.
    """
    capture = config.pluginmanager.getplugin("capturemanager")

    def show(line: str) -> None:
        if "] up to date: " in line:
            return
        if capture is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    localcluster.progress = show


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running local control plane with the HelmRelease CRD installed."""
    bin_dir = ensure_binaries()
    with LocalCluster(workdir=tmp_path_factory.mktemp("cluster"), bin_dir=bin_dir) as c:
        _started.append(c)
        c.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                  "crd/helmreleases.helm.fluxcd.io")
        yield c


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:  # type: ignore[no-untyped-def]
    for c in _started:
        terminalreporter.write_line(f"local cluster logs: {c.log_dir}")
        if exitstatus != 0 and c.log_dir.exists():
            for log in sorted(c.log_dir.glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-15:]
                terminalreporter.write_line(f"--- last lines of {log.name} ---")
                for line in lines:
                    terminalreporter.write_line(line)
