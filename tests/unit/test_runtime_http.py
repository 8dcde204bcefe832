"""Scenarios for the HTTP endpoints, against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from helm_operator.runtime.http import Health, HttpServer
from helm_operator.runtime.metrics import Metrics


@asynccontextmanager
async def serving(server: HttpServer) -> AsyncIterator[str]:
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def test_metrics_endpoint_serves_the_text_format() -> None:
    metrics = Metrics()
    metrics.set_release_count(2)
    async with serving(HttpServer(metrics)) as url, client() as http:
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = await response.text()
    assert "flux_helm_operator_release_count 2.0" in body
    assert "flux_helm_operator_release_queue_length_count" in body


async def test_healthz_says_ok_while_healthy() -> None:
    async with serving(HttpServer(Metrics(), health=lambda: True)) as url, client() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200
            assert (await response.text()).strip() == "ok"


async def test_healthz_without_a_check_is_healthy() -> None:
    async with serving(HttpServer()) as url, client() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (lambda: False, "unhealthy"),
        (lambda: Health(False, "lost the leader lease"), "lost the leader lease"),
        (lambda: 1 / 0, "health check failed: ZeroDivisionError"),
    ],
)
async def test_healthz_answers_503_with_a_reason_when_unhealthy(check, reason: str) -> None:  # type: ignore[no-untyped-def]
    async with serving(HttpServer(health=check)) as url, client() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 503
            assert reason in await response.text()


async def test_sync_git_calls_the_callback_and_answers_triggered() -> None:
    calls: list[str] = []

    async def on_sync_git() -> None:
        calls.append("sync")

    async with serving(HttpServer(on_sync_git=on_sync_git)) as url, client() as http:
        async with http.post(f"{url}/api/v1/sync-git") as response:
            assert response.status == 200
            assert await response.json() == {"status": "triggered"}
        async with http.get(f"{url}/api/v1/sync-git") as response:
            assert response.status == 405
    assert calls == ["sync"]


async def test_sync_git_without_a_callback_is_not_implemented() -> None:
    async with serving(HttpServer(Metrics())) as url, client() as http:
        async with http.post(f"{url}/api/v1/sync-git") as response:
            assert response.status == 501
            assert (await response.json())["status"] == "unsupported"


async def test_sync_git_callback_failure_answers_500() -> None:
    async def on_sync_git() -> None:
        raise RuntimeError("mirror not ready")

    async with serving(HttpServer(on_sync_git=on_sync_git)) as url, client() as http:
        async with http.post(f"{url}/api/v1/sync-git") as response:
            assert response.status == 500
            assert await response.json() == {"status": "error", "error": "mirror not ready"}


async def test_added_route_is_served_and_routes_freeze_at_start() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["name"]})

    server = HttpServer()
    server.add_route("GET", "/api/v1/hello/{name}", hello)
    async with serving(server) as url, client() as http:
        async with http.get(f"{url}/api/v1/hello/flux") as response:
            assert await response.json() == {"hello": "flux"}
        with pytest.raises(RuntimeError):
            server.add_route("GET", "/late", hello)


async def test_start_returns_a_free_port_and_stop_closes_it() -> None:
    server = HttpServer()
    port = await server.start("127.0.0.1", 0)
    assert port > 0 and server.port == port
    with pytest.raises(RuntimeError):
        await server.start("127.0.0.1", 0)
    await server.stop()
    await server.stop()  # idempotent
    assert server.port is None
    async with client() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/healthz")
