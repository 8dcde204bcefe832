"""Manifests: file selection, per-file parsing, checksums, IDs, duplicates."""

from __future__ import annotations

import hashlib

from helm_operator.gitsync.manifests import (
    Policy, parse_file, parse_files, resolve, select_manifest_files, split_documents,
)

CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n"


def scope(api_version: str, kind: str) -> bool | None:
    return {"Namespace": False, "ClusterRole": False, "ConfigMap": True, "Deployment": True}.get(kind)


def test_selects_yaml_files_below_the_paths_and_skips_chart_directories() -> None:
    tree = ["a/cm.yaml", "a/notes.txt", "a/chart/Chart.yaml", "a/chart/values.yaml",
            "a/chart/templates/dep.yaml", "a/only-chart-yaml/Chart.yaml", "b/x.yml", "c/y.yaml"]
    selected, errors = select_manifest_files(tree, ["a", "./b/"])
    assert selected == ["a/cm.yaml", "a/only-chart-yaml/Chart.yaml", "b/x.yml"]
    assert errors == []


def test_whole_tree_by_default_and_a_missing_path_is_an_error() -> None:
    selected, errors = select_manifest_files(["x.yaml", "d/y.yaml"], [])
    assert selected == ["d/y.yaml", "x.yaml"]
    _, errors = select_manifest_files(["x.yaml"], ["nope"])
    assert errors[0].file == "nope" and "not found" in errors[0].reason


def test_multi_document_file_gives_one_checksum_per_documents_bytes() -> None:
    first, second = CM % b"one", CM % b"two"
    data = first + b"---\n" + second + b"--- # trailing\n\n"
    assert split_documents(data)[:2] == [first, second]
    docs, errors = parse_file("f.yaml", data)
    assert errors == []
    assert [d.name for d in docs] == ["one", "two"]
    assert docs[0].checksum == hashlib.sha1(first).hexdigest()
    assert docs[1].checksum == hashlib.sha1(second).hexdigest()


def test_list_kinds_are_expanded() -> None:
    data = b"""apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
"""
    docs, errors = parse_file("list.yaml", data)
    assert [d.name for d in docs] == ["a", "b"] and errors == []
    assert docs[0].checksum != docs[1].checksum


def test_a_broken_document_is_reported_and_the_rest_of_the_tree_still_parses() -> None:
    parsed = parse_files({"good.yaml": CM % b"good",
                          "bad.yaml": (CM % b"ok") + b"---\nkind: [unclosed\n",
                          "nokind.yaml": b"apiVersion: v1\nmetadata: {name: x}\n"})
    assert sorted(d.name for d in parsed.documents) == ["good", "ok"]
    assert parsed.failed_files == ["bad.yaml", "nokind.yaml"]
    bad = [e for e in parsed.errors if e.file == "bad.yaml"][0]
    assert bad.obj == "document 2" and "invalid YAML at line" in bad.reason
    assert "missing kind" in [e for e in parsed.errors if e.file == "nokind.yaml"][0].reason


def test_ignore_policies_from_annotations_with_legacy_prefix() -> None:
    data = b"""apiVersion: v1
kind: ConfigMap
metadata: {name: a, annotations: {fluxcd.io/ignore: "true"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, annotations: {flux.weave.works/ignore: sync_only}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, annotations: {fluxcd.io/ignore: "false"}}
"""
    docs, _ = parse_file("p.yaml", data)
    assert [d.policy for d in docs] == [Policy.IGNORE, Policy.SYNC_ONLY, Policy.NONE]


def test_resolve_defaults_namespaces_like_kubectl_and_drops_them_for_cluster_scoped_kinds() -> None:
    parsed = parse_files({"f.yaml": b"""apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team, namespace: ignored}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: team}
"""})
    resolved = resolve(parsed.documents, scope, "fallback")
    assert [m.resource_id for m in resolved.manifests] == [
        "fallback:configmap/a", "<cluster>:namespace/team", "team:deployment/d"]


def test_unknown_kinds_and_duplicates_are_errors_whose_ids_are_protected() -> None:
    parsed = parse_files({
        "a.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: default}\n",
        "b.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n",
        "c.yaml": b"apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n",
    })
    resolved = resolve(parsed.documents, scope, "default")
    assert resolved.manifests == []
    assert {"default:configmap/dup", "default:gizmo/g", "<cluster>:gizmo/g"} <= resolved.protected_ids
    reasons = {(e.file, e.obj): e.reason for e in resolved.errors}
    assert "duplicate definition (in a.yaml, b.yaml)" in reasons[("a.yaml", "default:configmap/dup")]
    assert "unknown kind Gizmo" in reasons[("c.yaml", "default:gizmo/g")]


def _bomb(levels: int) -> bytes:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:",
             '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_hostile_files_are_file_errors_and_every_other_file_still_parses() -> None:
    deep = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n  x: " + b"[" * 20000 + b"]" * 20000
    deep_block = b"".join(b" " * i + b"k:\n" for i in range(1000))
    files = {"a/bomb.yaml": _bomb(8), "a/deep.yaml": deep, "a/deep-block.yaml": deep_block,
             "a/ok.yaml": CM % b"ok", "b/later.yaml": CM % b"later"}
    parsed = parse_files(files)
    assert sorted(d.name for d in parsed.documents) == ["later", "ok"]
    reasons = {e.file: e.reason for e in parsed.errors}
    assert set(reasons) == {"a/bomb.yaml", "a/deep.yaml", "a/deep-block.yaml"}
    assert "once its aliases (*name) are expanded" in reasons["a/bomb.yaml"]
    assert "--yaml-max-nodes" in reasons["a/bomb.yaml"]
    assert "nest deeper than 128 levels" in reasons["a/deep.yaml"] and "--yaml-max-depth" in reasons["a/deep.yaml"]
    assert "nest deeper than 128 levels" in reasons["a/deep-block.yaml"]
    assert parsed.failed_files == ["a/bomb.yaml", "a/deep-block.yaml", "a/deep.yaml"]


def test_a_file_over_the_size_limit_names_the_limit_and_its_flag() -> None:
    from helm_operator.boundedyaml import Limits

    docs, errors = parse_file("big.yaml", CM % b"x" + b"# " + b"x" * 4096 + b"\n", Limits(max_bytes=4096))
    assert docs == []
    assert errors[0].file == "big.yaml"
    assert errors[0].reason == ("4.1 KiB of YAML is more than the limit of 4 KiB (--yaml-max-bytes raises it); "
                                "none of its objects is applied")


def test_the_node_limit_counts_all_documents_of_a_file_together() -> None:
    from helm_operator.boundedyaml import Limits

    doc = b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\ndata: {a: b}\n"
    text = b"".join(doc % i for i in range(10))  # 13 nodes each (maps, keys, values)
    docs, errors = parse_file("many.yaml", text, Limits(max_nodes=200))
    assert len(docs) == 10 and errors == []
    docs, errors = parse_file("many.yaml", text, Limits(max_nodes=100))
    assert docs == [] and "--yaml-max-nodes" in errors[0].reason
