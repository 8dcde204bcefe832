"""The HTTP endpoints of a long-running role, on aiohttp.

Routes (COMPAT section 1):

- ``GET /metrics``: the metrics in the Prometheus text format;
- ``GET /healthz``: 200 ``ok`` while the role's health check passes (live:
  restarting would not help), else 503 with a short reason;
- ``GET /readyz``: the same for the role's readiness check (caches filled,
  leading; see `runtime.health`); without one it answers as ``/healthz``;
- ``POST /api/v1/sync-git``: awaits the role's `on_sync_git` callback and
  answers ``{"status": "triggered"}``; 501 when the role has no callback.

A role adds its own routes with `HttpServer.add_route` before `start`.

Triggers: every route that is not a GET (the POSTs above and the ones a role
adds) asks for work. With a `webhook_token` they answer 401 unless the
request carries ``Authorization: Bearer <token>``, compared in constant time
(`hmac.compare_digest`); ``/metrics`` and ``/healthz`` stay open to probes
and scrapers. `start` can put the triggers on a second address of their own
(``--webhook-listen``), so that the metrics port and the webhook port can
be exposed and firewalled separately; the trigger address also answers
``/healthz`` and ``/readyz``.

What this module does NOT do: it decides nothing about health (the role
passes a check), does not sync Git itself (the role passes a callback), and
serves no TLS.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
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


class TokenFileError(ValueError):
    """The webhook token file is missing, unreadable or empty; the message says which."""


def read_token_file(path: Path) -> str:
    """The token in `path` (a mounted Secret key), surrounding whitespace removed.

    Read once at start: rotating the token means restarting the role.
    """
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise TokenFileError(f"--webhook-token-file {path}: cannot read it ({type(e).__name__}: "
                             f"{e.strerror if isinstance(e, OSError) else e})") from None
    if not token:
        raise TokenFileError(f"--webhook-token-file {path} is empty; put the token in it, or drop the flag")
    if any(c.isspace() for c in token):
        raise TokenFileError(f"--webhook-token-file {path}: the token must be one word without spaces")
    return token


def parse_listen(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:PORT`` for IPv6) of a listen flag; ValueError naming the flag."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{flag} {text!r}: give HOST:PORT, e.g. 0.0.0.0:3040")
    return host.strip("[]") or DEFAULT_HOST, int(port)


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
        ready: HealthCheck | None = None,
        on_sync_git: SyncGitCallback | None = None,
        shutdown_timeout: float = 5.0,
        webhook_token: str | None = None,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._ready = ready
        self._on_sync_git = on_sync_git
        self._shutdown_timeout = shutdown_timeout
        self._expected = f"Bearer {webhook_token}".encode() if webhook_token else None
        self._routes: list[tuple[str, str, RouteHandler]] = [
            ("GET", "/metrics", self._serve_metrics),
            ("GET", "/healthz", self._serve_healthz),
            ("GET", "/readyz", self._serve_readyz),
            ("POST", "/api/v1/sync-git", self._serve_sync_git),
        ]
        self._runners: list[web.AppRunner] = []
        self._port: int | None = None
        self._trigger_port: int | None = None

    @property
    def port(self) -> int | None:
        """The bound port while running, else None."""
        return self._port

    @property
    def trigger_port(self) -> int | None:
        """The port of the triggers while running: their own, or `port`."""
        return self._trigger_port

    def add_route(self, method: str, path: str, handler: RouteHandler) -> None:
        """Add a route for another role; only before `start`. Anything but GET is a trigger."""
        if self._runners:
            raise RuntimeError("routes must be added before the server starts")
        self._routes.append((method.upper(), path, handler))

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                    trigger_host: str | None = None, trigger_port: int | None = None) -> int:
        """Listen on `host`:`port` (0 picks a free port) and return the bound port.

        With `trigger_port` (and `trigger_host`, default `host`), the
        triggers are served there instead, beside /healthz.
        """
        if self._runners:
            raise RuntimeError("the server is already running")
        separate = trigger_port is not None
        main = self._app(reads=True, triggers=not separate)
        try:
            self._port = await self._listen(main, host, port)
            self._trigger_port = self._port
            if separate:
                assert trigger_port is not None
                triggers = self._app(reads=False, triggers=True)
                self._trigger_port = await self._listen(triggers, trigger_host or host, trigger_port)
        except BaseException:
            await self.stop()
            raise
        log.info("serving HTTP on %s:%d%s%s", host, self._port,
                 f", triggers on {trigger_host or host}:{self._trigger_port}" if separate else "",
                 "; triggers need a bearer token" if self._expected else "")
        return self._port

    def _app(self, *, reads: bool, triggers: bool) -> web.Application:
        app = web.Application()
        for method, path, handler in self._routes:
            if method == "GET" and (reads or path in ("/healthz", "/readyz")):
                app.router.add_route(method, path, handler)
            elif method != "GET" and triggers:
                app.router.add_route(method, path, self._guarded(handler))
        return app

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        return int(runner.addresses[0][1])

    def _guarded(self, handler: RouteHandler) -> RouteHandler:
        """`handler` behind the bearer token check, when there is a token."""
        expected = self._expected
        if expected is None:
            return handler

        async def guarded(request: web.Request) -> web.StreamResponse:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return web.json_response(
                    {"status": "unauthorized",
                     "error": "this endpoint needs the header Authorization: Bearer <webhook token>"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="helm-operator"'})
            return await handler(request)

        return guarded

    async def stop(self) -> None:
        """Stop listening and close connections; safe to call when not running."""
        runners, self._runners = self._runners, []
        self._port = self._trigger_port = None
        for runner in runners:
            await runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=501, text="no metrics in this role\n")
        return web.Response(
            body=self._metrics.render(),
            headers={"Content-Type": METRICS_CONTENT_TYPE},
        )

    async def _serve_healthz(self, request: web.Request) -> web.Response:
        return _answer(check_health(self._health))

    async def _serve_readyz(self, request: web.Request) -> web.Response:
        if self._ready is None:
            return await self._serve_healthz(request)
        return _answer(check_health(self._ready))

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


def _answer(health: Health) -> web.Response:
    if health.ok:
        return web.Response(text="ok\n")
    return web.Response(status=503, text=f"{health.reason}\n")


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
