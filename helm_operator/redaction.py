"""Keep credentials out of everything a user or a log can read.

Place in the flow: the bottom of the house, imported by any module that
prints a URL or an error text (status messages, events, logs, metric labels,
exceptions). It imports nothing from the package. Credentials may arrive
inside a URL (``https://user:token@host/...``) in any spec field;
`split_userinfo` takes them out so they can be passed as auth, `redact_url`
removes them from one URL, and `redact_text` from every URL in free text
(an error message from git, helm or aiohttp that quotes the URL).

What this module does NOT do: it does not know which strings are secret
values (Secret data, tokens read from files): `scrub` replaces those when
the caller names them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

# scheme://userinfo@ inside free text: userinfo runs to the last '@' before
# whitespace or '/' (a password may hold a raw '@', which must not leave a tail).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^\s/]+)@")
# urllib3's Url repr (it appears in exception texts): auth='user:password'.
_URLLIB3_AUTH = re.compile(r"\bauth='[^']*'")


def redact_url(url: str) -> str:
    """Return `url` without secrets in its authority.

    http(s) and oci: all userinfo goes (a token is often sent as the user
    name). Other schemes (``ssh://git@host``): the user stays, a password goes.
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
    if user and parts.scheme.lower() not in ("http", "https", "oci"):
        host = f"{user}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it removed (see `redact_url`)."""

    def strip(m: re.Match[str]) -> str:
        scheme = m.group("scheme")
        if scheme.lower() in ("http", "https", "oci"):
            return f"{scheme}://"
        user = m.group("userinfo").split(":", 1)[0]
        return f"{scheme}://{user}@" if user else f"{scheme}://"

    return _URLLIB3_AUTH.sub("auth=None", _URL_USERINFO.sub(strip, text))


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


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of each non-trivial secret in `text`."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text
