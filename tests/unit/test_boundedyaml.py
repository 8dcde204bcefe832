"""Scenarios for the bounded YAML loader: what it accepts, what it refuses, how fast, and how it says so."""

from __future__ import annotations

import copy
import json
import sys
import time

import pytest

from helm_operator import boundedyaml
from helm_operator.api.values import merge_values, values_digest
from helm_operator.boundedyaml import DEFAULT_LIMITS, LimitExceeded, Limits, YamlError, YamlLimits

DOCS = DEFAULT_LIMITS.documents


def alias_bomb(levels: int) -> str:
    """The "billion laughs": each level lists the previous one ten times: 10**levels scalars."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def nested_block_maps(depth: int) -> str:
    return "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "k: v\n"


def nested_block_lists(depth: int) -> str:
    return "".join(" " * i + "-\n" for i in range(depth))


def test_a_values_file_loads_as_pyyaml_safe_load_reads_it() -> None:
    text = "image:\n  tag: '1.0'\n  pull: true\nreplicas: 2\nratio: 1.5\nempty:\nlist: [a, b]\n"
    assert boundedyaml.load(text, "values", DOCS) == {
        "image": {"tag": "1.0", "pull": True}, "replicas": 2, "ratio": 1.5, "empty": None, "list": ["a", "b"]}


def test_anchors_and_merge_keys_within_the_limits_still_work() -> None:
    text = "base: &base {cpu: 1, memory: 2}\na: *base\nb:\n  <<: *base\n  cpu: 3\n"
    assert boundedyaml.load(text, "values", DOCS) == {
        "base": {"cpu": 1, "memory": 2}, "a": {"cpu": 1, "memory": 2}, "b": {"cpu": 3, "memory": 2}}


def test_an_empty_text_is_none_and_bytes_are_read_as_utf8() -> None:
    assert boundedyaml.load("", "values", DOCS) is None
    assert boundedyaml.load("# only a comment\n", "values", DOCS) is None
    assert boundedyaml.load("name: caf\u00e9\n".encode(), "values", DOCS) == {"name": "caf\u00e9"}


def test_strings_only_keeps_versions_as_written() -> None:
    assert boundedyaml.load("version: 1.10\nok: true\n", "index.yaml", DOCS, strings_only=True) == {
        "version": "1.10", "ok": "true"}


def test_load_all_reads_every_document() -> None:
    assert boundedyaml.load_all("a: 1\n---\nb: 2\n---\n", "file.yaml", DOCS) == [{"a": 1}, {"b": 2}, None]


def test_a_billion_laughs_is_refused_in_milliseconds_naming_the_source_and_the_flag() -> None:
    bomb = alias_bomb(8)  # 10**8 scalars from under 500 bytes
    assert len(bomb) < 500
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.load(bomb, "ConfigMap apps/values key values.yaml", DOCS)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05, f"refusing took {elapsed * 1000:.1f} ms"
    e = info.value
    assert e.limit == "nodes" and e.flag == "--yaml-max-nodes"
    assert str(e).startswith("ConfigMap apps/values key values.yaml: more than 250,000 nodes")
    assert "--yaml-max-nodes raises the limit" in str(e)


def test_every_bomb_size_costs_the_same_because_the_expansion_is_never_built() -> None:
    for levels in (7, 9, 12):
        started = time.perf_counter()
        with pytest.raises(LimitExceeded):
            boundedyaml.check(alias_bomb(levels), "bomb", DOCS)
        assert time.perf_counter() - started < 0.05


def test_aliases_of_a_long_string_count_its_text_each_time() -> None:
    text = "a: &a " + "x" * 100_000 + "\nb: [" + ",".join(["*a"] * 200) + "]\n"
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.load(text, "values", Limits(max_bytes=16 * 2**20))
    assert info.value.limit == "bytes"
    assert "aliases (*name) expand its text past the limit of 16 MiB" in str(info.value)


def test_a_text_larger_than_the_limit_is_refused_before_parsing() -> None:
    text = "a: " + "x" * 2000 + "\n"
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.load(text, "Git file apps/big.yaml", Limits(max_bytes=1024))
    assert str(info.value) == ("Git file apps/big.yaml: 2.0 KiB of YAML is more than the limit of 1 KiB "
                               "(--yaml-max-bytes raises it)")


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    text = "a: " + "\u00e9" * 400 + "\n"  # 404 characters, 804 bytes
    boundedyaml.check(text, "values", Limits(max_bytes=1000))
    with pytest.raises(LimitExceeded):
        boundedyaml.check(text, "values", Limits(max_bytes=800))


@pytest.mark.parametrize("text", [nested_block_maps(1000), nested_block_lists(5000), "[" * 20000 + "]" * 20000,
                                  "{a: " * 3000 + "1" + "}" * 3000],
                         ids=["1000 block maps", "5000 block lists", "20000 flow lists", "3000 flow maps"])
def test_deep_nesting_is_a_depth_error_never_a_recursion_error(text: str) -> None:
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.load(text, "values", DOCS)
    assert info.value.limit == "depth"
    assert "nest deeper than 128 levels" in str(info.value) and "--yaml-max-depth" in str(info.value)


def test_nesting_at_the_limit_loads_and_one_more_level_does_not() -> None:
    limits = Limits(max_depth=50)
    assert boundedyaml.load("[" * 50 + "]" * 50, "values", limits) is not None
    with pytest.raises(LimitExceeded):
        boundedyaml.load("[" * 51 + "]" * 51, "values", limits)


def test_nesting_through_aliases_counts_the_aliased_depth() -> None:
    text = "a: &a " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n"
    boundedyaml.check(text, "values", Limits(max_depth=42))
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.check(text, "values", Limits(max_depth=40))
    assert info.value.limit == "depth"


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(YamlError) as info:
        boundedyaml.load("a: &a [1, *a]\n", "values", DOCS)
    assert "refers to a node that contains it" in str(info.value)


def test_invalid_yaml_says_where() -> None:
    with pytest.raises(YamlError) as info:
        boundedyaml.load("a: [1\nb: 2\n", "values from ConfigMap apps/x", DOCS)
    assert not isinstance(info.value, LimitExceeded)
    assert str(info.value).startswith("values from ConfigMap apps/x: not valid YAML at line 2:")
    assert info.value.line == 2


def test_python_tags_and_unhashable_keys_are_invalid_not_crashes() -> None:
    for text in ("!!python/object/apply:os.system [echo]\n", "? [a]\n: 1\n", "a: *missing\n"):
        with pytest.raises(YamlError):
            boundedyaml.load(text, "values", DOCS)


def test_the_node_budget_is_shared_by_every_document_of_a_file() -> None:
    doc = "[" + ",".join(["x"] * 90) + "]\n---\n"
    boundedyaml.load_all(doc * 10, "file", Limits(max_nodes=1000))
    with pytest.raises(LimitExceeded):
        boundedyaml.load_all(doc * 12, "file", Limits(max_nodes=1000))


def test_anchors_are_per_document() -> None:
    with pytest.raises(YamlError):
        boundedyaml.load_all("a: &x 1\n---\nb: *x\n", "file", DOCS)


def test_flags_build_both_limit_sets() -> None:
    limits = YamlLimits.from_flags(max_bytes=10, max_depth=5, max_nodes=7, chart_max_bytes=20,
                                   chart_max_nodes=30)
    assert limits.documents == Limits(10, 5, 7)
    assert (limits.charts.max_bytes, limits.charts.max_depth, limits.charts.max_nodes) == (20, 5, 30)
    assert limits.charts.bytes_flag == "--chart-yaml-max-bytes"
    assert limits.charts.nodes_flag == "--chart-yaml-max-nodes"


# ---- data decoded from JSON ------------------------------------------------------


def test_check_tree_accepts_ordinary_values() -> None:
    boundedyaml.check_tree({"image": {"tag": "1"}, "list": [1, 2, {"a": None}]}, "spec.values", DOCS)


def test_check_tree_refuses_deep_data_without_recursion() -> None:
    deep: object = "leaf"
    for _ in range(50_000):
        deep = [deep]
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.check_tree({"a": deep}, "spec.values", DOCS)
    assert time.perf_counter() - started < 0.05
    assert info.value.limit == "depth" and "nest deeper than 128 levels" in str(info.value)


def test_check_tree_refuses_too_many_nodes_and_too_much_text() -> None:
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.check_tree({"a": list(range(2000))}, "spec.values", Limits(max_nodes=1000))
    assert info.value.limit == "nodes"
    with pytest.raises(LimitExceeded) as info:
        boundedyaml.check_tree({"a": "x" * 2000}, "spec.values", Limits(max_bytes=1000))
    assert info.value.limit == "bytes"


def test_what_the_limits_let_through_survives_merge_digest_and_json() -> None:
    """Values at the default depth limit go through every recursive walk the operator makes."""
    limit = DOCS.max_depth
    text = "".join(" " * i + "k:\n" for i in range(limit - 2)) + " " * (limit - 2) + "k: [1]\n"  # limit levels
    values = boundedyaml.load(text, "values", DOCS)
    depth_before = sys.getrecursionlimit()
    merged = merge_values(values, copy.deepcopy(values))
    values_digest(merged)
    json.dumps(merged)
    assert sys.getrecursionlimit() == depth_before


def test_a_budget_carries_the_node_limit_across_calls() -> None:
    budget = boundedyaml.Budget()
    limits = Limits(max_nodes=1000)
    doc = "[" + ",".join(["x"] * 300) + "]\n"
    for _ in range(3):
        boundedyaml.load(doc, "file document", limits, budget=budget)
    assert budget.nodes == 903
    with pytest.raises(LimitExceeded):
        boundedyaml.load(doc, "file document 4", limits, budget=budget)
