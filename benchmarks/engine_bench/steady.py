"""The steady state, on a cluster of its own: N in-sync releases.

1. Populate: the operator (more workers) installs N HelmReleases once,
   spread over namespaces of at most 100; optionally more revisions each.
2. Restart: a new operator over the N in-sync releases; restart time is from
   its start to the end of its first burst of work (`activity`), with the
   helm processes, API requests and CPU of that burst, and its RSS.
3. Resync: the next periodic resync of the unchanged set, found by the
   operator's "resync" log line (else a window of one interval).
4. Drift pass: another operator with a short --drift-detection-interval;
   one sentinel ConfigMap is changed by hand; the pass is the burst of the
   operator's server-side-apply dry runs in which the sentinel is restored
   (else, from the resync line before the restore to the end of the burst).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.engine_bench.activity import Window, activity_times, describe, wait_quiet, window
from benchmarks.engine_bench.activity import as_dict as window_dict
from benchmarks.engine_bench.converge import say
from benchmarks.engine_bench.observe import CpuSampler, LogTail, burst_start, proc_memory
from benchmarks.engine_bench.world import OperatorRun, ReleaseWatch, World

RESYNC_LINE = r"resync"
PER_NAMESPACE = 100


@dataclass
class SteadyResult:
    n: int
    resync_interval: int
    populate: str = ""
    restarts: list[Window] = field(default_factory=list)
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    resync: Window | None = None
    resync_how: str = ""
    drift: Window | None = None
    drift_how: str = ""
    drift_restore_s: float | None = None
    new_revisions_on_restart: int = 0


def steady_keys(n: int) -> dict[str, list[str]]:
    """namespace -> release names: N releases over ceil(N/100) namespaces."""
    spaces = max(1, math.ceil(n / PER_NAMESPACE))
    out: dict[str, list[str]] = {f"steady-{j}": [] for j in range(spaces)}
    for i in range(n):
        out[f"steady-{i % spaces}"].append(f"s{i:04d}")
    return out


def _show(w: Window, what: str) -> None:
    say(f"  {what}: {w.seconds:.1f} s; helm processes {describe(w.helm)}; "
        f"operator API requests {describe(w.requests)} (+{w.watches} watches), its helm's {w.helm_requests}; "
        f"CPU {w.cpu:.2f} s (operator {w.cpu_own:.2f} s, helm {w.cpu_helm:.2f} s)")


def populate(world: World, work: Path, n: int, workers: int, revisions: int, replicas: int,
             timeout: float) -> str:
    keys = steady_keys(n)
    run = OperatorRun(world, work / "populate", "--workers", str(workers), "--charts-sync-interval", "1h",
                      "--drift-detection-interval", "0")
    watch = ReleaseWatch(world).start()
    try:
        t0 = time.time()
        for ns, names in keys.items():
            world.create_namespace(ns)
            world.create_helmreleases(ns, names, {"replicaCount": replicas, "message": "steady", "revision": 1})
        all_keys = [f"{ns}/{x}" for ns, names in keys.items() for x in names]
        watch.wait_done(all_keys, timeout=timeout, progress="populating")
        for rev in range(2, revisions + 1):
            gens = {f"{ns}/{x}": world.patch_values(ns, x, {"revision": rev}) for ns, names in keys.items()
                    for x in names}
            for k, g in gens.items():
                watch.wait_done([k], generation=g, timeout=timeout)
            say(f"  ... revision {rev} of {revisions} done")
        took = time.time() - t0
        text = (f"{n} HelmReleases in {len(keys)} namespace(s), {revisions} revision(s) each, "
                f"converged by the operator with --workers {workers} in {took:.0f} s "
                f"({len(run.helm.all())} helm processes)")
        say(f"  populated: {text}")
        return text
    finally:
        watch.stop()
        run.stop()


def restart(world: World, work: Path, name: str, flags: list[str], quiet: float,
            timeout: float) -> tuple[OperatorRun, CpuSampler, LogTail, Window]:
    log = work / name / "operator.log"
    run = OperatorRun(world, work / name, *flags)
    tail = LogTail(log, RESYNC_LINE).start()
    sampler = CpuSampler(run.pid, run.started).start()
    try:
        end = wait_quiet(world, run, sampler, run.started, quiet, timeout)
    except BaseException:
        tail.stop()
        sampler.stop()
        run.stop()
        raise
    return run, sampler, tail, window(world, run, sampler, run.started, end)


def measure_steady(world: World, work: Path, n: int, workers: int, populate_workers: int, revisions: int,
                   replicas: int, resync: int, drift_interval: int, quiet: float,
                   timeout: float) -> SteadyResult:
    say(f"\n== steady state: {n} in-sync releases (own cluster); resync every {resync:.0f}s ==")
    out = SteadyResult(n, resync)
    out.populate = populate(world, work, n, populate_workers, revisions, replicas, timeout)
    secrets = world.release_secret_count()
    flags = ["--workers", str(workers), "--charts-sync-interval", f"{resync}s", "--drift-detection-interval", "0"]
    run, sampler, tail, w = restart(world, work, "restart", flags, quiet, timeout)
    try:
        say(f"  operator: helm-operator run {run.flags_text()}")
        out.restarts.append(w)
        _show(w, "restart (operator start -> end of its first burst of work)")
        if w.seconds > 0.9 * resync:
            say("  ! the restart took longer than 0.9 x the resync interval; a resync may have fallen inside it")
        out.new_revisions_on_restart = world.release_secret_count() - secrets
        mem = proc_memory(run.pid)
        out.rss_mib = mem.get("VmRSS", 0) / 1024
        say(f"  new helm revisions made by the restart: {out.new_revisions_on_restart}; "
            f"operator RSS {out.rss_mib:.0f} MiB")
        out.resync, out.resync_how = _resync(world, run, sampler, tail, resync, quiet, timeout)
        _show(out.resync, f"resync of the unchanged set ({out.resync_how})")
        mem = proc_memory(run.pid)
        out.rss_mib = mem.get("VmRSS", 0) / 1024
        out.peak_rss_mib = mem.get("VmHWM", 0) / 1024
        say(f"  operator RSS after the resync {out.rss_mib:.0f} MiB (peak {out.peak_rss_mib:.0f} MiB)")
    finally:
        tail.stop()
        sampler.stop()
        run.stop()
    _drift(world, work, out, workers, resync, drift_interval, quiet, timeout)
    return out


def _resync(world: World, run: OperatorRun, sampler: CpuSampler, tail: LogTail, resync: int, quiet: float,
            timeout: float) -> tuple[Window, str]:
    after = time.time()
    deadline = after + 1.2 * resync + 30
    while time.time() < deadline:
        found = tail.first_after(after)
        if found:
            t_m = found[0]
            end = wait_quiet(world, run, sampler, t_m, quiet, timeout)
            return window(world, run, sampler, t_m - 0.3, end), "from its log line to the end of its burst"
        time.sleep(0.5)
    # No resync line: measure one whole interval, which holds about one resync.
    t0 = time.time()
    time.sleep(resync)
    return window(world, run, sampler, t0, time.time()), \
        f"no 'resync' log line seen: everything in one interval of {resync:.0f}s"


def _drift(world: World, work: Path, out: SteadyResult, workers: int, resync: int, drift_interval: int,
           quiet: float, timeout: float) -> None:
    # `enabled`: the pass must put the sentinel back for the benchmark to time it (the default, warn, only reports)
    flags = ["--workers", str(workers), "--charts-sync-interval", f"{resync}s",
             "--drift-detection-interval", f"{drift_interval}s", "--default-drift-mode", "enabled"]
    say(f"  drift pass: a new operator with --drift-detection-interval {drift_interval:g}s "
        "--default-drift-mode enabled")
    run, sampler, tail, w = restart(world, work, "drift", flags, quiet, timeout)
    try:
        out.restarts.append(w)
        _show(w, "restart #2 (drift on, so it may hold drift passes)")
        ns, names = next(iter(steady_keys(out.n).items()))
        name = names[len(names) // 2]
        cm = f"{name}-hello"
        original = world.core.read_namespaced_config_map(cm, ns).data["message"]
        world.core.patch_namespaced_config_map(cm, ns, {"data": {"message": "changed-by-hand"}})
        t_edit = time.time()
        limit = 4 * resync + 60
        while time.time() - t_edit < limit:
            if world.core.read_namespaced_config_map(cm, ns).data.get("message") == original:
                out.drift_restore_s = time.time() - t_edit
                break
            time.sleep(0.5)
        if out.drift_restore_s is None:
            say(f"  ! ConfigMap {ns}/{cm} changed by hand was not restored within {limit:.0f} s")
            return
        t_restored = t_edit + out.drift_restore_s
        end = wait_quiet(world, run, sampler, t_restored, quiet, timeout)
        dry = [r.t for r in world.audit.between(t_edit, end) if "(dry-run)" in r.kind]
        if dry:
            # The operator's burst of work that holds the dry runs ending the pass.
            first_dry = burst_start(dry, max(dry), quiet)
            start = burst_start(activity_times(world, run, sampler, t_edit), first_dry, quiet)
            out.drift_how = "the operator's burst of work holding the dry-run applies that restored the sentinel"
        else:
            start = tail.last_before(t_restored) or t_edit
            out.drift_how = "no dry-run applies seen: from the resync log line before the restore"
        out.drift = window(world, run, sampler, start - 0.3, end)
        say(f"  sentinel ConfigMap {ns}/{cm} changed by hand, restored after {out.drift_restore_s:.1f} s")
        _show(out.drift, f"drift pass ({out.drift_how})")
        mem = proc_memory(run.pid)
        out.peak_rss_mib = max(out.peak_rss_mib, mem.get("VmHWM", 0) / 1024)
    finally:
        tail.stop()
        sampler.stop()
        run.stop()


def as_dict(r: SteadyResult) -> dict[str, Any]:
    w = window_dict
    return {"n": r.n, "resync_interval": r.resync_interval, "populate": r.populate,
            "restarts": [w(x) for x in r.restarts], "rss_mib": round(r.rss_mib),
            "peak_rss_mib": round(r.peak_rss_mib), "resync": w(r.resync) if r.resync else None,
            "resync_how": r.resync_how, "drift": w(r.drift) if r.drift else None, "drift_how": r.drift_how,
            "drift_restore_s": r.drift_restore_s, "new_revisions_on_restart": r.new_revisions_on_restart}
