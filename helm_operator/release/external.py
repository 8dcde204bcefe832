"""Fetch an `externalSourceRef` URL, reaching only hosts the policy allows.

Place in the flow: `release.values` calls `fetch_text` for each external
values source. The URL comes from a tenant, so every hop is checked with
`hostpolicy.HostPolicy` before anything is sent:

- a host written as an IP address is checked as it is (aiohttp never asks
  a resolver for those);
- a host name is resolved once, by `_CheckedResolver`, off the event loop;
  every address is checked, and aiohttp is handed only the addresses that
  passed, so the connection goes to an address that was checked (a DNS
  answer that changes between check and connect cannot be used);
- redirects are followed here, not by aiohttp, so each new location goes
  through the same checks (at most `MAX_REDIRECTS`);
- no proxy from the environment is used (a proxy would resolve the name
  itself), and the body is read up to `MAX_BYTES` only.

What this module does NOT do: parse the YAML, decide whether a source is
optional (the caller does), or read credentials (external sources have none).
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from helm_operator.redaction import redact_text, redact_url
from helm_operator.release.hostpolicy import HostPolicy

DEFAULT_TIMEOUT = 30.0
MAX_BYTES = 16 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


class ExternalSourceError(Exception):
    """The URL could not be read: unreachable, an HTTP error, too large."""


class ExternalSourceRefused(ExternalSourceError):
    """The host policy forbids the URL; a spec problem, never skipped as optional."""


class _Refused(Exception):
    """Raised inside aiohttp's connect by the resolver; not an OSError, so aiohttp lets it through."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CheckedResolver(AbstractResolver):
    """getaddrinfo off the loop, then only the addresses the policy allows."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family)
        results: list[ResolveResult] = []
        first_refusal: str | None = None
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            reason = self._policy.refusal(host, address)
            if reason is not None:
                first_refusal = first_refusal or reason
                continue
            results.append({"hostname": host, "host": address, "port": port, "family": fam,
                            "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})
        if not results:
            raise _Refused(first_refusal or f"host {host} has no address")
        return results

    async def close(self) -> None:
        pass


async def fetch_text(url: str, policy: HostPolicy, *, timeout: float = DEFAULT_TIMEOUT,
                     max_bytes: int = MAX_BYTES) -> str:
    """The body of `url` as text, following at most MAX_REDIRECTS checked redirects.

    Messages are meant to follow the URL the caller shows: they name a URL
    only when a redirect led elsewhere.
    """
    connector = aiohttp.TCPConnector(resolver=_CheckedResolver(policy), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        current = URL(url)
        for hop in range(MAX_REDIRECTS + 1):
            at = f"redirected to {redact_url(str(current))}: " if hop else ""
            if current.scheme not in ("http", "https") or not current.host:
                raise ExternalSourceRefused(f"{at}not an http:// or https:// URL with a host")
            reason = policy.refusal(current.host)
            if reason is not None:
                raise ExternalSourceRefused(f"{at}{reason}")
            try:
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS and "Location" in resp.headers:
                        current = current.join(URL(resp.headers["Location"]))
                        continue
                    if resp.status != 200:
                        raise ExternalSourceError(f"{at}HTTP {resp.status}")
                    return await _read_limited(resp, max_bytes, at)
            except _Refused as e:
                raise ExternalSourceRefused(f"{at}{e.reason}") from None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                raise ExternalSourceError(f"{at}{type(e).__name__}: {_detail(e)}") from None
        raise ExternalSourceError(f"more than {MAX_REDIRECTS} redirects")


async def _read_limited(resp: aiohttp.ClientResponse, max_bytes: int, at: str) -> str:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > max_bytes:
            raise ExternalSourceError(f"{at}larger than {max(1, max_bytes // 2**20)} MiB; refusing it")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode(resp.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return b"".join(chunks).decode("utf-8", errors="replace")


def _detail(e: BaseException) -> str:
    return redact_text(str(e)) or "no detail"
