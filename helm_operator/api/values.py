"""Chart values: the deep merge of value sources and a digest of the result.

Place in the flow: `release/` merges `valuesFrom` sources in list order, then
`spec.values`, with `merge_values`, and compares `values_digest` of the
result with the digest recorded at the last release to decide whether an
upgrade is needed. Reading the sources is not done here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: maps merge key by key, anything else replaces.

    Lists are replaced whole (as Helm and Flux v1 do), and an explicit null
    replaces too. The result shares no mutable state with the inputs.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_digest(obj: Any) -> str:
    """sha256 hex of canonical JSON: equal values give equal digests.

    Keys are sorted, so map order never counts as a change. Values JSON
    cannot hold (dates that YAML parsed, for instance) are written as their
    string form, and keys are compared as strings (YAML allows `1:` keys).
    """
    canonical = json.dumps(
        _string_keys(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _string_keys(obj: Any) -> Any:
    """The same structure with every map key a string, so keys can be sorted."""
    if isinstance(obj, Mapping):
        return {str(key): _string_keys(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_string_keys(item) for item in obj]
    return obj
