"""One lazily created aiohttp session per long-lived HTTP client.

Chart repositories and container registries are read by objects that live as
long as the operator; each owns one session, opened on first use (so merely
constructing a client needs no running loop) and closed with `close()` or by
leaving `async with`. This module only manages the session.
"""

from __future__ import annotations

from typing import Self

import aiohttp


class SessionOwner:
    """Base for clients that own one `aiohttp.ClientSession`."""

    _session: aiohttp.ClientSession | None = None
    _timeout: aiohttp.ClientTimeout
    _trust_env: bool = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=self._trust_env)
        return self._session
