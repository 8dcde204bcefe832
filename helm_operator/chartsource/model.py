"""What every chart source returns, the one error they raise, and URL hygiene.

Place in the flow: shared by `helmrepo` and `git`; the release reconciler
sees only `FetchedChart` and `ChartFetchError`. This module does no I/O.

URL hygiene lives in `helm_operator.redaction` (re-exported here for the
chart sources): credentials inside a URL are split out and passed as auth,
and never reach a log line, an error message, a cache key or a file.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from helm_operator.redaction import redact_text, redact_url, scrub, split_userinfo

__all__ = ["ChartFetchError", "FetchedChart", "basic_auth_header", "redact_url", "scrub",
           "split_userinfo", "url_key"]


@dataclass(frozen=True)
class FetchedChart:
    """An unpacked chart on local disk.

    `path` is a directory holding Chart.yaml, ready for
    ``helm upgrade --install <path>``; `revision` is the chart version for
    Helm (and OCI) repositories and the commit SHA for Git.
    """

    path: Path
    revision: str


class ChartFetchError(Exception):
    """A chart could not be fetched; the message is meant for the user.

    It says what failed, for which URL or chart, and what to do. It never
    holds passwords or tokens. `url` (credentials removed) and `status`
    (the HTTP status, when there was one) are there for callers that want
    to tell a missing chart from an unreachable server.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        message = redact_text(message)  # defence in depth: messages are built from redacted URLs
        url = redact_url(url) if url else url
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status

    def __str__(self) -> str:
        return self.message


def url_key(url: str) -> str:
    """The cache directory name for a (credential-free) URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def basic_auth_header(user: str, password: str) -> str:
    """The value of an ``Authorization`` header for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
