"""Work queue of object keys, its workers, failure backoff and resync jitter.

Place in the flow: the watch turns cluster events into keys
(``"namespace/name"``) and calls `WorkQueue.add`; `run_workers` takes keys off
the queue and hands each to the reconcile handler; the handler asks for its
next turn with `add_after` (periodic resync, use `jittered`) or
`add_with_backoff` (after a failure). The semantics follow client-go's
workqueue:

- a key waiting in the queue is never queued twice;
- a key being processed is never handed to a second worker: adding it marks
  it dirty and it is queued again when its worker calls `done`, so no change
  is lost and at most one worker handles a key at a time;
- a key has at most one pending delayed add: the earliest due time wins, a
  later `add_after` never postpones an earlier one, and `add` (due now)
  cancels a pending delayed add;
- failures are counted per key for exponential backoff until `forget`;
- priorities (`Priority`): changes first, first installs next but never on
  every worker at once (`max_installs`), background work last;
- one scheduling authority: `add` is for a change of the key's inputs and
  always queues it; `nudge` is for everything else (periodic resync, an
  observed change the key may have caused itself, a manual "sync now") and
  leaves a key alone while it waits on a failure backoff (`add_after(...,
  backoff=True)`), so only its timer or a real change brings it back.

A `QueueObserver` (`runtime.queuemetrics` for Prometheus) hears of every
add, the depth, how long each key waited and was worked on, and retries.

What this module does NOT do: it does not watch the cluster, does not know
what a key means, and never decides on its own when to forget a key's
failures (the handler calls `forget` after a success). It runs on one asyncio
loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class QueueObserver(Protocol):
    """Hears what happens in a `WorkQueue` (metrics); every call is cheap and never raises."""

    def added(self) -> None: ...
    def depth_is(self, depth: int) -> None: ...
    def taken(self, waited: float) -> None: ...
    def finished(self, worked: float) -> None: ...
    def retried(self) -> None: ...
    def track_oldest(self, oldest: Callable[[], float | None]) -> None: ...


class QueueShutDown(Exception):
    """Raised by `WorkQueue.get` once the queue has been shut down."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential failure backoff: ``base * factor**failures``, at most ``cap``."""

    base: float = 5.0
    factor: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError(f"invalid backoff policy: {self!r}")

    def delay(self, failures: int) -> float:
        """Return the delay before the retry that follows `failures` earlier ones.

        `failures=0` (the first failure) gives `base`.
        """
        try:
            return min(self.base * self.factor ** max(failures, 0), self.cap)
        except OverflowError:
            return self.cap


class Priority(IntEnum):
    """Which keys a free worker takes first (lower first).

    A change is what a user waits for; a first install may be slow (hooks,
    `--wait`) and is capped so it never takes every worker; background work
    (resync, drift timers, observed storage changes, the start-up list) runs
    whenever nothing else waits.
    """

    CHANGE = 0
    INSTALL = 1
    BACKGROUND = 2


class WorkQueue(Generic[K]):
    """An asyncio work queue of keys with client-go workqueue semantics, and priorities."""

    def __init__(self, backoff: BackoffPolicy | None = None, *, max_installs: int | None = None,
                 observer: QueueObserver | None = None) -> None:
        self._backoff = backoff or BackoffPolicy()
        self._max_installs = max_installs
        self._observer = observer
        self._queued_at: dict[K, float] = {}   # time.monotonic() a waiting key was queued
        self._started_at: dict[K, float] = {}  # ...a key being processed was taken
        if observer is not None:
            observer.track_oldest(lambda: min(self._started_at.values(), default=None))
        self._ready: dict[Priority, deque[K]] = {p: deque() for p in Priority}
        self._queued: dict[K, Priority] = {}      # keys waiting, with the priority they wait at
        # Keys that need processing: waiting, or being processed and to be
        # queued again by done() (at the priority they were added with).
        self._dirty: dict[K, Priority] = {}
        self._processing: dict[K, Priority] = {}
        self._timers: dict[K, tuple[asyncio.TimerHandle, Priority]] = {}
        self._backing_off: set[K] = set()  # keys whose pending timer is a failure backoff
        self._failures: dict[K, int] = {}
        self._wakeup = asyncio.Event()
        self._shut_down = False

    def __len__(self) -> int:
        """Number of keys waiting to be processed now (the queue-length metric)."""
        return len(self._queued)

    def depth(self, priority: Priority) -> int:
        return sum(1 for p in self._queued.values() if p is priority)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def is_processing(self, key: K) -> bool:
        """Whether a worker holds `key` right now."""
        return key in self._processing

    def add(self, key: K, priority: Priority = Priority.CHANGE) -> None:
        """Queue `key` now; deduplicated (the higher priority wins), and deferred while it is processed."""
        if self._shut_down:
            return
        self._cancel_timer(key)
        held = self._dirty.get(key)
        if held is not None and held <= priority:
            return
        self._dirty[key] = priority
        if self._observer is not None:
            self._observer.added()
        if key not in self._processing:
            self._push(key, priority)

    def nudge(self, key: K) -> None:
        """Queue `key` in the background unless it waits on a failure backoff (then its timer brings it back)."""
        if key in self._backing_off:
            return
        self.add(key, Priority.BACKGROUND)

    def nudge_after(self, key: K, delay_seconds: float) -> None:
        """`nudge` later (background work spread over an interval); a backoff or an earlier timer wins."""
        if key in self._backing_off:
            return
        self.add_after(key, delay_seconds, priority=Priority.BACKGROUND)

    def is_backing_off(self, key: K) -> bool:
        return key in self._backing_off

    def add_after(self, key: K, delay_seconds: float, *, backoff: bool = False,
                  priority: Priority | None = None) -> None:
        """Queue `key` after `delay_seconds`, unless it is due earlier anyway.

        `backoff`: the delay is a failure backoff, which `nudge` respects (a
        retry comes back as a change); otherwise it comes back in the background.
        """
        if self._shut_down:
            return
        if priority is None:
            priority = Priority.CHANGE if backoff else Priority.BACKGROUND
        if delay_seconds <= 0:
            self.add(key, priority)
            return
        if key in self._dirty:
            return  # due now, or right after its current processing
        loop = asyncio.get_running_loop()
        when = loop.time() + delay_seconds
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0].when() <= when:
                if backoff:
                    self._backing_off.add(key)
                return
            pending[0].cancel()
        self._timers[key] = (loop.call_at(when, self._fire, key), priority)
        if backoff:
            self._backing_off.add(key)
        else:
            self._backing_off.discard(key)

    def add_with_backoff(self, key: K) -> float:
        """Count a failure of `key`, queue it after its backoff delay; return the delay."""
        delay = self.backoff_delay(key)
        self.add_after(key, delay, backoff=True)
        if self._observer is not None:
            self._observer.retried()
        return delay

    def _installs_running(self) -> int:
        return sum(1 for p in self._processing.values() if p is Priority.INSTALL)

    def _next(self) -> tuple[K, Priority] | None:
        for priority in Priority:
            if (priority is Priority.INSTALL and self._max_installs is not None
                    and self._installs_running() >= self._max_installs):
                continue  # leave the other workers to changes and background work
            ready = self._ready[priority]
            while ready:
                key = ready.popleft()
                if self._queued.get(key) is priority:  # else a stale entry: it moved up
                    return key, priority
        return None

    async def get(self) -> K:
        """Wait for a key and hand it out; the caller must call `done(key)` after.

        Raises `QueueShutDown` once `shutdown` was called, even with keys waiting.
        """
        while True:
            if self._shut_down:
                raise QueueShutDown()
            picked = self._next()
            if picked is not None:
                break
            self._wakeup.clear()
            await self._wakeup.wait()
        key, priority = picked
        del self._queued[key]
        self._dirty.pop(key, None)
        self._processing[key] = priority
        now = time.monotonic()
        self._started_at[key] = now
        if self._observer is not None:
            self._observer.taken(now - self._queued_at.pop(key, now))
            self._observer.depth_is(len(self._queued))
        return key

    def done(self, key: K) -> None:
        """Mark `key` processed; queue it again if it was added meanwhile."""
        self._processing.pop(key, None)
        started = self._started_at.pop(key, None)
        if self._observer is not None and started is not None:
            self._observer.finished(time.monotonic() - started)
        again = self._dirty.get(key)
        if again is not None and not self._shut_down:
            self._push(key, again)
        self._wakeup.set()  # an install slot may be free

    def shutdown(self) -> None:
        """Stop handing out keys: waiting and future `get` calls raise `QueueShutDown`.

        Workers busy with a key finish it; keys waiting or scheduled are dropped.
        """
        self._shut_down = True
        for timer, _ in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._backing_off.clear()
        for ready in self._ready.values():
            ready.clear()
        self._queued.clear()
        self._dirty.clear()
        self._queued_at.clear()
        self._wakeup.set()
        if self._observer is not None:
            self._observer.depth_is(0)

    def backoff_delay(self, key: K) -> float:
        """Count one more failure of `key` and return the delay before retrying it."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return self._backoff.delay(failures)

    def failures(self, key: K) -> int:
        """Failures counted for `key` since it was last forgotten."""
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """Reset the failure count of `key` (call after a success)."""
        self._failures.pop(key, None)

    def _push(self, key: K, priority: Priority) -> None:
        held = self._queued.get(key)
        if held is not None and held <= priority:
            return
        if held is None:
            self._queued_at[key] = time.monotonic()
        self._queued[key] = priority
        self._ready[priority].append(key)
        self._wakeup.set()
        if self._observer is not None:
            self._observer.depth_is(len(self._queued))

    def _fire(self, key: K) -> None:
        _, priority = self._timers.pop(key)
        self._backing_off.discard(key)
        self.add(key, priority)

    def _cancel_timer(self, key: K) -> None:
        self._backing_off.discard(key)
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[0].cancel()


async def run_workers(
    queue: WorkQueue[K],
    handler: Callable[[K], Awaitable[None]],
    workers: int,
    *,
    retry_on_error: bool = True,
) -> None:
    """Run `workers` tasks that feed keys to `handler` until the queue shuts down.

    An exception from `handler` is logged with its key and never ends a
    worker; with `retry_on_error` the key is also queued again after its
    backoff delay, so a key is not dropped because of an unexpected error.
    Cancelling this coroutine cancels the workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks = [
        asyncio.create_task(_work(queue, handler, retry_on_error), name=f"queue-worker-{i}")
        for i in range(workers)
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _work(
    queue: WorkQueue[K],
    handler: Callable[[K], Awaitable[None]],
    retry_on_error: bool,
) -> None:
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        try:
            await handler(key)
        except Exception:
            _handle_failure(queue, key, retry_on_error)
        finally:
            queue.done(key)


def _handle_failure(queue: WorkQueue[K], key: K, retry_on_error: bool) -> None:
    if retry_on_error and not queue.is_shut_down:
        delay = queue.add_with_backoff(key)
        log.exception("handling %s failed; retrying in %.1fs", key, delay)
    else:
        log.exception("handling %s failed", key)


def jittered(seconds: float, fraction: float = 0.1, rng: random.Random | None = None) -> float:
    """Return `seconds` moved randomly by up to ``±fraction * seconds``.

    Spreads periodic resyncs of many keys so they do not all fire together.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    spread = (rng or random).uniform(-fraction, fraction)
    return seconds * (1 + spread)
