"""Load YAML that comes from users, within limits: size, nesting, alias expansion.

Place in the flow: the bottom of the house, beside `redaction`; it imports
nothing from the package. Every YAML text a user controls goes through here
before anything walks it: values (`valuesFrom` sources and, after the API
server decoded them, inline `spec.values` via `check_tree`), chart files
(Chart.yaml, a Helm repository's index.yaml), every manifest file the syncer
reads from Git, the syncer's config, and the HelmRelease files image
automation edits.

Why a scan before the load: PyYAML builds an alias (``*name``) as a shared
reference, so a 500-byte "billion laughs" loads in microseconds and only
explodes later, in whatever walks it (deepcopy, json.dumps, a merge, the
kubernetes client). And nesting that PyYAML or our own code walks
recursively ends in RecursionError. So `check` makes one linear pass over
the parser's events, with an explicit stack (no recursion) and, per anchor,
the size and height of what it names, and refuses the text before any object
is built when:

- the text is larger than ``max_bytes``;
- maps and lists nest deeper than ``max_depth`` (also through aliases);
- the nodes (maps, lists, scalars) counted with every alias expanded exceed
  ``max_nodes``;
- the scalar text, with every alias expanded, exceeds ``max_bytes`` (without
  aliases it never can: only an alias repeats text);
- an alias refers to a node that contains it (a cycle).

Only then is the text loaded, with libyaml (``CSafeLoader``) where available.
The work of both passes is linear in the text, which `max_bytes` bounds. The
cyclic garbage collector is paused while a large text is loaded: its passes
over millions of fresh objects cost more than the parse itself (4x on a
20 MB index.yaml) and hold the GIL meanwhile.

Errors: `YamlError` (invalid YAML) and its subclass `LimitExceeded`, whose
messages name the source the caller gave, the limit and the flag that raises
it. Callers parse off the event loop (``asyncio.to_thread``): a text at the
limits takes seconds, not microseconds.

What this module does NOT do: read files or URLs, or decide what a failure
means for the caller (a status, a sync error, a skipped file).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

MiB = 1024 * 1024

# Defaults. Measured on real files (9 569 YAML files of Kubernetes, Helm and
# friends, CRDs of up to 470 KB among them): the deepest nests 28 levels, the
# largest has 25 000 nodes; a 20 MB index.yaml has 1.2 million nodes.
DEFAULT_MAX_BYTES = 16 * MiB
DEFAULT_MAX_DEPTH = 128
# Files the syncer applies: parsed and applied off the event loop; a bundle of
# CRDs of several MB has a few hundred thousand nodes.
DEFAULT_MAX_NODES = 1_000_000
# Values: the operator merges and digests them on its event loop, which costs
# about 0.55 ms per 1000 nodes (150 ms at this limit); chart default values
# files have a few thousand.
DEFAULT_VALUES_MAX_NODES = 250_000
DEFAULT_CHART_MAX_BYTES = 64 * MiB
DEFAULT_CHART_MAX_NODES = 10_000_000

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseLoader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar a string
_GC_PAUSE_BYTES = 1 * MiB


@dataclass(frozen=True)
class Limits:
    """How much YAML one source may hold, and the flags that raise each limit."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES
    bytes_flag: str = "--yaml-max-bytes"
    depth_flag: str = "--yaml-max-depth"
    nodes_flag: str = "--yaml-max-nodes"


@dataclass(frozen=True)
class YamlLimits:
    """The operator's limits: user documents (values, HelmRelease files), and chart files (tens of MB)."""

    documents: Limits = Limits(max_nodes=DEFAULT_VALUES_MAX_NODES)
    charts: Limits = Limits(max_bytes=DEFAULT_CHART_MAX_BYTES, max_nodes=DEFAULT_CHART_MAX_NODES,
                            bytes_flag="--chart-yaml-max-bytes", nodes_flag="--chart-yaml-max-nodes")

    @classmethod
    def from_flags(cls, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
                   max_nodes: int = DEFAULT_VALUES_MAX_NODES, chart_max_bytes: int = DEFAULT_CHART_MAX_BYTES,
                   chart_max_nodes: int = DEFAULT_CHART_MAX_NODES) -> YamlLimits:
        default = cls()
        return cls(
            documents=Limits(max_bytes, max_depth, max_nodes),
            charts=Limits(chart_max_bytes, max_depth, chart_max_nodes, default.charts.bytes_flag,
                          default.charts.depth_flag, default.charts.nodes_flag),
        )


DEFAULT_LIMITS = YamlLimits()


@dataclass
class Budget:
    """Nodes and text spent so far by the parts of one source parsed one by one.

    The syncer parses each document of a file on its own (so that one broken
    document does not hide the others); passing one `Budget` to each call
    makes the node and text limits hold for the file as a whole.
    """

    nodes: int = 0
    text: int = 0


class YamlError(ValueError):
    """A text we will not use: `reason` says why (no source), `str()` adds the source."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.line = line


class LimitExceeded(YamlError):
    """Over one of the `Limits`; `limit` names it ("bytes", "depth", "nodes")."""

    def __init__(self, source: str, reason: str, line: int | None, limit: str, flag: str) -> None:
        super().__init__(source, reason, line)
        self.limit = limit
        self.flag = flag


def human_bytes(n: int) -> str:
    """``16 MiB``, ``1.5 KiB``, ``300 bytes``: sizes as the flags take them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _at(line: int | None) -> str:
    return f" at line {line}" if line is not None else ""


def check_size(data: str | bytes, source: str, limits: Limits) -> None:
    """Raise `LimitExceeded` when `data` is larger than `limits.max_bytes` (the first check of `check`)."""
    size = _byte_size(data, limits.max_bytes)
    if size > limits.max_bytes:
        raise LimitExceeded(
            source, f"{human_bytes(size)} of YAML is more than the limit of {human_bytes(limits.max_bytes)} "
            f"({limits.bytes_flag} raises it)", None, "bytes", limits.bytes_flag)


def _byte_size(data: str | bytes, limit: int) -> int:
    """The UTF-8 size of `data`; exact only when it matters for `limit` (no copy for small texts)."""
    if isinstance(data, bytes):
        return len(data)
    if len(data) > limit or len(data) * 4 <= limit:
        return len(data)  # a character is 1 to 4 bytes: the answer is already known
    return len(data.encode("utf-8", "surrogatepass"))


# ---- the scan ------------------------------------------------------------------


def check(data: str | bytes, source: str, limits: Limits, budget: Budget | None = None) -> None:
    """Raise `LimitExceeded` or `YamlError` unless `data` is YAML within `limits`.

    One pass over libyaml's events; nothing is constructed, aliases are
    counted, not followed. Every document of a multi-document text counts
    against one budget, and so do earlier calls given the same `budget`.
    """
    check_size(data, source, limits)
    parser = _SafeLoader(data)
    try:
        _scan(parser, source, limits, budget if budget is not None else Budget())
    except yaml.MarkedYAMLError as e:
        raise _invalid(source, e, limits) from None
    except yaml.YAMLError as e:
        raise YamlError(source, f"not valid YAML: {e}") from None
    finally:
        parser.dispose()


def _scan(parser: Any, source: str, limits: Limits, budget: Budget) -> None:
    """The walk of `check`: per open collection [anchor, nodes, text, height]."""
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int, int]] = {}  # anchor -> (nodes, text, height)
    open_anchors: set[str] = set()
    nodes, text = budget.nodes, budget.text
    max_depth, max_nodes, max_text = limits.max_depth, limits.max_nodes, limits.max_bytes
    get_event = parser.get_event
    while True:
        event = get_event()
        kind = type(event)
        if kind is ScalarEvent:
            length = len(event.value)
            nodes += 1
            text += length
            if event.anchor is not None:
                anchors[event.anchor] = (1, length, 0)
            if stack:
                top = stack[-1]
                top[1] += 1
                top[2] += length
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            nodes += 1
            stack.append([event.anchor, 1, 0, 1])
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            if len(stack) > max_depth:
                raise _depth_error(source, event, limits)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            anchor, n, t, height = stack.pop()
            if anchor is not None:
                anchors[anchor] = (n, t, height)
                open_anchors.discard(anchor)
            if stack:
                top = stack[-1]
                top[1] += n
                top[2] += t
                if height + 1 > top[3]:
                    top[3] = height + 1
        elif kind is AliasEvent:
            anchor = event.anchor
            if anchor in open_anchors:
                raise YamlError(source, f"the alias *{anchor}{_at(_line(event))} refers to a node that "
                                "contains it; a document must not contain itself", _line(event))
            named = anchors.get(anchor)
            if named is None:
                raise YamlError(source, f"not valid YAML{_at(_line(event))}: alias *{anchor} refers "
                                "to no anchor defined before it", _line(event))
            n, t, height = named
            nodes += n
            text += t
            if stack:
                top = stack[-1]
                top[1] += n
                top[2] += t
                if height + 1 > top[3]:
                    top[3] = height + 1
            if len(stack) + height > max_depth:
                raise _depth_error(source, event, limits)
        elif kind is DocumentStartEvent:
            anchors.clear()  # anchors are per document
        elif kind is StreamEndEvent:
            budget.nodes, budget.text = nodes, text
            return
        if nodes > max_nodes:
            raise LimitExceeded(
                source, f"more than {max_nodes:,} nodes (maps, lists, scalars) once its aliases (*name) "
                f"are expanded{_at(_line(event))} ({limits.nodes_flag} raises the limit)",
                _line(event), "nodes", limits.nodes_flag)
        if text > max_text:
            raise LimitExceeded(
                source, f"its aliases (*name) expand its text past the limit of {human_bytes(max_text)}"
                f"{_at(_line(event))} ({limits.bytes_flag} raises it)", _line(event), "bytes",
                limits.bytes_flag)


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _depth_error(source: str, event: Any, limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        source, f"maps and lists nest deeper than {limits.max_depth} levels{_at(_line(event))} "
        f"({limits.depth_flag} raises the limit)", _line(event), "depth", limits.depth_flag)


def _invalid(source: str, e: yaml.MarkedYAMLError, limits: Limits) -> YamlError:
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = e.problem or e.context or "invalid YAML"
    if "maximum nesting depth" in problem:  # libyaml's own cap (1000) met while looking ahead
        return LimitExceeded(source, f"maps and lists nest deeper than {limits.max_depth} levels{_at(line)} "
                             f"({limits.depth_flag} raises the limit)", line, "depth", limits.depth_flag)
    if e.context and e.problem and e.context != e.problem:
        problem = f"{problem} ({e.context})"
    return YamlError(source, f"not valid YAML{_at(line)}: {problem}", line)


# ---- loading ---------------------------------------------------------------------

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused(size: int) -> Iterator[None]:
    """No cyclic GC while a large text is built (the objects are fresh and acyclic)."""
    global _gc_pausers, _gc_was_enabled
    if size < _GC_PAUSE_BYTES:
        yield
        return
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def _construct(data: str | bytes, source: str, limits: Limits, build: Callable[[Any], Any],
               loader: Any, budget: Budget | None = None) -> Any:
    check(data, source, limits, budget)
    with _gc_paused(_byte_size(data, 0)):
        instance = loader(data)
        try:
            return build(instance)
        except yaml.MarkedYAMLError as e:
            raise _invalid(source, e, limits) from None
        except yaml.YAMLError as e:
            raise YamlError(source, f"not valid YAML: {e}") from None
        except RecursionError:  # cannot happen within the depth limit; never a traceback flood
            raise LimitExceeded(source, f"maps and lists nest too deeply to read ({limits.depth_flag} "
                                "is set too high)", None, "depth", limits.depth_flag) from None
        finally:
            instance.dispose()


def load(data: str | bytes, source: str, limits: Limits, *, strings_only: bool = False,
         budget: Budget | None = None) -> Any:
    """The one document in `data` (None when empty), after `check`.

    `strings_only` keeps every scalar a string (YAML's base schema), as a
    Helm repository index must be read ("1.10" is a version, not 1.1).
    """
    loader = _BaseLoader if strings_only else _SafeLoader
    return _construct(data, source, limits, lambda ld: ld.get_single_data(), loader, budget)


def load_all(data: str | bytes, source: str, limits: Limits) -> list[Any]:
    """Every document in `data`, after `check` (one budget for all of them)."""

    def build(ld: Any) -> list[Any]:
        docs = []
        while ld.check_data():
            docs.append(ld.get_data())
        return docs

    return list(_construct(data, source, limits, build, _SafeLoader))


# ---- data that is already parsed -------------------------------------------------


def check_tree(obj: Any, source: str, limits: Limits) -> None:
    """`check` for data decoded elsewhere (JSON from the API server): depth and size.

    An explicit stack, so a nesting far past the limit costs no recursion;
    the walk stops at the first limit it crosses, so its work is bounded by
    the limits, not by the data. Sizes count like `check`: one node per map,
    list and scalar (keys included), and the text of strings.
    """
    max_depth, max_nodes, max_text = limits.max_depth, limits.max_nodes, limits.max_bytes
    nodes, text = 1, 0
    pending: list[tuple[Any, int]] = [(obj, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            text += len(value)
        elif isinstance(value, Mapping | list | tuple):
            depth += 1
            if depth > max_depth:
                raise LimitExceeded(source, f"maps and lists nest deeper than {max_depth} levels "
                                    f"({limits.depth_flag} raises the limit)", None, "depth", limits.depth_flag)
            if isinstance(value, Mapping):
                nodes += 2 * len(value)  # keys are nodes too
                text += sum(len(key) if isinstance(key, str) else 1 for key in value)
                children: Any = value.values()
            else:
                nodes += len(value)
                children = value
            if nodes > max_nodes:
                raise LimitExceeded(source, f"more than {max_nodes:,} nodes (maps, lists, scalars) "
                                    f"({limits.nodes_flag} raises the limit)", None, "nodes", limits.nodes_flag)
            pending.extend((item, depth) for item in children)
        if text > max_text:
            raise LimitExceeded(source, f"its text is larger than the limit of {human_bytes(max_text)} "
                                f"({limits.bytes_flag} raises it)", None, "bytes", limits.bytes_flag)
