"""Sharding across operator processes by label (issue 14): each process
serves only the HelmReleases its `--watch-label-selector` matches, and
relabelling a HelmRelease hands it over without an uninstall."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually, holds
from tests.integration.hr import get, hello_chart, helm_history, new_namespace, status

SHARD_KEY = "sharding.fluxcd.io/key"
RELEASES = 300


def _installed_releases(op: OperatorProcess) -> set[str]:
    """Release names this process installed, from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    pattern = r'flux_helm_operator_release_action_duration_seconds_count\{action="install",[^}]*release_name="([^"]+)"'
    return set(re.findall(pattern, text))


def _create_all(cluster: LocalCluster, ns: str, chart: dict, shards: list[str | None]) -> list[str]:
    items, names = [], []
    for i in range(RELEASES):
        shard = shards[i % len(shards)]
        name = f"r{i:03d}"
        meta: dict = {"name": name, "namespace": ns}
        if shard:
            meta["labels"] = {SHARD_KEY: shard}
        items.append({"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": meta,
                      "spec": {"chart": chart, "values": {"replicaCount": 0}}})
        names.append(name)
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return names


def test_three_shards_each_serve_only_their_releases_and_a_relabel_hands_over(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    common = ("--allow-namespace", ns, "--charts-sync-interval", "10m", "--drift-detection-interval", "0",
              "--workers", "4")
    shards = {
        "shard1": start_operator(cluster, tmp_path / "s1", *common, "--watch-label-selector", f"{SHARD_KEY}=shard1"),
        "shard2": start_operator(cluster, tmp_path / "s2", *common, "--watch-label-selector", f"{SHARD_KEY}=shard2"),
        "rest": start_operator(cluster, tmp_path / "s0", *common, "--watch-label-selector", f"!{SHARD_KEY}"),
    }
    try:
        names = _create_all(cluster, ns, hello_chart(chart_repo.url), ["shard1", "shard2", None])

        def all_ready() -> bool:
            out = json.loads(cluster.kubectl("get", "helmreleases", "-n", ns, "-o", "json").stdout)["items"]
            return len(out) == RELEASES and all(
                (o.get("status") or {}).get("phase") == "Succeeded" for o in out)

        eventually(all_ready, timeout=600, interval=3, what=f"{RELEASES} HelmReleases Succeeded")
        served = {shard: _installed_releases(op) for shard, op in shards.items()}
        expected = {
            "shard1": {f"{ns}-{n}" for i, n in enumerate(names) if i % 3 == 0},
            "shard2": {f"{ns}-{n}" for i, n in enumerate(names) if i % 3 == 1},
            "rest": {f"{ns}-{n}" for i, n in enumerate(names) if i % 3 == 2},
        }
        for shard in shards:
            print(f"{shard}: {len(served[shard])} releases installed")
            assert served[shard] == expected[shard], shard  # each by exactly one process

        # Relabel r000 from shard1 to shard2: shard1 lets go (no uninstall), shard2 adopts it.
        moved = names[0]
        cluster.kubectl("label", "helmrelease", moved, "-n", ns, f"{SHARD_KEY}=shard2", "--overwrite")
        cluster.kubectl("patch", "helmrelease", moved, "-n", ns, "--type=merge",
                        "-p", json.dumps({"spec": {"values": {"replicaCount": 0, "message": "moved"}}}))
        eventually(lambda: len(shards["shard2"].calls(f"upgrade {ns}-{moved}")) >= 1, timeout=60,
                   what="the new shard to act on the handed-over release")
        eventually(lambda: status(cluster, ns, moved).get("observedGeneration") == 2
                   and status(cluster, ns, moved).get("phase") == "Succeeded", timeout=60,
                   what="the handed-over release upgraded by its new shard")
        history = helm_history(cluster, ns, f"{ns}-{moved}")
        assert all(h["status"] != "uninstalled" for h in history) and history[0]["revision"] == 1
        assert get(cluster, ns, "deployment", f"{ns}-{moved}-hello") is not None
        calls = len(shards["shard1"].calls(f"{ns}-{moved}"))
        holds(lambda: len(shards["shard1"].calls(f"{ns}-{moved}")) == calls, window=5,
              what="the old shard never touches the release again")
        assert "uninstall" not in " ".join(shards["shard1"].calls(f"{ns}-{moved}"))
    finally:
        for op in shards.values():
            op.stop()
