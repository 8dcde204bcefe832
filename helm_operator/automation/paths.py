"""The dotted-path grammar of the path annotations, and how a path walks the values (pure).

Place in the flow: `detect` reads ``repository.fluxcd.io/<c>``,
``registry.fluxcd.io/<c>`` and ``tag.fluxcd.io/<c>`` (COMPAT section 2) with
`parse_path_list`, follows each path through ``spec.values`` with
`resolve_path`, and hands the exact segments to `yamledit`, which writes the
scalar there. ``a.b\\.c[0].d`` names ``("a", "b.c", 0, "d")``; several
comma-separated paths name several places that all get the same value.

What this module does NOT do: read annotations, know image shapes, or touch
YAML text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Segment = str | int
PathSegments = tuple[Segment, ...]


class PathError(ValueError):
    """A dot path that cannot be parsed, or that names nothing in the values."""


def parse_dot_path(text: str) -> PathSegments:
    """``a.b\\.c[0].d`` -> ``("a", "b.c", 0, "d")``.

    A backslash makes the next character literal (``\\.`` for a dot in a key,
    ``\\,`` for a comma, ``\\[`` for a bracket); ``[N]`` indexes a list. A plain
    all-digit segment stays a string here and indexes a list only when the
    values hold a list there (gjson's ``images.0.tag``, as Flux v1 read it).
    """
    segments: list[Segment] = []
    key: list[str] = []
    pending = False  # a key has started (possibly empty so far)
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 == len(text):
                raise PathError(f"path {text!r} ends with a lone backslash")
            key.append(text[i + 1])
            pending = True
            i += 2
            continue
        if ch == ".":
            if not pending:
                raise PathError(f"path {text!r} has an empty key")
            if key:
                segments.append("".join(key))
            key, pending = [], False
            i += 1
            if i == len(text):
                raise PathError(f"path {text!r} ends with a dot")
            continue
        if ch == "[":
            close = text.find("]", i)
            number = text[i + 1:close] if close != -1 else ""
            if close == -1 or not number.isdigit():
                raise PathError(f"path {text!r}: expected [N] with N a list index at column {i + 1}")
            if key:
                segments.append("".join(key))
                key = []
            segments.append(int(number))
            pending = True  # `a[0].b` and `a[0]` are both fine, `a[0]b` is not
            i = close + 1
            if i < len(text) and text[i] not in ".[":
                raise PathError(f"path {text!r}: expected '.' or '[' after ']' at column {i + 1}")
            continue
        if ch == "]":
            raise PathError(f"path {text!r}: unmatched ']' at column {i + 1}")
        key.append(ch)
        pending = True
        i += 1
    if key:
        segments.append("".join(key))
    if not segments:
        raise PathError("empty path")
    return tuple(segments)


def parse_path_list(text: str) -> list[PathSegments]:
    """A comma-separated list of dot paths (ours: every one is written, the first is read)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    stripped = [p.strip() for p in parts]
    if any(not p for p in stripped):
        raise PathError(f"path list {text!r} has an empty entry")
    return [parse_dot_path(p) for p in stripped]


def format_dot_path(segments: Sequence[Segment]) -> str:
    """The inverse of `parse_dot_path`, for messages and logs."""
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            escaped = re.sub(r"([\\.\[\],])", r"\\\1", seg)
            out += ("." if out else "") + escaped
    return out


def resolve_path(values: Any, segments: Sequence[Segment]) -> tuple[PathSegments, Any]:
    """Follow a path through the values; returns the exact segments used and the value.

    Digit-only string segments that met a list come back as ints, so the
    writer (`yamledit`) addresses the same node the reader found.
    """
    node = values
    used: list[Segment] = []
    for seg in segments:
        if isinstance(node, Mapping):
            key = _mapping_key(node, seg)
            if key is None:
                raise PathError(f"{format_dot_path([*used, seg])} not found")
            used.append(str(seg))
            node = node[key]
        elif isinstance(node, list):
            index = seg if isinstance(seg, int) else int(seg) if seg.isdigit() else None
            if index is None or index >= len(node):
                raise PathError(f"{format_dot_path([*used, seg])} not found (a list of {len(node)} there)")
            used.append(index)
            node = node[index]
        else:
            raise PathError(f"{format_dot_path([*used, seg])} not found ({format_dot_path(used) or 'values'} is a scalar)")
    return tuple(used), node


def _mapping_key(node: Mapping[Any, Any], seg: Segment) -> Any:
    """The key of `node` a segment names; YAML may have read `1` or `true` as non-strings."""
    if isinstance(seg, int):
        return None
    if seg in node:
        return seg
    return next((k for k in node if not isinstance(k, str) and str(k) == seg), None)
