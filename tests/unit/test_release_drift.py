"""drift.differing_paths: where two objects differ, by path only."""

from __future__ import annotations

from helm_operator.release.drift import differing_paths


def test_equal_objects_have_no_differing_path() -> None:
    obj = {"spec": {"replicas": 2, "template": {"containers": [{"name": "a", "image": "x:1"}]}}}
    assert differing_paths(obj, {"spec": {"replicas": 2, "template": {"containers": [{"name": "a", "image": "x:1"}]}}}) == []


def test_paths_name_the_changed_fields_and_never_their_values() -> None:
    wanted = {"spec": {"replicas": 2, "containers": [{"env": [{"name": "M", "value": "secret-a"}]}]}}
    live = {"spec": {"replicas": 5, "containers": [{"env": [{"name": "M", "value": "secret-b"}]}]}}
    paths = differing_paths(wanted, live)
    assert paths == ["spec.containers[0].env[0].value", "spec.replicas"]
    assert not any("secret" in p for p in paths)


def test_added_or_removed_keys_and_resized_lists_differ_at_their_parent() -> None:
    assert differing_paths({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == ["a.c"]
    assert differing_paths({"l": [1, 2]}, {"l": [1]}) == ["l"]
