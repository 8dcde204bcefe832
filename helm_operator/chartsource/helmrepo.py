"""Charts from Helm repositories (an HTTP server with an index.yaml).

Place in the flow: the release reconciler asks `HelmRepoCache.fetch` for a
chart version and gets a directory to hand to helm. This module downloads,
verifies and unpacks; it does not run helm, read Secrets (credentials come
in as a tuple) or speak OCI.

Cache layout, shared by every release that reads the same chart version
with the same credentials::

    <cache_dir>/helm/<access key>/<name>-<version>/<chart>/Chart.yaml

where the access key (`cachedir.AccessKeys`) names the repository URL and
the credentials together: a release without credentials, or with others,
never gets a chart another release's credentials downloaded; it asks the
server itself. A chart version is immutable, so once unpacked it is reused
without any HTTP request by every release with those credentials. index.yaml is kept in memory for `index_ttl` seconds per
repository (and per credentials); a version missing from a cached index
makes one fresh request, so a just-published chart is found at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from helm_operator import boundedyaml
from helm_operator.chartsource.cachedir import AccessKeys, KeyedLocks, extract_tar, find_chart_root, publish
from helm_operator.chartsource.model import (
    basic_auth_header,
    ChartFetchError,
    FetchedChart,
    redact_url,
    scrub,
    split_userinfo,
)
from helm_operator.runtime.httpsession import SessionOwner

log = logging.getLogger(__name__)

DEFAULT_INDEX_TTL = 60.0
DEFAULT_TIMEOUT = 120.0
MAX_CHART_BYTES = 128 * 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class _Index:
    entries: dict[str, list[dict[str, Any]]]
    fetched_at: float


class HelmRepoCache(SessionOwner):
    """Fetch chart versions from Helm repositories into a shared disk cache.

    One instance serves the whole operator. Use ``async with`` or call
    `close()` to release the HTTP session.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        index_ttl: float = DEFAULT_INDEX_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        yaml_limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.charts,
    ) -> None:
        self._root = Path(cache_dir) / "helm"
        self._keys = AccessKeys(Path(cache_dir))
        self._yaml_limits = yaml_limits  # index.yaml: its size is also the download limit
        self._index_ttl = index_ttl
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._index_locks = KeyedLocks()
        self._chart_locks = KeyedLocks()
        self._session = None
        self._trust_env = True  # honour HTTPS_PROXY and friends for chart downloads

    def chart_dir(self, repository: str, name: str, version: str,
                  auth: tuple[str, str] | None = None) -> Path:
        """Where `fetch` unpacks this chart version read with `auth` (whether or not it is there)."""
        repo, url_auth = _normalise_repository(repository)
        return self._root / self._keys.key(repo, auth or url_auth) / f"{name}-{version}"

    async def fetch(
        self,
        repository: str,
        name: str,
        version: str,
        auth: tuple[str, str] | None = None,
    ) -> FetchedChart:
        """Return chart `name` at exactly `version` from `repository`, unpacked."""
        repo, url_auth = _normalise_repository(repository)
        auth = auth or url_auth
        shown = redact_url(repo)
        _check_scheme(repo, shown)
        for label, value in (("chart name", name), ("chart version", version)):
            if not value or not _SAFE_NAME.match(value) or ".." in value:
                raise ChartFetchError(f"invalid {label} {value!r} for repository {shown}", url=shown)
        final = self._root / self._keys.key(repo, auth) / f"{name}-{version}"
        cached = _cached_chart(final, name)
        if cached is not None:
            return FetchedChart(path=cached, revision=version)
        async with self._chart_locks(final):
            cached = _cached_chart(final, name)
            if cached is not None:
                return FetchedChart(path=cached, revision=version)
            entry = await self._find_entry(repo, name, version, auth)
            chart_url, digest = _chart_url_and_digest(entry, repo, name, version)
            same_origin = URL(chart_url).origin() == URL(repo).origin()
            data = await self._get(chart_url, auth if same_origin else None, limit=MAX_CHART_BYTES)
            if digest:
                actual = hashlib.sha256(data).hexdigest()
                if actual != digest.lower():
                    raise ChartFetchError(
                        f"chart {name} version {version} downloaded from {redact_url(chart_url)} "
                        f"does not match the digest in {shown}/index.yaml (expected sha256 {digest}, "
                        f"got {actual}); the repository is inconsistent or the download was altered",
                        url=redact_url(chart_url),
                    )
            what = f"chart {name} version {version} from {redact_url(chart_url)}"
            await asyncio.to_thread(_unpack, data, final, name, what)
            log.info("unpacked chart %s version %s from %s", name, version, shown)
        path = _cached_chart(final, name)
        assert path is not None  # _unpack checked it
        return FetchedChart(path=path, revision=version)

    async def _find_entry(
        self, repo: str, name: str, version: str, auth: tuple[str, str] | None
    ) -> dict[str, Any]:
        index, fresh = await self._index(repo, auth, force=False)
        entry = _lookup(index, name, version)
        if entry is None and not fresh:
            index, _ = await self._index(repo, auth, force=True)
            entry = _lookup(index, name, version)
        if entry is None:
            shown = redact_url(repo)
            versions = [str(e.get("version")) for e in index.entries.get(name) or [] if isinstance(e, dict)]
            if not versions:
                raise ChartFetchError(
                    f"chart {name} version {version} not found in {shown}: the repository has no chart "
                    f"named {name}; check spec.chart.name and spec.chart.repository",
                    url=shown,
                )
            more = ", ..." if len(versions) > 5 else ""
            raise ChartFetchError(
                f"chart {name} version {version} not found in {shown}; available: "
                f"{', '.join(versions[:5])}{more}",
                url=shown,
            )
        return entry

    async def _index(self, repo: str, auth: tuple[str, str] | None, *, force: bool) -> tuple[_Index, bool]:
        """The repository's index and whether it was downloaded by this call."""
        key = (repo, _auth_fingerprint(auth))
        async with self._index_locks(key):
            cached = self._indexes.get(key)
            now = time.monotonic()
            if cached is not None and not force and now - cached.fetched_at < self._index_ttl:
                return cached, False
            started = time.monotonic()
            url = f"{repo}/index.yaml"
            data = await self._get(url, auth, limit=self._yaml_limits.max_bytes,
                                   limit_flag=self._yaml_limits.bytes_flag)
            entries = await asyncio.to_thread(_parse_index, data, redact_url(url), self._yaml_limits)
            index = _Index(entries=entries, fetched_at=started)
            self._indexes[key] = index
            return index, True

    async def _get(self, url: str, auth: tuple[str, str] | None, *, limit: int, limit_flag: str = "") -> bytes:
        shown = redact_url(url)
        secrets = (auth[1],) if auth else ()
        # aiohttp drops this header when a redirect leaves the origin.
        headers = {"Authorization": basic_auth_header(*auth)} if auth else {}
        try:
            session = self._client()
            async with session.get(url, headers=headers) as resp:
                if resp.status != 200:
                    raise ChartFetchError(_status_message(shown, resp.status, resp.reason, auth), url=shown,
                                          status=resp.status)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raises = f" ({limit_flag} raises the limit)" if limit_flag else ""
                        raise ChartFetchError(f"GET {shown}: response larger than {limit // 2**20} MiB; "
                                              f"refusing it{raises}", url=shown)
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            detail = scrub(str(exc) or type(exc).__name__, secrets)
            raise ChartFetchError(
                f"GET {shown} failed: {detail}; check the repository URL and that the server is reachable",
                url=shown,
            ) from None


def _normalise_repository(repository: str) -> tuple[str, tuple[str, str] | None]:
    repo, auth = split_userinfo(repository.strip())
    return repo.rstrip("/"), auth


def _check_scheme(repo: str, shown: str) -> None:
    scheme = repo.split("://", 1)[0].lower() if "://" in repo else ""
    if scheme == "oci":
        raise ChartFetchError(f"{shown} is an OCI registry, not a Helm repository with an index.yaml", url=shown)
    if scheme not in ("http", "https"):
        raise ChartFetchError(
            f"repository URL {shown} must start with http:// or https://; check spec.chart.repository", url=shown
        )


def _auth_fingerprint(auth: tuple[str, str] | None) -> str:
    if auth is None:
        return ""
    return hashlib.sha256(f"{auth[0]}\0{auth[1]}".encode()).hexdigest()


def _cached_chart(final: Path, name: str) -> Path | None:
    if not final.is_dir():
        return None
    return find_chart_root(final, preferred=name)


def _lookup(index: _Index, name: str, version: str) -> dict[str, Any] | None:
    for entry in index.entries.get(name) or []:
        if isinstance(entry, dict) and str(entry.get("version")) == version:
            return entry
    return None


def _chart_url_and_digest(entry: dict[str, Any], repo: str, name: str, version: str) -> tuple[str, str | None]:
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not urls or not isinstance(urls, list) or not isinstance(urls[0], str) or not urls[0].strip():
        raise ChartFetchError(
            f"chart {name} version {version} in {redact_url(repo)}/index.yaml has no download URL",
            url=redact_url(repo),
        )
    chart_url = str(URL(repo + "/").join(URL(urls[0].strip())))
    if not chart_url.startswith(("http://", "https://")):
        raise ChartFetchError(f"chart {name} version {version}: unsupported download URL {redact_url(chart_url)}")
    digest = entry.get("digest")
    if isinstance(digest, str) and digest.strip():
        return chart_url, digest.strip().removeprefix("sha256:")
    return chart_url, None


def _parse_index(data: bytes, shown: str, limits: boundedyaml.Limits) -> dict[str, list[dict[str, Any]]]:
    """The entries of an index.yaml, every scalar a string ("1.10" stays a version)."""
    try:
        doc = boundedyaml.load(data, shown, limits, strings_only=True)
    except boundedyaml.LimitExceeded as exc:
        raise ChartFetchError(str(exc), url=shown) from None
    except boundedyaml.YamlError as exc:
        raise ChartFetchError(f"{shown} is {exc.reason}; is this a Helm repository?", url=shown) from None
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ChartFetchError(f"{shown} is not a Helm repository index (no entries); check the repository URL",
                              url=shown)
    return {str(k): v for k, v in entries.items() if isinstance(v, list)}


def _status_message(shown: str, status: int, reason: str | None, auth: tuple[str, str] | None) -> str:
    head = f"GET {shown} failed: HTTP {status}{' ' + reason if reason else ''}"
    if status in (401, 403):
        if auth is None:
            return f"{head}; the repository needs credentials: set spec.chart.chartPullSecret"
        return f"{head}; the credentials were refused: check the username and password in chartPullSecret"
    if status == 404:
        return f"{head}; check the repository URL and chart name"
    return f"{head}; the server may be down, try again later"


def _unpack(data: bytes, final: Path, name: str, what: str) -> None:
    def build(tmp: Path) -> None:
        extract_tar(data, tmp, what=what)
        if find_chart_root(tmp, preferred=name) is None:
            raise ChartFetchError(f"{what}: the archive holds no Chart.yaml")

    publish(final, build)

