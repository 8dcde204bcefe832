"""Image references: the one parser of ``[host[:port]/]path[:tag][@digest]`` (pure).

Place in the flow: everything that names an image goes through here. `detect`
splits the references it finds in values (`parse_image_ref`, kept as written:
``nginx`` stays ``nginx``); the registry client turns a repository into the
registry host to call and the path there (`parse_image_repo`, normalised as
Docker does: ``nginx`` is ``docker.io/library/nginx``); the CLI compares an
``--update-image`` with the images in values (`same_repository`).

What this module does NOT do: talk to a registry, read annotations, or know
where in the values an image lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<repository>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_TAG_ONLY = re.compile(_TAG, re.ASCII)


@dataclass(frozen=True)
class ImageRef:
    """An image reference split as Docker does: ``[host[:port]/]path[:tag][@digest]``."""

    repository: str  # everything before the tag, host included when written: "localhost:5000/team/app"
    tag: str = ""  # "" when none is written
    digest: str = ""  # "sha256:..." or ""

    @property
    def domain(self) -> str:
        """The registry host as written, or "" (Docker Hub) when the first part is not a host."""
        first, slash, _ = self.repository.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            return first
        return ""

    @property
    def path(self) -> str:
        """The repository without its registry host."""
        domain = self.domain
        return self.repository[len(domain) + 1:] if domain else self.repository

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository at another tag; a digest is dropped, it would pin the old image."""
        return ImageRef(self.repository, tag, "")

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_image_ref(text: str) -> ImageRef:
    """Split a reference; `ValueError` when the text is not one (chart values hold all sorts)."""
    match = _REFERENCE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an image reference")
    return ImageRef(match["repository"], match["tag"] or "", match["digest"] or "")


def is_tag(text: object) -> bool:
    """Whether `text` is a tag as the registry API allows it."""
    return isinstance(text, str) and _TAG_ONLY.fullmatch(text) is not None


def check_tag(tag: str) -> str:
    """A tag as the registry API allows it; anything else would corrupt the values."""
    if not is_tag(tag):
        raise ValueError(f"{tag!r} is not a valid image tag")
    return tag


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

    A trailing ``:tag`` or ``@digest`` is dropped (any digest: only the
    repository is asked for); Docker Hub's other host names are folded
    into ``docker.io``.
    """
    try:
        ref = parse_image_ref(reference.strip().split("@", 1)[0])
    except ValueError:
        raise ValueError(f"not an image repository: {reference!r}") from None
    registry = ref.domain or DOCKER_HUB
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    path = ref.path
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageRepo(registry, path)


def same_repository(a: str, b: str) -> bool:
    """``nginx`` is ``docker.io/library/nginx``; otherwise compare as written."""
    try:
        return parse_image_repo(a) == parse_image_repo(b)
    except ValueError:
        return a == b
