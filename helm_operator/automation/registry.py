"""Registry client: the tags of an image repository and when each image was built.

Place in the flow::

    registry scan (this module) ─▶ policy picks newest allowed tag (pure)
                                ─▶ YAML edit of the HelmRelease file ─▶ commit + push

A Docker Registry HTTP API v2 / OCI distribution client on aiohttp. It lists
tags (following ``Link: <...>; rel="next"`` pages), and for filters ordered by
build time reads the manifest of each matching tag, and of each current tag
the caller names (Docker schema 2, OCI manifest, manifest list / OCI index:
linux/amd64 or else the first entry) and config blob for ``created``. Build times are cached per ``repo@digest`` in a
:class:`MetadataCache`, so each image's manifest and config are fetched once
in its life; a tag's digest is rechecked with a HEAD only when its cached
mapping is older than ``tag_ttl``. A scan with a semver, alphabetical or
numerical filter makes only the tag-list requests.

Auth: anonymous; basic; bearer tokens (on a 401 with ``WWW-Authenticate:
Bearer realm=...,service=...,scope=...`` a token is fetched from the realm,
with basic credentials if any, and cached per (registry, scope) until it
expires). Credentials come from a docker ``config.json`` or the decoded data
of a ``kubernetes.io/dockerconfigjson`` Secret (:class:`CredentialStore`).
Credentials and tokens are never logged and never appear in a repr.

Politeness: a token-bucket rate limit per registry host; 429 and 503 answers
are retried honouring ``Retry-After`` (seconds or an HTTP date), connection
errors with exponential backoff, both a bounded number of times (tenacity).

It does not choose tags (policy.py), read Secrets from the cluster, or edit
anything. Every failure leaves as one error tree, foreign errors translated
at this boundary with ``raise ... from``::

    RegistryError                 what failed, for which image, what to do
     ├── RegistryUnavailable      connection refused/reset, timeout, 5xx (transient)
     │    └── RateLimited         still 429 after the retries
     ├── AuthenticationFailed     401: missing or wrong credentials, token refused
     ├── AccessDenied             403: credentials lack pull access
     ├── NotFound                 404: no such repository, tag or blob
     └── InvalidResponse          an answer we cannot read (JSON, media type, header)
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from helm_operator.automation.policy import TagFilter, TagInfo, needs_timestamps
from helm_operator.redaction import redact_text
from helm_operator.runtime.httpsession import SessionOwner

__all__ = [
    "AccessDenied", "AuthenticationFailed", "CredentialStore", "Credentials", "ImageRepo",
    "InvalidResponse", "MetadataCache", "NotFound", "RateLimited", "RegistryClient",
    "RegistryError", "RegistryUnavailable", "parse_image_repo",
]

log = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_INDEX_TYPES = {MANIFEST_LIST, OCI_INDEX}
_IMAGE_TYPES = {MANIFEST_V2, OCI_MANIFEST}
_ACCEPT = ", ".join([OCI_INDEX, MANIFEST_LIST, OCI_MANIFEST, MANIFEST_V2])


# ── errors ───────────────────────────────────────────────────────────────────

class RegistryError(Exception):
    """A registry request failed: ``operation`` on ``image``; ``hint`` says what to do."""

    def __init__(self, operation: str, image: str, problem: str, hint: str = "") -> None:
        problem = redact_text(problem)  # aiohttp and registries quote URLs, with any userinfo
        message = f"{operation} for {image}: {problem}" + (f"; {hint}" if hint else "")
        super().__init__(message)
        self.operation, self.image, self.problem, self.hint = operation, image, problem, hint


class RegistryUnavailable(RegistryError):
    """Transient: the registry could not be reached or answered 5xx."""


class RateLimited(RegistryUnavailable):
    """The registry kept answering 429 Too Many Requests."""


class AuthenticationFailed(RegistryError):
    """401: credentials missing or wrong, or the token server refused them."""


class AccessDenied(RegistryError):
    """403: authenticated, but not allowed to pull."""


class NotFound(RegistryError):
    """404: the repository, tag, manifest or blob does not exist."""


class InvalidResponse(RegistryError):
    """The registry answered something this client cannot read."""


class _RetryableStatus(Exception):
    """Internal: a 429/503 answer, to be retried after ``retry_after`` seconds."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


# ── image references ─────────────────────────────────────────────────────────

@dataclass(frozen=True)
class ImageRepo:
    """A repository: ``registry`` as users name it, ``api_host`` to call, ``path`` in it."""

    registry: str
    path: str

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_image_repo(reference: str) -> ImageRepo:
    """``nginx`` -> docker.io/library/nginx; ``host:port/a/b``; ``ghcr.io/x/y``.

    A trailing ``:tag`` or ``@digest`` is dropped.
    """
    ref = reference.strip().split("@", 1)[0]
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, ref
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    last_slash = path.rfind("/")
    if ":" in path[last_slash + 1:]:
        path = path[: path.rindex(":")]
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not re.fullmatch(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*", path):
        raise ValueError(f"not an image repository: {reference!r}")
    return ImageRepo(registry, path)


# ── credentials ──────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _registry_key(server: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``https://h:5000/x`` -> ``h:5000``."""
    host = urlsplit(server if "://" in server else f"//{server}").netloc or server
    host = host.lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


class CredentialStore:
    """Registry credentials by host, from docker config JSON documents."""

    def __init__(self, entries: Mapping[str, Credentials] | None = None) -> None:
        self._by_host: dict[str, Credentials] = {_registry_key(k): v for k, v in (entries or {}).items()}

    @classmethod
    def from_docker_config(cls, config: str | bytes | Mapping[str, Any]) -> CredentialStore:
        """A docker ``config.json`` or ``.dockerconfigjson`` Secret value (JSON text or dict)."""
        store = cls()
        store.add_docker_config(config)
        return store

    def add(self, registry: str, username: str, password: str) -> None:
        self._by_host[_registry_key(registry)] = Credentials(username, password)

    def add_docker_config(self, config: str | bytes | Mapping[str, Any]) -> None:
        """Merge ``auths`` entries (``auth`` base64 or ``username``/``password``)."""
        data = json.loads(config) if isinstance(config, (str, bytes)) else config
        auths = data.get("auths", {}) if isinstance(data, Mapping) else None
        if not isinstance(auths, Mapping):
            raise ValueError("docker config has no 'auths' object")
        for server, entry in auths.items():
            creds = _entry_credentials(entry)
            if creds is not None:
                self._by_host[_registry_key(server)] = creds

    def lookup(self, registry: str) -> Credentials | None:
        return self._by_host.get(_registry_key(registry))

    def __repr__(self) -> str:
        return f"CredentialStore(hosts={sorted(self._by_host)})"


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, Mapping):
        return None
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            raise ValueError("docker config 'auth' is not base64 'user:password'") from None
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


# ── cache, rate limit, tokens ────────────────────────────────────────────────

@dataclass
class MetadataCache:
    """Build times by ``repo@digest`` (forever) and tag -> digest (for ``tag_ttl``)."""

    tag_ttl: timedelta = timedelta(hours=1)
    created: dict[str, datetime | None] = field(default_factory=dict)
    digests: dict[str, tuple[str, float]] = field(default_factory=dict)

    def fresh_digest(self, repo: ImageRepo, tag: str) -> str | None:
        entry = self.digests.get(f"{repo}:{tag}")
        if entry is None or time.monotonic() - entry[1] > self.tag_ttl.total_seconds():
            return None
        return entry[0]

    def remember_digest(self, repo: ImageRepo, tag: str, digest: str) -> None:
        self.digests[f"{repo}:{tag}"] = (digest, time.monotonic())


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


def _parse_created(value: Any) -> datetime | None:
    """RFC 3339 (nanoseconds allowed) -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


@dataclass
class _Response:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    url: str


# ── the client ───────────────────────────────────────────────────────────────

class RegistryClient(SessionOwner):
    """Reads tags and image build times; use as ``async with RegistryClient(...)``.

    ``requests`` counts requests by kind (``tags``, ``manifest_head``,
    ``manifest_get``, ``blob``, ``token``), retries included.
    """

    def __init__(
        self,
        credentials: CredentialStore | None = None,
        rate_limit_per_second: float = 10,
        cache: MetadataCache | None = None,
        plain_http_hosts: Iterable[str] = frozenset(),
        *,
        page_size: int | None = None,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_retry_after: float = 60.0,
        timeout_seconds: float = 30.0,
        concurrency: int = 8,
        on_request: Callable[[str, int | str], None] | None = None,  # (registry host, HTTP status or "error")
    ) -> None:
        self.on_request = on_request or (lambda host, code: None)
        self.credentials = credentials or CredentialStore()
        self.cache = cache if cache is not None else MetadataCache()
        self.plain_http_hosts = frozenset(plain_http_hosts)
        self.page_size = page_size
        self.requests: Counter[str] = Counter()
        self._rate = rate_limit_per_second
        self._attempts, self._backoff, self._max_retry_after = attempts, backoff_seconds, max_retry_after
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._buckets: dict[str, _TokenBucket] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic_hosts: set[str] = set()
        self._concurrency = asyncio.Semaphore(concurrency)
        self._session = None

    # ── public operations ──

    async def list_tags(self, image_repo: str) -> list[str]:
        """Every tag of the repository, following ``Link`` pagination."""
        repo = parse_image_repo(image_repo)
        query = f"?{urlencode({'n': self.page_size})}" if self.page_size else ""
        url: str | None = f"{self._base(repo)}/v2/{repo.path}/tags/list{query}"
        tags: list[str] = []
        while url is not None:
            response = await self._request("GET", repo, url, kind="tags", operation="listing tags")
            tags.extend(self._json(response, repo, "listing tags").get("tags") or [])
            url = self._next_page(response)
        return tags

    async def image_created(self, image_repo: str, tag: str) -> datetime | None:
        """The build time in the image config of ``tag`` (linux/amd64 for an index)."""
        repo = parse_image_repo(image_repo)
        digest = self.cache.fresh_digest(repo, tag)
        if digest is None:
            digest = await self._head_digest(repo, tag)
        if digest is not None and f"{repo}@{digest}" in self.cache.created:
            self.cache.remember_digest(repo, tag, digest)
            return self.cache.created[f"{repo}@{digest}"]
        manifest, digest = await self._get_manifest(repo, digest or tag)
        created = await self._created_from_manifest(repo, manifest)
        self.cache.created[f"{repo}@{digest}"] = created
        self.cache.remember_digest(repo, tag, digest)
        return created

    async def scan(self, image_repo: str, *filters: TagFilter, current: Iterable[str] = ()) -> list[TagInfo]:
        """All tags, listed once; build times only where one of ``filters`` orders by them.

        Then every tag such a filter allows is dated, and so is every tag of
        ``current`` the registry lists: the tags running now, which a forced
        release may have put outside the filter but which the choice must
        still compare against (``policy.needs_build_time_of``). Each build
        time is cached, so a current tag costs one HEAD per ``tag_ttl``
        after its first reading. A scan with only semver, alphabetical or
        numerical filters makes only the tag-list requests.
        """
        tags = await self.list_tags(image_repo)
        timed = [f for f in filters if needs_timestamps(f)]
        if not timed:
            return [TagInfo(t) for t in tags]
        listed = set(tags)
        wanted = [t for t in tags if any(f.matches(t) for f in timed)]
        wanted += sorted({t for t in current if t in listed} - set(wanted))
        created = await asyncio.gather(*(self._created_or_none(image_repo, t) for t in wanted))
        by_tag = dict(zip(wanted, created))
        return [TagInfo(t, by_tag.get(t)) for t in tags]

    # ── manifests and blobs ──

    async def _created_or_none(self, image_repo: str, tag: str) -> datetime | None:
        async with self._concurrency:
            try:
                return await self.image_created(image_repo, tag)
            except (NotFound, InvalidResponse) as e:
                log.warning("image %s:%s skipped in scan: %s", image_repo, tag, e)
                return None

    async def _head_digest(self, repo: ImageRepo, tag: str) -> str | None:
        url = f"{self._base(repo)}/v2/{repo.path}/manifests/{tag}"
        response = await self._request("HEAD", repo, url, kind="manifest_head",
                                       operation=f"checking tag {tag}", accept=_ACCEPT)
        return response.headers.get("Docker-Content-Digest")

    async def _get_manifest(self, repo: ImageRepo, reference: str) -> tuple[dict[str, Any], str]:
        url = f"{self._base(repo)}/v2/{repo.path}/manifests/{reference}"
        operation = f"reading manifest {reference}"
        response = await self._request("GET", repo, url, kind="manifest_get", operation=operation, accept=_ACCEPT)
        manifest = self._json(response, repo, operation)
        digest = response.headers.get("Docker-Content-Digest") or _sha256_digest(response.body)
        return manifest, digest

    async def _created_from_manifest(self, repo: ImageRepo, manifest: dict[str, Any]) -> datetime | None:
        media_type = manifest.get("mediaType") or (OCI_INDEX if "manifests" in manifest else OCI_MANIFEST)
        if media_type in _INDEX_TYPES:
            child = _pick_platform(manifest.get("manifests") or [])
            if child is None:
                raise InvalidResponse("reading manifest list", str(repo), "the index lists no manifests")
            manifest, _ = await self._get_manifest(repo, child)
            media_type = manifest.get("mediaType") or OCI_MANIFEST
        config = manifest.get("config") if media_type in _IMAGE_TYPES else None
        if not isinstance(config, Mapping) or not isinstance(config.get("digest"), str):
            raise InvalidResponse("reading manifest", str(repo), f"unsupported manifest type {media_type!r}",
                                  "only Docker schema 2 and OCI images are read")
        url = f"{self._base(repo)}/v2/{repo.path}/blobs/{config['digest']}"
        operation = f"reading image config {config['digest']}"
        response = await self._request("GET", repo, url, kind="blob", operation=operation)
        return _parse_created(self._json(response, repo, operation).get("created"))

    # ── HTTP with auth, rate limit and retries ──

    def _base(self, repo: ImageRepo) -> str:
        scheme = "http" if repo.registry in self.plain_http_hosts or repo.api_host in self.plain_http_hosts else "https"
        return f"{scheme}://{repo.api_host}"

    async def _request(self, method: str, repo: ImageRepo, url: str, *, kind: str, operation: str,
                       accept: str | None = None) -> _Response:
        scope = f"repository:{repo.path}:pull"
        response = await self._send(method, repo, url, kind, operation, accept, scope)
        if response.status == 401:
            await self._authenticate(repo, response, operation, scope)
            response = await self._send(method, repo, url, kind, operation, accept, scope)
        self._raise_for_status(response, repo, operation)
        return response

    async def _send(self, method: str, repo: ImageRepo, url: str, kind: str, operation: str,
                    accept: str | None, scope: str) -> _Response:
        headers = {"Accept": accept} if accept else {}
        authorization = self._authorization(repo, scope)
        if authorization:
            headers["Authorization"] = authorization
        return await self._with_retries(method, url, headers, kind, operation, str(repo), repo.api_host)

    async def _with_retries(self, method: str, url: str, headers: dict[str, str], kind: str,
                            operation: str, image: str, host: str) -> _Response:
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
            return min(error.retry_after, self._max_retry_after)
        return min(self._backoff * 2 ** (state.attempt_number - 1), self._max_retry_after)

    async def _once(self, method: str, url: str, headers: dict[str, str], kind: str, host: str) -> _Response:
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
            return _Response(r.status, CIMultiDict(r.headers), body, str(r.url))

    def _authorization(self, repo: ImageRepo, scope: str) -> str | None:
        token = self._tokens.get((repo.api_host, scope))
        if token is not None and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        credentials = self.credentials.lookup(repo.registry)
        if repo.api_host in self._basic_hosts and credentials is not None:
            return credentials.basic_header()
        return None

    async def _authenticate(self, repo: ImageRepo, response: _Response, operation: str, scope: str) -> None:
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
                                       _credentials_hint(repo))
        self._raise_for_status(response, repo, f"{operation} (token from {realm})")
        body = self._json(response, repo, f"{operation} (token from {realm})")
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise InvalidResponse(operation, str(repo), f"the token server {realm} returned no token")
        lifetime = max(60, int(body.get("expires_in") or 60))
        return _Token(value, time.monotonic() + lifetime * 0.9)

    # ── reading answers ──

    def _raise_for_status(self, response: _Response, repo: ImageRepo, operation: str) -> None:
        status, image = response.status, str(repo)
        if 200 <= status < 300:
            return
        if status == 401:
            has = self.credentials.lookup(repo.registry) is not None
            raise AuthenticationFailed(operation, image, "the registry refused the " +
                                       ("credentials" if has else "anonymous request"), _credentials_hint(repo))
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
    def _json(response: _Response, repo: ImageRepo, operation: str) -> dict[str, Any]:
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidResponse(operation, str(repo), "the answer is not a JSON object")
        return data

    @staticmethod
    def _next_page(response: _Response) -> str | None:
        for link in response.headers.getall("Link", []):
            m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
            if m:
                return urljoin(response.url, m.group(1))
        return None


def _credentials_hint(repo: ImageRepo) -> str:
    return (f"add credentials for {repo.registry} to the docker config or the "
            "kubernetes.io/dockerconfigjson Secret the operator reads")


def _pick_platform(entries: list[Any]) -> str | None:
    """linux/amd64 if the index has it, else its first manifest's digest."""
    digests = [e for e in entries if isinstance(e, Mapping) and isinstance(e.get("digest"), str)]
    for entry in digests:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(entry["digest"])
    return str(digests[0]["digest"]) if digests else None


def _sha256_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()
