"""HTTP to container registries: auth, a per-registry rate limit, retries.

Place in the flow: `client` (the Registry API calls) sends every request
through `Transport.request`, which

- authenticates: anonymous first; on a 401 with ``WWW-Authenticate: Bearer
  realm=...,service=...,scope=...`` a token is fetched from the realm (with
  basic credentials from the `CredentialStore` if any) and cached per
  (registry, scope) until it expires; on ``Basic`` the credentials are sent
  from then on;
- is polite: a token bucket per registry host, and 429 and 503 answers
  retried honouring ``Retry-After`` (seconds or an HTTP date), connection
  errors with exponential backoff, both a bounded number of times (tenacity);
- translates every failure into the `errors` tree, and counts requests by
  kind (``tags``, ``manifest_head``, ``manifest_get``, ``blob``, ``token``),
  retries included.

Credentials and tokens are never logged and never appear in a repr. What
this module does NOT do: know which URL answers what (`client`), or read
the body beyond JSON objects and ``Link`` pages.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from helm_operator.automation.imageref import ImageRepo
from helm_operator.automation.registry.credentials import CredentialStore
from helm_operator.automation.registry.errors import (
    AccessDenied, AuthenticationFailed, InvalidResponse, NotFound, RateLimited, RegistryUnavailable,
    credentials_hint,
)
from helm_operator.runtime.httpsession import SessionOwner

log = logging.getLogger(__name__)


class _RetryableStatus(Exception):
    """Internal: a 429/503 answer, to be retried after ``retry_after`` seconds."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


@dataclass
class Response:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    url: str


class _TokenBucket:
    """At most ``rate`` requests a second on average, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.updated = self.capacity, time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires: float


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', params)}


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Transport(SessionOwner):
    """Authenticated, rate-limited, retried requests to registries; one aiohttp session."""

    def __init__(self, credentials: CredentialStore, rate_limit_per_second: float = 10,
                 plain_http_hosts: Iterable[str] = frozenset(), *, attempts: int = 5,
                 backoff_seconds: float = 0.5, max_retry_after: float = 60.0,
                 timeout_seconds: float = 30.0,
                 on_request: Callable[[str, int | str], None] | None = None) -> None:
        self.on_request = on_request or (lambda host, code: None)  # (registry host, HTTP status or "error")
        self.credentials = credentials
        self.plain_http_hosts = frozenset(plain_http_hosts)
        self.requests: Counter[str] = Counter()
        self._rate = rate_limit_per_second
        self._attempts, self._backoff, self._max_retry_after = attempts, backoff_seconds, max_retry_after
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._buckets: dict[str, _TokenBucket] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic_hosts: set[str] = set()
        self._session = None

    def base(self, repo: ImageRepo) -> str:
        """``https://host`` (``http://`` for the plain-HTTP hosts) of the registry's API."""
        scheme = "http" if repo.registry in self.plain_http_hosts or repo.api_host in self.plain_http_hosts else "https"
        return f"{scheme}://{repo.api_host}"

    async def request(self, method: str, repo: ImageRepo, url: str, *, kind: str, operation: str,
                      accept: str | None = None) -> Response:
        """One request with pull access to `repo`: authenticated, retried; a 2xx answer or an error."""
        scope = f"repository:{repo.path}:pull"
        response = await self._send(method, repo, url, kind, operation, accept, scope)
        if response.status == 401:
            await self._authenticate(repo, response, operation, scope)
            response = await self._send(method, repo, url, kind, operation, accept, scope)
        self._raise_for_status(response, repo, operation)
        return response

    async def _send(self, method: str, repo: ImageRepo, url: str, kind: str, operation: str,
                    accept: str | None, scope: str) -> Response:
        headers = {"Accept": accept} if accept else {}
        authorization = self._authorization(repo, scope)
        if authorization:
            headers["Authorization"] = authorization
        return await self._with_retries(method, url, headers, kind, operation, str(repo), repo.api_host)

    async def _with_retries(self, method: str, url: str, headers: dict[str, str], kind: str,
                            operation: str, image: str, host: str) -> Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type((_RetryableStatus, aiohttp.ClientConnectionError, asyncio.TimeoutError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, url, headers, kind, host)
        except _RetryableStatus as e:
            cls = RateLimited if e.status == 429 else RegistryUnavailable
            raise cls(operation, image, f"HTTP {e.status} from {host} after {self._attempts} attempts",
                      "the registry is throttling or overloaded; it will be tried again at the next scan") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.on_request(host, "error")
            raise RegistryUnavailable(operation, image, f"cannot reach {host}: {type(e).__name__}: {e}",
                                      "check the registry address, the network and plain-HTTP settings") from e
        raise AssertionError("unreachable")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableStatus) and error.retry_after is not None:
            return float(min(error.retry_after, self._max_retry_after))
        return float(min(self._backoff * 2 ** (state.attempt_number - 1), self._max_retry_after))

    async def _once(self, method: str, url: str, headers: dict[str, str], kind: str, host: str) -> Response:
        bucket = self._buckets.setdefault(host, _TokenBucket(self._rate))
        await bucket.acquire()
        self.requests[kind] += 1
        session = self._client()
        async with session.request(method, url, headers=headers) as r:
            self.on_request(host, r.status)
            body = await r.read() if method != "HEAD" else b""
            log.debug("%s %s -> HTTP %s", method, url.split("?", 1)[0], r.status)
            if r.status in (429, 503):
                raise _RetryableStatus(r.status, _retry_after_seconds(r.headers.get("Retry-After")))
            return Response(r.status, CIMultiDict(r.headers), body, str(r.url))

    # ── auth ──

    def _authorization(self, repo: ImageRepo, scope: str) -> str | None:
        token = self._tokens.get((repo.api_host, scope))
        if token is not None and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        credentials = self.credentials.lookup(repo.registry)
        if repo.api_host in self._basic_hosts and credentials is not None:
            return credentials.basic_header()
        return None

    async def _authenticate(self, repo: ImageRepo, response: Response, operation: str, scope: str) -> None:
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        credentials = self.credentials.lookup(repo.registry)
        if scheme == "bearer" and params.get("realm"):
            self._tokens[(repo.api_host, scope)] = await self._fetch_token(repo, params, scope, operation)
        elif scheme == "basic" and credentials is not None and repo.api_host not in self._basic_hosts:
            self._basic_hosts.add(repo.api_host)
        else:
            self._raise_for_status(response, repo, operation)

    async def _fetch_token(self, repo: ImageRepo, challenge: dict[str, str], scope: str,
                           operation: str) -> _Token:
        query = {k: v for k, v in (("service", challenge.get("service")),
                                   ("scope", challenge.get("scope") or scope)) if v}
        realm = challenge["realm"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        credentials = self.credentials.lookup(repo.registry)
        headers = {"Authorization": credentials.basic_header()} if credentials else {}
        response = await self._with_retries("GET", url, headers, "token", operation, str(repo),
                                            urlsplit(realm).netloc)
        if response.status in (401, 403):
            raise AuthenticationFailed(operation, str(repo), f"the token server {realm} refused "
                                       + ("the credentials" if credentials else "anonymous access"),
                                       credentials_hint(repo))
        self._raise_for_status(response, repo, f"{operation} (token from {realm})")
        body = self.json(response, repo, f"{operation} (token from {realm})")
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise InvalidResponse(operation, str(repo), f"the token server {realm} returned no token")
        lifetime = max(60, int(body.get("expires_in") or 60))
        return _Token(value, time.monotonic() + lifetime * 0.9)

    # ── reading answers ──

    def _raise_for_status(self, response: Response, repo: ImageRepo, operation: str) -> None:
        status, image = response.status, str(repo)
        if 200 <= status < 300:
            return
        if status == 401:
            has = self.credentials.lookup(repo.registry) is not None
            raise AuthenticationFailed(operation, image, "the registry refused the " +
                                       ("credentials" if has else "anonymous request"), credentials_hint(repo))
        if status == 403:
            raise AccessDenied(operation, image, "access denied (HTTP 403)",
                               f"give the account for {repo.registry} pull access to {repo.path}")
        if status == 404:
            raise NotFound(operation, image, "not found (HTTP 404)",
                           "check the image name and tag; a private repository may also answer 404")
        if status >= 500:
            raise RegistryUnavailable(operation, image, f"HTTP {status} from {repo.api_host}",
                                      "it will be tried again at the next scan")
        raise InvalidResponse(operation, image, f"unexpected HTTP {status} from {repo.api_host}")

    @staticmethod
    def json(response: Response, repo: ImageRepo, operation: str) -> dict[str, Any]:
        """The answer's JSON object, or `InvalidResponse`."""
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidResponse(operation, str(repo), "the answer is not a JSON object")
        return data

    @staticmethod
    def next_page(response: Response) -> str | None:
        """The URL of the ``Link: <...>; rel="next"`` page, if any."""
        for link in response.headers.getall("Link", []):
            m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
            if m:
                return str(urljoin(response.url, m.group(1)))
        return None
