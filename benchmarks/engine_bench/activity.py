"""When has the operator finished a burst of work? Observed from outside.

Activity is anything the operator is seen doing: a helm process starting, an
API request (other than a watch) by the operator or by helm, or a 0.25 s
sample in which the operator process used more than a tenth of a core. A
burst ends at its last activity once `quiet` seconds have passed without any.
This holds for any engine: one that reconciles in memory without a single
request still shows up as CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.engine_bench.observe import CpuSampler, count_kinds, count_verbs, quiet_after
from benchmarks.engine_bench.world import OperatorRun, World


@dataclass(frozen=True)
class Window:
    """What the operator did between two moments."""

    seconds: float
    cpu_own: float
    cpu_helm: float
    helm: dict[str, int]          # helm processes by verb
    requests: dict[str, int]      # the operator's API requests (not watches) by kind
    helm_requests: int            # API requests its helm processes made
    watches: int                  # watch requests the operator opened

    @property
    def cpu(self) -> float:
        return self.cpu_own + self.cpu_helm

    @property
    def helm_total(self) -> int:
        return sum(self.helm.values())

    @property
    def request_total(self) -> int:
        return sum(self.requests.values())


def activity_times(world: World, run: OperatorRun, sampler: CpuSampler, since: float) -> list[float]:
    times = [r.t for r in world.audit.between(since, clients=("operator", "helm"))]
    times += [c.t for c in run.helm.between(since)]
    times += sampler.busy_times(since)
    return times


def wait_quiet(world: World, run: OperatorRun, sampler: CpuSampler, start: float, quiet: float,
               timeout: float) -> float:
    """The end of the operator's burst of work that begins at `start`."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        end = quiet_after(activity_times(world, run, sampler, start), start, quiet, now)
        if end is not None:
            return end
        if time.monotonic() > deadline:
            raise TimeoutError(f"operator still busy {timeout:.0f}s after the start of this step; log: {run.log}")
        if run.proc.poll() is not None:
            raise RuntimeError(f"operator exited; log: {run.log}")
        time.sleep(0.5)


def window(world: World, run: OperatorRun, sampler: CpuSampler, t0: float, t1: float) -> Window:
    cpu = sampler.cpu_between(t0, t1)
    reqs = world.audit.between(t0, t1, clients=("operator",), watches=True)
    return Window(
        seconds=t1 - t0, cpu_own=cpu.own, cpu_helm=cpu.children,
        helm=dict(count_verbs(run.helm.between(t0, t1))),
        requests=dict(count_kinds(r for r in reqs if not r.is_watch)),
        helm_requests=len(world.audit.between(t0, t1, clients=("helm",))),
        watches=sum(1 for r in reqs if r.is_watch))


def describe(counts: dict[str, int], limit: int = 6) -> str:
    """`12 (get helmreleases 8, patch helmreleases/status 4)`."""
    total = sum(counts.values())
    if not total:
        return "0"
    parts = sorted(counts.items(), key=lambda kv: -kv[1])
    inner = ", ".join(f"{k} {v}" for k, v in parts[:limit]) + (", ..." if len(parts) > limit else "")
    return f"{total} ({inner})"


def as_dict(w: Window) -> dict[str, Any]:
    return {"seconds": round(w.seconds, 2), "cpu": round(w.cpu, 2), "cpu_own": round(w.cpu_own, 2),
            "cpu_helm": round(w.cpu_helm, 2), "helm": w.helm, "requests": w.requests,
            "helm_requests": w.helm_requests, "watches": w.watches}
