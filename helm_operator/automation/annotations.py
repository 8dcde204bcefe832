"""Add, change and remove ``metadata.annotations`` of one object in a YAML file, in place (pure).

Place in the flow: the CLI's policy commands (`automate`, `lock`, `policy`, ...)
─▶ **annotations** ─▶ commit. Like `yamledit`, this is a ``str -> str``
function that keeps the rest of the file byte for byte:

- a key that exists gets its value replaced in place (`yamledit.set_values`,
  which keeps the quoting style);
- a new key becomes a ``key: "value"`` line after the last annotation, with
  the indentation of the existing ones; with no ``annotations:`` yet, one is
  added as the last key of ``metadata`` (indented like its siblings, entries
  one indentation step deeper);
- a removed key loses its lines (key, value and the comment on them); when
  every annotation goes, the ``annotations:`` line goes too.

Both texts are parsed again afterwards; if anything but the intended
annotations differs, `EditError` is raised and nothing must be committed.
Flow-style metadata or annotations (``{...}``) are only edited in place
(existing keys); adding or removing keys there is refused.

What this module does NOT do: no I/O, no Git, no choice of annotations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from helm_operator import boundedyaml
from helm_operator.automation import yamledit
from helm_operator.automation.yamledit import EditError

ANNOTATIONS_PATH = ("metadata", "annotations")


def edit_annotations(text: str, kind: str, namespace: str, name: str, *,
                     set: Mapping[str, str] | None = None, remove: Iterable[str] = (),  # noqa: A002
                     default_namespace: str = "default",
                     limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> str:
    """Set the annotations in `set` and delete those in `remove` on ``kind namespace/name``.

    Returns `text` unchanged when the annotations already are as asked.
    Raises `EditError` when the object is missing or the edit cannot be made safely.
    """
    wanted = dict(set or {})
    dropped = [k for k in dict.fromkeys(remove) if k not in wanted]
    for key, value in wanted.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise EditError(f"annotation {key!r}: keys and values must be non-empty strings")

    documents = yamledit._compose_all(text, limits)
    index = yamledit._find_document(documents, kind, namespace, name, default_namespace)
    before = _annotation_nodes(documents[index])
    existing = {k: v for k, v in before.items() if k in wanted}
    result = text
    if existing:
        result = yamledit.set_values(result, kind, namespace, name,
                                     [((*ANNOTATIONS_PATH, k), wanted[k]) for k in existing],
                                     default_namespace=default_namespace, limits=limits)
    to_add = {k: v for k, v in wanted.items() if k not in before}
    to_remove = [k for k in dropped if k in before]
    if to_add or to_remove:
        documents = yamledit._compose_all(result, limits)
        result = _line_edit(result, documents[index], to_add, to_remove)
    if result == text:
        return text
    _verify(text, result, index, wanted, dropped)
    return result


# --- locating --------------------------------------------------------------------


def _annotation_nodes(document: Node | None) -> dict[str, tuple[ScalarNode, Node]]:
    annotations = _child(_child(document, "metadata"), "annotations")
    if not isinstance(annotations, MappingNode):
        return {}
    return {k.value: (k, v) for k, v in annotations.value if isinstance(k, ScalarNode)}


def _pair(node: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    return next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)


def _child(node: Node | None, key: str) -> Node | None:
    pair = _pair(node, key)
    return pair[1] if pair else None


def _end_index(node: Node) -> int:
    """Where the text of a node ends (block collections: where their last value ends)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _end_index(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _end_index(node.value[-1])
    return node.end_mark.index


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _next_line(text: str, index: int) -> int:
    """The start of the line after the one `index` is on (a node ending at a line start: that line)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline == -1 else newline + 1


def _eol(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


# --- editing lines -----------------------------------------------------------------


def _line_edit(text: str, document: Node | None, to_add: Mapping[str, str], to_remove: list[str]) -> str:
    metadata_pair = _pair(document, "metadata")
    if metadata_pair is None or not isinstance(metadata_pair[1], MappingNode):
        raise EditError("the object has no metadata map to hold annotations")
    metadata_key, metadata = metadata_pair
    assert isinstance(metadata, MappingNode)  # checked above; narrows for the type checker
    if metadata.flow_style:
        raise EditError("metadata is written in flow style ({...}); add or remove annotations by hand")
    annotations_pair = _pair(metadata, "annotations")
    annotations = annotations_pair[1] if annotations_pair else None
    if isinstance(annotations, MappingNode) and annotations.flow_style and annotations.value:
        raise EditError("metadata.annotations is written in flow style ({...}); add or remove keys by hand")
    if annotations is not None and not isinstance(annotations, (MappingNode, ScalarNode)):
        raise EditError("metadata.annotations is not a map")
    if isinstance(annotations, ScalarNode) and _construct(annotations) is not None:
        raise EditError("metadata.annotations is not a map")

    eol = _eol(text)
    splices: list[tuple[int, int, str]] = []
    entries = annotations.value if isinstance(annotations, MappingNode) else []
    remaining = [(k, v) for k, v in entries if not (isinstance(k, ScalarNode) and k.value in to_remove)]

    if annotations_pair is not None and entries and not remaining and not to_add:
        # every annotation goes: drop the `annotations:` key with them
        key = annotations_pair[0]
        assert annotations is not None
        splices.append(_pair_span(text, key, annotations))
    else:
        for key, value in entries:
            if isinstance(key, ScalarNode) and key.value in to_remove:
                splices.append(_pair_span(text, key, value))
        if to_add:
            splices.append(_insertion(text, metadata_key, metadata, annotations_pair, to_add, eol))
    ordered = sorted(splices)
    for (_, end_a, _), (start_b, _, _) in zip(ordered, ordered[1:]):
        if start_b < end_a:
            raise EditError("overlapping annotation edits; refusing to edit")
    for start, end, replacement in reversed(ordered):
        text = text[:start] + replacement + text[end:]
    return text


def _pair_span(text: str, key: Node, value: Node) -> tuple[int, int, str]:
    """The whole lines of one block-map pair, checked to hold nothing else."""
    start = _line_start(text, key.start_mark.index)
    if text[start:key.start_mark.index].strip():
        raise EditError(f"annotation {getattr(key, 'value', '?')!r} does not start its line; remove it by hand")
    value_end = _end_index(value)
    end = _next_line(text, value_end)
    rest = text[value_end:end].strip()
    if rest and not rest.startswith("#"):
        raise EditError(f"annotation {getattr(key, 'value', '?')!r} shares its line with other text; "
                        "remove it by hand")
    return start, end, ""


def _insertion(text: str, metadata_key: ScalarNode, metadata: MappingNode,
               annotations_pair: tuple[ScalarNode, Node] | None, to_add: Mapping[str, str], eol: str) -> tuple[int, int, str]:
    """Where and what to insert for the new keys."""
    child_column = metadata.value[0][0].start_mark.column if metadata.value else metadata_key.start_mark.column + 2
    step = max(1, child_column - metadata_key.start_mark.column)
    entries = annotations_pair[1].value if annotations_pair and isinstance(annotations_pair[1], MappingNode) else []
    if entries:
        # after the last annotation (kept or removed), indented like the first one
        column = entries[0][0].start_mark.column
        at = _next_line(text, _end_index(entries[-1][1]))
        return at, at, _lead(text, at, eol) + _lines(to_add, column, eol)
    if annotations_pair is not None:
        # `annotations:` with no entries (null, `~` or `{}`): clear the value, entries below the key
        key, value = annotations_pair
        colon = text.find(":", key.end_mark.index)
        if colon == -1:
            raise EditError("cannot find the ':' after 'annotations'")
        start = colon + 1
        value_end = max(value.end_mark.index, start)   # drop ` ~` / ` null` / ` {}`, keep a comment
        at = _next_line(text, value_end)
        column = key.start_mark.column + step
        return start, at, _value_replacement(text[value_end:at], eol) + _lines(to_add, column, eol)
    # no annotations yet: add them as the last key of metadata
    at = _next_line(text, _end_index(metadata))
    block = " " * child_column + "annotations:" + eol + _lines(to_add, child_column + step, eol)
    return at, at, _lead(text, at, eol) + block


def _value_replacement(rest_of_line: str, eol: str) -> str:
    """What stays of the `annotations:` line after its empty value: a comment and the line end."""
    body = rest_of_line.rstrip("\r\n")
    ending = rest_of_line[len(body):] or eol
    return (body if body.strip() else "") + ending


def _lead(text: str, at: int, eol: str) -> str:
    """A line break first when inserting at the very end of a file without one."""
    return eol if at == len(text) and text and not text.endswith("\n") else ""


def _lines(to_add: Mapping[str, str], column: int, eol: str) -> str:
    return "".join(f"{' ' * column}{_render_key(k)}: {json.dumps(v, ensure_ascii=False)}{eol}"
                   for k, v in to_add.items())


def _render_key(key: str) -> str:
    return key if yamledit._plain_reads_back(key, in_flow=False) else json.dumps(key, ensure_ascii=False)


def _construct(node: Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


# --- verifying ---------------------------------------------------------------------


def _verify(before: str, after: str, index: int, wanted: Mapping[str, str], dropped: list[str]) -> None:
    try:  # both texts passed boundedyaml.check in _compose_all
        old_docs = list(yaml.load_all(before, Loader=yamledit._FAST_LOADER))
        new_docs = list(yaml.load_all(after, Loader=yamledit._FAST_LOADER))
    except yaml.YAMLError as e:
        raise EditError(f"the edited file does not parse: {e}") from e
    if len(old_docs) != len(new_docs):
        raise EditError(f"the edit changed the number of documents ({len(old_docs)} -> {len(new_docs)})")
    expected = copy.deepcopy(old_docs[index])
    metadata = expected.setdefault("metadata", {})
    had = isinstance(metadata.get("annotations"), dict) and bool(metadata["annotations"])
    annotations = dict(metadata.get("annotations") or {})
    for key in dropped:
        annotations.pop(key, None)
    annotations.update(wanted)
    if annotations:
        metadata["annotations"] = annotations
    elif had:
        metadata.pop("annotations", None)
    for i, (old, new) in enumerate(zip(old_docs, new_docs)):
        want = expected if i == index else old
        differences = list(yamledit._differences(want, new, ()))
        if differences:
            shown = ", ".join(yamledit._dotted(p) or "<document>" for p in differences[:5])
            raise EditError(f"the annotation edit would change more than asked (document {i + 1}: {shown}); "
                            "not committing")
