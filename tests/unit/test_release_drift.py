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
    assert paths == ["/spec/containers/0/env/0/value", "/spec/replicas"]
    assert not any("secret" in p for p in paths)


def test_added_or_removed_keys_and_resized_lists_differ_at_their_parent() -> None:
    assert differing_paths({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == ["/a/c"]
    assert differing_paths({"l": [1, 2]}, {"l": [1]}) == ["/l"]


def test_keys_with_slashes_and_tildes_are_escaped_as_json_pointers() -> None:
    assert differing_paths({"m": {"a/b~c": 1}}, {"m": {"a/b~c": 2}}) == ["/m/a~1b~0c"]


# ---- driftrules.relevant: ignore rules and the per-object opt-out --------------

from helm_operator.api.controls import DriftIgnore, DriftTarget  # noqa: E402
from helm_operator.release.drift import Drift  # noqa: E402
from helm_operator.release.driftrules import relevant  # noqa: E402

DEPLOY = Drift("apps/v1", "Deployment", "web", "apps", ("/spec/replicas", "/spec/template/metadata/annotations/x"),
               labels={"app": "web"}, annotations={})
CONFIG = Drift("v1", "ConfigMap", "web", "apps", ("/data/message",), labels={"app": "web"})


def test_an_ignore_rule_without_target_drops_its_paths_everywhere() -> None:
    out = relevant([DEPLOY, CONFIG], [DriftIgnore(("/spec/replicas",))])
    assert [d.paths for d in out] == [("/spec/template/metadata/annotations/x",), ("/data/message",)]


def test_a_pointer_ignores_everything_below_it() -> None:
    out = relevant([DEPLOY], [DriftIgnore(("/spec/template/metadata",))])
    assert out[0].paths == ("/spec/replicas",)


def test_a_rule_applies_only_to_the_objects_its_target_selects() -> None:
    rule = DriftIgnore(("/data/message", "/spec/replicas"), DriftTarget(kind="ConfigMap"))
    assert [d.kind for d in relevant([DEPLOY, CONFIG], [rule])] == ["Deployment"]
    by_group = DriftIgnore(("/spec",), DriftTarget(group="apps", label_selector="app=web"))
    assert [d.kind for d in relevant([DEPLOY, CONFIG], [by_group])] == ["ConfigMap"]
    other = DriftIgnore(("/spec",), DriftTarget(label_selector="app!=web"))
    assert len(relevant([DEPLOY], [other])) == 1


def test_an_object_annotated_disabled_is_never_reported() -> None:
    opted_out = Drift("v1", "ConfigMap", "x", "apps", ("/data/a",),
                      annotations={"helm.toolkit.fluxcd.io/driftDetection": "disabled"})
    assert relevant([opted_out], []) == []


def test_a_missing_object_is_reported_whatever_the_rules() -> None:
    missing = Drift("v1", "ConfigMap", "gone", "apps", missing=True)
    assert relevant([missing], [DriftIgnore(("/data",))]) == [missing]
    assert str(missing) == "ConfigMap apps/gone is missing"
