"""Fairness (issue 14): a slow first install (helm --wait on pods that never
become ready) holds one worker; upgrades of other releases keep flowing
through the others and finish while it still runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cluster.kwokstages import POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import apply, hello_chart, helm_history, helmrelease, new_namespace, status

UPGRADES = 20


def _all_at(cluster: LocalCluster, ns: str, names: list[str], generation: int) -> bool:
    items = json.loads(cluster.kubectl("get", "helmreleases", "-n", ns, "-o", "json").stdout)["items"]
    by_name = {o["metadata"]["name"]: o for o in items}
    return all((by_name.get(n) or {}).get("status", {}).get("observedGeneration") == generation
               and by_name[n]["status"].get("phase") == "Succeeded" for n in names)


def test_upgrades_finish_while_a_slow_install_holds_a_worker(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    op = start_operator(cluster, tmp_path / "op", "--workers", "2", "--charts-sync-interval", "10m",
                        "--shutdown-grace-period", "1s")
    try:
        ns = new_namespace(cluster)
        names = [f"u{i:02d}" for i in range(UPGRADES)]
        for name in names:
            apply(cluster, ns, helmrelease(name, {"chart": hello_chart(chart_repo.url), "values": {"replicaCount": 0}}))
        eventually(lambda: _all_at(cluster, ns, names, 1), timeout=180, what="the releases installed")

        # A first install that waits up to 90 s for pods that never become ready.
        apply(cluster, ns, helmrelease("slow", {"chart": hello_chart(chart_repo.url), "wait": True, "timeout": 90,
                                                "values": {"podLabels": {POD_STATE_LABEL: UNREADY}}}))
        eventually(lambda: status(cluster, ns, "slow").get("phase") == "Installing", timeout=30,
                   what="the slow install running")
        for name in names:
            apply(cluster, ns, helmrelease(name, {"chart": hello_chart(chart_repo.url),
                                                  "values": {"replicaCount": 0, "message": "two"}}))
        eventually(lambda: _all_at(cluster, ns, names, 2), timeout=60, interval=1,
                   what=f"{UPGRADES} upgrades done")
        # ... while the slow install still runs.
        assert status(cluster, ns, "slow").get("phase") == "Installing"
        assert [h["status"] for h in helm_history(cluster, ns, f"{ns}-slow")] == ["pending-install"]
    finally:
        op.stop()
