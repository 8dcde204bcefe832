"""What ``/healthz`` (live) and ``/readyz`` (ready) answer for a long-running role.

Place in the flow: the roles (`operator.process`, `gitsync.syncer`) combine
these checks and hand them to `runtime.http.HttpServer`:

- live, i.e. restarting would help: every watch thread runs, no link to the
  API server (a watch, or the syncer's `ApiContact` probe) has failed for
  longer than `api_threshold`, and the event loop was not blocked for longer
  than its threshold lately (`LoopWatchdog`);
- ready, i.e. send it work and traffic: the caches are filled (every watch
  delivered its first list; every syncer source finished its first pass) and,
  with leader election, this replica leads. A standby replica is live but
  not ready.

`LoopWatchdog` is a heartbeat task on the loop measured from a thread: while
the loop is blocked nobody on it can notice, so the thread logs the stall
(with the loop thread's stack, to show what blocks it) and ``/healthz``
reports it for a while after. A probe sent during the stall gets no answer
at all, which the kubelet counts as a failure too.

What this module does NOT do: serve HTTP, talk to the API server itself (the
syncer passes its probe), or decide to restart anything.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from helm_operator.runtime.http import Health
from helm_operator.runtime.logs import fields

log = logging.getLogger(__name__)

DEFAULT_API_THRESHOLD = 120.0   # --api-unreachable-threshold
DEFAULT_LOOP_THRESHOLD = 20.0   # --loop-stall-threshold


class ApiLink(Protocol):
    """A connection to the API server that tells when it last worked (a watch, `ApiContact`)."""

    name: str
    failing_since: float | None  # time.monotonic() of the first failure in a row, None while it works
    last_error: str

    @property
    def alive(self) -> bool: ...


class Synced(Protocol):
    name: str
    synced: threading.Event


def combine(*checks: Health) -> Health:
    """Healthy when every check is; else the reasons of those that are not, joined."""
    bad = [c.reason or "unhealthy" for c in checks if not c.ok]
    return Health(False, "; ".join(bad)) if bad else Health(True)


def api_links_health(links: Iterable[ApiLink], threshold: float, now: float | None = None) -> Health:
    """Unhealthy when a link's thread or task ended, or it failed for longer than `threshold` seconds."""
    now = time.monotonic() if now is None else now
    problems = []
    for link in links:
        if not link.alive:
            problems.append(f"{link.name}: stopped")
        elif link.failing_since is not None and now - link.failing_since > threshold:
            problems.append(f"{link.name}: API server unreachable for {now - link.failing_since:.0f}s "
                            f"(over {threshold:.0f}s): {link.last_error or 'no answer'}")
    return Health(False, "; ".join(problems)) if problems else Health(True)


def caches_ready(watchers: Sequence[Synced]) -> Health:
    """Ready once every watch delivered its first full list."""
    if not watchers:
        return Health(False, "watches not started yet")
    waiting = [w.name for w in watchers if not w.synced.is_set()]
    return Health(False, f"waiting for the first list of {', '.join(waiting)}") if waiting else Health(True)


def standby(lease: str, holder: str | None) -> Health:
    """Not ready: this replica waits for the leader election Lease `lease` (namespace/name)."""
    if holder:
        return Health(False, f"standby: the leader election Lease {lease} is held by {holder}")
    return Health(False, f"standby: waiting for the leader election Lease {lease}")


class LoopWatchdog:
    """Notices an event loop that stopped running callbacks (see the module docstring).

    `start` on the loop. `check` (from the loop, by ``/healthz``) fails
    while the heartbeat is late by more than `threshold` seconds and for
    `hold` seconds (default: `threshold`) after such a stall ended, so every
    prober, not just the first request served after the stall, hears of it.
    """

    def __init__(self, threshold: float = DEFAULT_LOOP_THRESHOLD, interval: float = 1.0,
                 hold: float | None = None) -> None:
        self.threshold = threshold
        self.hold = threshold if hold is None else hold
        self.interval = min(interval, threshold / 4) if threshold > 0 else interval
        self._beat = time.monotonic()
        self._stalled = False                  # the thread sees a stall going on
        self._stall_length = 0.0               # the longest lag of the last stall
        self._stall_seen: float | None = None  # when the thread last saw that stall going on
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread_id: int | None = None

    @property
    def lag(self) -> float:
        """Seconds the heartbeat is late (0 or less while the loop runs)."""
        return time.monotonic() - self._beat - self.interval

    def start(self) -> None:
        """Start the heartbeat on the running loop and the thread that measures it."""
        if self.threshold <= 0:
            return
        self._loop_thread_id = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(), name="loop-heartbeat")
        self._thread = threading.Thread(target=self._measure, name="loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.interval)

    def _measure(self) -> None:
        while not self._stop.wait(self.interval):
            lag = self.lag
            if lag > self.threshold:
                if not self._stalled:
                    self._stalled, self._stall_length = True, 0.0
                    log.error("event loop blocked for %.1fs (over %gs): nothing else runs meanwhile; it is at:\n%s",
                              lag, self.threshold, self._loop_stack(),
                              extra=fields(action="loop-stall", duration_ms=lag * 1000))
                self._stall_length = max(self._stall_length, lag)
                self._stall_seen = time.monotonic()
            elif self._stalled:
                self._stalled = False
                log.warning("event loop running again after a stall of %.1fs", self._stall_length,
                            extra=fields(action="loop-stall", duration_ms=self._stall_length * 1000))

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread_id or -1)
        return "".join(traceback.format_stack(frame, limit=12)) if frame is not None else "(unknown)"

    def check(self) -> Health:
        """Unhealthy during a stall longer than the threshold and for `hold` seconds after it."""
        if self.threshold <= 0 or self._task is None:
            return Health(True)
        lag = self.lag
        if lag > self.threshold:  # served before the heartbeat got its turn
            return Health(False, f"event loop blocked for {lag:.1f}s (over {self.threshold:g}s)")
        seen = self._stall_seen
        if seen is not None and time.monotonic() - seen <= self.hold + self.interval:
            return Health(False, f"event loop was blocked for {self._stall_length:.1f}s "
                                 f"(over {self.threshold:g}s) {time.monotonic() - seen:.0f}s ago")
        return Health(True)


class ApiContact:
    """A link to the API server for a role without watches: `probe` every `interval` seconds.

    Same attributes as a watch (`ApiLink`), so `api_links_health` applies.
    """

    def __init__(self, name: str, probe: Callable[[], Awaitable[object]], interval: float = 10.0) -> None:
        self.name = name
        self._probe = probe
        self.interval = interval
        self.last_contact: float | None = None
        self.failing_since: float | None = None
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is None or not self._task.done()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"api-contact-{self.name}")
        return self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._probe()
            except Exception as e:  # noqa: BLE001 - every failure is a failed contact
                error = f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__) else str(e)
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    log.warning("cannot reach the API server", extra=fields(object=self.name, error=error))
                self.last_error = error
            else:
                if self.failing_since is not None:
                    log.info("API server reachable again", extra=fields(object=self.name))
                self.last_contact, self.failing_since, self.last_error = time.monotonic(), None, ""
            await asyncio.sleep(self.interval)
