"""Shared pytest fixtures.

The `cluster` fixture builds (once, cached) and starts the real local control
plane for the whole session; integration tests use it. Its logs are kept in
the session's temporary folder, and the terminal summary names them (with
their last lines when a test failed) so a failed CI run shows what happened.

The `golden` fixture compares output with a golden file byte for byte;
`pytest --update-golden` rewrites the golden files with what the code
produces now instead (review the change with `git diff tests/testdata`).
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files (tests/testdata/**/expected.*) with the output the code "
                          "gives now instead of comparing; review the result with git diff")


class Golden:
    """Byte-for-byte comparison with golden files, or their rewrite under --update-golden."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, expected_file: Path, actual: bytes) -> None:
        if self.update:
            if not expected_file.exists() or expected_file.read_bytes() != actual:
                expected_file.write_bytes(actual)
            return
        assert actual == expected_file.read_bytes(), \
            f"{expected_file} differs; if the new output is right, run pytest --update-golden and review git diff"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-golden")))


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
