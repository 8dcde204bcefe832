"""Prometheus metrics of a `queueing.WorkQueue`, with controller-runtime's names.

Place in the flow: `WorkQueue` calls a `queueing.QueueObserver` as keys come
and go; `WorkQueueMetrics` is that observer for Prometheus, so the queue
itself stays free of any metrics library. One queue, one ``name`` label
(``helmrelease`` for the operator's).

- ``workqueue_depth{name}``: keys waiting now
- ``workqueue_adds_total{name}``: keys queued (not counting a key already waiting)
- ``workqueue_queue_duration_seconds{name}``: how long a key waited before a worker took it
- ``workqueue_work_duration_seconds{name}``: how long a worker held a key
- ``workqueue_retries_total{name}``: failures queued again on their backoff
- ``workqueue_longest_running_processor_seconds{name}``: the oldest key a worker holds now

What this module does NOT do: schedule anything, or know what a key means.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Work from milliseconds to a helm --wait of many minutes; waits from
# microseconds (an idle queue) to the backoff cap.
QUEUE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)


class WorkQueueMetrics:
    """A `queueing.QueueObserver` writing controller-runtime's workqueue metrics."""

    def __init__(self, registry: CollectorRegistry, name: str) -> None:
        self.name = name
        self.depth = Gauge("workqueue_depth", "Current depth of the work queue.", ["name"],
                           registry=registry).labels(name)
        self.adds = Counter("workqueue_adds", "Keys added to the work queue.", ["name"],
                            registry=registry).labels(name)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds", "How long a key stays in the work queue before a worker takes it.",
            ["name"], buckets=QUEUE_BUCKETS, registry=registry).labels(name)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds", "How long a worker takes to process a key.",
            ["name"], buckets=QUEUE_BUCKETS, registry=registry).labels(name)
        self.retries = Counter("workqueue_retries", "Keys queued again after a failure (backoff).", ["name"],
                               registry=registry).labels(name)
        self.longest = Gauge("workqueue_longest_running_processor_seconds",
                             "How long the longest-running worker has held its key.", ["name"],
                             registry=registry).labels(name)
        self._oldest: Callable[[], float | None] = lambda: None
        self.longest.set_function(self._longest_seconds)

    def _longest_seconds(self) -> float:
        started = self._oldest()
        return 0.0 if started is None else max(0.0, time.monotonic() - started)

    # ---- queueing.QueueObserver -------------------------------------------------
    def added(self) -> None:
        self.adds.inc()

    def depth_is(self, depth: int) -> None:
        self.depth.set(depth)

    def taken(self, waited: float) -> None:
        self.queue_duration.observe(waited)

    def finished(self, worked: float) -> None:
        self.work_duration.observe(worked)

    def retried(self) -> None:
        self.retries.inc()

    def track_oldest(self, oldest: Callable[[], float | None]) -> None:
        """Where to read the start (time.monotonic()) of the oldest key being processed."""
        self._oldest = oldest
