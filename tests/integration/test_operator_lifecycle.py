"""The operator process itself: crashes, restarts, Git chart sources, and its
HTTP endpoints. Each test runs its own operator (no module-wide one), so it
can be killed and restarted."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kwokstages import FAIL, POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually, holds
from tests.integration.hr import helm_history, apply, get, hello_chart, helmrelease, new_namespace, wait_phase

HELLO = Path(__file__).resolve().parents[1] / "testdata" / "charts" / "hello"


@pytest.fixture
def own_operator(cluster: LocalCluster, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = start_operator(cluster, tmp_path / "op", "--charts-sync-interval", "30s", "--git-poll-interval", "1h")
    yield op
    op.stop()




def test_release_left_pending_by_a_killed_operator_is_recovered(
        cluster: LocalCluster, chart_repo: ChartRepo, own_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "wait": True, "timeout": 120}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"podLabels": {POD_STATE_LABEL: UNREADY}}
    apply(cluster, ns, helmrelease("web", spec))
    eventually(lambda: (helm_history(cluster, ns, f"{ns}-web") or [{}])[-1].get("status") == "pending-upgrade",
               timeout=60, what="the upgrade to be in flight")
    own_operator.kill_all()  # operator and its helm child die mid-upgrade
    assert helm_history(cluster, ns, f"{ns}-web")[-1]["status"] == "pending-upgrade"
    spec["values"] = {"message": "fixed"}  # a good configuration, committed while it was down
    apply(cluster, ns, helmrelease("web", spec))
    own_operator.start_again()
    st = wait_phase(cluster, ns, "web", "Succeeded", generation=3, timeout=120)
    assert st["releaseStatus"] == "deployed"
    history = helm_history(cluster, ns, f"{ns}-web")
    # helm keeps the interrupted revision's record; what matters is that a
    # rollback to revision 1 released the lock and the new upgrade deployed.
    assert [h["status"] for h in history] == ["superseded", "pending-upgrade", "superseded", "deployed"]
    assert history[2]["description"] == "Rollback to 1"
    assert "stuck in pending-upgrade" in own_operator.log_text()


def test_a_rollback_killed_midway_is_finished_and_the_failing_upgrade_not_run_again(
        cluster: LocalCluster, chart_repo: ChartRepo, own_operator: OperatorProcess) -> None:
    """Issue 10: SIGKILL while helm rolls back (pending-rollback) after failed tests;
    the restarted operator finishes that rollback and, rollback.retry being false,
    never upgrades to the configuration it already knows fails."""
    ns = new_namespace(cluster)
    # The release's own pods never become ready, so a rollback with --wait hangs.
    spec = {"chart": hello_chart(chart_repo.url), "wait": False, "test": {"enable": True, "timeout": 60},
            "rollback": {"enable": True, "wait": True, "timeout": 600},
            "values": {"podLabels": {POD_STATE_LABEL: UNREADY}}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"podLabels": {POD_STATE_LABEL: UNREADY}, "message": "two",
                      "test": {"podLabels": {POD_STATE_LABEL: FAIL}}}
    apply(cluster, ns, helmrelease("web", spec))
    eventually(lambda: (helm_history(cluster, ns, f"{ns}-web") or [{}])[-1].get("status") == "pending-rollback",
               timeout=90, what="the rollback after the failed tests to be in flight")
    own_operator.kill_all()  # operator and its helm rollback die
    assert [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")][-1] == "pending-rollback"
    upgrades = len(own_operator.calls(f"upgrade {ns}-web"))
    own_operator.start_again()
    st = wait_phase(cluster, ns, "web", "RolledBack", generation=2, timeout=60)
    history = helm_history(cluster, ns, f"{ns}-web")
    assert history[-1]["status"] == "deployed" and history[-1]["description"] == "Rollback to 1"
    assert st["rollbackCount"] == 1
    holds(lambda: len(own_operator.calls(f"upgrade {ns}-web")) == upgrades, window=15,
          what="no upgrade to the failing configuration after the restart")
    assert "finish the rollback to revision 1" in own_operator.log_text()


def test_helmrelease_deleted_while_the_operator_is_down_is_still_uninstalled(
        cluster: LocalCluster, chart_repo: ChartRepo, own_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")
    own_operator.stop()
    cluster.kubectl("delete", "-n", ns, "helmrelease", "web", "--wait=false")
    assert get(cluster, ns, "helmrelease", "web") is not None  # held by the finalizer
    own_operator.start_again()
    eventually(lambda: get(cluster, ns, "helmrelease", "web") is None, timeout=60, what="HelmRelease gone")
    assert not helm_history(cluster, ns, f"{ns}-web")
    assert get(cluster, ns, "deployment", f"{ns}-web-hello") is None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _trigger_git_sync_and_wait_for_a_round(op: OperatorProcess) -> None:
    """POST /api/v1/sync-git, which answers at once, then wait for a round of Git fetches
    that started after the trigger to finish (the operator logs both ends at debug)."""
    offset = len(op.log_text())
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{op.port}/api/v1/sync-git", method="POST"), timeout=5) as r:
        assert json.loads(r.read())["status"] == "triggered"

    def round_done() -> bool:
        after = op.log_text()[offset:]
        start = after.find("Git chart sources: fetching")
        return start >= 0 and "Git chart sources: checked" in after[start:]
    eventually(round_done, timeout=60, what="a round of Git chart fetches after the trigger")


def test_git_chart_source_upgrades_only_when_the_chart_path_changes(
        cluster: LocalCluster, own_operator: OperatorProcess, tmp_path: Path) -> None:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    _git(work, "config", "user.email", "t@example.com")
    _git(work, "config", "user.name", "t")
    subprocess.run(["cp", "-r", str(HELLO), str(work / "charts")], check=False)
    (work / "charts").mkdir(exist_ok=True)
    subprocess.run(["cp", "-r", str(HELLO), str(work / "charts" / "hello")], check=True)
    (work / "README.md").write_text("docs\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "chart")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    _git(work, "remote", "add", "origin", str(remote))
    first = _git(work, "rev-parse", "HEAD")

    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": {"git": f"file://{remote}", "ref": "main",
                                                     "path": "charts/hello"}}))
    st = wait_phase(cluster, ns, "web", "Succeeded")
    assert st["revision"] == first

    (work / "README.md").write_text("more docs\n")  # outside the chart path
    _git(work, "commit", "-qam", "docs")
    _git(work, "push", "-q", "origin", "main")
    _trigger_git_sync_and_wait_for_a_round(own_operator)
    values = (work / "charts" / "hello" / "values.yaml")
    values.write_text(values.read_text().replace("message: hello", "message: from-git"))
    _git(work, "commit", "-qam", "chart change")
    second = _git(work, "rev-parse", "HEAD")
    revisions_before = len(helm_history(cluster, ns, f"{ns}-web"))
    assert revisions_before == 1  # the docs commit caused no upgrade
    _git(work, "push", "-q", "origin", "main")
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{own_operator.port}/api/v1/sync-git", method="POST"), timeout=5).close()
    eventually(lambda: (get(cluster, ns, "helmrelease", "web") or {}).get("status", {}).get("revision") == second,
               timeout=60, what="upgrade to the new chart commit")
    assert len(helm_history(cluster, ns, f"{ns}-web")) == 2


def test_metrics_and_health_endpoints(
        cluster: LocalCluster, chart_repo: ChartRepo, own_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")
    with urllib.request.urlopen(f"http://127.0.0.1:{own_operator.port}/healthz", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{own_operator.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    release = f"{ns}-web"
    assert (f'flux_helm_operator_release_condition_info{{condition="Released",release_name="{release}",'
            f'target_namespace="{ns}"}} 1.0') in text
    assert "flux_helm_operator_release_action_duration_seconds_count{action=\"install\"" in text
    assert "flux_helm_operator_release_queue_length_count" in text
    assert "flux_helm_operator_release_count" in text


def test_objects_changed_by_hand_are_restored_and_clean_releases_are_left_alone(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    op = start_operator(cluster, tmp_path / "drift-op", "--drift-detection-interval", "2s",
                        "--charts-sync-interval", "2s")
    try:
        ns = new_namespace(cluster)
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url),
                                               "values": {"message": "from-git", "replicaCount": 2},
                                               "driftDetection": {"mode": "enabled"}}))
        wait_phase(cluster, ns, "web", "Succeeded")
        clean = f"{ns}/web: drift check: live objects match"
        eventually(lambda: op.log_text().count(clean) >= 3, timeout=30, what="three drift checks")
        assert len(helm_history(cluster, ns, f"{ns}-web")) == 1, "a clean release must not be re-applied"

        name = f"{ns}-web-hello"
        cluster.kubectl("set", "env", "-n", ns, f"deployment/{name}", "MESSAGE=edited-by-hand")
        cluster.kubectl("scale", "-n", ns, f"deployment/{name}", "--replicas=5")

        def restored() -> bool:
            d = get(cluster, ns, "deployment", name) or {}
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            return env.get("MESSAGE") == "from-git" and d["spec"]["replicas"] == 2

        eventually(restored, timeout=60, what="the hand edits to be undone")
        assert "objects changed outside Git" in op.log_text()
        assert "edited-by-hand" not in op.log_text()  # paths are reported, never values
        revisions = len(helm_history(cluster, ns, f"{ns}-web"))
        checks = op.log_text().count(clean)
        eventually(lambda: op.log_text().count(clean) >= checks + 2, timeout=30,
                   what="two more drift checks after the repair")
        assert len(helm_history(cluster, ns, f"{ns}-web")) == revisions
    finally:
        op.stop()
