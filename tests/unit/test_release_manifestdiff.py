"""`helm-operator diff`'s comparison: values and per-object unified diffs, and
the masking that keeps every secret out of the output."""

from __future__ import annotations

import base64

import yaml

from helm_operator.boundedyaml import Limits
from helm_operator.release.manifestdiff import (
    MASK,
    MASK_AFTER,
    MASK_BEFORE,
    Sensitive,
    diff_objects,
    diff_values,
    split_manifest,
)

LIMITS = Limits()


def manifest(*objs: dict) -> str:
    return "".join(f"---\n# Source: chart/templates/x.yaml\n{yaml.safe_dump(o)}" for o in objs)


def objects(*objs: dict) -> dict:
    return split_manifest(manifest(*objs), "test", LIMITS)


def secret(**string_data: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": string_data}


def config_map(**data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}, "data": data}


def text(lines: list[str]) -> str:
    return "\n".join(lines)


def test_a_changed_value_shows_as_a_unified_diff_with_kubectl_diffs_headers() -> None:
    out = diff_values({"message": "one", "replicaCount": 1}, {"message": "two", "replicaCount": 1}, Sensitive())
    assert out[:3] == ["diff -u -N live/values desired/values", "--- live/values", "+++ desired/values"]
    assert "-message: one" in out and "+message: two" in out and " replicaCount: 1" in out


def test_equal_values_and_objects_give_no_diff_whatever_their_key_order_and_formatting() -> None:
    assert diff_values({"a": 1, "b": {"c": 2}}, {"b": {"c": 2}, "a": 1}, Sensitive()) == []
    live = split_manifest("---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: c, namespace: apps}\n"
                          "data: {message: \"x\"}\n", "live", LIMITS)
    assert diff_objects(live, objects(config_map(message="x")), Sensitive()) == []


def test_objects_added_removed_and_changed_are_named_as_kubectl_diff_names_them() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 1}}
    changes = diff_objects(objects(config_map(message="x"), deployment),
                           objects({**deployment, "spec": {"replicas": 3}}, secret(password="longer-secret")),
                           Sensitive())
    assert [(c.label, c.change) for c in changes] == [
        ("apps.v1.Deployment.web", "changed"), ("v1.ConfigMap.apps.c", "removed"), ("v1.Secret.s", "added")]
    assert "-  replicas: 1" in changes[0].diff and "+  replicas: 3" in changes[0].diff


def test_secret_data_is_masked_and_a_changed_key_still_shows_as_changed() -> None:
    live = objects({**secret(password="old-password", same="unchanged-value"),
                    "data": {"token": base64.b64encode(b"old-token").decode()}})
    desired = objects({**secret(password="new-password", same="unchanged-value"),
                       "data": {"token": base64.b64encode(b"new-token").decode()}})
    [change] = diff_objects(live, desired, Sensitive())
    out = text(change.diff)
    for value in ("old-password", "new-password", "unchanged-value", "old-token", "new-token"):
        assert value not in out
        assert base64.b64encode(value.encode()).decode() not in out
    assert f"-  password: '{MASK_BEFORE}'" in change.diff and f"+  password: '{MASK_AFTER}'" in change.diff
    assert f"   same: '{MASK}'" in change.diff  # unchanged: context line, masked


def test_values_from_a_secret_are_masked_in_the_values_and_wherever_the_chart_puts_them() -> None:
    secret_doc = {"db": {"password": "hunter2-new"}}
    sensitive = Sensitive.build([secret_doc], live_values={"db": {"password": "hunter2-old"}})
    values = diff_values({"db": {"password": "hunter2-old", "host": "a"}},
                         {"db": {"password": "hunter2-new", "host": "b"}}, sensitive)
    assert f"-  password: '{MASK_BEFORE}'" in values and f"+  password: '{MASK_AFTER}'" in values
    assert "-  host: a" in values and "+  host: b" in values  # not from the Secret: shown

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"env": [{"name": "DSN", "value": "postgres://app:hunter2-old@db"}]}}
    new = {**deployment, "spec": {"env": [{"name": "DSN", "value": "postgres://app:hunter2-new@db"}]}}
    cm_old = config_map(b64=base64.b64encode(b"hunter2-old").decode())
    cm_new = config_map(b64=base64.b64encode(b"hunter2-new").decode())
    changes = diff_objects(objects(deployment, cm_old), objects(new, cm_new), sensitive)
    out = "\n".join(values + [line for c in changes for line in c.diff])
    assert "hunter2" not in out and "aHVudGVyMi" not in out
    assert any("postgres://app:***@db" in line for line in out.splitlines())
    assert len(changes) == 2, "a masked change is still a change"


def test_values_that_would_be_removed_are_masked_when_some_came_from_a_secret() -> None:
    sensitive = Sensitive.build([{"token": "abcd-new"}])
    out = diff_values({"legacyToken": "abcd-old", "keep": 1, "token": "abcd-old"},
                      {"keep": 1, "token": "abcd-new"}, sensitive)
    assert "abcd-old" not in text(out) and f"-legacyToken: '{MASK}'" in out
    plain = diff_values({"gone": "visible", "keep": 1}, {"keep": 1}, Sensitive())
    assert "-gone: visible" in plain


def test_short_strings_are_not_hunted_in_other_objects() -> None:
    """A Secret-sourced `enabled: "yes"` must not mask every `yes` of every manifest."""
    sensitive = Sensitive.build([{"enabled": "yes", "replicas": 1}])
    assert sensitive.paths == {("enabled",), ("replicas",)}
    assert "yes" not in sensitive.strings
    [change] = diff_objects(objects(config_map(answer="yes", n="1")), objects(config_map(answer="yes", n="2")),
                            sensitive)
    assert "   answer: 'yes'" in change.diff


def test_an_install_shows_every_value_and_object_as_added() -> None:
    values = diff_values(None, {"message": "hi"}, Sensitive())
    assert "+message: hi" in values and not any(line.startswith("-message") for line in values)
    [change] = diff_objects({}, objects(config_map(message="hi")), Sensitive())
    assert change.change == "added" and "+  message: hi" in change.diff
