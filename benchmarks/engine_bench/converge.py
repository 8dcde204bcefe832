"""Sections on the first cluster: converge N releases (operator vs a bare
helm loop, interleaved), a single values change (operator vs a bare
`helm upgrade`), and a hand `helm uninstall` until restored.

Each operator run watches only its own fresh namespace (`--allow-namespace`)
so earlier runs' releases cost it nothing; each bare run installs into its
own fresh namespace with as many helm processes at once as the operator has
workers.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.engine_bench.activity import Window, describe, wait_quiet, window
from benchmarks.engine_bench.observe import CpuSampler, count_verbs, proc_cpu
from benchmarks.engine_bench.world import OperatorRun, ReleaseWatch, World


def say(msg: str) -> None:
    print(msg, flush=True)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def control_plane_cpu(world: World) -> float:
    return sum(sum(proc_cpu(pid)) for pid in world.control_plane_pids())


@dataclass
class ConvergeRun:
    who: str                  # "operator" or "bare"
    n: int
    rep: int
    wall: float
    cpu: float                # operator + its helm children, or the loop's helm processes
    cpu_own: float            # the operator process itself (0 for the bare loop)
    helm: dict[str, int]
    api: int                  # API requests (not watches) by the operator and by helm
    control_plane_cpu: float  # kube-apiserver + etcd CPU during the run
    load_before: str
    load_after: str


def _values(replicas: int, message: str) -> dict[str, Any]:
    return {"replicaCount": replicas, "message": message}


def operator_converge(world: World, work: Path, n: int, rep: int, workers: int, replicas: int,
                      quiet: float, timeout: float) -> ConvergeRun:
    ns = f"op-{n}-{rep}"
    world.create_namespace(ns)
    run = OperatorRun(world, work / ns, "--allow-namespace", ns, "--workers", str(workers),
                      "--charts-sync-interval", "1h")
    sampler = CpuSampler(run.pid, run.started).start()
    watch = ReleaseWatch(world, ns).start()
    try:
        wait_quiet(world, run, sampler, run.started, 1.0, 60)  # start-up done
        names = [f"r{i:04d}" for i in range(n)]
        before = load()
        cp0 = control_plane_cpu(world)
        t0 = time.time()
        world.create_helmreleases(ns, names, _values(replicas, "converge"))
        ready = watch.wait_done([f"{ns}/{x}" for x in names], timeout=timeout, progress=f"operator, N={n}")
        end = wait_quiet(world, run, sampler, t0, quiet, timeout)
        w: Window = window(world, run, sampler, t0, end)
        cp = control_plane_cpu(world) - cp0
        result = ConvergeRun("operator", n, rep, ready - t0, w.cpu, w.cpu_own, w.helm,
                             w.request_total + w.helm_requests, cp, before, load())
        deployed = sum(1 for x in names if world.deployed_revision(ns, x) > 0)
        if deployed != n:
            say(f"  ! only {deployed} of {n} releases are deployed in helm's storage")
        return result
    finally:
        watch.stop()
        sampler.stop()
        run.stop()


def bare_converge(world: World, work: Path, n: int, rep: int, workers: int, replicas: int) -> ConvergeRun:
    ns = f"bare-{n}-{rep}"
    world.create_namespace(ns)
    helm, calls = world.bare_helm(work / ns)
    env = world.helm_env(work / ns)
    names = [f"r{i:04d}" for i in range(n)]
    values = _values(replicas, "converge")
    before = load()
    cp0 = control_plane_cpu(world)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda x: world.upgrade_install(helm, env, ns, x, values), names))
    t1 = time.time()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    api = len(world.audit.between(t0, t1, clients=("helm",)))
    return ConvergeRun("bare", n, rep, t1 - t0, cpu, 0.0, dict(count_verbs(calls.all())), api,
                       control_plane_cpu(world) - cp0, before, load())


def print_run(r: ConvergeRun) -> None:
    who = "operator" if r.who == "operator" else "bare loop"
    own = f" (operator process {r.cpu_own:.1f} s, helm {r.cpu - r.cpu_own:.1f} s)" if r.who == "operator" else ""
    say(f"  N={r.n} rep {r.rep} {who:9}: wall {r.wall:6.1f} s, CPU {r.cpu:6.1f} s{own}; "
        f"helm processes {describe(r.helm)}; API requests {r.api}; "
        f"kube-apiserver+etcd CPU {r.control_plane_cpu:.1f} s; load {r.load_before} -> {r.load_after}")


def converge(world: World, work: Path, sizes: list[int], reps: int, workers: int, replicas: int,
             quiet: float, timeout: float) -> list[ConvergeRun]:
    say(f"\n== converge: operator (--workers {workers}) vs a bare `helm upgrade --install` loop "
        f"with {workers} at once (the same concurrency), interleaved, {reps} repetition(s) ==")
    say("  each run: fresh namespace, N HelmReleases of the `hello` chart created by one `kubectl create`; "
        "operator wall = create -> last Ready; CPU = operator process + its helm children (/proc), "
        "bare CPU = its helm processes (getrusage of children)")
    runs: list[ConvergeRun] = []
    for rep in range(1, reps + 1):
        for n in sizes:
            runs.append(operator_converge(world, work, n, rep, workers, replicas, quiet, timeout))
            print_run(runs[-1])
            runs.append(bare_converge(world, work, n, rep, workers, replicas))
            print_run(runs[-1])
    return runs


# ---- a single values change, and a hand uninstall ----------------------------------
@dataclass
class ChangeResult:
    operator_latency: list[float] = field(default_factory=list)
    bare_latency: list[float] = field(default_factory=list)
    helm_per_change: list[dict[str, int]] = field(default_factory=list)
    operator_cpu: list[float] = field(default_factory=list)   # operator + its helm, per change
    bare_cpu: list[float] = field(default_factory=list)
    operator_api: list[int] = field(default_factory=list)     # API requests by the operator and its helm
    bare_api: list[int] = field(default_factory=list)
    restore_seconds: float | None = None
    restore_timeout: float = 0.0
    restore_helm: dict[str, int] = field(default_factory=dict)
    restore_status: str = ""


def change_and_restore(world: World, work: Path, changes: int, workers: int, replicas: int,
                       restore_timeout: float) -> ChangeResult:
    say(f"\n== single values change: operator vs a bare `helm upgrade` of the same chart, "
        f"{changes} times, interleaved ==")
    ns, bare_ns = "change-op", "change-bare"
    world.create_namespace(ns)
    world.create_namespace(bare_ns)
    run = OperatorRun(world, work / ns, "--allow-namespace", ns, "--workers", str(workers),
                      "--charts-sync-interval", "10m")
    say(f"  operator: helm-operator run {run.flags_text()}")
    sampler = CpuSampler(run.pid, run.started).start()
    watch = ReleaseWatch(world, ns).start()
    helm, _ = world.bare_helm(work / bare_ns)
    env = world.helm_env(work / bare_ns)
    out = ChangeResult(restore_timeout=restore_timeout)
    try:
        names = ["c0", "c1", "c2"]
        world.create_helmreleases(ns, names, _values(replicas, "start"))
        watch.wait_done([f"{ns}/{x}" for x in names], timeout=300)
        wait_quiet(world, run, sampler, run.started, 2.0, 300)
        world.upgrade_install(helm, env, bare_ns, "c0", _values(replicas, "start"))
        for i in range(1, changes + 1):
            rev = world.deployed_revision(ns, "c0")
            t0 = time.time()
            gen = world.patch_values(ns, "c0", {"message": f"change-{i}"})
            done = watch.wait_done([f"{ns}/c0"], generation=gen, timeout=120)
            while world.deployed_revision(ns, "c0") <= rev:  # status said done: helm's storage must agree
                if time.time() - t0 > 120:
                    raise TimeoutError("the values change made no new helm revision in 120 s")
                time.sleep(0.05)
                done = time.time()
            out.operator_latency.append(done - t0)
            end = wait_quiet(world, run, sampler, t0, 1.5, 120)
            w = window(world, run, sampler, t0, end)
            out.helm_per_change.append(w.helm)
            out.operator_cpu.append(w.cpu)
            out.operator_api.append(w.request_total + w.helm_requests)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t1 = time.time()
            world.upgrade_install(helm, env, bare_ns, "c0", _values(replicas, f"change-{i}"), install=False)
            t2 = time.time()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.bare_latency.append(t2 - t1)
            out.bare_cpu.append(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
            out.bare_api.append(len(world.audit.between(t1, t2, clients=("helm",))))
            say(f"  change {i}: operator {out.operator_latency[-1]:.2f} s, CPU {w.cpu:.2f} s, "
                f"API requests {out.operator_api[-1]}, helm processes {describe(w.helm)}; "
                f"bare helm upgrade {out.bare_latency[-1]:.2f} s, CPU {out.bare_cpu[-1]:.2f} s, "
                f"API requests {out.bare_api[-1]}")
        _restore(world, run, ns, "c1", out)
    finally:
        watch.stop()
        sampler.stop()
        run.stop()
    return out


def _restore(world: World, run: OperatorRun, ns: str, release: str, out: ChangeResult) -> None:
    say(f"\n== hand `helm uninstall` of {ns}/{release} (operator resync 10m) until restored "
        f"(a deployed revision and its Deployment again), up to {out.restore_timeout:.0f} s ==")
    subprocess.run([world.cluster.binary("helm"), "uninstall", release, "--namespace", ns],
                   env=world.cluster.env(), check=True, capture_output=True)
    t0 = time.time()
    deadline = t0 + out.restore_timeout
    while time.time() < deadline:
        if world.deployed_revision(ns, release) > 0 and world.deployment_exists(ns, f"{release}-hello"):
            out.restore_seconds = time.time() - t0
            break
        time.sleep(0.2)
    out.restore_helm = dict(count_verbs(run.helm.between(t0)))
    st: dict[str, Any] = world.helmrelease(ns, release).get("status") or {}
    ready: dict[str, Any] = next((c for c in st.get("conditions", []) if c.get("type") == "Ready"), {})
    out.restore_status = (f"phase {st.get('phase')}, releaseStatus {st.get('releaseStatus')}, "
                          f"Ready {ready.get('status')}")
    when = f"{out.restore_seconds:.1f} s" if out.restore_seconds is not None else \
        f"NOT restored within {out.restore_timeout:.0f} s"
    say(f"  restored: {when}; operator helm processes meanwhile {describe(out.restore_helm)}; "
        f"the HelmRelease then says: {out.restore_status}")
