"""The Registry HTTP API v2 / OCI distribution calls image automation makes.

Place in the flow::

    registry scan (this module) ─▶ policy picks newest allowed tag (pure)
                                ─▶ YAML edit of the HelmRelease file ─▶ commit + push

`RegistryClient` lists tags (following ``Link: <...>; rel="next"`` pages),
and for filters ordered by build time reads the manifest of each matching
tag, and of each current tag the caller names (Docker schema 2, OCI
manifest, manifest list / OCI index: linux/amd64 or else the first entry)
and its config blob for ``created``. Build times are cached per
``repo@digest`` in a `MetadataCache`, so each image's manifest and config
are fetched once in its life; a tag's digest is rechecked with a HEAD only
when its cached mapping is older than ``tag_ttl``. A scan with a semver,
alphabetical or numerical filter makes only the tag-list requests.

Every request goes through `transport` (auth, rate limit, retries); every
failure is one of `errors`. It does not choose tags (`policy`), read
Secrets from the cluster, or edit anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Self
from urllib.parse import urlencode

from helm_operator.automation.imageref import ImageRepo, parse_image_repo
from helm_operator.automation.policy import TagFilter, TagInfo, needs_timestamps
from helm_operator.automation.registry.credentials import CredentialStore
from helm_operator.automation.registry.errors import InvalidResponse, NotFound
from helm_operator.automation.registry.transport import Transport

log = logging.getLogger(__name__)

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_INDEX_TYPES = {MANIFEST_LIST, OCI_INDEX}
_IMAGE_TYPES = {MANIFEST_V2, OCI_MANIFEST}
_ACCEPT = ", ".join([OCI_INDEX, MANIFEST_LIST, OCI_MANIFEST, MANIFEST_V2])


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


class RegistryClient:
    """Reads tags and image build times; use as ``async with RegistryClient(...)``.

    ``requests`` counts requests by kind (``tags``, ``manifest_head``,
    ``manifest_get``, ``blob``, ``token``), retries included. The keyword
    arguments after ``page_size`` tune the `Transport`.
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
        on_request: Callable[[str, int | str], None] | None = None,  # metrics: (registry host, status)
    ) -> None:
        self.transport = Transport(credentials or CredentialStore(), rate_limit_per_second, plain_http_hosts,
                                   attempts=attempts, backoff_seconds=backoff_seconds,
                                   max_retry_after=max_retry_after, timeout_seconds=timeout_seconds,
                                   on_request=on_request)
        self.cache = cache if cache is not None else MetadataCache()
        self.page_size = page_size
        self._concurrency = asyncio.Semaphore(concurrency)

    @property
    def requests(self) -> Counter[str]:
        """Requests made, by kind, retries included."""
        return self.transport.requests

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    # ── public operations ──

    async def list_tags(self, image_repo: str) -> list[str]:
        """Every tag of the repository, following ``Link`` pagination."""
        repo = parse_image_repo(image_repo)
        query = f"?{urlencode({'n': self.page_size})}" if self.page_size else ""
        url: str | None = f"{self.transport.base(repo)}/v2/{repo.path}/tags/list{query}"
        tags: list[str] = []
        while url is not None:
            response = await self.transport.request("GET", repo, url, kind="tags", operation="listing tags")
            tags.extend(self.transport.json(response, repo, "listing tags").get("tags") or [])
            url = self.transport.next_page(response)
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
        url = f"{self.transport.base(repo)}/v2/{repo.path}/manifests/{tag}"
        response = await self.transport.request("HEAD", repo, url, kind="manifest_head",
                                       operation=f"checking tag {tag}", accept=_ACCEPT)
        return response.headers.get("Docker-Content-Digest")

    async def _get_manifest(self, repo: ImageRepo, reference: str) -> tuple[dict[str, Any], str]:
        url = f"{self.transport.base(repo)}/v2/{repo.path}/manifests/{reference}"
        operation = f"reading manifest {reference}"
        response = await self.transport.request("GET", repo, url, kind="manifest_get", operation=operation, accept=_ACCEPT)
        manifest = self.transport.json(response, repo, operation)
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
        url = f"{self.transport.base(repo)}/v2/{repo.path}/blobs/{config['digest']}"
        operation = f"reading image config {config['digest']}"
        response = await self.transport.request("GET", repo, url, kind="blob", operation=operation)
        return _parse_created(self.transport.json(response, repo, operation).get("created"))


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
