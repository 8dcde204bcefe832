"""Scenarios for merging values and digesting them to detect changes."""

from __future__ import annotations

import copy
import datetime

from helm_operator.api.values import merge_values, values_digest


def test_maps_merge_recursively() -> None:
    base = {"image": {"repository": "nginx", "tag": "1.0"}, "replicas": 1}
    override = {"image": {"tag": "2.0"}}
    assert merge_values(base, override) == {"image": {"repository": "nginx", "tag": "2.0"}, "replicas": 1}


def test_lists_are_replaced_not_concatenated() -> None:
    assert merge_values({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


def test_scalars_and_null_replace() -> None:
    assert merge_values({"a": 1, "b": {"c": 1}}, {"a": "x", "b": None}) == {"a": "x", "b": None}


def test_a_map_replaces_a_scalar_and_a_scalar_replaces_a_map() -> None:
    assert merge_values({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": 2}) == {"a": {"x": 1}, "b": 2}


def test_inputs_are_never_mutated_nor_shared() -> None:
    base = {"a": {"b": [1]}, "keep": {"k": 1}}
    override = {"a": {"c": {"d": 1}}}
    base_before, override_before = copy.deepcopy(base), copy.deepcopy(override)
    merged = merge_values(base, override)
    merged["a"]["b"].append(2)
    merged["a"]["c"]["d"] = 9
    merged["keep"]["k"] = 9
    assert base == base_before and override == override_before


def test_merging_in_list_order_then_spec_values_last() -> None:
    sources = [{"a": 1, "m": {"x": 1}}, {"a": 2, "m": {"y": 2}}]
    merged: dict = {}
    for source in [*sources, {"m": {"x": 3}}]:
        merged = merge_values(merged, source)
    assert merged == {"a": 2, "m": {"x": 3, "y": 2}}


def test_digest_ignores_key_order() -> None:
    assert values_digest({"a": 1, "b": {"c": 2, "d": 3}}) == values_digest({"b": {"d": 3, "c": 2}, "a": 1})


def test_digest_changes_when_a_value_changes() -> None:
    assert values_digest({"a": 1}) != values_digest({"a": 2})
    assert values_digest({"a": [1, 2]}) != values_digest({"a": [2, 1]})


def test_digest_is_sha256_hex() -> None:
    digest = values_digest({})
    assert len(digest) == 64 and int(digest, 16) >= 0
    # sha256 of "{}", so other tools can reproduce it.
    assert digest == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def test_digest_accepts_what_yaml_parses_dates_and_integer_keys() -> None:
    assert values_digest({"when": datetime.date(2026, 1, 1), 1: "a", "b": 2})
