"""Scenarios for the work queue, its workers, backoff and jitter (real asyncio)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

import pytest

from helm_operator.runtime.queueing import (
    BackoffPolicy,
    QueueShutDown,
    WorkQueue,
    jittered,
    run_workers,
)

TIMEOUT = 2.0


async def get_soon(queue: WorkQueue[str], timeout: float = TIMEOUT) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def assert_nothing_arrives(queue: WorkQueue[str], within: float = 0.05) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(queue.get(), within)


# --- add / get / done -------------------------------------------------------


async def test_adding_a_waiting_key_twice_queues_it_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    queue.add("ns/b")
    queue.add("ns/a")
    assert len(queue) == 2
    assert await get_soon(queue) == "ns/a"
    assert await get_soon(queue) == "ns/b"
    assert len(queue) == 0


async def test_key_added_while_processing_waits_for_done_then_comes_back() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    key = await get_soon(queue)
    assert queue.is_processing(key)

    queue.add("ns/a")
    queue.add("ns/a")
    assert len(queue) == 0  # not handed to a second worker meanwhile
    await assert_nothing_arrives(queue)

    queue.done(key)
    assert len(queue) == 1
    assert await get_soon(queue) == "ns/a"
    queue.done("ns/a")
    await assert_nothing_arrives(queue)


async def test_done_without_a_new_add_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    queue.done(await get_soon(queue))
    assert len(queue) == 0
    assert not queue.is_processing("ns/a")


async def test_waiting_getter_wakes_up_on_add() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.add("ns/a")
    assert await asyncio.wait_for(getter, TIMEOUT) == "ns/a"


async def test_cancelled_getter_leaves_the_key_for_the_next_one() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.add("ns/a")
    assert await get_soon(queue) == "ns/a"


# --- add_after ---------------------------------------------------------------


async def test_delayed_key_arrives_after_its_delay() -> None:
    queue: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue.add_after("ns/a", 0.05)
    assert len(queue) == 0
    assert await get_soon(queue) == "ns/a"
    assert loop.time() - started >= 0.04


async def test_delayed_keys_come_out_in_due_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("ns/late", 0.09)
    queue.add_after("ns/early", 0.01)
    queue.add_after("ns/middle", 0.05)
    assert [await get_soon(queue) for _ in range(3)] == ["ns/early", "ns/middle", "ns/late"]


async def test_later_add_after_does_not_postpone_an_earlier_one() -> None:
    queue: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue.add_after("ns/a", 0.02)
    queue.add_after("ns/a", 10)
    assert await get_soon(queue, timeout=1.0) == "ns/a"
    assert loop.time() - started < 1.0
    queue.done("ns/a")
    await assert_nothing_arrives(queue)


async def test_earlier_add_after_brings_a_later_one_forward() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("ns/a", 10)
    queue.add_after("ns/a", 0.02)
    assert await get_soon(queue, timeout=1.0) == "ns/a"
    queue.done("ns/a")
    await assert_nothing_arrives(queue)


async def test_add_now_replaces_a_pending_delayed_add() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("ns/a", 0.03)
    queue.add("ns/a")
    queue.done(await get_soon(queue))
    await assert_nothing_arrives(queue, within=0.08)


async def test_add_after_of_a_waiting_key_is_ignored() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    queue.add_after("ns/a", 0.01)
    queue.done(await get_soon(queue))
    await assert_nothing_arrives(queue, within=0.05)


async def test_add_after_with_no_delay_adds_now() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("ns/a", 0)
    assert len(queue) == 1


async def test_delayed_add_firing_during_processing_requeues_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    key = await get_soon(queue)
    queue.add_after(key, 0.01)  # e.g. the handler schedules its next resync
    await asyncio.sleep(0.03)
    assert len(queue) == 0
    queue.done(key)
    assert await get_soon(queue) == "ns/a"


# --- workers -----------------------------------------------------------------


async def test_several_workers_never_handle_one_key_at_a_time() -> None:
    queue: WorkQueue[str] = WorkQueue()
    active: Counter[str] = Counter()
    handled: Counter[str] = Counter()
    overlaps: list[str] = []
    max_parallel = 0

    async def handler(key: str) -> None:
        nonlocal max_parallel
        active[key] += 1
        if active[key] > 1:
            overlaps.append(key)
        max_parallel = max(max_parallel, sum(active.values()))
        await asyncio.sleep(0.005)
        if handled[key] < 3:
            queue.add(key)  # a change arrives while we work
        handled[key] += 1
        active[key] -= 1

    keys = [f"ns/r{i}" for i in range(6)]
    workers = asyncio.create_task(run_workers(queue, handler, workers=4))
    for _ in range(3):
        for key in keys:
            queue.add(key)
        await asyncio.sleep(0.002)
    await wait_until(lambda: len(queue) == 0 and sum(active.values()) == 0)
    queue.shutdown()
    await asyncio.wait_for(workers, TIMEOUT)

    assert overlaps == []
    assert max_parallel > 1  # distinct keys do run side by side
    assert all(handled[key] >= 4 for key in keys), handled  # no change was lost


async def test_handler_exception_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue: WorkQueue[str] = WorkQueue()
    handled: list[str] = []

    async def handler(key: str) -> None:
        handled.append(key)
        if key == "ns/bad":
            raise RuntimeError("boom")

    workers = asyncio.create_task(
        run_workers(queue, handler, workers=1, retry_on_error=False)
    )
    with caplog.at_level(logging.ERROR, logger="helm_operator.runtime.queueing"):
        queue.add("ns/bad")
        queue.add("ns/good")
        await wait_until(lambda: handled == ["ns/bad", "ns/good"])
    queue.shutdown()
    await asyncio.wait_for(workers, TIMEOUT)

    assert any("ns/bad" in r.getMessage() and r.exc_info for r in caplog.records)
    assert not queue.is_processing("ns/bad")


async def test_failed_key_is_retried_with_backoff_until_it_succeeds() -> None:
    queue: WorkQueue[str] = WorkQueue(BackoffPolicy(base=0.005, factor=2, cap=0.02))
    attempts: list[str] = []

    async def handler(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        queue.forget(key)

    workers = asyncio.create_task(run_workers(queue, handler, workers=2))
    queue.add("ns/flaky")
    await wait_until(lambda: len(attempts) == 3)
    queue.shutdown()
    await asyncio.wait_for(workers, TIMEOUT)
    assert attempts == ["ns/flaky"] * 3
    assert queue.failures("ns/flaky") == 0


async def test_failed_key_is_not_retried_when_retry_is_off() -> None:
    queue: WorkQueue[str] = WorkQueue(BackoffPolicy(base=0.001))
    attempts: list[str] = []

    async def handler(key: str) -> None:
        attempts.append(key)
        raise RuntimeError("always")

    workers = asyncio.create_task(
        run_workers(queue, handler, workers=1, retry_on_error=False)
    )
    queue.add("ns/a")
    await asyncio.sleep(0.05)
    queue.shutdown()
    await asyncio.wait_for(workers, TIMEOUT)
    assert attempts == ["ns/a"]


async def test_run_workers_refuses_zero_workers() -> None:
    async def handler(key: str) -> None:
        pass

    with pytest.raises(ValueError):
        await run_workers(WorkQueue(), handler, workers=0)


async def test_cancelling_run_workers_cancels_the_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    cancelled = asyncio.Event()

    async def handler(key: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    workers = asyncio.create_task(run_workers(queue, handler, workers=1))
    queue.add("ns/a")
    await wait_until(lambda: queue.is_processing("ns/a"))
    workers.cancel()
    with pytest.raises(asyncio.CancelledError):
        await workers
    assert cancelled.is_set()
    assert not queue.is_processing("ns/a")


# --- shutdown ----------------------------------------------------------------


async def test_shutdown_wakes_a_waiting_get_with_queue_shut_down() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, TIMEOUT)
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_shutdown_drops_waiting_and_delayed_keys_and_ignores_new_ones() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("ns/a")
    queue.add_after("ns/b", 0.01)
    queue.shutdown()
    queue.add("ns/c")
    queue.add_after("ns/d", 0.01)
    await asyncio.sleep(0.03)
    assert len(queue) == 0
    assert queue.is_shut_down


async def test_shutdown_lets_the_running_handler_finish_then_workers_return() -> None:
    queue: WorkQueue[str] = WorkQueue()
    finished: list[str] = []
    started = asyncio.Event()

    async def handler(key: str) -> None:
        started.set()
        await asyncio.sleep(0.02)
        finished.append(key)

    workers = asyncio.create_task(run_workers(queue, handler, workers=3))
    queue.add("ns/a")
    await asyncio.wait_for(started.wait(), TIMEOUT)
    queue.add("ns/a")  # dirty: would be re-queued, but the queue shuts down first
    queue.shutdown()
    await asyncio.wait_for(workers, TIMEOUT)
    assert finished == ["ns/a"]


# --- backoff -----------------------------------------------------------------


def test_backoff_doubles_from_five_seconds_up_to_five_minutes() -> None:
    queue: WorkQueue[str] = WorkQueue()
    delays = [queue.backoff_delay("ns/a") for _ in range(9)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert queue.failures("ns/a") == 9


def test_backoff_is_counted_per_key_and_reset_by_forget() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.backoff_delay("ns/a")
    queue.backoff_delay("ns/a")
    assert queue.backoff_delay("ns/b") == 5
    queue.forget("ns/a")
    assert queue.failures("ns/a") == 0
    assert queue.backoff_delay("ns/a") == 5
    queue.forget("ns/never-failed")  # harmless


def test_backoff_policy_is_configurable_and_never_overflows() -> None:
    policy = BackoffPolicy(base=1, factor=3, cap=20)
    assert [policy.delay(n) for n in range(5)] == [1, 3, 9, 20, 20]
    assert BackoffPolicy().delay(100_000) == 300


def test_backoff_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(factor=0.5)
    with pytest.raises(ValueError):
        BackoffPolicy(base=10, cap=1)


async def test_add_with_backoff_schedules_after_the_growing_delay() -> None:
    queue: WorkQueue[str] = WorkQueue(BackoffPolicy(base=0.01, factor=2, cap=1))
    assert queue.add_with_backoff("ns/a") == 0.01
    assert len(queue) == 0
    queue.done(await get_soon(queue))
    assert queue.add_with_backoff("ns/a") == 0.02


# --- jitter ------------------------------------------------------------------


def test_jittered_stays_within_the_fraction() -> None:
    rng = random.Random(7)
    values = [jittered(100, 0.1, rng) for _ in range(500)]
    assert all(90 <= v <= 110 for v in values)
    assert len(set(values)) > 1
    assert min(values) < 97 and max(values) > 103  # spread both ways


def test_jittered_without_fraction_is_exact_and_bad_fraction_is_refused() -> None:
    assert jittered(60, 0) == 60
    with pytest.raises(ValueError):
        jittered(60, 1.5)


# --- helpers -----------------------------------------------------------------


async def wait_until(condition, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


# ---- priorities -----------------------------------------------------------------

from helm_operator.runtime.queueing import Priority  # noqa: E402


async def test_a_change_is_handed_out_before_background_work_queued_earlier() -> None:
    q: WorkQueue[str] = WorkQueue()
    for i in range(3):
        q.nudge(f"bg{i}")
    q.add("install", Priority.INSTALL)
    q.add("change")
    assert [await q.get() for _ in range(5)] == ["change", "install", "bg0", "bg1", "bg2"]


async def test_a_key_queued_in_the_background_moves_up_when_it_changes() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.nudge("a")
    q.nudge("b")
    q.add("b")
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["b", "a"]


async def test_installs_never_take_every_worker() -> None:
    q: WorkQueue[str] = WorkQueue(max_installs=1)
    q.add("i1", Priority.INSTALL)
    q.add("i2", Priority.INSTALL)
    assert await q.get() == "i1"
    # i2 waits while i1 runs, but background work is still handed out
    q.nudge("bg")
    assert await q.get() == "bg"
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    q.done("i1")
    assert await asyncio.wait_for(waiting, 1) == "i2"


async def test_nudge_after_respects_a_failure_backoff() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 30, backoff=True)
    q.nudge_after("k", 0.01)
    await asyncio.sleep(0.05)
    assert len(q) == 0 and q.is_backing_off("k")


async def test_a_retry_after_its_backoff_comes_back_as_a_change() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.nudge("bg")
    q.add_after("retry", 0.01, backoff=True)
    await asyncio.sleep(0.05)
    assert await q.get() == "retry"
