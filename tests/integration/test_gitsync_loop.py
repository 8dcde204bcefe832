"""The long-running syncer: two sources in one process, changes within one
poll interval, the trigger endpoint, /healthz and /metrics, and sync sets
that never garbage-collect each other's objects."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.cluster.localcluster import LocalCluster
from tests.integration.gitsync_support import GitRemote, SyncerProcess, get_obj, sync_status, wait_gone
from tests.integration.helpers import eventually


def cm(name: str, ns: str, value: str = "v") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: {value}}}\n"


def test_two_sources_in_one_process_poll_trigger_and_keep_their_own_sync_sets(
        cluster: LocalCluster, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    ns = f"loop-{uid}"
    cluster.kubectl("create", "namespace", ns)
    apps, infra = GitRemote(tmp_path / "apps"), GitRemote(tmp_path / "infra", branch="main")
    apps.write("a.yaml", cm("apps-a", ns))
    apps.write("b.yaml", cm("apps-b", ns))
    infra.write("deploy/x.yaml", cm("infra-x", ns))
    infra.write("other/y.yaml", cm("infra-not-synced", ns))
    apps.commit()
    infra_commit = infra.commit()
    config = tmp_path / "sources.yaml"
    config.write_text(f"""sources:
- name: apps-{uid}
  url: {apps.url}
  pollInterval: 1s
  garbageCollection: true
- name: infra-{uid}
  url: {infra.url}
  branch: main
  paths: [deploy]
  pollInterval: 1h
  syncInterval: 1h
  garbageCollection: true
  syncTag: infra-sync
""")
    with SyncerProcess(cluster, tmp_path / "w", "--config", str(config)) as syncer:
        for name in ("apps-a", "apps-b", "infra-x"):
            eventually(lambda: get_obj(cluster, "configmap", name, ns), timeout=30, what=f"{name} applied")
        assert get_obj(cluster, "configmap", "infra-not-synced", ns) is None
        eventually(lambda: infra.tag("infra-sync") == infra_commit, timeout=10, what="infra tag")

        # apps polls every second: a commit shows up within about one poll.
        apps.write("a.yaml", cm("apps-a", ns, "changed"))
        apps.remove("b.yaml")
        started = time.monotonic()
        apps.commit("change and delete")
        eventually(lambda: get_obj(cluster, "configmap", "apps-a", ns)["data"]["k"] == "changed",  # type: ignore[index]
                   timeout=15, interval=0.1, what="polled change applied")
        print(f"poll (1s interval): change visible after {time.monotonic() - started:.2f}s")
        wait_gone(cluster, "configmap", "apps-b", ns)
        # apps' garbage collection never touches infra's objects.
        assert get_obj(cluster, "configmap", "infra-x", ns) is not None

        # infra polls hourly: only the trigger brings its change in.
        infra.write("deploy/x.yaml", cm("infra-x", ns, "triggered"))
        commit = infra.commit("triggered change")
        started = time.monotonic()
        answer = syncer.post(f"/api/v1/sync?source=infra-{uid}&wait=true")
        elapsed = time.monotonic() - started
        print(f"trigger with wait: answered after {elapsed:.2f}s")
        assert answer["status"] == "synced"
        assert answer["results"][0]["commit"] == commit and answer["results"][0]["ok"]
        assert get_obj(cluster, "configmap", "infra-x", ns)["data"]["k"] == "triggered"  # type: ignore[index]
        assert syncer.post("/api/v1/sync")["status"] == "triggered"
        assert syncer.post("/api/v1/sync-git")["status"] == "triggered"

        metrics = syncer.get("/metrics")
        assert f'flux_helm_operator_sync_duration_seconds_count{{source="apps-{uid}",success="true"}}' in metrics
        assert f'flux_helm_operator_sync_objects_total{{outcome="deleted",source="apps-{uid}"}} 1.0' in metrics
        assert f'flux_helm_operator_sync_errors{{source="infra-{uid}"}} 0.0' in metrics
        assert syncer.get("/healthz") == "ok\n"

    assert sync_status(cluster, f"infra-{uid}")["commit"] == commit
    assert sync_status(cluster, f"apps-{uid}")["sync_set"] != sync_status(cluster, f"infra-{uid}")["sync_set"]
