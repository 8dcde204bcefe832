"""The registry client's one error tree; every failure leaves as one of these.

Place in the flow: raised by `transport` (HTTP status, connection, auth) and
`client` (answers it cannot read); caught by the automator, which reports it
on the HelmReleases using the image, and by the CLI, which prints it. Foreign
errors (aiohttp, JSON) are translated at the boundary with ``raise ... from``::

    RegistryError                 what failed, for which image, what to do
     ├── RegistryUnavailable      connection refused/reset, timeout, 5xx (transient)
     │    └── RateLimited         still 429 after the retries
     ├── AuthenticationFailed     401: missing or wrong credentials, token refused
     ├── AccessDenied             403: credentials lack pull access
     ├── NotFound                 404: no such repository, tag or blob
     └── InvalidResponse          an answer we cannot read (JSON, media type, header)

Messages never hold credentials: URLs in them pass `redact_text`.
"""

from __future__ import annotations

from helm_operator.automation.imageref import ImageRepo
from helm_operator.redaction import redact_text


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


def credentials_hint(repo: ImageRepo) -> str:
    return (f"add credentials for {repo.registry} to the docker config or the "
            "kubernetes.io/dockerconfigjson Secret the operator reads")
