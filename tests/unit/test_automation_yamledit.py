"""yamledit: in-place scalar rewrites, golden files byte for byte, and properties.

Each ``tests/testdata/yamledit/<case>/`` holds ``original.yaml``, an
``edit.json`` naming the object and either explicit ``updates`` or
``images`` (container -> new tag, resolved through `detect` as automation
does), and ``expected.yaml`` or an expected ``error``. ``pytest
--update-golden`` rewrites the ``expected.yaml`` files (for a new case,
create an empty one first).
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helm_operator.automation.detect import find_images, updates_for
from helm_operator.automation.yamledit import EditError, render_scalar, set_values
from tests.conftest import Golden

CASES = Path(__file__).resolve().parents[1] / "testdata" / "yamledit"
GOLDEN = sorted(p.name for p in CASES.iterdir() if (p / "expected.yaml").exists())
FAILING = sorted(p.name for p in CASES.iterdir() if not (p / "expected.yaml").exists())


def run_case(case: str) -> str:
    edit = json.loads((CASES / case / "edit.json").read_text())
    original = (CASES / case / "original.yaml").read_bytes().decode("utf-8")
    updates: list[tuple[Any, Any]] = [(tuple(p), v) for p, v in edit.get("updates", [])]
    if "images" in edit:
        release = next(d for d in yaml.safe_load_all(original)
                       if d and d.get("kind") == edit["kind"] and d["metadata"]["name"] == edit["name"]
                       and d["metadata"].get("namespace", edit.get("default_namespace", "default")) == edit["namespace"])
        found = find_images(release)
        assert not found.errors, found.errors
        for container, tag in edit["images"].items():
            image = found.get(container)
            assert image is not None, f"{container} not found in {[c.name for c in found.containers]}"
            updates += updates_for(image, tag)
    return set_values(original, edit["kind"], edit["namespace"], edit["name"], updates,
                      default_namespace=edit.get("default_namespace", "default"))


@pytest.mark.parametrize("case", GOLDEN)
def test_golden_edit_matches_expected_bytes(case: str, golden: Golden) -> None:
    golden.check(CASES / case / "expected.yaml", run_case(case).encode("utf-8"))


@pytest.mark.parametrize("case", FAILING)
def test_refused_edit_names_the_problem(case: str) -> None:
    message = json.loads((CASES / case / "edit.json").read_text())["error"]
    with pytest.raises(EditError, match=re.escape(message)):
        run_case(case)


def test_every_case_has_an_edit_and_an_outcome() -> None:
    assert len(GOLDEN) >= 10 and len(FAILING) >= 5
    for case in GOLDEN + FAILING:
        edit = json.loads((CASES / case / "edit.json").read_text())
        assert ("error" in edit) == (case in FAILING), case


def test_only_the_changed_lines_differ_in_golden_cases() -> None:
    for case in GOLDEN:
        before = (CASES / case / "original.yaml").read_bytes().splitlines()
        after = (CASES / case / "expected.yaml").read_bytes().splitlines()
        assert len(before) == len(after), case
        for old, new in zip(before, after):
            if old != new:
                assert old.split(b":")[0] == new.split(b":")[0], (case, old, new)


SIMPLE = """apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app
  namespace: ns
spec:
  values:
    image:
      repository: example/app
      tag: 1.0.0
"""
TAG = ("spec", "values", "image", "tag")


def test_no_updates_returns_the_text_unchanged() -> None:
    assert set_values(SIMPLE, "HelmRelease", "ns", "app", []) is SIMPLE


def test_a_namespace_less_document_is_only_found_in_the_default_namespace() -> None:
    text = SIMPLE.replace("  namespace: ns\n", "")
    assert "1.1.0" in set_values(text, "HelmRelease", "flux", "app", [(TAG, "1.1.0")], default_namespace="flux")
    with pytest.raises(EditError, match="no HelmRelease ns/app"):
        set_values(text, "HelmRelease", "ns", "app", [(TAG, "1.1.0")], default_namespace="flux")


def test_the_kind_must_match_too() -> None:
    with pytest.raises(EditError, match="no Deployment ns/app"):
        set_values(SIMPLE, "Deployment", "ns", "app", [(TAG, "1.1.0")])


def test_two_documents_for_one_object_are_refused() -> None:
    with pytest.raises(EditError, match="2 documents"):
        set_values(SIMPLE + "---\n" + SIMPLE, "HelmRelease", "ns", "app", [(TAG, "1.1.0")])


def test_conflicting_writes_to_one_path_are_refused() -> None:
    with pytest.raises(EditError, match="set twice"):
        set_values(SIMPLE, "HelmRelease", "ns", "app", [(TAG, "1.1.0"), (TAG, "1.2.0")])


def test_non_scalar_values_are_refused() -> None:
    with pytest.raises(EditError, match="only scalar values"):
        set_values(SIMPLE, "HelmRelease", "ns", "app", [(TAG, {"a": 1})])


def test_a_path_through_a_scalar_is_not_found() -> None:
    with pytest.raises(EditError, match="not a map or list"):
        set_values(SIMPLE, "HelmRelease", "ns", "app", [((*TAG, "deeper"), "x")])


def test_a_list_index_out_of_range_is_not_found() -> None:
    text = SIMPLE + "    list: [a]\n"
    with pytest.raises(EditError, match=r"spec.values.list\[3\] not found"):
        set_values(text, "HelmRelease", "ns", "app", [(("spec", "values", "list", 3), "x")])


def test_merge_keys_are_named_when_a_key_comes_from_one() -> None:
    text = SIMPLE + "    base: &b {tag: x}\n    other:\n      <<: *b\n"
    with pytest.raises(EditError, match="merge key"):
        set_values(text, "HelmRelease", "ns", "app", [(("spec", "values", "other", "tag"), "y")])


def test_a_broken_file_names_the_line() -> None:
    with pytest.raises(EditError, match="line 2, column 5: mapping values are not allowed"):
        set_values("a: 1\nb: c: d\ne: 2\n", "HelmRelease", "ns", "app", [(TAG, "x")])


@pytest.mark.parametrize(("value", "style", "in_flow", "text"), [
    ("v1", None, False, "v1"),
    ("1.0", None, False, '"1.0"'),
    ("yes", None, False, '"yes"'),
    ("null", None, False, '"null"'),
    ("a:b", None, False, "a:b"),
    ("a:b", None, True, '"a:b"'),
    ("with space", None, False, '"with space"'),
    ("it's", "'", False, "'it''s'"),
    ('say "hi"', '"', False, '"say \\"hi\\""'),
    ("line\nbreak", "'", False, '"line\\nbreak"'),
    (5, "'", False, "5"),
    (None, None, False, "null"),
    (False, '"', False, "false"),
])
def test_scalars_are_rendered_in_the_original_style_when_they_read_back(
        value: Any, style: str | None, in_flow: bool, text: str) -> None:
    assert render_scalar(value, style, in_flow) == text
    assert yaml.safe_load(f"k: {text}")["k"] == value


# --- properties ------------------------------------------------------------

KEYS = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
    lambda k: isinstance(yaml.safe_load(k), str))  # `true:` or `no:` keys read as bools
STRINGS = st.one_of(
    st.text(string.ascii_letters + string.digits + "._-:/@ '\"#", max_size=12),
    st.sampled_from(["1.0", "true", "no", "null", "~", "01", "0x1F", "1e3", "-", "", "v1.2.3"]),
)
SCALARS = st.one_of(STRINGS, st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))


def tree() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.dictionaries(KEYS, inner, min_size=1, max_size=4),
                                st.lists(inner, min_size=1, max_size=3)),
        max_leaves=12,
    )


@st.composite
def styled_document(draw: st.DrawFn) -> tuple[str, Any]:
    """A HelmRelease-like file with random indentation, quoting, comments and flow maps."""
    values = draw(st.dictionaries(KEYS, tree(), min_size=1, max_size=4))
    indent = draw(st.integers(1, 4))
    lines = ["apiVersion: helm.fluxcd.io/v1", "kind: HelmRelease", "metadata:",
             " " * indent + "name: app", " " * indent + "namespace: ns", "spec:", " " * indent + "values:"]
    lines += render_block(values, 2 * indent, indent, draw)
    body = "\n".join(lines) + "\n"
    before = draw(st.sampled_from(["", "# a file\n", "---\n", "kind: ConfigMap\nmetadata: {name: app}\n---\n"]))
    after = draw(st.sampled_from(["", "...\n", "---\nkind: Other\n", "--- # trailing\n"]))
    return before + body + after, values


def render_scalar_any(value: Any, draw: st.DrawFn, in_flow: bool) -> str:
    if isinstance(value, str):
        style = draw(st.sampled_from([None, "'", '"']))
        return render_scalar(value, style, in_flow)
    return render_scalar(value, None, in_flow)


def render_flow(value: Any, draw: st.DrawFn) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {render_flow(v, draw)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render_flow(v, draw) for v in value) + "]"
    return render_scalar_any(value, draw, in_flow=True)


def render_block(value: dict[str, Any] | list[Any], at: int, step: int, draw: st.DrawFn) -> list[str]:
    pad = " " * at
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, child in items:
        head = f"{pad}{key}:" if key is not None else f"{pad}-"
        comment = draw(st.sampled_from(["", "  # note", " #"]))
        if isinstance(child, (dict, list)) and child and not draw(st.booleans()):
            lines.append(head + comment)
            lines += render_block(child, at + step, step, draw)
        elif isinstance(child, (dict, list)):
            lines.append(f"{head} {render_flow(child, draw)}{comment}")
        else:
            lines.append(f"{head} {render_scalar_any(child, draw, in_flow=False)}{comment}")
    return lines


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, value)]


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(styled_document())
def test_setting_every_leaf_to_its_own_value_changes_no_byte(doc: tuple[str, Any]) -> None:
    text, values = doc
    assert yaml.safe_load_all(text)  # the generator writes valid YAML
    updates = [(("spec", "values", *path), value) for path, value in leaves(values)]
    assert set_values(text, "HelmRelease", "ns", "app", updates) == text


@PROPERTY_SETTINGS
@given(styled_document(), st.data())
def test_setting_one_leaf_changes_only_its_line(doc: tuple[str, Any], data: st.DataObject) -> None:
    text, values = doc
    path, old = data.draw(st.sampled_from(leaves(values)))
    new = data.draw(st.sampled_from(["1.2.4", "v2", "2021.01.01-abc", "true", "x y", "it's"]))
    result = set_values(text, "HelmRelease", "ns", "app", [(("spec", "values", *path), new)])
    before, after = text.splitlines(), result.splitlines()
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(changed) == (0 if old == new and type(old) is str else 1)
    parsed = list(yaml.safe_load_all(result))
    release = next(d for d in parsed if d and d.get("kind") == "HelmRelease")
    node = release["spec"]["values"]
    for seg in path:
        node = node[seg]
    assert node == new


HR_WITH_BOMB = """\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec:
  values:
    image: {tag: "1.0.0"}
    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
""" + "".join(f"    l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))


def test_a_file_with_an_alias_bomb_is_refused_before_it_is_walked() -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(EditError, match=r"refusing to edit: more than 250,000 nodes .*--yaml-max-nodes"):
        set_values(HR_WITH_BOMB, "HelmRelease", "apps", "web", [(("spec", "values", "image", "tag"), "2.0.0")])
    assert time.perf_counter() - started < 0.5


def test_a_deeply_nested_file_is_refused_not_a_recursion_error() -> None:
    text = ("apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata: {name: web, namespace: apps}\n"
            "spec:\n  values:\n    image: {tag: '1.0.0'}\n    deep: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(EditError, match="nest deeper than 128 levels"):
        set_values(text, "HelmRelease", "apps", "web", [(("spec", "values", "image", "tag"), "2.0.0")])


def test_locate_skips_a_hostile_file_and_finds_the_release_in_another(tmp_path: Path) -> None:
    from helm_operator.automation.releasefiles import ReleaseIndex

    (tmp_path / "a-bomb.yaml").write_text(HR_WITH_BOMB)
    (tmp_path / "b-deep.yaml").write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    good = tmp_path / "c-web.yaml"
    good.write_text(HR_WITH_BOMB.split("    l0:")[0].replace("name: web", "name: other"))
    index = ReleaseIndex.scan(tmp_path, [])
    found = index.get("apps", "other")
    assert found is not None and found.path == good
    assert index.get("apps", "web") is None
