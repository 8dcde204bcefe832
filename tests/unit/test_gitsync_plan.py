"""Plan: Flux v1 gc marks and sync set names, rank order, stale set rules."""

from __future__ import annotations

from helm_operator.gitsync.manifests import Document, Manifest, Policy, resource_id
from helm_operator.gitsync.plan import (
    CHECKSUM_ANNOTATION, GC_MARK_LABEL, LiveObject, default_sync_set_name, gc_mark, kind_rank,
    live_object, make_plan, safe_url, scopes_from_crds, stamp,
)

SET = "my-set"


def manifest(kind: str, name: str, ns: str | None = "default", policy: Policy = Policy.NONE,
             api_version: str = "v1") -> Manifest:
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
    doc = Document("f.yaml", api_version, kind, name, ns, body, "c0ffee", policy)
    return Manifest(doc, ns, resource_id(ns, kind, name))


def live(kind: str, name: str, ns: str | None = "default", *, mark: str | None = None,
         policy: Policy = Policy.NONE, owned: bool = False) -> LiveObject:
    rid = resource_id(ns, kind, name)
    return LiveObject(rid, "v1", kind, name, ns, gc_mark(SET, rid) if mark is None else mark,
                      policy=policy, owned=owned)


def test_gc_mark_matches_flux_v1_golden_values_computed_with_go() -> None:
    # Computed with Go's base64.RawURLEncoding (unpadded), as Flux v1's makeGCMark.
    assert gc_mark("git", "default:deployment/helloworld") == "sha256.n6lF8sG4OYYpgCWn3MdSbuOEYv2MlCVCY_NoBZynhkg"
    assert gc_mark("abc", "<cluster>:namespace/demo") == "sha256.YRJ8-aVOJZiFq7D6qOr7jaxRe32UOEUZ2GLnpBvMqQU"
    assert len(gc_mark("x", "y")) <= 63  # a valid label value


def test_default_sync_set_name_matches_flux_v1_git_config_hash() -> None:
    assert default_sync_set_name("git@github.com:org/repo", "master", ["a", "b"]) == \
        "b4GLu4EQsaxFqS-w63m0dTjyPpQdR3cuonyseABe_lA"


def test_safe_url_drops_passwords_and_normalises_scp_syntax() -> None:
    assert safe_url("https://user:s3cret@example.com/r.git") == "https://user@example.com/r.git"
    assert safe_url("git@github.com:org/repo") == "ssh://git@github.com/org/repo"
    assert safe_url("file:///tmp/repo.git") == "file:///tmp/repo.git"


def test_kind_rank_follows_compat_order() -> None:
    order = ["Namespace", "CustomResourceDefinition", "Service", "ConfigMap", "ClusterRoleBinding",
             "Deployment", "CronJob", "HelmRelease"]
    assert [kind_rank(k) for k in order] == sorted(kind_rank(k) for k in order)
    assert kind_rank("Namespace") < kind_rank("Secret") < kind_rank("Deployment") < kind_rank("HelmRelease")


def test_plan_applies_in_rank_order_and_skips_objects_ignored_in_git() -> None:
    ms = [manifest("HelmRelease", "a", api_version="helm.fluxcd.io/v1"), manifest("Deployment", "b"),
          manifest("Namespace", "z", None), manifest("ConfigMap", "c", policy=Policy.IGNORE)]
    plan = make_plan(ms, sync_set=SET, live=[])
    assert [m.kind for m in plan.apply] == ["Namespace", "Deployment", "HelmRelease"]
    assert [m.name for m in plan.ignored] == ["c"]


def test_stale_objects_are_those_with_this_sets_mark_gone_from_git_in_reverse_rank_order() -> None:
    plan = make_plan([manifest("ConfigMap", "kept")], sync_set=SET, live=[
        live("ConfigMap", "kept"), live("Namespace", "old", None), live("Deployment", "old"),
        live("ConfigMap", "other-set", mark=gc_mark("other", "default:configmap/other-set")),
        live("ConfigMap", "copied-label", mark=gc_mark(SET, "default:configmap/kept")),
    ])
    assert [o.resource_id for o in plan.stale] == ["default:deployment/old", "<cluster>:namespace/old"]


def test_ignore_sync_only_and_owned_objects_are_never_stale() -> None:
    plan = make_plan([], sync_set=SET, live=[
        live("ConfigMap", "ign", policy=Policy.IGNORE), live("ConfigMap", "so", policy=Policy.SYNC_ONLY),
        live("ReplicaSet", "owned", owned=True), live("ConfigMap", "gone")])
    assert [o.name for o in plan.stale] == ["gone"]
    assert sorted(k.obj.name for k in plan.kept) == ["ign", "owned", "so"]


def test_a_file_that_failed_to_parse_blocks_all_garbage_collection() -> None:
    plan = make_plan([], sync_set=SET, live=[live("ConfigMap", "gone")], failed_files=["broken.yaml"])
    assert plan.stale == []
    assert "broken.yaml" in plan.gc_blocked


def test_protected_ids_are_not_stale() -> None:
    plan = make_plan([], sync_set=SET, live=[live("Widget", "w")], protected_ids={"default:widget/w"})
    assert plan.stale == []


def test_stamp_adds_mark_and_checksum_and_sets_the_namespace_without_touching_the_input() -> None:
    m = manifest("ConfigMap", "c", "team")
    m.doc.body["metadata"]["labels"] = {"app": "x"}
    body = stamp(m, SET)
    assert body["metadata"]["namespace"] == "team"
    assert body["metadata"]["labels"] == {"app": "x", GC_MARK_LABEL: gc_mark(SET, "team:configmap/c")}
    assert body["metadata"]["annotations"] == {CHECKSUM_ANNOTATION: "c0ffee"}
    assert GC_MARK_LABEL not in m.doc.body["metadata"]["labels"]


def test_scopes_from_crds_in_git() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget"},
                    "versions": [{"name": "v1"}, {"name": "v2"}]}}
    doc = Document("crd.yaml", crd["apiVersion"], crd["kind"], "widgets.example.com", None, crd, "x")
    assert scopes_from_crds([doc]) == {("example.com/v1", "Widget"): False, ("example.com/v2", "Widget"): False}


def test_live_object_reads_mark_checksum_policy_and_owner() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c", "namespace": "ns", "labels": {GC_MARK_LABEL: "sha256.x"},
        "annotations": {CHECKSUM_ANNOTATION: "abc", "flux.weave.works/ignore": "sync_only"},
        "ownerReferences": [{"name": "o"}]}}
    lo = live_object(obj, namespaced=True)
    assert (lo.resource_id, lo.mark, lo.checksum, lo.policy, lo.owned) == \
        ("ns:configmap/c", "sha256.x", "abc", Policy.SYNC_ONLY, True)
