"""The release engine's cost, measured against bare helm (issue 9's
benchmark). Run by hand; prints numbers and a Markdown summary; asserts
nothing.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.release_engine             # full: N=100,500 x3, 1000 steady
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.release_engine --sizes 10 --reps 1 --steady-n 50

It starts its own local clusters (audit log on) and the operator as
`helm-operator run` subprocesses; see benchmarks/README.md for what each
number means. Only outside interfaces are used (see engine_bench/).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.engine_bench import report
from benchmarks.engine_bench.converge import ChangeResult, ConvergeRun, change_and_restore, converge, load, say
from benchmarks.engine_bench.steady import SteadyResult, as_dict, measure_steady
from benchmarks.engine_bench.world import World
from tests.cluster.localcluster import ensure_binaries, versions

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("converge", "change", "steady")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.release_engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,500", help="N for the converge comparison (default 100,500)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each converge size (default 3)")
    p.add_argument("--workers", type=int, default=4,
                   help="the operator's --workers, and helm processes at once in the bare loop (default 4)")
    p.add_argument("--changes", type=int, default=5, help="single values changes measured (default 5)")
    p.add_argument("--steady-n", type=int, default=1000, help="in-sync releases for the steady state (default 1000)")
    p.add_argument("--populate-workers", type=int, default=8,
                   help="operator workers used once to create the steady releases (default 8)")
    p.add_argument("--steady-revisions", type=int, default=1,
                   help="revisions per steady release, made through the operator (default 1; the issue's "
                        "memory target speaks of 10)")
    p.add_argument("--resync", default="auto",
                   help="the steady operators' --charts-sync-interval (default: max(30s, N x 0.2s))")
    p.add_argument("--drift-interval", default="auto",
                   help="--drift-detection-interval for the drift pass (default: half the resync interval)")
    p.add_argument("--quiet", type=float, default=5.0,
                   help="seconds without helm, API requests or CPU that end a burst of work (default 5)")
    p.add_argument("--restore-timeout", type=float, default=60.0,
                   help="how long to wait for a hand-uninstalled release to come back (default 60)")
    p.add_argument("--timeout", type=float, default=3600.0, help="limit for any one step, seconds (default 3600)")
    p.add_argument("--replicas", type=int, default=0,
                   help="replicaCount of every release (default 0: no pods, so kwok and the scheduler stay out "
                        "of the CPU figures; the fake node holds 250 pods)")
    p.add_argument("--skip", action="append", default=[], choices=SECTIONS, help="leave a section out")
    p.add_argument("--workdir", type=Path, help="where logs, audit logs and helm call lists go (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write every number here")
    return p.parse_args(argv)


def _seconds(text: str) -> int:
    """Whole seconds from `90`, `90s`, `3m` or `1h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text))


def _tree() -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "helm_operator"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" (helm_operator/ modified)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    resync = max(30, args.steady_n // 5) if args.resync == "auto" else _seconds(args.resync)
    drift = max(1, resync // 2) if args.drift_interval == "auto" else _seconds(args.drift_interval)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="release-engine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    v = versions()
    say(f"release engine benchmark, tree {_tree()}, {dt.datetime.now().isoformat(timespec='seconds')}")
    say(f"machine: {os.cpu_count()} cores, load {load()}; kubernetes {v.get('KUBERNETES_VERSION')}, "
        f"helm {v.get('HELM_VERSION')}; replicaCount {args.replicas}; work folder {work}")
    bin_dir = ensure_binaries()
    started = time.monotonic()
    runs: list[ConvergeRun] = []
    change: ChangeResult | None = None
    steady: SteadyResult | None = None
    loads = [load()]
    if not {"converge", "change"} <= set(args.skip):
        world = World(work / "cluster-1", bin_dir)
        try:
            if "converge" not in args.skip:
                runs = converge(world, work / "converge", sizes, args.reps, args.workers, args.replicas,
                                args.quiet, args.timeout)
            if "change" not in args.skip:
                change = change_and_restore(world, work / "change", args.changes, args.workers, args.replicas,
                                            args.restore_timeout)
        finally:
            world.close()
        loads.append(load())
    if "steady" not in args.skip:
        world = World(work / "cluster-2", bin_dir)
        try:
            steady = measure_steady(world, work / "steady", args.steady_n, args.workers, args.populate_workers,
                                    args.steady_revisions, args.replicas, resync, drift, args.quiet, args.timeout)
        finally:
            world.close()
        loads.append(load())
    rows = report.converge_rows(runs) if runs else []
    rows += report.change_rows(change) if change else []
    rows += report.steady_rows(steady) if steady else []
    say(f"\n== summary (tree {_tree()}, {os.cpu_count()} cores, load average {' -> '.join(loads)}, "
        f"{(time.monotonic() - started) / 60:.0f} min) ==\n")
    say(report.table(rows))
    if args.json:
        args.json.write_text(json.dumps({
            "tree": _tree(), "args": {k: str(x) for k, x in vars(args).items()}, "loads": loads,
            "converge": [dataclasses.asdict(r) for r in runs],
            "change": dataclasses.asdict(change) if change else None,
            "steady": as_dict(steady) if steady else None}, indent=1))
        say(f"\nnumbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
