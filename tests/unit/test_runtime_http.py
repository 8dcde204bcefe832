"""Scenarios for the HTTP endpoints, against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from helm_operator.runtime.http import Health, HttpServer, TokenFileError, read_token_file
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


# ------------------------------------------------------ authenticated triggers

TOKEN = "s3cr3t-webhook-token"


async def _sync_git_server(calls: list[str]) -> HttpServer:
    async def on_sync_git() -> None:
        calls.append("sync")

    async def sync(request: web.Request) -> web.Response:
        calls.append("sync-source")
        return web.json_response({"status": "triggered"}, status=202)

    server = HttpServer(Metrics(), health=lambda: True, on_sync_git=on_sync_git, webhook_token=TOKEN)
    server.add_route("POST", "/api/v1/sync", sync)
    return server


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}",
                                    f"bearer {TOKEN}", "Bearer ", "Bearer \u00e9t\u00e9"])
async def test_a_trigger_without_the_right_token_is_refused_with_401(header: str | None) -> None:
    calls: list[str] = []
    headers = {"Authorization": header} if header is not None else {}
    async with serving(await _sync_git_server(calls)) as url, client() as http:
        for path in ("/api/v1/sync-git", "/api/v1/sync"):
            async with http.post(f"{url}{path}", headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.json()
                assert body["status"] == "unauthorized" and TOKEN not in str(body)
    assert calls == [], "a refused trigger must do nothing"


async def test_a_trigger_with_the_token_is_served_and_reads_stay_open() -> None:
    calls: list[str] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(await _sync_git_server(calls)) as url, client() as http:
        async with http.post(f"{url}/api/v1/sync-git", headers=auth) as response:
            assert response.status == 200
        async with http.post(f"{url}/api/v1/sync", headers=auth) as response:
            assert response.status == 202
        for path in ("/metrics", "/healthz"):
            async with http.get(f"{url}{path}") as response:
                assert response.status == 200, path
    assert calls == ["sync", "sync-source"]


async def test_triggers_can_listen_on_their_own_port() -> None:
    """The metrics port then serves no trigger, and the trigger port no metrics."""
    calls: list[str] = []
    server = await _sync_git_server(calls)
    port = await server.start("127.0.0.1", 0, trigger_host="127.0.0.1", trigger_port=0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert server.trigger_port not in (None, port)
        main, hooks = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{server.trigger_port}"
        async with client() as http:
            async with http.post(f"{main}/api/v1/sync-git", headers=auth) as response:
                assert response.status in (404, 405)
            async with http.get(f"{hooks}/metrics") as response:
                assert response.status == 404
            async with http.get(f"{hooks}/healthz") as response:
                assert response.status == 200
            async with http.post(f"{hooks}/api/v1/sync-git") as response:
                assert response.status == 401
            async with http.post(f"{hooks}/api/v1/sync-git", headers=auth) as response:
                assert response.status == 200
            async with http.get(f"{main}/metrics") as response:
                assert response.status == 200
    finally:
        await server.stop()
    assert calls == ["sync"] and server.trigger_port is None


def test_the_token_file_is_read_trimmed_and_an_empty_one_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "token"
    good.write_text(f"{TOKEN}\n")
    assert read_token_file(good) == TOKEN
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(TokenFileError, match="is empty"):
        read_token_file(empty)
    with pytest.raises(TokenFileError, match="cannot read it"):
        read_token_file(tmp_path / "missing")
    spaced = tmp_path / "spaced"
    spaced.write_text("two words")
    with pytest.raises(TokenFileError, match="one word"):
        read_token_file(spaced)
