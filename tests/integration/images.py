"""Push tiny OCI images to a registry over its HTTP API, without docker.

Each image is one small layer, a config blob whose `created` the test
chooses, and an OCI manifest put under a tag. `push_index` puts an OCI index
over per-platform images. Auth follows the registry's challenge: basic with
the given credentials, or a bearer token from the challenge's realm (asked
with push scope). Synchronous (urllib), so it can run from sync fixtures
while an aiohttp server of the test is not being served.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER = b"\0" * 1024   # an empty tar archive: two zero blocks


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Go writes


@dataclass
class Pusher:
    """Pushes to `http://<host>`; `username`/`password` used for basic or token auth."""

    host: str
    username: str | None = None
    password: str | None = None
    _auth: dict[str, str] = field(default_factory=dict)   # scope -> Authorization

    def push_image(self, repo: str, tag: str | None, created: datetime, *,
                   architecture: str = "amd64") -> tuple[str, int]:
        """Push one image; returns (manifest digest, manifest size)."""
        config = json.dumps({"created": rfc3339(created), "architecture": architecture, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [digest_of(LAYER)]},
                             "config": {}}).encode()
        self.put_blob(repo, LAYER)
        self.put_blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(LAYER), "size": len(LAYER)}],
        }).encode()
        reference = tag or digest_of(manifest)
        self.request("PUT", repo, f"/v2/{repo}/manifests/{reference}", manifest, OCI_MANIFEST)
        return digest_of(manifest), len(manifest)

    def push_index(self, repo: str, tag: str, platforms: dict[str, datetime]) -> None:
        """An OCI index over one image per `architecture` (os linux), each with its `created`."""
        entries = []
        for architecture, created in platforms.items():
            digest, size = self.push_image(repo, None, created, architecture=architecture)
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                            "platform": {"os": "linux", "architecture": architecture}})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        self.request("PUT", repo, f"/v2/{repo}/manifests/{tag}", index, OCI_INDEX)

    def put_blob(self, repo: str, data: bytes) -> None:
        digest = digest_of(data)
        if self.request("HEAD", repo, f"/v2/{repo}/blobs/{digest}", ok=(200, 404))[0] == 200:
            return
        _, headers = self.request("POST", repo, f"/v2/{repo}/blobs/uploads/", b"")
        location = urllib.parse.urljoin(f"http://{self.host}/", headers["location"])
        sep = "&" if "?" in location else "?"
        self.request("PUT", repo, f"{location}{sep}digest={urllib.parse.quote(digest)}", data,
                     "application/octet-stream")

    def delete_tag_manifest(self, repo: str, digest: str) -> None:
        self.request("DELETE", repo, f"/v2/{repo}/manifests/{digest}")

    # ── HTTP with the challenge flow ──

    def request(self, method: str, repo: str, path_or_url: str, body: bytes | None = None,
                content_type: str | None = None, ok: tuple[int, ...] = (200, 201, 202, 204),
                ) -> tuple[int, dict[str, str]]:
        """Send, answering one 401 challenge; header names come back lower-cased."""
        scope = f"repository:{repo}:pull,push"
        for _ in range(2):
            status, headers = self._send(method, path_or_url, body, content_type, self._auth.get(scope))
            if status != 401:
                break
            self._auth[scope] = self._answer_challenge(headers.get("www-authenticate", ""), scope)
        if status not in ok:
            raise RuntimeError(f"{method} {path_or_url}: HTTP {status}")
        return status, headers

    def _send(self, method: str, path_or_url: str, body: bytes | None, content_type: str | None,
              authorization: str | None) -> tuple[int, dict[str, str]]:
        url = path_or_url if "://" in path_or_url else f"http://{self.host}{path_or_url}"
        req = urllib.request.Request(url, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if authorization:
            req.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
                return r.status, {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, {k.lower(): v for k, v in e.headers.items()}

    def _basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def _answer_challenge(self, challenge: str, scope: str) -> str:
        if challenge.lower().startswith("basic"):
            return self._basic()
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        req = urllib.request.Request(f"{params['realm']}?{query}")
        if self.username:
            req.add_header("Authorization", self._basic())
        with urllib.request.urlopen(req, timeout=10) as r:
            return "Bearer " + json.loads(r.read())["token"]
