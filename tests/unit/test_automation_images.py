"""images: automation annotations, dot paths, image references, detected and aliased images."""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from helm_operator.api.automation import read_policy
from helm_operator.automation.detect import CHART_IMAGE, Role, Shape, find_images, updates_for
from helm_operator.automation.imageref import ImageRef, parse_image_ref
from helm_operator.automation.paths import PathError, format_dot_path, parse_dot_path, parse_path_list, resolve_path


def release(values: Any, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
            "metadata": {"name": "app", "namespace": "ns", "annotations": annotations or {}},
            "spec": {"values": values}}


def from_yaml(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


# --- policy annotations ----------------------------------------------------


def test_only_the_string_true_switches_automation_locks_and_ignore_on() -> None:
    assert read_policy({"fluxcd.io/automated": "true"}).automated
    for value in ("True", "yes", "1", "", "false"):
        assert not read_policy({"fluxcd.io/automated": value}).automated
    assert not read_policy({"fluxcd.io/automated": True}).automated  # not a string: YAML `true` unquoted
    assert read_policy({"fluxcd.io/ignore": "true"}).ignored
    assert not read_policy({"fluxcd.io/ignore": "sync_only"}).ignored
    assert read_policy(None) == read_policy({})


def test_locked_with_user_and_message() -> None:
    policy = read_policy({"fluxcd.io/locked": "true", "fluxcd.io/locked_user": "Jane <jane@example.com>",
                          "fluxcd.io/locked_msg": "incident 42"})
    assert (policy.locked, policy.locked_user, policy.locked_msg) == (True, "Jane <jane@example.com>", "incident 42")


def test_the_legacy_prefix_is_read_and_the_new_one_wins_when_both_are_set() -> None:
    legacy = read_policy({"flux.weave.works/automated": "true", "flux.weave.works/locked": "true",
                          "flux.weave.works/tag.app": "semver:~1.2"})
    assert legacy.automated and legacy.locked and legacy.filters == {"app": "semver:~1.2"}
    both = read_policy({"fluxcd.io/automated": "false", "flux.weave.works/automated": "true"})
    assert not both.automated


def test_filters_are_raw_strings_per_container_with_filter_prefix_first() -> None:
    policy = read_policy({
        "filter.fluxcd.io/app": "semver:>=1.0 <2",
        "fluxcd.io/tag.app": "glob:ignored-because-filter-wins",
        "fluxcd.io/tag.worker": "v1.*",
        "flux.weave.works/tag.worker": "glob:legacy-loses",
        "flux.weave.works/tag.old": "regexp:^v",
        "fluxcd.io/tag.": "no container name",
    })
    assert policy.filters == {"app": "semver:>=1.0 <2", "worker": "v1.*", "old": "regexp:^v"}


# --- dot paths -------------------------------------------------------------


@pytest.mark.parametrize(("text", "segments"), [
    ("image.tag", ("image", "tag")),
    ("images[0].tag", ("images", 0, "tag")),
    ("ingress\\.class.image", ("ingress.class", "image")),
    ("a[1][2]", ("a", 1, 2)),
    ("matrix[0][1].x", ("matrix", 0, 1, "x")),
    ("back\\\\slash", ("back\\slash",)),
    ("images.0.tag", ("images", "0", "tag")),
])
def test_dot_paths_parse(text: str, segments: tuple[Any, ...]) -> None:
    assert parse_dot_path(text) == segments


@pytest.mark.parametrize("text", ["", ".a", "a.", "a..b", "a[x]", "a[1", "a]", "a[0]b", "trailing\\"])
def test_bad_dot_paths_are_errors(text: str) -> None:
    with pytest.raises(PathError):
        parse_dot_path(text)


def test_path_lists_split_on_unescaped_commas_and_trim_spaces() -> None:
    assert parse_path_list("image.tag, global.appVersion,labels[0]") == [
        ("image", "tag"), ("global", "appVersion"), ("labels", 0)]
    assert parse_path_list("a\\,b") == [("a,b",)]
    with pytest.raises(PathError, match="empty entry"):
        parse_path_list("a,,b")


SEGMENT = st.one_of(st.text(string.ascii_letters + ".,[]\\ _-", min_size=1, max_size=6), st.integers(0, 20))


@given(st.lists(SEGMENT, min_size=1, max_size=5).filter(lambda s: isinstance(s[0], str)))
def test_formatted_paths_parse_back(segments: list[Any]) -> None:
    assert parse_dot_path(format_dot_path(segments)) == tuple(segments)


def test_resolving_a_path_gives_exact_segments_for_the_writer() -> None:
    values = {"images": [{"tag": "v1"}], 1: {"x": "int key"}}
    assert resolve_path(values, ("images", "0", "tag")) == (("images", 0, "tag"), "v1")
    assert resolve_path(values, ("1", "x")) == (("1", "x"), "int key")
    with pytest.raises(PathError, match=r"images\[3\] not found"):
        resolve_path(values, ("images", 3))
    with pytest.raises(PathError, match="is a scalar"):
        resolve_path(values, ("images", 0, "tag", "deeper"))


# --- image references ------------------------------------------------------


@pytest.mark.parametrize(("text", "repository", "tag", "digest", "domain"), [
    ("nginx", "nginx", "", "", ""),
    ("nginx:1.25", "nginx", "1.25", "", ""),
    ("library/nginx:1.25-alpine", "library/nginx", "1.25-alpine", "", ""),
    ("localhost:5000/team/app:v1", "localhost:5000/team/app", "v1", "", "localhost:5000"),
    ("registry.example.com:443/app", "registry.example.com:443/app", "", "", "registry.example.com:443"),
    ("ghcr.io/org/app:1.0@sha256:" + "a" * 64, "ghcr.io/org/app", "1.0", "sha256:" + "a" * 64, "ghcr.io"),
    ("ghcr.io/org/app@sha256:" + "b" * 64, "ghcr.io/org/app", "", "sha256:" + "b" * 64, "ghcr.io"),
])
def test_image_references_split_like_docker(text: str, repository: str, tag: str, digest: str, domain: str) -> None:
    ref = parse_image_ref(text)
    assert (ref.repository, ref.tag, ref.digest, ref.domain) == (repository, tag, digest, domain)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["", "Upper/Case", "has space:1", "repo:", "repo:bad tag", "http://x/y", "a//b"])
def test_non_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_image_ref(text)


def test_a_new_tag_drops_the_digest_that_pinned_the_old_image() -> None:
    ref = ImageRef("ghcr.io/org/app", "1.0", "sha256:" + "c" * 64)
    assert str(ref.with_tag("1.1")) == "ghcr.io/org/app:1.1"


# --- detected images -------------------------------------------------------


def test_top_level_image_string_is_the_chart_image() -> None:
    found = find_images(release({"image": "example/app:1.0", "replicas": 2}))
    [c] = found.containers
    assert (c.name, c.image_ref, c.repository, c.tag, c.shape) == (CHART_IMAGE, "example/app:1.0", "example/app", "1.0", Shape.IMAGE)
    assert updates_for(c, "1.1") == [(("spec", "values", "image"), "example/app:1.1")]


def test_image_and_tag_siblings_write_only_the_tag() -> None:
    [c] = find_images(release({"app": {"image": "example/app", "tag": "v1"}})).containers
    assert (c.name, c.image_ref, c.shape) == ("app", "example/app:v1", Shape.IMAGE_TAG)
    assert updates_for(c, "v2") == [(("spec", "values", "app", "tag"), "v2")]


def test_registry_image_and_tag_siblings() -> None:
    [c] = find_images(release({"app": {"registry": "quay.io", "image": "org/app", "tag": "v1"}})).containers
    assert (c.image_ref, c.registry, c.shape) == ("quay.io/org/app:v1", "quay.io", Shape.REGISTRY_IMAGE_TAG)
    assert [p.role for p in c.locations] == [Role.REGISTRY, Role.REPOSITORY, Role.TAG]
    assert updates_for(c, "v2") == [(("spec", "values", "app", "tag"), "v2")]


def test_registry_and_image_with_tag_rewrite_the_image_string_only() -> None:
    [c] = find_images(release({"app": {"registry": "quay.io", "image": "org/app:v1"}})).containers
    assert (c.image_ref, c.shape) == ("quay.io/org/app:v1", Shape.REGISTRY_IMAGE)
    assert updates_for(c, "v2") == [(("spec", "values", "app", "image"), "org/app:v2")]


def test_image_map_shapes_one_key_deep_and_at_the_top() -> None:
    values = from_yaml("""
image: {repository: example/top, tag: "1.0"}
worker:
  image: {registry: "registry.example.com:5000", repository: team/worker, tag: w-1}
""")
    found = find_images(release(values))
    assert [(c.name, c.image_ref, c.shape) for c in found.containers] == [
        (CHART_IMAGE, "example/top:1.0", Shape.IMAGE_MAP),
        ("worker", "registry.example.com:5000/team/worker:w-1", Shape.IMAGE_MAP_REGISTRY),
    ]
    assert updates_for(found.containers[1], "w-2") == [(("spec", "values", "worker", "image", "tag"), "w-2")]


def test_values_that_are_not_images_are_not_detected() -> None:
    values = from_yaml("""
numbers: {image: example/app, tag: 1.0}        # a float tag is not a string: Flux v1 skipped it too
prose: {image: "Not An Image"}
deep: {inner: {image: example/deep:1.0}}      # two keys deep
map: {image: {repository: example/app}}       # no tag
list: [{image: example/app:1.0}]
""")
    assert find_images(release(values)).containers == ()


def test_no_values_means_no_images() -> None:
    assert find_images({"metadata": {"name": "x"}, "spec": {}}).containers == ()
    assert find_images({}).containers == ()


# --- aliased images --------------------------------------------------------


def test_repository_only_alias_is_written_whole() -> None:
    hr = release({"deploy": {"img": "example/app:1.0"}}, {"repository.fluxcd.io/app": "deploy.img"})
    [c] = find_images(hr).containers
    assert (c.name, c.image_ref, c.mapped, c.shape) == ("app", "example/app:1.0", True, Shape.MAPPED)
    assert updates_for(c, "2.0") == [(("spec", "values", "deploy", "img"), "example/app:2.0")]


def test_registry_and_repository_alias() -> None:
    hr = release({"reg": "quay.io", "img": "org/app:1.0"},
                 {"registry.fluxcd.io/app": "reg", "repository.fluxcd.io/app": "img"})
    [c] = [c for c in find_images(hr).containers if c.name == "app"]
    assert c.image_ref == "quay.io/org/app:1.0"
    assert updates_for(c, "2.0") == [(("spec", "values", "img"), "org/app:2.0")]


def test_all_three_paths_with_a_list_index_and_a_dotted_key() -> None:
    values = {"images": [{"reg": "ghcr.io", "repo": "org/app", "tag": "1.0"}], "ingress.class": {"tag": "1.0"}}
    hr = release(values, {"registry.fluxcd.io/app": "images[0].reg", "repository.fluxcd.io/app": "images[0].repo",
                          "tag.fluxcd.io/app": "images[0].tag, ingress\\.class.tag"})
    [c] = find_images(hr).containers
    assert c.image_ref == "ghcr.io/org/app:1.0"
    assert updates_for(c, "1.1") == [(("spec", "values", "images", 0, "tag"), "1.1"),
                                     (("spec", "values", "ingress.class", "tag"), "1.1")]


def test_every_comma_separated_path_gets_the_value_and_the_first_is_read() -> None:
    hr = release({"app": {"repository": "example/app", "tag": "1.0"}, "appVersion": "0.9"},
                 {"repository.fluxcd.io/app": "app.repository", "tag.fluxcd.io/app": "app.tag,appVersion"})
    [c] = find_images(hr).containers
    assert c.tag == "1.0"
    assert [p.current for p in c.locations if p.role is Role.TAG] == ["1.0", "1.0"]
    assert [path for path, _ in updates_for(c, "1.1")] == [("spec", "values", "app", "tag"),
                                                          ("spec", "values", "appVersion")]


def test_gjson_style_numeric_segments_index_lists() -> None:
    hr = release({"images": [{"repo": "example/app", "tag": "1"}]},
                 {"repository.fluxcd.io/app": "images.0.repo", "tag.fluxcd.io/app": "images.0.tag"})
    [c] = find_images(hr).containers
    assert updates_for(c, "2") == [(("spec", "values", "images", 0, "tag"), "2")]


def test_an_alias_wins_over_a_detected_image_of_the_same_name() -> None:
    values = {"app": {"image": "example/app", "tag": "1.0"}, "other": {"repository": "example/real", "tag": "3"}}
    hr = release(values, {"repository.fluxcd.io/app": "other.repository", "tag.fluxcd.io/app": "other.tag"})
    found = find_images(hr)
    assert [(c.name, c.image_ref, c.mapped) for c in found.containers] == [("app", "example/real:3", True)]


@pytest.mark.parametrize(("annotations", "message"), [
    ({"tag.fluxcd.io/app": "app.tag"}, "repository.fluxcd.io/app: missing; it is required with tag.fluxcd.io/app"),
    ({"registry.fluxcd.io/app": "app.reg"}, "repository.fluxcd.io/app: missing"),
    ({"repository.fluxcd.io/app": "app.nope"}, "spec.values.app.nope not found"),
    ({"repository.fluxcd.io/app": "app.repository", "tag.fluxcd.io/app": "app.number"},
     "spec.values.app.number is float 1.5, not a string; quote it in the YAML"),
    ({"repository.fluxcd.io/app": "app"}, "spec.values.app is a map or list, not a string"),
    ({"repository.fluxcd.io/app": "app..repository"}, "has an empty key"),
    ({"repository.fluxcd.io/app": ""}, "empty entry"),
    ({"repository.fluxcd.io/app": "app.prose"}, "'Not An Image', not an image reference"),
    ({"repository.fluxcd.io/app": "app.repository", "tag.fluxcd.io/app": "app.prose"},
     "'Not An Image' is not a valid image tag"),
    ({"repository.fluxcd.io/app": "app.repository, app"}, "spec.values.app is a map or list, not a scalar"),
])
def test_a_bad_alias_is_an_error_for_that_container_only(annotations: dict[str, str], message: str) -> None:
    values = {"app": {"repository": "example/app", "tag": "1.0", "number": 1.5, "prose": "Not An Image"},
              "sidecar": {"image": "example/sidecar:1"}}
    found = find_images(release(values, annotations))
    [error] = found.errors
    assert error.container == "app"
    assert message in str(error)
    assert [c.name for c in found.containers] == ["sidecar"]


def test_a_broken_alias_hides_the_detected_image_it_meant_to_replace() -> None:
    hr = release({"app": {"image": "example/app:1"}}, {"repository.fluxcd.io/app": "missing.path"})
    found = find_images(hr)
    assert found.containers == () and found.errors[0].container == "app"


def test_an_annotation_without_a_container_name_is_reported() -> None:
    found = find_images(release({"image": "example/app:1"}, {"repository.fluxcd.io/": "image"}))
    assert "names no container" in str(found.errors[0])
    assert [c.name for c in found.containers] == [CHART_IMAGE]


# --- writes ----------------------------------------------------------------


def test_an_invalid_new_tag_is_refused_before_anything_is_written() -> None:
    [c] = find_images(release({"image": "example/app:1.0"})).containers
    for tag in ("", "bad tag", "-leading", "a" * 200):
        with pytest.raises(ValueError, match="not a valid image tag"):
            updates_for(c, tag)


def test_a_digest_pinned_image_string_moves_to_the_plain_new_tag() -> None:
    [c] = find_images(release({"image": "example/app:1.0@sha256:" + "d" * 64})).containers
    assert c.digest == "sha256:" + "d" * 64
    assert updates_for(c, "1.1") == [(("spec", "values", "image"), "example/app:1.1")]


def test_an_image_without_a_tag_gets_one() -> None:
    [c] = find_images(release({"image": "nginx"})).containers
    assert c.tag == "" and updates_for(c, "1.25") == [(("spec", "values", "image"), "nginx:1.25")]


def test_alias_wins_over_a_detected_image_at_the_same_paths() -> None:
    """`image.repository`/`image.tag` are detected as `chart-image`, but an alias
    naming those paths is the same image: only the alias (and its filter) counts."""
    from helm_operator.automation.detect import find_images

    release = {
        "metadata": {"annotations": {"repository.fluxcd.io/app": "image.repository",
                                     "tag.fluxcd.io/app": "image.tag"}},
        "spec": {"values": {"image": {"repository": "example.com/app", "tag": "1.0.0"},
                            "sidecar": {"image": "example.com/proxy:2.0"}}},
    }
    names = sorted(c.name for c in find_images(release).containers)
    assert names == ["app", "sidecar"]
