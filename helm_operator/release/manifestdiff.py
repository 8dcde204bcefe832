"""What would change in a release: the values diff and one unified diff per
object, as `kubectl diff` prints them, with secrets masked. Pure.

Place in the flow: `helm-operator diff` (`cli/diff.py`) gets the live
release (its values and manifest from helm's storage) and the desired one
(composed values, `helm template` output) from `release/preview`, and hands
both here. Objects are compared parsed and printed back as YAML with sorted
keys, so formatting and key order in the chart's templates never show as a
change.

Masking, so that a diff can be posted on a pull request:
- a Secret object's `data` and `stringData` values are never shown: `***`
  when equal on both sides, `*** (before)` / `*** (after)` when that key
  changed (as `kubectl diff` does);
- values that came from a `secretKeyRef` source are masked the same way, at
  their path in the values; when a HelmRelease reads values from a Secret,
  values that would be removed are masked too (the live release cannot say
  which source they came from);
- those secret values (strings of at least `MIN_SECRET_LENGTH` characters,
  and their base64 form), and the live release's values at the same paths,
  are also hidden wherever they appear in other objects (an env value, a
  ConfigMap).

What this module does NOT do: no I/O, and no decision about what the
operator would do (`release/preview` says whether it would act at all).
"""

from __future__ import annotations

import base64
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from helm_operator import boundedyaml

MASK = "***"
MASK_BEFORE = "*** (before)"
MASK_AFTER = "*** (after)"
MIN_SECRET_LENGTH = 4  # shorter strings (true, 1, on) would mask half of every manifest

Path = tuple[Any, ...]
ObjectKey = tuple[str, str, str, str]  # apiVersion, kind, namespace (as written, "" when absent), name


class _Missing:
    """The side of a pair where a key or an object does not exist."""


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Sensitive:
    """What must never be printed: values paths fed by Secrets, and secret strings."""

    paths: frozenset[Path] = frozenset()
    strings: frozenset[str] = frozenset()
    mask_removed: bool = False  # values would be removed and some came from a Secret

    @classmethod
    def build(cls, secret_values: Iterable[Mapping[str, Any]], secret_texts: Iterable[str] = (),
              live_values: Mapping[str, Any] | None = None) -> Sensitive:
        """From the values documents read from Secrets, any other Secret data the command read
        (credentials), and the live release's values (their old secrets, at the same paths)."""
        paths: set[Path] = set()
        strings: set[str] = set(secret_texts)
        docs = list(secret_values)
        for doc in docs:
            for path, value in _leaves(doc, ()):
                paths.add(path)
                if isinstance(value, str):
                    strings.add(value)
        if live_values is not None:
            for path in paths:
                old = _at(live_values, path)
                if isinstance(old, str):
                    strings.add(old)
        kept = {s for s in strings if len(s) >= MIN_SECRET_LENGTH}
        kept |= {base64.b64encode(s.encode()).decode() for s in kept}
        return cls(frozenset(paths), frozenset(kept), mask_removed=bool(docs))


def _leaves(node: Any, path: Path) -> Iterable[tuple[Path, Any]]:
    """(path, value) of every non-map value: lists count as one value, as when values merge."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, node


def _at(node: Any, path: Path) -> Any:
    for k in path:
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    return node


@dataclass(frozen=True)
class _Rules:
    secret: Callable[[Path], bool]
    strings: frozenset[str]
    mask_removed: bool = False


def _scrub(value: Any, strings: frozenset[str]) -> Any:
    if not isinstance(value, str) or not strings:
        return value
    if value in strings:
        return MASK
    for s in strings:
        if s in value:
            value = value.replace(s, MASK)
    return value


def _hide(before: Any, after: Any) -> tuple[Any, Any]:
    if before is MISSING:
        return MISSING, MASK
    if after is MISSING:
        return MASK, MISSING
    return (MASK, MASK) if before == after else (MASK_BEFORE, MASK_AFTER)


def _items(node: Any) -> dict[Any, Any] | None:
    if isinstance(node, Mapping):
        return dict(node)
    if isinstance(node, list):
        return dict(enumerate(node))
    return None


def _mask_pair(before: Any, after: Any, path: Path, rules: _Rules) -> tuple[Any, Any]:
    """`before` and `after` with every secret replaced; either side may be MISSING."""
    if rules.secret(path):
        return _hide(before, after)
    ib, ia = _items(before), _items(after)
    if ib is not None or ia is not None:
        if ib is None and before is not MISSING or ia is None and after is not MISSING \
                or type(before) is not type(after) and MISSING not in (before, after):
            # a map became a list or a scalar: mask each side on its own
            return _mask_pair(before, MISSING, path, rules)[0], _mask_pair(MISSING, after, path, rules)[1]
        ib, ia = ib or {}, ia or {}
        out_b: dict[Any, Any] = {}
        out_a: dict[Any, Any] = {}
        for k in dict.fromkeys([*ib, *ia]):
            mb, ma = _mask_pair(ib.get(k, MISSING), ia.get(k, MISSING), (*path, k), rules)
            if mb is not MISSING:
                out_b[k] = mb
            if ma is not MISSING:
                out_a[k] = ma
        shape = type(before if before is not MISSING else after)
        return (MISSING if before is MISSING else _shaped(out_b, shape),
                MISSING if after is MISSING else _shaped(out_a, shape))
    if rules.mask_removed and after is MISSING and before is not MISSING:
        return MASK, MISSING
    sb = before if before is MISSING else _scrub(before, rules.strings)
    sa = after if after is MISSING else _scrub(after, rules.strings)
    if sb == sa and before != after and MISSING not in (before, after):
        return f"{sb} (before)", f"{sa} (after)"  # equal once hidden, yet different: say that it changed
    return sb, sa


def _shaped(items: dict[Any, Any], shape: type) -> Any:
    return [items[k] for k in sorted(items)] if shape is list else items


def to_yaml(obj: Any) -> str:
    if obj is MISSING:
        return ""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True, width=2**31)


def unified(before: str, after: str, name: str) -> list[str]:
    """A unified diff with `kubectl diff`'s headers; [] when equal."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(),
                                      f"live/{name}", f"desired/{name}", lineterm=""))
    return [f"diff -u -N live/{name} desired/{name}", *lines] if lines else []


# ---- values ---------------------------------------------------------------------

def diff_values(live: Mapping[str, Any] | None, desired: Mapping[str, Any], sensitive: Sensitive) -> list[str]:
    """The unified diff of the release's values (helm's user-supplied values), secrets masked."""
    rules = _Rules(lambda p: p in sensitive.paths, sensitive.strings, sensitive.mask_removed)
    before, after = _mask_pair(dict(live) if live is not None else MISSING, dict(desired), (), rules)
    return unified(to_yaml(before), to_yaml(after), "values")


# ---- manifests -------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectChange:
    key: ObjectKey
    change: str                     # added, removed, changed
    diff: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return object_label(self.key)


def object_label(key: ObjectKey) -> str:
    """kubectl diff's file name for an object: `apps.v1.Deployment.ns.name`."""
    api_version, kind, namespace, name = key
    return ".".join(x for x in (api_version.replace("/", "."), kind, namespace, name) if x)


def split_manifest(text: str, where: str, limits: boundedyaml.Limits) -> dict[ObjectKey, dict[str, Any]]:
    """The objects of a release manifest (helm's `---`-separated documents), by key."""
    out: dict[ObjectKey, dict[str, Any]] = {}
    for doc in boundedyaml.load_all(text, where, limits):
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        meta = doc.get("metadata") or {}
        key = (str(doc.get("apiVersion", "")), str(doc["kind"]), str(meta.get("namespace") or ""),
               str(meta.get("name", "")))
        out[key] = doc
    return out


def _secret_rule(obj_kind: str) -> Callable[[Path], bool]:
    if obj_kind != "Secret":
        return lambda path: False
    return lambda path: len(path) == 2 and path[0] in ("data", "stringData")


def diff_objects(live: Mapping[ObjectKey, dict[str, Any]], desired: Mapping[ObjectKey, dict[str, Any]],
                 sensitive: Sensitive) -> list[ObjectChange]:
    """One change per object added, removed or changed, in a stable order."""
    changes = []
    for key in sorted(set(live) | set(desired)):
        before, after = live.get(key, MISSING), desired.get(key, MISSING)
        if before == after:
            continue
        rules = _Rules(_secret_rule(key[1]), sensitive.strings)
        mb, ma = _mask_pair(before, after, (), rules)
        change = "added" if before is MISSING else "removed" if after is MISSING else "changed"
        changes.append(ObjectChange(key, change, unified(to_yaml(mb), to_yaml(ma), object_label(key))))
    return changes
