"""Rewrite scalars of one object in a YAML file, in place, byte for byte elsewhere (pure).

Place in the flow: registry scan ─▶ policy ─▶ detect ─▶ **yamledit** ─▶ commit.
`detect.updates_for` says which scalars get which values; `set_values` finds
the object's document in the file (by kind, namespace and name) and splices
each new scalar over the old one at the character offsets the YAML parser
reports, so ``git diff`` shows only those values. Comments, quoting style,
indentation, key order, flow style, line endings, document markers and the
other documents are never re-emitted, so they cannot change.

Safety net: after splicing, both texts are parsed again and compared; if
anything but the intended values differs (an anchor shared with another
value, a quoting mistake), `EditError` is raised and the caller must not
commit. Setting a value to what it already is returns the input unchanged.

Locating and verifying both use PyYAML (YAML 1.1, like the Go YAML that
Kubernetes and Helm read these files with), so "the value there" means the
same thing in both steps. Before either, the text passes `boundedyaml.check`
(size, nesting, alias expansion): the locating parser and the verification
walk both recurse and would follow every alias.

What this module does NOT do: no file or Git I/O, no choice of values, no
re-serialisation of YAML, no edits through aliases, merge keys (``<<``) or
block scalars (``|``, ``>``): those are refused with an `EditError`.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from helm_operator import boundedyaml

Segment = str | int
Update = tuple[Sequence[Segment], Any]

# Conservative plain scalars: what a tag or image reference looks like. Anything
# else gets quoted; the re-parse below is the final judge either way.
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./@:+=~-]*", re.ASCII)
_PROPERTIES = re.compile(r"(?:[&!]\S*(?:\s+|$))*")  # an anchor and/or tag before a scalar


class EditError(Exception):
    """The edit cannot be made safely; nothing should be committed."""


@dataclass(frozen=True)
class _Located:
    """A scalar node found by a path, with what the re-parse check needs."""

    node: ScalarNode
    in_flow: bool  # inside `{...}` or `[...]`: plain scalars may not hold `,[]{}:`
    loaded_path: tuple[Any, ...]  # the path with keys as PyYAML constructs them (1, True, ...)


def set_values(text: str, kind: str, namespace: str, name: str, updates: Iterable[Update],
               *, default_namespace: str = "default",
               limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> str:
    """Set scalars of the object ``kind namespace/name`` in `text`; everything else stays.

    `updates` are ``(path, value)`` pairs, paths from the document root
    (``("spec", "values", "image", "tag")``, ints index lists). A document
    without ``metadata.namespace`` counts as being in `default_namespace`,
    where the syncer would apply it. Values keep the scalar's quoting style;
    a string that would read as something else unquoted (``1.0``, ``true``)
    is double-quoted. A text over `limits` is refused with an `EditError`.
    """
    wanted = _dedupe(updates)
    documents = _compose_all(text, limits)
    index = _find_document(documents, kind, namespace, name, default_namespace)
    splices: list[tuple[int, int, str]] = []
    loaded: list[tuple[tuple[Any, ...], Any]] = []
    for path, value in wanted:
        located = _locate(documents[index], path)
        loaded.append((located.loaded_path, value))
        if _same(_construct(located.node), value):
            continue
        splices.append(_splice_for(text, located, value, path))
    if not splices:
        return text
    result = _apply(text, splices)
    _verify(text, result, index, loaded)
    return result


def _dedupe(updates: Iterable[Update]) -> list[tuple[tuple[Segment, ...], Any]]:
    """One write per path; the same path twice with different values is a caller bug."""
    seen: dict[tuple[Segment, ...], Any] = {}
    for path, value in updates:
        key = tuple(path)
        if not key:
            raise EditError("empty path: only scalars below the document root can be set")
        if isinstance(value, (dict, list, tuple, set)):
            raise EditError(f"{_dotted(key)}: only scalar values can be written, not {type(value).__name__}")
        if key in seen and not _same(seen[key], value):
            raise EditError(f"{_dotted(key)} is set twice, to {seen[key]!r} and {value!r}")
        seen[key] = value
    return list(seen.items())


# The verification only compares values, so libyaml may do it (three times
# faster); locating scalars needs the pure-Python parser's character offsets.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_all(text: str, limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents
                 ) -> list[Node | None]:
    try:
        boundedyaml.check(text, "the file", limits)
    except boundedyaml.LimitExceeded as e:
        raise EditError(f"refusing to edit: {e.reason}") from None
    except boundedyaml.YamlError:
        pass  # the composer below says where, in the words the edit errors use
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        context = ""
        if e.context and e.context_mark and e.context_mark is not mark:
            context = f" ({e.context} started at line {e.context_mark.line + 1})"
        raise EditError(f"broken YAML at {where}: {e.problem or e.context}{context}") from e
    except yaml.YAMLError as e:
        raise EditError(f"broken YAML: {e}") from e


def _find_document(documents: Sequence[Node | None], kind: str, namespace: str, name: str,
                   default_namespace: str) -> int:
    """The index of the one document describing the object; none or several is an error."""
    matches = []
    for i, doc in enumerate(documents):
        if not isinstance(doc, MappingNode):
            continue
        metadata = _child(doc, "metadata")
        doc_ns = _scalar_text(_child(metadata, "namespace")) if isinstance(metadata, MappingNode) else None
        if (_scalar_text(_child(doc, "kind")) == kind
                and isinstance(metadata, MappingNode)
                and _scalar_text(_child(metadata, "name")) == name
                and (doc_ns or default_namespace) == namespace):
            matches.append(i)
    if not matches:
        raise EditError(f"no {kind} {namespace}/{name} in the file")
    if len(matches) > 1:
        raise EditError(f"{len(matches)} documents in the file are {kind} {namespace}/{name}")
    return matches[0]


def _child(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)


def _scalar_text(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) and node.value else None


def _locate(document: Node | None, path: Sequence[Segment]) -> _Located:
    """Walk the composed nodes along `path` to a scalar, refusing what cannot be spliced."""
    node = document
    in_flow = False
    loaded: list[Any] = []
    for depth, seg in enumerate(path):
        here = _dotted(path[:depth + 1])
        if isinstance(node, MappingNode):
            in_flow = in_flow or bool(node.flow_style)
            pairs = [(k, v) for k, v in node.value
                     if isinstance(k, ScalarNode) and not isinstance(seg, int) and k.value == str(seg)]
            if not pairs:
                merged = any(isinstance(k, ScalarNode) and k.tag == "tag:yaml.org,2002:merge" for k, _ in node.value)
                hint = " (it may come from a merge key `<<`, which is not edited)" if merged else ""
                raise EditError(f"path {here} not found{hint}")
            if len(pairs) > 1:
                raise EditError(f"path {here}: the key appears {len(pairs)} times in one map")
            key, child = pairs[0]
            if child.start_mark.index < key.end_mark.index:
                raise EditError(f"path {here} is an alias (*name) of a value elsewhere; refusing to edit it")
            loaded.append(_construct(key))
        elif isinstance(node, SequenceNode):
            in_flow = in_flow or bool(node.flow_style)
            index = seg if isinstance(seg, int) else int(seg) if seg.isdigit() else None
            if index is None or index >= len(node.value):
                raise EditError(f"path {here} not found (the list there has {len(node.value)} items)")
            child = node.value[index]
            if child.start_mark.index < node.start_mark.index:
                raise EditError(f"path {here} is an alias (*name) of a value elsewhere; refusing to edit it")
            loaded.append(index)
        else:
            raise EditError(f"path {here} not found: {_dotted(path[:depth]) or 'the document'} is not a map or list")
        node = child
    if not isinstance(node, ScalarNode):
        raise EditError(f"path {_dotted(path)} is a {'map' if isinstance(node, MappingNode) else 'list'}, not a scalar")
    if node.style in ("|", ">"):
        raise EditError(f"path {_dotted(path)} is a block scalar ({node.style}); refusing to rewrite it")
    return _Located(node, in_flow, tuple(loaded))


def _construct(node: Node) -> Any:
    """The value PyYAML makes of one node (a key or a scalar)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _splice_for(text: str, located: _Located, value: Any, path: Sequence[Segment]) -> tuple[int, int, str]:
    """(start, end, replacement) covering only the scalar itself, after any anchor or tag.

    An empty scalar (``tag:`` meaning null) has no text: the value is inserted
    after the indicator, with the space YAML needs there.
    """
    node = located.node
    start, end = node.start_mark.index, node.end_mark.index
    properties = _PROPERTIES.match(text[start:end])
    start += properties.end() if properties else 0
    replacement = render_scalar(value, node.style, located.in_flow)
    if start == end and (start == 0 or not text[start - 1].isspace()):
        replacement = " " + replacement
    if start > end:
        raise EditError(f"path {_dotted(path)}: could not find the scalar's text")
    return start, end, replacement


def render_scalar(value: Any, style: str | None, in_flow: bool = False) -> str:
    """The YAML text for `value`, in the original `style` (None plain, ``'``, ``"``) where possible.

    Non-strings are written plain (a quoted ``5`` would become a string).
    """
    if not isinstance(value, str):
        return _render_plain_non_string(value)
    if style == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if style is None and _plain_reads_back(value, in_flow):
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _plain_reads_back(value: str, in_flow: bool) -> bool:
    """Whether `value` unquoted is read back as this very string."""
    if not _PLAIN_SAFE.fullmatch(value) or value.endswith(":") or (in_flow and ":" in value):
        return False
    try:
        return bool(yaml.safe_load(value) == value)
    except yaml.YAMLError:
        return False


def _render_plain_non_string(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=math.inf)
    except yaml.YAMLError as e:
        raise EditError(f"cannot write {value!r} as a YAML scalar") from e
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _apply(text: str, splices: list[tuple[int, int, str]]) -> str:
    """Replace the spans, last first so earlier offsets stay valid."""
    ordered = sorted(splices)
    for (_, end_a, _), (start_b, _, _) in zip(ordered, ordered[1:]):
        if start_b < end_a:
            raise EditError("two paths point at overlapping text; refusing to edit")
    for start, end, replacement in reversed(ordered):
        text = text[:start] + replacement + text[end:]
    return text


def _verify(before: str, after: str, index: int, updates: list[tuple[tuple[Any, ...], Any]]) -> None:
    """Parse both texts; only the intended values of the one document may differ."""
    try:
        old_docs = list(yaml.load_all(before, Loader=_FAST_LOADER))
        new_docs = list(yaml.load_all(after, Loader=_FAST_LOADER))
    except yaml.YAMLError as e:
        raise EditError(f"the edited file does not parse: {e}") from e
    if len(old_docs) != len(new_docs):
        raise EditError(f"the edit changed the number of documents ({len(old_docs)} -> {len(new_docs)})")
    expected = copy.deepcopy(old_docs[index])
    for path, value in updates:
        _assign(expected, path, value)
    for i, (old, new) in enumerate(zip(old_docs, new_docs)):
        want = expected if i == index else old
        differences = list(_differences(want, new, ()))
        if differences:
            shown = ", ".join(_dotted(p) or "<document>" for p in differences[:5])
            raise EditError(f"the edit would change more than asked (document {i + 1}: {shown}); not committing")


def _assign(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    node = doc
    for seg in path[:-1]:
        node = node[seg]
    node[path[-1]] = value


def _differences(a: Any, b: Any, path: tuple[Any, ...]) -> Iterable[tuple[Any, ...]]:
    """Paths where two parsed documents differ (NaN equals NaN; types must match)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            if key not in a or key not in b:
                yield (*path, key)
            else:
                yield from _differences(a[key], b[key], (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, (*path, i))
    elif not _same(a, b):
        yield path


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type: "1" is not 1, True is not 1, NaN is NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _dotted(path: Sequence[Any]) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int) and not isinstance(seg, bool):
            out += f"[{seg}]"
        else:
            out += ("." if out else "") + str(seg).replace(".", "\\.")
    return out
