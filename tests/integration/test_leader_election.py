"""Two operator replicas with leader election: one acts, the other waits,
and the waiting one takes over within the lease duration when the leader
dies."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import apply, hello_chart, helmrelease, new_namespace, wait_phase

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
