"""A failing release is retried on its backoff, whatever else triggers the
operator, and its failure stays visible while it is retried.

The chart comes from Git and renders a HorizontalPodAutoscaler of
`autoscaling/v2beta1`, an API Kubernetes removed, so every install fails.
The operator polls Git every second; before, every poll started another
install (79 installs in 270 s) and the status read "Installing" almost all
the time.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import apply, condition, helmrelease, new_namespace, status

HELLO = Path(__file__).resolve().parents[1] / "testdata" / "charts" / "hello"
HPA = """apiVersion: autoscaling/v2beta1
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .Release.Name }}-hpa
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .Release.Name }}-hello
  minReplicas: 1
  maxReplicas: 2
"""
WINDOW = 120.0


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _chart_remote(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(HELLO, work / "charts" / "hello")
    (work / "charts" / "hello" / "templates" / "hpa.yaml").write_text(HPA)
    _git(tmp_path, "init", "-q", "-b", "main", str(work))
    _git(work, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(work, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "chart with a removed API")
    remote = tmp_path / "remote.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    return remote


def _printed_row(cluster: LocalCluster, ns: str) -> str:
    """What `kubectl get hr` prints for the release (its printer columns)."""
    return cluster.kubectl("get", "helmrelease", "web", "-n", ns, "--no-headers").stdout.strip()


def test_a_failing_git_release_is_retried_on_its_backoff_and_its_error_stays_visible(
        cluster: LocalCluster, tmp_path: Path) -> None:
    remote = _chart_remote(tmp_path)
    op = start_operator(cluster, tmp_path / "op", "--git-poll-interval", "1s", "--charts-sync-interval", "3s")
    try:
        ns = new_namespace(cluster)
        apply(cluster, ns, helmrelease("web", {"chart": {"git": f"file://{remote}", "ref": "main",
                                                         "path": "charts/hello"}}))
        eventually(lambda: status(cluster, ns, "web").get("failures", 0) >= 1, timeout=60,
                   what="the first failed install")
        started = time.monotonic()
        first = len(op.calls(f"{ns}-web"))
        rows: list[str] = []
        while time.monotonic() - started < WINDOW:
            rows.append(_printed_row(cluster, ns))
            time.sleep(3)  # sampling interval of the printed row, not a wait for an outcome
        attempts = len(op.calls(f"{ns}-web")) - first
        st = status(cluster, ns, "web")
        # Attempts after the first failure at +5, +15, +35, +75 s (backoff 5 s doubling): 4 in 120 s.
        print(f"installs in {WINDOW:.0f}s after the first failure: {attempts}; failures {st['failures']}")
        assert attempts <= 4, op.calls(f"{ns}-web")
        assert st["failures"] == attempts + 1
        ready = condition(st, "Ready")
        assert ready["status"] == "False" and "no matches for kind" in ready["message"], ready
        failing = [r for r in rows if "failed" in r and "HorizontalPodAutoscaler" in r]
        assert len(failing) == len(rows), "\n".join(rows)  # every sample shows the error
        assert "periodic resync" in op.log_text()
    finally:
        op.stop()
