"""Sharding (issue 14): N trivial HelmReleases converged by one operator
process versus the same number split over three processes by
`--watch-label-selector`, on one local cluster.

On a 2-core machine the total cannot grow much (helm is CPU-bound and the
cores are shared); what this shows is what the split costs: per-shard CPU
and memory, and the wall time of the whole. Printed as a table.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.shards --releases 1000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.engine_bench.observe import proc_cpu, proc_memory
from benchmarks.engine_bench.world import CHART_VERSION, OperatorRun, ReleaseWatch, World
from tests.cluster.localcluster import ensure_binaries
from tests.integration.hr import hello_chart, helmrelease

SHARD_KEY = "sharding.fluxcd.io/key"


def _create(world: World, namespace: str, names: list[str], shards: list[str | None]) -> None:
    items = []
    for i, name in enumerate(names):
        doc = helmrelease(name, {"chart": hello_chart(world.chart_url, CHART_VERSION), "releaseName": name,
                                 "values": {"replicaCount": 0}})
        shard = shards[i % len(shards)]
        if shard:
            doc["metadata"]["labels"] = {SHARD_KEY: shard}
        items.append(doc)
    world.cluster.kubectl("create", "-n", namespace, "-f", "-",
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def _run(world: World, workdir: Path, label: str, namespace: str, n: int, selectors: list[str | None],
         workers: int) -> dict[str, object]:
    world.create_namespace(namespace)
    ops = []
    for i, selector in enumerate(selectors):
        flags = ["--allow-namespace", namespace, "--workers", str(workers), "--charts-sync-interval", "30m",
                 "--drift-detection-interval", "0"]
        if selector:
            flags += ["--watch-label-selector", selector]
        ops.append(OperatorRun(world, workdir / f"{label}-{i}", *flags))
    names = [f"r{i:04d}" for i in range(n)]
    watch = ReleaseWatch(world, namespace).start()
    cpu0 = [sum(proc_cpu(op.pid)) for op in ops]
    started = time.time()
    shards = [None] if len(selectors) == 1 else ["shard1", "shard2", None]
    _create(world, namespace, names, shards)
    last = watch.wait_done([f"{namespace}/{n}" for n in names], timeout=3600, progress=label)
    wall = last - started
    rows = []
    for op, c0 in zip(ops, cpu0):
        cpu = sum(proc_cpu(op.pid)) - c0
        mem = proc_memory(op.pid)
        rows.append({"cpu": cpu, "rss_mib": mem.get("VmRSS", 0) / 1024, "peak_mib": mem.get("VmHWM", 0) / 1024,
                     "helm": len(op.helm.all())})
    watch.stop()
    for op in ops:
        op.stop()
    return {"label": label, "wall": wall, "load": os.getloadavg(), "processes": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--releases", type=int, default=1000)
    p.add_argument("--workers", type=int, default=4, help="--workers of each process")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-shards-"))
    print(f"work folder: {workdir}")
    world = World(workdir / "world", ensure_binaries())
    try:
        one = _run(world, workdir, "1 shard", "one", args.releases, [None], args.workers)
        three = _run(world, workdir, "3 shards", "three", args.releases,
                     [f"{SHARD_KEY}=shard1", f"{SHARD_KEY}=shard2", f"!{SHARD_KEY}"], args.workers)
    finally:
        world.close()
    print()
    print(f"| {args.releases} releases | wall | CPU per process (s) | RSS per process (MiB) | helm processes |")
    print("|---|---|---|---|---|")
    for result in (one, three):
        rows: list[dict[str, float]] = result["processes"]  # type: ignore[assignment]
        cpu = " / ".join(f"{r['cpu']:.1f}" for r in rows)
        rss = " / ".join(f"{r['rss_mib']:.0f}" for r in rows)
        helm = " / ".join(str(int(r["helm"])) for r in rows)
        total = sum(r["cpu"] for r in rows)
        print(f"| {result['label']} | {result['wall']:.0f} s | {cpu} (sum {total:.1f}) | {rss} | {helm} |")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
