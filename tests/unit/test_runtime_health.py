"""Liveness and readiness checks: a really blocked event loop behind a real
HTTP server, links to the API server that fail for a while, caches that fill.

The API server itself taken away and brought back is in
tests/integration/test_operability_health.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from helm_operator.runtime.health import ApiContact, LoopWatchdog, api_links_health, caches_ready, combine
from helm_operator.runtime.http import Health, HttpServer


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """A blocking GET, from a thread: the loop under test may be stuck."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_a_blocked_loop_is_logged_while_it_lasts_and_fails_healthz_for_a_while(
        caplog: pytest.LogCaptureFixture) -> None:
    watchdog = LoopWatchdog(threshold=0.6, interval=0.1, hold=1.0)
    watchdog.start()
    server = HttpServer(health=watchdog.check)
    port = await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        assert await asyncio.to_thread(get, url) == (200, "ok\n")
        caplog.set_level(logging.ERROR, logger="helm_operator.runtime.health")
        during: list[tuple[int, str] | Exception] = []

        def probe_during_the_stall() -> None:
            time.sleep(0.9)  # the loop is blocked by now
            try:
                during.append(get(url, timeout=0.5))
            except Exception as e:  # noqa: BLE001 - the probe's timeout is the expected answer
                during.append(e)

        prober = threading.Thread(target=probe_during_the_stall)
        prober.start()
        time.sleep(1.6)  # block the event loop itself, as a blocking call on it would
        prober.join()
        assert isinstance(during[0], Exception), "nobody answers while the loop is blocked"
        stalls = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
        assert len(stalls) == 1, "the watchdog thread said so while the loop was blocked"
        assert "time.sleep(1.6)" in stalls[0].getMessage()  # with where the loop stood
        status, body = await asyncio.to_thread(get, url)
        assert status == 503 and body.startswith("event loop was blocked for 1."), body
        assert (await asyncio.to_thread(get, url))[0] == 503  # every prober hears of it, for `hold`
        started = time.monotonic()
        while (await asyncio.to_thread(get, url)) != (200, "ok\n"):
            assert time.monotonic() - started < 3, "healthy again once the hold is over"
            await asyncio.sleep(0.1)
    finally:
        watchdog.stop()
        await server.stop()


@dataclass
class Link:
    name: str
    failing_since: float | None = None
    last_error: str = ""
    alive: bool = True


def test_a_link_failing_longer_than_the_threshold_is_unhealthy() -> None:
    now = 1000.0
    links = [Link("helmreleases", failing_since=now - 5, last_error="connection refused"),
             Link("secrets", failing_since=now - 1), Link("configmaps")]
    assert api_links_health(links, threshold=10, now=now) == Health(True)
    health = api_links_health(links, threshold=3, now=now)
    assert not health.ok
    assert health.reason == "helmreleases: API server unreachable for 5s (over 3s): connection refused"
    assert api_links_health([Link("x", alive=False)], 3, now) == Health(False, "x: stopped")


@dataclass
class Watch:
    name: str
    synced: threading.Event = field(default_factory=threading.Event)


def test_ready_once_every_cache_is_filled() -> None:
    hr, secrets = Watch("helmreleases"), Watch("secrets")
    assert caches_ready([]) == Health(False, "watches not started yet")
    hr.synced.set()
    assert caches_ready([hr, secrets]) == Health(False, "waiting for the first list of secrets")
    secrets.synced.set()
    assert caches_ready([hr, secrets]) == Health(True)
    assert combine(Health(True), Health(False, "a"), Health(False, "b")) == Health(False, "a; b")


async def test_readyz_answers_the_readiness_check_and_healthz_the_liveness_one() -> None:
    standby = Health(False, "standby: the leader election Lease ns/x is held by other")
    server = HttpServer(health=lambda: True, ready=lambda: standby)
    port = await server.start("127.0.0.1", 0)
    try:
        assert await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz") == (503, standby.reason + "\n")
    finally:
        await server.stop()
    server = HttpServer(health=lambda: Health(False, "sick"))  # no readiness check: /readyz is /healthz
    port = await server.start("127.0.0.1", 0)
    try:
        assert await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz") == (503, "sick\n")
    finally:
        await server.stop()


async def test_api_contact_tracks_when_the_probe_last_worked() -> None:
    answers: list[Exception | None] = [None, ConnectionRefusedError("refused"), ConnectionRefusedError("refused"),
                                       None]
    seen = asyncio.Event()

    async def probe() -> None:
        answer = answers.pop(0) if answers else None
        if not answers:
            seen.set()
        if answer is not None:
            raise answer

    contact = ApiContact("api-server", probe, interval=0.01)
    states: list[tuple[bool, str]] = []
    task = contact.start()

    async def record() -> None:
        while not seen.is_set():
            states.append((contact.failing_since is not None, contact.last_error))
            await asyncio.sleep(0.002)

    await asyncio.wait_for(record(), 5)
    await asyncio.sleep(0.02)
    task.cancel()
    assert (True, "ConnectionRefusedError: refused") in states
    assert contact.failing_since is None and contact.last_contact is not None
