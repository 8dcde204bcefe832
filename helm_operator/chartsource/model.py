"""What every chart source returns, the one error they raise, and URL hygiene.

Place in the flow: shared by `helmrepo` and `git`; the release reconciler
sees only `FetchedChart` and `ChartFetchError`. This module does no I/O.

URL hygiene: credentials may arrive inside a URL (``https://user:pw@host``).
`split_userinfo` takes them out so they are passed as auth and never reach
a log line, an error message, a cache key or a file on disk; `redact_url`
is applied to every URL that appears in a message.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit


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
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status

    def __str__(self) -> str:
        return self.message


def redact_url(url: str) -> str:
    """Return `url` without secrets in its authority.

    http(s): all userinfo goes (a token is often sent as the user name).
    Other schemes (``ssh://git@host``): the user stays, a password goes.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    if user and parts.scheme.lower() not in ("http", "https"):
        host = f"{user}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """Split ``scheme://user:pw@host/...`` into the bare URL and ``(user, pw)``.

    Only http and https URLs are split: the user of an ``ssh://git@host``
    URL is not a secret and is part of how ssh connects.
    """
    if "://" not in url:
        return url, None
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(user), unquote(password))


def url_key(url: str) -> str:
    """The cache directory name for a (credential-free) URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of each non-trivial secret in `text`."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def basic_auth_header(user: str, password: str) -> str:
    """The value of an ``Authorization`` header for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
