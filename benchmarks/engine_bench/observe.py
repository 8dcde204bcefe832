"""What the release-engine benchmark reads from outside the operator.

- `proc_cpu` / `proc_memory`: CPU seconds and memory of a process from /proc
  (the operator's own CPU, and the CPU of the helm children it has waited for).
- `CpuSampler`: a thread that samples those every 0.25 s, so CPU can be read
  for any window afterwards and busy moments count as activity.
- `HelmCalls`: the file the helm wrapper appends `<epoch seconds> <args>` to,
  one line per helm process.
- `AuditLog`: kube-apiserver's audit log, read incrementally; each request
  once, with the client it came from (by user agent) and what it was.
- `LogTail`: lines of the operator's log that match a pattern, stamped with
  the time they appeared.
- `quiet_after` / `burst_start`: the end and the start of a burst of
  activity (pure; unit-tested).

Nothing here decides what to measure; the sections do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_USER_AGENT = "release-engine-bench"


# ---- /proc -------------------------------------------------------------------
def proc_cpu(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of waited-for children) of a live process."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state) of proc(5)
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


@dataclass(frozen=True)
class Sample:
    t: float
    own: float       # CPU seconds of the process itself
    children: float  # CPU seconds of its waited-for children (helm)
    rss_kib: int

    @property
    def total(self) -> float:
        return self.own + self.children


class CpuSampler:
    """Samples one process every `interval` seconds in a daemon thread."""

    def __init__(self, pid: int, started: float | None = None, interval: float = 0.25) -> None:
        """`started`: when the process was started, if it was started just now:
        a zero sample then makes its start-up CPU part of the first window."""
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = [Sample(started, 0.0, 0.0, 0)] if started is not None else []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> "CpuSampler":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def sample(self) -> Sample | None:
        try:
            own, children = proc_cpu(self.pid)
            rss = proc_memory(self.pid).get("VmRSS", 0)
        except (OSError, ValueError, IndexError):
            return None  # the process is gone
        s = Sample(time.time(), own, children, rss)
        with self._lock:
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def at_or_before(self, t: float) -> Sample:
        """The last sample taken at or before `t` (the first one if none)."""
        samples = self.snapshot()
        best = samples[0]
        for s in samples:
            if s.t > t:
                break
            best = s
        return best

    def at_or_after(self, t: float) -> Sample:
        """The first sample taken at or after `t` (a fresh one if none yet)."""
        for s in self.snapshot():
            if s.t >= t:
                return s
        return self.sample() or self.snapshot()[-1]

    def cpu_between(self, t0: float, t1: float) -> Sample:
        """CPU spent in [t0, t1] as a Sample of differences (rss: the later one)."""
        a, b = self.at_or_before(t0), self.at_or_after(t1)
        return Sample(b.t - a.t, b.own - a.own, b.children - a.children, b.rss_kib)

    def busy_times(self, since: float, threshold: float = 0.1) -> list[float]:
        """Sample times after which the process used more than `threshold` of a core."""
        out: list[float] = []
        samples = self.snapshot()
        for prev, cur in zip(samples, samples[1:]):
            if cur.t >= since and cur.t > prev.t and (cur.total - prev.total) / (cur.t - prev.t) > threshold:
                out.append(cur.t)
        return out


# ---- helm processes ------------------------------------------------------------
def helm_wrapper(path: Path, helm: str, calls: Path) -> Path:
    """Write a helm wrapper that appends `<epoch> <args>` to `calls`, then execs helm."""
    path.write_text("#!/bin/bash\n"
                    f"printf '%s %s\\n' \"$EPOCHREALTIME\" \"$*\" >> '{calls}'\n"
                    f"exec '{helm}' \"$@\"\n")
    path.chmod(0o755)
    return path


_TWO_WORD = {"get", "registry", "dependency", "repo", "show", "plugin"}


def helm_verb(args: str) -> str:
    """`upgrade`, `history`, `get manifest`, ... from a helm command line."""
    words = [w for w in args.split() if not w.startswith("-")]
    if not words:
        return "?"
    if words[0] in _TWO_WORD and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


@dataclass(frozen=True)
class HelmCall:
    t: float
    verb: str


class HelmCalls:
    """The helm processes a wrapper recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[HelmCall]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            stamp, _, args = line.partition(" ")
            try:
                out.append(HelmCall(float(stamp), helm_verb(args)))
            except ValueError:
                continue
        return out

    def between(self, t0: float, t1: float = float("inf")) -> list[HelmCall]:
        return [c for c in self.all() if t0 <= c.t <= t1]


def count_verbs(calls: Iterable[HelmCall]) -> Counter[str]:
    return Counter(c.verb for c in calls)


# ---- the API server's audit log ---------------------------------------------------
def client_of(user_agent: str) -> str:
    """Which client made a request, from its user agent.

    The operator talks to the API server through the Python Kubernetes client
    (`OpenAPI-Generator/<v>/python`, or a `helm-operator` agent if it sets
    one); helm says `Helm/<v>`; the benchmark's own client says
    BENCH_USER_AGENT; `Python-urllib` is the local cluster's readiness probe.
    """
    ua = user_agent.lower()
    if ua.startswith(BENCH_USER_AGENT) or ua.startswith("python-urllib"):
        return "bench"
    if "helm-operator" in ua or ua.startswith("openapi-generator") or "python" in ua:
        return "operator"
    if ua.startswith("helm/") or ua.startswith("helm "):
        return "helm"
    if ua.startswith("kubectl"):
        return "kubectl"
    if ua.startswith(("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")):
        return "control-plane"
    return "other"


_DISCOVERY = re.compile(r"^/(api|apis)(/[^/]+){0,2}$")


def request_kind(verb: str, uri: str, resource: str | None, subresource: str | None) -> str:
    """A short label: `get helmreleases`, `patch deployments (dry-run)`, `discovery`, ..."""
    path, _, query = uri.partition("?")
    if not resource:
        if _DISCOVERY.match(path):
            return "discovery"
        if path.startswith("/openapi"):
            return "openapi"
        return f"{verb} {path}"
    what = f"{resource}/{subresource}" if subresource else resource
    dry = " (dry-run)" if "dryRun=" in query else ""
    return f"{verb} {what}{dry}"


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Request:
    t: float          # when the API server finished it (a watch: when it started)
    client: str
    user_agent: str
    verb: str
    kind: str         # request_kind(...)
    name: str

    @property
    def is_watch(self) -> bool:
        return self.verb == "watch"


class AuditLog:
    """kube-apiserver's audit log; `refresh()` reads what was appended since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[Request] = []
        self._offset = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            self._offset += end
            for line in data[:end].splitlines():
                self._add(json.loads(line))

    def _add(self, e: dict) -> None:  # type: ignore[type-arg]
        if e.get("auditID") in self._seen:
            self._seen.discard(e["auditID"])
            return  # a watch's second event (ResponseComplete after ResponseStarted)
        if e.get("stage") == "ResponseStarted":
            self._seen.add(e.get("auditID", ""))
        ref = e.get("objectRef") or {}
        self.requests.append(Request(
            t=_epoch(e["stageTimestamp"]), client=client_of(e.get("userAgent", "")),
            user_agent=e.get("userAgent", ""), verb=e["verb"],
            kind=request_kind(e["verb"], e["requestURI"], ref.get("resource"), ref.get("subresource")),
            name=f"{ref.get('namespace', '')}/{ref.get('name', '')}"))

    def between(self, t0: float, t1: float = float("inf"), clients: Sequence[str] = ("operator",),
                watches: bool = False) -> list[Request]:
        self.refresh()
        with self._lock:
            return [r for r in self.requests
                    if t0 <= r.t <= t1 and r.client in clients and (watches or not r.is_watch)]


def count_kinds(requests: Iterable[Request]) -> Counter[str]:
    return Counter(r.kind for r in requests)


# ---- the operator's log ------------------------------------------------------------
class LogTail:
    """Lines of a growing log file matching `pattern`, with the time each was seen."""

    def __init__(self, path: Path, pattern: str, interval: float = 0.1) -> None:
        self.path = path
        self.pattern = re.compile(pattern, re.IGNORECASE)
        self.interval = interval
        self.matches: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logtail", daemon=True)

    def start(self) -> "LogTail":
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        pending = b""
        while not self._stop.wait(self.interval):
            if not self.path.exists():
                continue
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            now = time.time()
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                if self.pattern.search(line):
                    self.matches.append((now, line))

    def first_after(self, t: float) -> tuple[float, str] | None:
        return next(((ts, line) for ts, line in list(self.matches) if ts > t), None)

    def last_before(self, t: float) -> float | None:
        times = [ts for ts, _ in list(self.matches) if ts <= t]
        return times[-1] if times else None


# ---- bursts of activity -------------------------------------------------------------
def quiet_after(activity: Iterable[float], start: float, quiet: float, now: float) -> float | None:
    """The end of the burst of activity that begins at `start`.

    Walks the activity times from `start` (itself counted as activity) and
    returns the last one that was followed by more than `quiet` seconds of
    nothing. None while the burst may still be going on (less than `quiet`
    seconds since the last activity at `now`).
    """
    last = start
    for t in sorted(a for a in activity if a >= start):
        if t - last > quiet:
            return last
        last = t
    return last if now - last > quiet else None


def burst_start(activity: Iterable[float], t: float, gap: float) -> float:
    """The start of the burst of activity that `t` belongs to: walking back
    from `t`, the earliest activity reached without a pause longer than `gap`."""
    start = t
    for a in sorted((a for a in activity if a < t), reverse=True):
        if start - a > gap:
            break
        start = a
    return start
