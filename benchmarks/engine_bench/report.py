"""The summary table `release_engine.py` prints at the end (Markdown, to
paste into the README), next to issue 9's targets. Pure formatting."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from benchmarks.engine_bench.activity import Window
from benchmarks.engine_bench.converge import ChangeResult, ConvergeRun
from benchmarks.engine_bench.steady import SteadyResult


def _ratio_text(pairs: Sequence[tuple[float, float]]) -> str:
    ratios = [a / b for a, b in pairs if b > 0]
    if not ratios:
        return "-"
    med = statistics.median(ratios)
    spread = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{med:.2f}×{spread}"


def _per(counts: Sequence[dict[str, int]], units: int) -> str:
    """`3.0 (history 1.0, upgrade 1.0, get manifest 1.0)` per unit."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    if not units:
        return "-"
    inner = ", ".join(f"{k} {v / units:.1f}" for k, v in sorted(total.items(), key=lambda kv: -kv[1]))
    return f"{sum(total.values()) / units:.1f}" + (f" ({inner})" if inner else "")


def converge_rows(runs: list[ConvergeRun]) -> list[list[str]]:
    rows: list[list[str]] = []
    for n in sorted({r.n for r in runs}):
        ops = sorted((r for r in runs if r.n == n and r.who == "operator"), key=lambda r: r.rep)
        bare = sorted((r for r in runs if r.n == n and r.who == "bare"), key=lambda r: r.rep)
        pairs = list(zip(ops, bare))
        reps = len(pairs)
        for what, get, target in (("wall", lambda r: r.wall, "≤ 1.15×"), ("CPU", lambda r: r.cpu, "≤ 1.15×")):
            rows.append([f"converge {what}, median of {reps}", str(n),
                         f"{statistics.median(get(o) for o, _ in pairs):.1f} s",
                         f"{statistics.median(get(b) for _, b in pairs):.1f} s",
                         _ratio_text([(get(o), get(b)) for o, b in pairs]), target])
    ops = [r for r in runs if r.who == "operator"]
    bare = [r for r in runs if r.who == "bare"]
    if ops:
        rows.append(["helm processes per install", "", _per([r.helm for r in ops], sum(r.n for r in ops)),
                     _per([r.helm for r in bare], sum(r.n for r in bare)), "", "1"])
        rows.append(["API requests per install (operator + its helm)", "",
                     f"{sum(r.api for r in ops) / sum(r.n for r in ops):.1f}",
                     f"{sum(r.api for r in bare) / max(1, sum(r.n for r in bare)):.1f}", "", ""])
    return rows


def change_rows(c: ChangeResult) -> list[list[str]]:
    k = len(c.operator_latency)
    rows = [["helm processes per values change", "", _per(c.helm_per_change, len(c.helm_per_change)), "1", "", "1"],
            [f"single values change latency, median of {k}", "",
             f"{statistics.median(c.operator_latency):.2f} s", f"{statistics.median(c.bare_latency):.2f} s",
             _ratio_text(list(zip(c.operator_latency, c.bare_latency))), "≤ 1.2×"],
            [f"single values change CPU, median of {k}", "", f"{statistics.median(c.operator_cpu):.2f} s",
             f"{statistics.median(c.bare_cpu):.2f} s", _ratio_text(list(zip(c.operator_cpu, c.bare_cpu))), ""],
            ["API requests per values change (operator + its helm)", "",
             f"{statistics.median(c.operator_api):.0f}", f"{statistics.median(c.bare_api):.0f}", "", ""]]
    restored = (f"{c.restore_seconds:.1f} s" if c.restore_seconds is not None
                else f"not within {c.restore_timeout:.0f} s (HelmRelease: {c.restore_status})")
    rows.append(["hand `helm uninstall` → restored (resync 10m)", "", restored, "", "", "≤ 10 s"])
    return rows


def _window_text(w: Window, n: int) -> str:
    return (f"{w.seconds:.1f} s, {w.helm_total} helm, {w.request_total} API requests, "
            f"CPU {w.cpu:.2f} s ({1000 * w.cpu / n:.2f} ms/release)")


def steady_rows(s: SteadyResult) -> list[list[str]]:
    n = str(s.n)
    rows: list[list[str]] = []
    if s.restarts:
        r = s.restarts[0]
        again = f"; 2nd start {s.restarts[1].seconds:.1f} s" if len(s.restarts) > 1 else ""
        rows.append(["restart over N in-sync releases", n,
                     f"{r.seconds:.1f} s, {r.helm_total} helm processes, {r.request_total} API requests{again}",
                     "", "", "≤ 30 s, 0 helm"])
    if s.resync:
        rows.append(["resync of N unchanged releases", n, _window_text(s.resync, s.n), "", "",
                     "0 helm, 0 API requests beyond watches, ≤ 0.5 ms CPU/release"])
    if s.drift:
        discovery = s.drift.requests.get("discovery", 0)
        dry = sum(v for k, v in s.drift.requests.items() if "(dry-run)" in k)
        rows.append(["drift pass over N releases", n,
                     f"{_window_text(s.drift, s.n)}; {dry} dry runs, {discovery} discovery", "", "",
                     "no helm, discovery cached"])
    elif s.drift_restore_s is None:
        rows.append(["drift pass over N releases", n, "sentinel not restored", "", "", "no helm, discovery cached"])
    rows.append(["operator RSS", n, f"{s.rss_mib:.0f} MiB (peak {s.peak_rss_mib:.0f} MiB)", "", "", "≤ 150 MiB"])
    return rows


def table(rows: list[list[str]]) -> str:
    head = ["what", "N", "operator", "bare helm", "operator / bare", "target (issue 9)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
