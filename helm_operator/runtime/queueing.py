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


class WorkQueue(Generic[K]):
    """An asyncio work queue of keys with client-go workqueue semantics."""

    def __init__(self, backoff: BackoffPolicy | None = None, observer: QueueObserver | None = None) -> None:
        self._backoff = backoff or BackoffPolicy()
        self._observer = observer
        self._queued_at: dict[K, float] = {}   # time.monotonic() a waiting key was queued
        self._started_at: dict[K, float] = {}  # ...a key being processed was taken
        if observer is not None:
            observer.track_oldest(lambda: min(self._started_at.values(), default=None))
        self._ready: deque[K] = deque()
        # Keys that need processing: waiting in _ready, or being processed
        # and to be queued again by done().
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._backing_off: set[K] = set()  # keys whose pending timer is a failure backoff
        self._failures: dict[K, int] = {}
        self._wakeup = asyncio.Event()
        self._shut_down = False

    def __len__(self) -> int:
        """Number of keys waiting to be processed now (the queue-length metric)."""
        return len(self._ready)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def is_processing(self, key: K) -> bool:
        """Whether a worker holds `key` right now."""
        return key in self._processing

    def add(self, key: K) -> None:
        """Queue `key` now; deduplicated, and deferred while it is being processed."""
        if self._shut_down:
            return
        self._cancel_timer(key)
        if key in self._dirty:
            return
        self._dirty.add(key)
        if self._observer is not None:
            self._observer.added()
        if key not in self._processing:
            self._push(key)

    def nudge(self, key: K) -> None:
        """Queue `key` now unless it waits on a failure backoff (then its timer brings it back)."""
        if key in self._backing_off:
            return
        self.add(key)

    def is_backing_off(self, key: K) -> bool:
        return key in self._backing_off

    def add_after(self, key: K, delay_seconds: float, *, backoff: bool = False) -> None:
        """Queue `key` after `delay_seconds`, unless it is due earlier anyway.

        `backoff`: the delay is a failure backoff, which `nudge` respects.
        """
        if self._shut_down:
            return
        if delay_seconds <= 0:
            self.add(key)
            return
        if key in self._dirty:
            return  # due now, or right after its current processing
        loop = asyncio.get_running_loop()
        when = loop.time() + delay_seconds
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= when:
                if backoff:
                    self._backing_off.add(key)
                return
            pending.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)
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

    async def get(self) -> K:
        """Wait for a key and hand it out; the caller must call `done(key)` after.

        Raises `QueueShutDown` once `shutdown` was called, even with keys waiting.
        """
        while True:
            if self._shut_down:
                raise QueueShutDown()
            if self._ready:
                break
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._ready.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        now = time.monotonic()
        self._started_at[key] = now
        if self._observer is not None:
            self._observer.taken(now - self._queued_at.pop(key, now))
            self._observer.depth_is(len(self._ready))
        return key

    def done(self, key: K) -> None:
        """Mark `key` processed; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if self._observer is not None and started is not None:
            self._observer.finished(time.monotonic() - started)
        if key in self._dirty and not self._shut_down:
            self._push(key)

    def shutdown(self) -> None:
        """Stop handing out keys: waiting and future `get` calls raise `QueueShutDown`.

        Workers busy with a key finish it; keys waiting or scheduled are dropped.
        """
        self._shut_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._backing_off.clear()
        self._ready.clear()
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

    def _push(self, key: K) -> None:
        self._ready.append(key)
        self._queued_at[key] = time.monotonic()
        self._wakeup.set()
        if self._observer is not None:
            self._observer.depth_is(len(self._ready))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self._backing_off.discard(key)
        self.add(key)

    def _cancel_timer(self, key: K) -> None:
        self._backing_off.discard(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()


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
