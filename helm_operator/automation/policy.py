"""Tag filters: which tags an automated image may move to, and which is newest.

Place in the flow::

    registry scan ─▶ policy picks newest allowed tag (this module, pure)
                  ─▶ YAML edit of the HelmRelease file ─▶ commit + push

This module is pure: it parses the filter a HelmRelease annotation carries
(``filter.fluxcd.io/<container>`` or ``fluxcd.io/tag.<container>``) and, given
the tags a registry scan found, picks the newest allowed one. It does no I/O,
reads no annotations and knows nothing about YAML or Git.

Grammar (``<type>:<expr>``; no known prefix means ``glob``):

``glob:<pattern>``
    Whole-string match; only ``*`` is special (any run of characters, possibly
    empty). Other characters must be tag characters ``[A-Za-z0-9_.-]``, so a
    user who writes ``1.?`` or ``{a,b}`` is told instead of matching nothing.
    Ordered by image build time (``created`` in the image config).
``semver:<constraint>``
    A Masterminds/npm-style constraint: ``~1.2``, ``^1.2``, ``1.2.x``,
    ``>=1.0 <2``, ``>=1.0, <2`` (comma = and), ``a || b``, ``1.0 - 2.0``,
    ``!=1.2.3``. Tags with or without a leading ``v`` (``1.2``, ``v1.2.3``);
    tags that are not versions are ignored. Pre-release tags (``1.3.0-rc.1``)
    are allowed only when the constraint names a pre-release somewhere
    (``>=1.3.0-0``); then every pre-release inside the range is allowed.
    Ordered by version precedence. (The constraint grammar lives in
    `semver`.)
``regexp:<re>`` / ``regex:<re>``
    Python regular expression, unanchored (``re.search``). Ordered by image
    build time.
``alphabetical:<glob>`` (ours)
    Tags matching the glob, ordered by the tag string itself (code point
    order): the lexically greatest tag is the newest. Suits ``2024-05-01.3``
    or ``main-20240501T1200`` style tags. Needs no per-tag registry requests.
``numerical:<glob>`` (ours)
    Tags matching the glob whose whole text is a non-negative decimal number
    (``42``, ``1.5``); the greatest number is the newest. Other tags are
    ignored. Needs no per-tag registry requests.

Rules common to all types:

- The tag ``latest`` is never chosen unless the filter is exactly
  ``glob:latest`` (or just ``latest``, the same filter without its prefix).
- An empty expression, an unknown type, a bad glob, constraint or regular
  expression raise :class:`InvalidFilter`, whose message is meant for the
  user; the caller reports it and matches nothing.
- Never older: :func:`choose` (and :func:`newest`) never returns a tag
  ranked below the current one, whatever the filter, and a forced release
  outside the filter is kept until a tag the filter allows ranks above it.
  The current tag is ranked by the filter's order even when the filter does
  not allow it: by version for ``semver``, by number for ``numerical``, by
  the tag text itself for ``alphabetical``, by its image build time for
  ``glob`` and ``regexp`` (so the scan must date the current tag too; see
  :func:`needs_build_time_of`). A tag ranked equal to the current one is
  returned as the current tag itself, so equal versions (``1.2.3`` /
  ``v1.2.3``) or tags of one image never flip-flop.
- When the current tag cannot be placed (the registry no longer lists it;
  it is no version, no number, or its build time could not be read) nothing
  is chosen and :class:`Choice` says why in ``held``, for the caller to
  report. Two currents are no bound at all: none (no tag written), and
  ``latest`` under a filter that does not allow it, a moving name that is
  no version to stay above.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from helm_operator.automation.semver import semver_matcher, semver_rank

__all__ = [
    "Choice",
    "FilterType",
    "InvalidFilter",
    "TagFilter",
    "TagInfo",
    "choose",
    "needs_build_time_of",
    "needs_timestamps",
    "newest",
    "newest_first",
    "normalize_filter",
    "parse_filter",
]

LATEST = "latest"


class FilterType(str, enum.Enum):
    GLOB = "glob"
    SEMVER = "semver"
    REGEXP = "regexp"
    ALPHABETICAL = "alphabetical"
    NUMERICAL = "numerical"


_PREFIXES: dict[str, FilterType] = {
    "glob": FilterType.GLOB,
    "semver": FilterType.SEMVER,
    "regexp": FilterType.REGEXP,
    "regex": FilterType.REGEXP,
    "alphabetical": FilterType.ALPHABETICAL,
    "numerical": FilterType.NUMERICAL,
}
_TIMESTAMP_ORDERED = frozenset({FilterType.GLOB, FilterType.REGEXP})


class InvalidFilter(ValueError):
    """A tag filter that cannot be parsed; ``str()`` is a user-facing message."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid tag filter {text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class TagInfo:
    """A tag found in a registry; ``created`` is the image build time when known."""

    tag: str
    created: datetime | None = None


@dataclass(frozen=True)
class TagFilter:
    """A parsed tag filter. Build one with :func:`parse_filter`."""

    type: FilterType
    expression: str
    _match: Callable[[str], bool] = field(repr=False, compare=False)

    @property
    def allows_latest(self) -> bool:
        return self.type is FilterType.GLOB and self.expression == LATEST

    def matches(self, tag: str) -> bool:
        """True when ``tag`` is allowed by this filter (``latest`` rule included)."""
        if tag == LATEST and not self.allows_latest:
            return False
        return self._match(tag)

    def __str__(self) -> str:
        return f"{self.type.value}:{self.expression}"


# ── parsing ──────────────────────────────────────────────────────────────────

_TAG_CHARS_GLOB = re.compile(r"[A-Za-z0-9_.*-]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_filter(text: str) -> TagFilter:
    """Parse ``<type>:<expr>`` (no known prefix = glob) into a :class:`TagFilter`."""
    kind, expression = _split_prefix(text)
    if not expression.strip():
        raise InvalidFilter(text, f"empty expression; use '{kind.value}:*' to allow every tag"
                            if kind is not FilterType.SEMVER else "empty semver constraint")
    builders: dict[FilterType, Callable[[str, str], Callable[[str], bool]]] = {
        FilterType.GLOB: _glob_matcher,
        FilterType.SEMVER: _semver_matcher,
        FilterType.REGEXP: _regexp_matcher,
        FilterType.ALPHABETICAL: _glob_matcher,
        FilterType.NUMERICAL: _numerical_matcher,
    }
    return TagFilter(kind, expression, builders[kind](text, expression))


def normalize_filter(pattern: str) -> str:
    """The filter as written to an annotation: ``glob:`` added when no type is given.

    Raises `InvalidFilter` (a user-facing message) for a pattern that matches nothing.
    """
    text = pattern.strip()
    parsed = parse_filter(text)
    return text if ":" in text else f"{parsed.type.value}:{parsed.expression}"


def _split_prefix(text: str) -> tuple[FilterType, str]:
    prefix, sep, rest = text.partition(":")
    if not sep:
        return FilterType.GLOB, text
    kind = _PREFIXES.get(prefix.strip().lower())
    if kind is None:
        known = ", ".join(f"{p}:" for p in _PREFIXES)
        raise InvalidFilter(text, f"unknown filter type {prefix!r}; use one of {known}")
    return kind, rest.strip() if kind is not FilterType.REGEXP else rest


def _glob_regex(text: str, pattern: str) -> re.Pattern[str]:
    if not _TAG_CHARS_GLOB.fullmatch(pattern):
        raise InvalidFilter(text, "a glob may contain only tag characters "
                                  "(letters, digits, '_', '.', '-') and '*'")
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _glob_matcher(text: str, pattern: str) -> Callable[[str], bool]:
    regex = _glob_regex(text, pattern)
    return lambda tag: regex.fullmatch(tag) is not None


def _numerical_matcher(text: str, pattern: str) -> Callable[[str], bool]:
    regex = _glob_regex(text, pattern)
    return lambda tag: regex.fullmatch(tag) is not None and _NUMBER.fullmatch(tag) is not None


def _semver_matcher(text: str, expression: str) -> Callable[[str], bool]:
    try:
        return semver_matcher(expression)
    except ValueError as e:
        raise InvalidFilter(text, str(e)) from None


def _regexp_matcher(text: str, expression: str) -> Callable[[str], bool]:
    try:
        regex = re.compile(expression)
    except re.error as e:
        raise InvalidFilter(text, f"bad regular expression: {e}") from None
    return lambda tag: regex.search(tag) is not None


# ── ordering ─────────────────────────────────────────────────────────────────

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def needs_timestamps(tag_filter: TagFilter) -> bool:
    """True when ordering needs each tag's image build time (glob, regexp)."""
    return tag_filter.type in _TIMESTAMP_ORDERED


def needs_build_time_of(tag_filter: TagFilter, current: str | None) -> bool:
    """True when :func:`choose` must know the build time of ``current`` to rank it.

    Under build-time order the current tag is compared by its image build
    time even when the filter does not allow it (a forced release), so a
    scan dates it alongside the allowed tags. No tag and an unallowed
    ``latest`` are no bound and need nothing.
    """
    return needs_timestamps(tag_filter) and bool(current) and not _unbounded(tag_filter, current)


def _unbounded(tag_filter: TagFilter, current: str | None) -> bool:
    """No current tag, or ``latest`` where it is no version to stay above."""
    return not current or (current == LATEST and not tag_filter.allows_latest)


def _rank_function(tag_filter: TagFilter, tags: list[TagInfo]) -> Callable[[str], Any]:
    """A function giving a tag's rank under the filter's order, None if unrankable.

    Ranks are defined for tags the filter does not allow too: a forced
    current tag is compared under the same order.
    """
    if tag_filter.type is FilterType.SEMVER:
        return semver_rank
    if tag_filter.type is FilterType.NUMERICAL:
        return lambda tag: Decimal(tag) if _NUMBER.fullmatch(tag) else None
    if tag_filter.type is FilterType.ALPHABETICAL:
        return lambda tag: tag
    created = {t.tag: t.created for t in tags if t.created is not None}
    return created.get


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` decided for one container.

    ``tag`` is the newest allowed tag not ranked below the current one (the
    current tag itself when the best ranks equal to it), or None: keep the
    current tag. ``held`` is set when allowed tags exist but the current tag
    cannot be compared with them; it says why, for the user, and ``tag`` is
    then None.
    """

    tag: str | None
    held: str | None = None


def choose(tag_filter: TagFilter, tags: list[TagInfo], current: str | None = None) -> Choice:
    """The newest tag the filter allows, never ranked below ``current``.

    ``tags`` are the tags the registry lists (with build times where the
    order needs them). For build-time order, allowed tags without a known
    ``created`` time rank below every dated tag; ties go to the greater tag
    string.
    """
    rank = _rank_function(tag_filter, tags)
    undated_last = needs_timestamps(tag_filter)
    ranked = [(key, t.tag) for t in tags if tag_filter.matches(t.tag)
              and (key := _candidate_key(rank(t.tag), undated_last)) is not None]
    if not ranked:
        return Choice(None)
    best_key, best = max(ranked)
    if current is None or _unbounded(tag_filter, current):
        return Choice(best)
    if best == current:
        return Choice(current)
    if current not in {t.tag for t in tags}:
        return Choice(None, f"the current tag {current!r} is no longer in the registry, so it cannot be "
                            f"compared with the tags {tag_filter} allows; the release keeps it until "
                            f"{current!r} is pushed again or a tag is set by hand")
    current_rank = rank(current)
    if current_rank is None:
        return Choice(None, f"the current tag {current!r} {_why_unranked(tag_filter)}, so {tag_filter} "
                            "cannot tell whether a tag it allows is newer; the release keeps it until "
                            "a tag is set by hand")
    current_key = (True, current_rank)
    if best_key < current_key:
        return Choice(None)
    return Choice(current if best_key == current_key else best)


def newest(tag_filter: TagFilter, tags: list[TagInfo], current: str | None = None) -> str | None:
    """:func:`choose`'s tag: the newest allowed one not below ``current``, else None."""
    return choose(tag_filter, tags, current).tag


def newest_first(tag_filter: TagFilter, tags: Sequence[TagInfo], limit: int) -> list[str]:
    """Up to `limit` allowed tags, newest first under the filter's own order (for listings)."""
    remaining = list(tags)
    out: list[str] = []
    while remaining and len(out) < limit:
        best = newest(tag_filter, remaining)
        if best is None:
            break
        out.append(best)
        remaining = [t for t in remaining if t.tag != best]
    return out


def _why_unranked(tag_filter: TagFilter) -> str:
    if tag_filter.type is FilterType.SEMVER:
        return "is not a version"
    if tag_filter.type is FilterType.NUMERICAL:
        return "is not a number"
    return "has no build time the registry could give (its image config could not be read or has no 'created')"


def _candidate_key(rank: Any, undated_last: bool) -> tuple[bool, Any] | None:
    """(has a rank, rank); undated tags still compete under build-time order, below dated ones."""
    if rank is None:
        return (False, _EPOCH) if undated_last else None
    return (True, rank)
