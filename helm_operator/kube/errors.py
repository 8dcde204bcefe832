"""The one error tree of the Kubernetes adapter, and the one translation into it.

Place in the flow: `rest.RestClient` (the one request function) calls
`from_status` for every answer outside 2xx, and `from_exception` for every
request that got no answer; `watch` uses the same two for its streams. So
every failed call, whatever module made it, is one of:

    KubeError                  any failure; .status is the HTTP status or None
     ├── NotFound              404: the object (or its kind) does not exist
     ├── Conflict              409: someone wrote first (resourceVersion), or it already exists
     ├── Forbidden             401/403: credentials refused, or RBAC says no
     ├── Invalid               400/413/422: the API server rejected the request as written
     │                         (schema, admission, too large)
     ├── Unreachable           no answer: connection refused, TLS, DNS, dropped
     │    └── Timeout          no answer in time (also a server-side 504)
     └── KubeConfigError       no request made: no usable kubeconfig or in-cluster config

Each message is "<verb> <object>: <the API server's message>", e.g.
`patch HelmRelease team-a/web: Operation cannot be fulfilled ...`, with URL
credentials removed (`redaction.redact_text`). Callers choose by class, never
by parsing text.

What this module does NOT do: retry, log, or decide what an error means for a
release or a sync; it only names what happened.
"""

from __future__ import annotations

import json
from typing import Any

from helm_operator.redaction import redact_text


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the call and object (URL credentials removed)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact_text(message))
        self.status = status


class NotFound(KubeError):
    """The object asked for does not exist (404)."""


class Conflict(KubeError):
    """Someone else wrote first, or the object already exists (409): read again and retry."""


class Forbidden(KubeError):
    """The API server refused the credentials (401) or RBAC forbids the call (403)."""


class Invalid(KubeError):
    """The API server rejected the request as written (400, 413, 422): fix the object."""


class Unreachable(KubeError):
    """No answer from the API server (connection refused, TLS, DNS, connection dropped)."""


class Timeout(Unreachable):
    """No answer in time."""


class KubeConfigError(KubeError):
    """No usable kubeconfig (a missing file, an unknown context, no in-cluster config): nothing was sent.

    The message is one line saying what is missing and how to fix it.
    """


_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: Invalid, 422: Invalid, 504: Timeout,
}


def server_message(body: bytes | str | None, fallback: str) -> str:
    """The `message` of a metav1.Status body, else `fallback`."""
    if body:
        try:
            doc: Any = json.loads(body)
        except ValueError:
            return fallback
        if isinstance(doc, dict) and isinstance(doc.get("message"), str) and doc["message"]:
            return str(doc["message"])
    return fallback


def from_status(what: str, status: int, body: bytes | str | None = None, reason: str | None = None) -> KubeError:
    """The error for an answer with HTTP `status` (and its Status body, if any) to `what`."""
    message = server_message(body, reason or f"HTTP {status}")
    if status == 401:
        message += "; the API server refused the credentials: check the kubeconfig's user or the service account token"
    return _BY_STATUS.get(status, KubeError)(f"{what}: {message}", status)


def from_exception(what: str, e: BaseException) -> KubeError:
    """The error for a request that got no usable answer (urllib3 and socket errors)."""
    if isinstance(e, KubeError):
        return e
    status = getattr(e, "status", None)
    if isinstance(status, int) and status >= 100:  # an ApiException carrying an answer
        return from_status(what, status, getattr(e, "body", None), getattr(e, "reason", None))
    cause = getattr(e, "reason", None)  # urllib3's MaxRetryError wraps the real one
    root = cause if isinstance(cause, BaseException) else e
    if isinstance(cause, str) and cause:  # the client's ApiException(status=0) for a TLS failure
        detail = " ".join(cause.split())
    else:
        detail = f"{type(root).__name__}: {root}"
    if _is_timeout(root):
        return Timeout(f"{what}: no answer from the API server in time ({detail})")
    return Unreachable(f"{what}: cannot reach the API server ({detail}); check the kubeconfig's "
                       "server address and that the API server is up")


def _is_timeout(e: BaseException) -> bool:
    return isinstance(e, TimeoutError) or "Timeout" in type(e).__name__
