"""The HTTP endpoints of a long-running role, on aiohttp.

Routes (COMPAT section 1):

- ``GET /metrics``: the metrics in the Prometheus text format;
- ``GET /healthz``: 200 ``ok`` while the role's health check passes, else 503
  with a short reason;
- ``POST /api/v1/sync-git``: awaits the role's `on_sync_git` callback and
  answers ``{"status": "triggered"}``; 501 when the role has no callback.

A role adds its own routes with `HttpServer.add_route` before `start`.

What this module does NOT do: it decides nothing about health (the role
passes a check), does not sync Git itself (the role passes a callback), and
serves no TLS or authentication.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from aiohttp import web

from helm_operator.runtime.metrics import METRICS_CONTENT_TYPE

log = logging.getLogger(__name__)

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 3030  # the Flux v1 Helm Operator's --listen default

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SyncGitCallback = Callable[[], Awaitable[object]]


class Health(NamedTuple):
    """A health check result with a reason to show when it is not ok."""

    ok: bool
    reason: str = ""


HealthCheck = Callable[[], "bool | Health"]


class MetricsSource(Protocol):
    """Anything that renders Prometheus text, such as `metrics.Metrics`."""

    def render(self) -> bytes: ...


class HttpServer:
    """Serves /metrics, /healthz, POST /api/v1/sync-git and added routes.

    Start it once with `start` and end it with `stop`.
    """

    def __init__(
        self,
        metrics: MetricsSource | None = None,
        *,
        health: HealthCheck | None = None,
        on_sync_git: SyncGitCallback | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._on_sync_git = on_sync_git
        self._shutdown_timeout = shutdown_timeout
        self._app = web.Application()
        self._app.router.add_get("/metrics", self._serve_metrics)
        self._app.router.add_get("/healthz", self._serve_healthz)
        self._app.router.add_post("/api/v1/sync-git", self._serve_sync_git)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int | None:
        """The bound port while running, else None."""
        return self._port

    def add_route(self, method: str, path: str, handler: RouteHandler) -> None:
        """Add a route for another role; only before `start`."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the server starts")
        self._app.router.add_route(method, path, handler)

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
        """Listen on `host`:`port` (0 picks a free port) and return the bound port."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("serving HTTP on %s:%d", host, self._port)
        return self._port

    async def stop(self) -> None:
        """Stop listening and close connections; safe to call when not running."""
        runner, self._runner, self._port = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=501, text="no metrics in this role\n")
        return web.Response(
            body=self._metrics.render(),
            headers={"Content-Type": METRICS_CONTENT_TYPE},
        )

    async def _serve_healthz(self, request: web.Request) -> web.Response:
        health = check_health(self._health)
        if health.ok:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"{health.reason}\n")

    async def _serve_sync_git(self, request: web.Request) -> web.Response:
        if self._on_sync_git is None:
            return web.json_response(
                {"status": "unsupported", "error": "this role does not sync Git"}, status=501
            )
        try:
            await self._on_sync_git()
        except Exception as exc:
            log.exception("sync-git request failed")
            return web.json_response({"status": "error", "error": str(exc)}, status=500)
        return web.json_response({"status": "triggered"})


def check_health(health: HealthCheck | None) -> Health:
    """Run a health check; no check is healthy, a check that raises is not."""
    if health is None:
        return Health(True)
    try:
        result = health()
    except Exception as exc:
        return Health(False, f"health check failed: {type(exc).__name__}: {exc}")
    if isinstance(result, Health):
        return result if result.ok or result.reason else Health(False, "unhealthy")
    return Health(True) if result else Health(False, "unhealthy")
