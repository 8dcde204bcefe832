"""Two operator replicas with leader election: one acts, the other waits,
and the waiting one takes over within the lease duration when the leader
dies."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from tests.cluster.kwokstages import POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import apply, hello_chart, helm_history, helmrelease, new_namespace, wait_phase

LEASE_SECONDS = 6


def test_only_the_leader_acts_and_the_other_takes_over_after_a_sigkill(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    lease = f"le-{uuid.uuid4().hex[:6]}"
    flags = ("--leader-elect", "--leader-election-name", lease, "--leader-election-namespace", ns,
             "--lease-duration", f"{LEASE_SECONDS}s", "--allow-namespace", ns)
    first = start_operator(cluster, tmp_path / "a", *flags)
    eventually(lambda: "acquired lease" in first.log_text(), timeout=30, what="first replica to lead")
    second = start_operator(cluster, tmp_path / "b", *flags)
    try:
        eventually(lambda: "waiting to acquire lease" in second.log_text(), timeout=30, what="second to wait")
        apply(cluster, ns, helmrelease("one", {"chart": hello_chart(chart_repo.url)}))
        wait_phase(cluster, ns, "one", "Succeeded")
        assert f"{ns}/one" in first.log_text()
        assert f"{ns}/one" not in second.log_text()
        assert "acquired lease" not in second.log_text()

        first.kill_all()
        killed = time.monotonic()
        eventually(lambda: "acquired lease" in second.log_text(), timeout=LEASE_SECONDS + 10, interval=0.2,
                   what="the second replica to take over")
        takeover = time.monotonic() - killed
        print(f"takeover after SIGKILL of the leader: {takeover:.1f}s (lease {LEASE_SECONDS}s)")
        assert takeover <= LEASE_SECONDS + 3
        apply(cluster, ns, helmrelease("two", {"chart": hello_chart(chart_repo.url)}))
        wait_phase(cluster, ns, "two", "Succeeded")
    finally:
        first.stop()
        second.stop()


def _slow_upgrades(op_dir: Path, helm: str, seconds: float) -> None:
    """Make every helm upgrade of this operator start `seconds` late (a long helm call to stop in)."""
    wrapper = op_dir / "helm"
    calls = op_dir / "helm-calls.txt"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                       f'if [ "$1" = upgrade ]; then sleep {seconds}; fi\nexec {helm} "$@"\n')


def _pair(cluster: LocalCluster, tmp_path: Path, ns: str, *extra: str) -> tuple[OperatorProcess, OperatorProcess]:
    lease = f"le-{uuid.uuid4().hex[:6]}"
    flags = ("--leader-elect", "--leader-election-name", lease, "--leader-election-namespace", ns,
             "--lease-duration", "15s", "--allow-namespace", ns, *extra)
    first = start_operator(cluster, tmp_path / "a", *flags)
    eventually(lambda: "acquired lease" in first.log_text(), timeout=30, what="first replica to lead")
    second = start_operator(cluster, tmp_path / "b", *flags)
    eventually(lambda: "waiting to acquire lease" in second.log_text(), timeout=30, what="second to wait")
    return first, second


def test_sigterm_lets_the_upgrade_finish_then_hands_the_lease_over_at_once(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    first, second = _pair(cluster, tmp_path, ns)
    try:
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
        wait_phase(cluster, ns, "web", "Succeeded")
        _slow_upgrades(tmp_path / "a", cluster.binary("helm"), 4)
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"message": "two"}}))
        eventually(lambda: len(first.calls("upgrade")) == 2, timeout=30, what="the upgrade in flight")
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0  # it waited for the upgrade, then exited cleanly
        released = time.monotonic()
        eventually(lambda: "acquired lease" in second.log_text(), timeout=5, interval=0.1,
                   what="the standby to take over")
        takeover = time.monotonic() - released
        print(f"standby took over {takeover:.2f}s after the leader's graceful exit (lease 15s)")
        assert takeover < 2.0
        st = wait_phase(cluster, ns, "web", "Succeeded", generation=2)
        assert [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")] == ["superseded", "deployed"]
        assert st["history"][0]["action"] == "upgrade"
        assert "released lease" in first.log_text()
    finally:
        first.stop()
        second.stop()


def test_past_the_grace_period_helm_is_stopped_and_the_next_leader_recovers_the_release(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    first, second = _pair(cluster, tmp_path, ns, "--shutdown-grace-period", "2s")
    try:
        spec = {"chart": hello_chart(chart_repo.url), "wait": True, "timeout": 120}
        apply(cluster, ns, helmrelease("web", spec))
        wait_phase(cluster, ns, "web", "Succeeded")
        # The new pods never become ready: helm waits in pending-upgrade.
        spec["values"] = {"podLabels": {POD_STATE_LABEL: UNREADY}}
        apply(cluster, ns, helmrelease("web", spec))
        eventually(lambda: (helm_history(cluster, ns, f"{ns}-web") or [{}])[-1].get("status") == "pending-upgrade",
                   timeout=60, what="the upgrade waiting in pending-upgrade")
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0
        assert "stopping in-flight helm calls" in first.log_text()
        # helm, stopped, marks its revision failed ("context canceled"); the next leader
        # takes the release over from there and runs the upgrade again.
        revision = helm_history(cluster, ns, f"{ns}-web")[1]
        assert revision["status"] in ("failed", "pending-upgrade"), revision
        eventually(lambda: len(second.calls(f"upgrade {ns}-web")) >= 1, timeout=30,
                   what="the next leader to take the interrupted upgrade over")
        assert f"{ns}/web" in second.log_text()
    finally:
        first.stop()
        second.stop()
