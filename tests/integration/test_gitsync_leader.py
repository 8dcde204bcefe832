"""Syncer leader election (issue 14): with two replicas exactly one applies
and moves the sync marker; the other waits (live, not ready) and takes over
within the lease duration after the leader is SIGKILLed."""

from __future__ import annotations

import time
import urllib.error
import uuid
from pathlib import Path

from tests.cluster.localcluster import LocalCluster
from tests.integration.gitsync_support import GitRemote, SyncerProcess, get_obj
from tests.integration.helpers import eventually, holds

LEASE_SECONDS = 6


def cm(name: str, ns: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: {value}}}\n"


def _ready(syncer: SyncerProcess) -> bool:
    try:
        return syncer.get("/readyz") == "ok\n"
    except urllib.error.HTTPError:
        return False


def test_one_syncer_applies_the_other_waits_and_takes_over_after_a_sigkill(
        cluster: LocalCluster, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    ns = f"sle-{uid}"
    cluster.kubectl("create", "namespace", ns)
    remote = GitRemote(tmp_path / "remote")
    remote.write("app.yaml", cm("app", ns, "one"))
    first_commit = remote.commit()
    flags = ("--git-url", remote.url, "--git-poll-interval", "1s", "--source-name", f"s-{uid}",
             "--leader-elect", "--leader-election-name", f"sync-{uid}", "--lease-duration", f"{LEASE_SECONDS}s")
    with SyncerProcess(cluster, tmp_path / "a", *flags) as first:
        eventually(lambda: get_obj(cluster, "configmap", "app", ns), timeout=30, what="the leader to apply")
        eventually(lambda: remote.tag() == first_commit, timeout=15, what="the sync tag moved")
        with SyncerProcess(cluster, tmp_path / "b", *flags) as second:
            assert _ready(first) and not _ready(second)  # the standby is live but not ready
            assert "standby" in _standby_reason(second)
            remote.write("app.yaml", cm("app", ns, "two"))
            second_commit = remote.commit("two")
            eventually(lambda: (get_obj(cluster, "configmap", "app", ns) or {}).get("data", {}).get("k") == "two",
                       timeout=15, what="the leader to apply the second commit")
            holds(lambda: "acquired lease" not in second.log.read_text(), window=3,
                  what="the standby stays a standby")
            assert f'sync_duration_seconds_count{{source="s-{uid}"' not in second.get("/metrics")  # no pass ran

            first.proc.kill()  # SIGKILL: no release of the Lease
            killed = time.monotonic()
            eventually(lambda: "acquired lease" in second.log.read_text(), timeout=LEASE_SECONDS + 10,
                       interval=0.2, what="the standby to take the Lease over")
            print(f"syncer takeover after SIGKILL: {time.monotonic() - killed:.1f}s (lease {LEASE_SECONDS}s)")
            remote.write("app.yaml", cm("app", ns, "three"))
            third_commit = remote.commit("three")
            eventually(lambda: (get_obj(cluster, "configmap", "app", ns) or {}).get("data", {}).get("k") == "three",
                       timeout=20, what="the new leader to apply")
            eventually(lambda: remote.tag() == third_commit, timeout=15, what="the new leader to move the tag")
            assert second_commit != third_commit
            eventually(lambda: _ready(second), timeout=10, what="the new leader ready")


def _standby_reason(syncer: SyncerProcess) -> str:
    try:
        return syncer.get("/readyz")
    except urllib.error.HTTPError as e:
        return e.read().decode()
