"""Semver tag filters (``semver:<constraint>``): which tags a constraint allows, and their order.

Place in the flow: `policy.parse_filter` hands the expression of a
``semver:`` filter to `semver_matcher` and ranks tags with `semver_rank`.
A Masterminds/npm-style constraint (``~1.2``, ``^1.2``, ``1.2.x``,
``>=1.0 <2``, ``>=1.0, <2``, ``a || b``, ``1.0 - 2.0``, ``!=1.2.3``) is checked
comparator by comparator (node-semver silently drops junk) and then handed to
node-semver. Tags are versions with or without a leading ``v``; pre-releases
count only when the constraint names one.

A bad constraint raises `ValueError` with the reason, which `policy` turns
into its `InvalidFilter`. What this module does NOT do: the other filter
types, the ``latest`` rule, or choosing a tag (`policy`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

import nodesemver

# A tag that is a version: Masterminds' loose form (1, 1.2, 1.2.3, optional v).
_VERSION_TAG = re.compile(
    r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_PART = r"(?:0|[1-9]\d*|[xX*])"
_COMPARATOR = re.compile(
    rf"(?P<op>~>|~|\^|>=|<=|>|<|=|!=)?v?{_PART}(?:\.{_PART}){{0,2}}"
    r"(?P<pre>-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z.-]+)?")
_OP_SPACE = re.compile(r"(~>|~|\^|>=|<=|!=|>|<|=)\s+")


@dataclass(frozen=True)
class _Branch:
    """One `||` alternative: an npm range plus the versions `!=` excludes."""

    range: str
    excluded: frozenset[str]


@dataclass(frozen=True)
class _Constraint:
    branches: tuple[_Branch, ...]
    prerelease: bool

    def allows(self, version: str) -> bool:
        return any(version not in b.excluded and nodesemver.satisfies(
            version, b.range, loose=True, include_prerelease=self.prerelease) for b in self.branches)


def parse_version(tag: str) -> str | None:
    """The normalised ``MAJOR.MINOR.PATCH[-PRE]`` of a version tag, else None."""
    m = _VERSION_TAG.fullmatch(tag)
    if m is None:
        return None
    major, minor, patch, pre = m.groups()
    return f"{major}.{minor or 0}.{patch or 0}" + (f"-{pre}" if pre else "")


def _parse_constraint(expression: str) -> _Constraint:
    branches: list[_Branch] = []
    prerelease = False
    for alternative in expression.split("||"):
        words = _OP_SPACE.sub(r"\1", alternative.replace(",", " ")).split()
        if not words:
            raise ValueError("empty alternative in semver constraint")
        kept, excluded = _check_comparators(words)
        prerelease = prerelease or any("-" in w and w != "-" for w in words)
        branches.append(_Branch(" ".join(kept) or "*", frozenset(excluded)))
    for branch in branches:
        try:
            nodesemver.make_range(branch.range, loose=True)
        except ValueError as e:
            raise ValueError(f"bad semver constraint: {e}") from None
    return _Constraint(tuple(branches), prerelease)


def _check_comparators(words: list[str]) -> tuple[list[str], list[str]]:
    """Validate each comparator (node-semver silently drops junk) and split off `!=`."""
    kept: list[str] = []
    excluded: list[str] = []
    for i, word in enumerate(words):
        if word == "-" and 0 < i < len(words) - 1:   # hyphen range `1.0 - 2.0`
            kept.append(word)
            continue
        m = _COMPARATOR.fullmatch(word)
        if m is None:
            raise ValueError(f"bad semver constraint: {word!r} is not a comparison "
                             "such as '>=1.2', '~1.2', '^1.2' or '1.2.x'")
        if m.group("op") == "!=":
            version = parse_version(word[2:])
            if version is None:
                raise ValueError(f"bad semver constraint: {word!r} needs a full version")
            excluded.append(version)
        else:
            kept.append(word.replace("~>", "~", 1))
    return kept, excluded


def semver_matcher(expression: str) -> Callable[[str], bool]:
    """Whether a tag is a version the constraint allows; `ValueError` (the reason) for a bad one."""
    constraint = _parse_constraint(expression)

    def match(tag: str) -> bool:
        version = parse_version(tag)
        return version is not None and constraint.allows(version)
    return match


@functools.total_ordering
class _SemverKey:
    """Version precedence as a sort key (build metadata ignored)."""

    __slots__ = ("version",)

    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _SemverKey) -> bool:
        return bool(nodesemver.compare(self.version, other.version, loose=True) < 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SemverKey) and nodesemver.compare(
            self.version, other.version, loose=True) == 0

    def __hash__(self) -> int:
        return hash(self.version)


def semver_rank(tag: str) -> _SemverKey | None:
    """A version tag's precedence as a sort key; None for a tag that is no version."""
    version = parse_version(tag)
    return _SemverKey(version) if version is not None else None
