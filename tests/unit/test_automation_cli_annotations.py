"""Golden tests for annotation edits: the exact bytes after adding, changing and
removing annotations of one HelmRelease, everything else untouched."""

from __future__ import annotations

import pytest

from helm_operator.automation.annotations import edit_annotations
from helm_operator.automation.yamledit import EditError


def edit(text: str, name: str = "app", namespace: str = "demo", **kw: object) -> str:
    return edit_annotations(text, "HelmRelease", namespace, name, **kw)  # type: ignore[arg-type]


BASE = """\
---
# the app; automation edits this file
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app   # keep me
  namespace: demo
  annotations:
    # image policy
    filter.fluxcd.io/web: 'semver:~1.0'
    fluxcd.io/automated: "true"
spec:
  values:
    web:
      image: repo/web:1.0.0
"""


def test_add_goes_after_the_last_annotation_with_its_indentation() -> None:
    after = edit(BASE, set={"fluxcd.io/locked": "true", "fluxcd.io/locked_msg": "incident #42: don't"})
    assert after == BASE.replace('    fluxcd.io/automated: "true"\n', '''\
    fluxcd.io/automated: "true"
    fluxcd.io/locked: "true"
    fluxcd.io/locked_msg: "incident #42: don't"
''')


def test_change_in_place_keeps_the_quoting_style() -> None:
    after = edit(BASE, set={"filter.fluxcd.io/web": "semver:~2.0", "fluxcd.io/automated": "false"})
    assert after == BASE.replace("'semver:~1.0'", "'semver:~2.0'").replace('"true"', '"false"')


def test_remove_drops_the_lines_and_their_comment() -> None:
    text = BASE.replace('    fluxcd.io/automated: "true"\n',
                        '    fluxcd.io/automated: "true"  # on\n    fluxcd.io/locked: "true"\n')
    after = edit(text, remove=["fluxcd.io/automated", "absent.example/key"])
    assert after == BASE.replace('    fluxcd.io/automated: "true"\n', '    fluxcd.io/locked: "true"\n')


def test_removing_every_annotation_removes_the_key_and_comments_inside() -> None:
    after = edit(BASE, remove=["filter.fluxcd.io/web", "fluxcd.io/automated"])
    assert after == BASE.replace("""\
  annotations:
    # image policy
    filter.fluxcd.io/web: 'semver:~1.0'
    fluxcd.io/automated: "true"
""", "")


def test_replace_all_with_others() -> None:
    after = edit(BASE, set={"fluxcd.io/locked": "true"}, remove=["filter.fluxcd.io/web", "fluxcd.io/automated"])
    assert after == BASE.replace("""\
    filter.fluxcd.io/web: 'semver:~1.0'
    fluxcd.io/automated: "true"
""", """\
    fluxcd.io/locked: "true"
""")


ODD = """\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
   name: app
   namespace: demo
   labels:
      team: a
spec:
 values:
  image: repo/web:1.0.0
"""


def test_missing_annotations_are_created_last_in_metadata_with_its_indentation() -> None:
    after = edit(ODD, set={"fluxcd.io/automated": "true"})
    assert after == ODD.replace("      team: a\n", """\
      team: a
   annotations:
      fluxcd.io/automated: "true"
""")


def test_one_space_indentation() -> None:
    text = "kind: HelmRelease\nmetadata:\n name: app\n namespace: demo\nspec: {}\n"
    after = edit(text, set={"fluxcd.io/locked": "true"})
    assert after == ("kind: HelmRelease\nmetadata:\n name: app\n namespace: demo\n annotations:\n"
                     '  fluxcd.io/locked: "true"\nspec: {}\n')
    assert edit(after, remove=["fluxcd.io/locked"]) == text


@pytest.mark.parametrize("empty", ["annotations:", "annotations: {}", "annotations: ~", "annotations:  # none"])
def test_empty_annotations_get_entries_below_the_key(empty: str) -> None:
    text = f"kind: HelmRelease\nmetadata:\n  name: app\n  namespace: demo\n  {empty}\nspec: {{}}\n"
    comment = "  # none" if "#" in empty else ""
    assert edit(text, set={"a.io/b": "c"}) == (
        f"kind: HelmRelease\nmetadata:\n  name: app\n  namespace: demo\n  annotations:{comment}\n"
        '    a.io/b: "c"\nspec: {}\n')


MULTI = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: demo
  annotations:
    fluxcd.io/automated: "true"
---
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: other
  namespace: demo
---
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app
  namespace: demo
  annotations:
    fluxcd.io/automated: "true"
...
"""


def test_multi_document_only_the_named_object_changes() -> None:
    after = edit(MULTI, remove=["fluxcd.io/automated"])
    assert after == MULTI.replace('  annotations:\n    fluxcd.io/automated: "true"\n...', "...")
    assert after.count("fluxcd.io/automated") == 1  # the ConfigMap's stays
    added = edit(MULTI, name="other", set={"fluxcd.io/locked": "true"})
    assert added == MULTI.replace("  name: other\n  namespace: demo\n",
                                  '  name: other\n  namespace: demo\n  annotations:\n    fluxcd.io/locked: "true"\n')


def test_default_namespace_and_crlf_and_no_final_newline() -> None:
    text = "kind: HelmRelease\r\nmetadata:\r\n  name: app\r\n  annotations:\r\n    a: \"1\""
    after = edit_annotations(text, "HelmRelease", "prod", "app", set={"b": "2"}, default_namespace="prod")
    assert after == text + '\r\n    b: "2"\r\n'
    assert edit_annotations(after, "HelmRelease", "prod", "app", remove=["b"], default_namespace="prod") == \
        text + "\r\n"


def test_multiline_value_is_removed_whole() -> None:
    text = BASE.replace('    fluxcd.io/automated: "true"\n',
                        '    fluxcd.io/locked_msg: "a long\n      reason"\n    fluxcd.io/automated: "true"\n')
    assert edit(text, remove=["fluxcd.io/locked_msg"]) == BASE


def test_values_are_quoted_so_they_stay_strings() -> None:
    after = edit(BASE, set={"x.io/n": "1.0", "x.io/b": "yes", "x.io/q": 'say "hi"\ttab'})
    assert after.endswith('    fluxcd.io/automated: "true"\n    x.io/n: "1.0"\n    x.io/b: "yes"\n'
                          '    x.io/q: "say \\"hi\\"\\ttab"\nspec:\n  values:\n    web:\n'
                          '      image: repo/web:1.0.0\n')


def test_no_change_returns_the_same_text() -> None:
    assert edit(BASE, set={"fluxcd.io/automated": "true"}, remove=["fluxcd.io/locked"]) is BASE


@pytest.mark.parametrize("text", [BASE, ODD, MULTI])
def test_add_then_remove_is_the_identity(text: str) -> None:
    added = edit(text, set={"fluxcd.io/locked": "true", "fluxcd.io/locked_user": "alice"})
    assert added != text
    assert edit(added, remove=["fluxcd.io/locked", "fluxcd.io/locked_user"]) == text


def test_flow_style_is_edited_in_place_but_keys_are_not_added() -> None:
    text = 'kind: HelmRelease\nmetadata: {name: app, namespace: demo, annotations: {a: "1"}}\n'
    assert edit(text, set={"a": "2"}) == text.replace('"1"', '"2"')
    with pytest.raises(EditError, match="flow style"):
        edit(text, set={"b": "2"})
    flow_annotations = "kind: HelmRelease\nmetadata:\n  name: app\n  namespace: demo\n  annotations: {a: b}\n"
    with pytest.raises(EditError, match="flow style"):
        edit(flow_annotations, remove=["a"])


def test_unknown_object_and_broken_yaml_are_errors() -> None:
    with pytest.raises(EditError, match="no HelmRelease demo/nope"):
        edit(BASE, name="nope", set={"a": "b"})
    with pytest.raises(EditError, match="broken YAML"):
        edit("kind: HelmRelease\nmetadata: [\n", set={"a": "b"})


def test_annotations_that_are_not_a_map_are_refused() -> None:
    with pytest.raises(EditError, match="not a map"):
        edit("kind: HelmRelease\nmetadata:\n  name: app\n  namespace: demo\n  annotations: [a]\n", set={"a": "b"})
