"""The HelmRelease watch against the real API server: a watch whose
resourceVersion has expired (410 Gone) lists again and misses no change."""

from __future__ import annotations

import asyncio
import json
import threading

from helm_operator.api.constants import GROUP, PLURAL, VERSION
from helm_operator.kube import Kube
from helm_operator.kube.watch import ResourceWatcher, collection_path
from tests.cluster.localcluster import LocalCluster
from tests.integration.helpers import eventually
from tests.integration.hr import helmrelease, new_namespace


def test_expired_watch_relists_and_misses_no_change(cluster: LocalCluster) -> None:
    ns = new_namespace(cluster)
    for name in ("a", "b"):
        cluster.kubectl("apply", "-n", ns, "-f", "-",
                        input=json.dumps(helmrelease(name, {"chart": {"name": "x"}})))
    kube = Kube.from_kubeconfig(cluster.kubeconfig)
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def on_event(kind: str, obj: dict) -> None:
        with lock:
            seen.append((kind, obj["metadata"]["name"]))

    # resourceVersion "1" is long gone: the API server answers 410 Gone
    watcher = ResourceWatcher("helmreleases", kube.api_client, collection_path(GROUP, VERSION, PLURAL, ns),
                              on_event, loop, resource_version="1")
    watcher.start()
    try:
        eventually(lambda: {("SYNC", "a"), ("SYNC", "b")} <= set(seen), timeout=30,
                   what="the relist after 410 to deliver both objects")
        assert watcher.relists == 1
        cluster.kubectl("apply", "-n", ns, "-f", "-",
                        input=json.dumps(helmrelease("c", {"chart": {"name": "x"}})))
        cluster.kubectl("delete", "-n", ns, "helmrelease", "a")
        eventually(lambda: ("ADDED", "c") in seen and ("DELETED", "a") in seen, timeout=30,
                   what="changes after the relist")
    finally:
        watcher.stop()
        loop.call_soon_threadsafe(loop.stop)
