"""The manifest syncer against the real local control plane and real Git
remotes (file:// bare repositories): one pass at a time with `sync --once`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from helm_operator.gitsync.plan import CHECKSUM_ANNOTATION, GC_MARK_LABEL, default_sync_set_name, gc_mark
from tests.cluster.localcluster import LocalCluster
from tests.integration.gitsync_support import (
    GitRemote, get_obj, sync_once, sync_status, timed, wait_gone,
)


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def remote(tmp_path: Path) -> GitRemote:
    return GitRemote(tmp_path / "git")


def cm(name: str, ns: str | None = None, data: str = "v", annotations: str = "") -> str:
    namespace = f"\n  namespace: {ns}" if ns else ""
    ann = f"\n  annotations: {{{annotations}}}" if annotations else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{namespace}{ann}\ndata:\n  k: {data}\n"


def tree(uid: str) -> dict[str, str]:
    ns, group = f"sync-{uid}", f"g{uid}.example.com"
    return {
        "namespaces.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
        "crds/widget.yaml": f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
""",
        "apps/widgets.yaml": f"""apiVersion: {group}/v1
kind: Widget
metadata: {{name: w1, namespace: {ns}}}
spec: {{size: 1}}
---
apiVersion: {group}/v1
kind: Widget
metadata: {{name: w2, namespace: {ns}}}
spec: {{size: 2}}
""",
        "apps/deploy.yaml": f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.27"}}]
""",
        "apps/release.yaml": f"""apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata: {{name: podinfo, namespace: {ns}}}
spec:
  releaseName: podinfo-{uid}
  chart: {{repository: "https://stefanprodan.github.io/podinfo", name: podinfo, version: "6.5.0"}}
  values: {{replicaCount: 1}}
""",
        "apps/config.yaml": cm("settings", ns),
        "apps/list.yaml": f"""apiVersion: v1
kind: List
items:
- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: from-list, namespace: {ns}}}}}
""",
        "charts/mychart/Chart.yaml": "apiVersion: v2\nname: mychart\nversion: 0.1.0\n",
        "charts/mychart/values.yaml": "x: 1\n",
        "charts/mychart/templates/cm.yaml": "this: {{ is not a manifest }}\n",
        "README.md": "not yaml\n",
    }


def populate(remote: GitRemote, files: dict[str, str]) -> str:
    for path, text in files.items():
        remote.write(path, text)
    return remote.commit("tree")


def test_first_sync_applies_namespace_crd_custom_resources_deployment_and_helmrelease(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"sync-{uid}"
    commit = populate(remote, tree(uid))

    proc, seconds = timed(lambda: sync_once(cluster, tmp_path / "w", "--git-url", remote.url,
                                            "--source-name", f"first-{uid}"))
    print(f"first sync of the test tree (CRD established in the same pass): {seconds:.2f}s")
    assert proc.returncode == 0, proc.stderr

    sync_set = default_sync_set_name(remote.url, "master", [])
    for kind, name in [("widget.g%s.example.com" % uid, "w1"), ("widget.g%s.example.com" % uid, "w2"),
                       ("deployment", "web"), ("helmrelease", "podinfo"), ("configmap", "settings"),
                       ("configmap", "from-list")]:
        obj = get_obj(cluster, kind, name, ns)
        assert obj is not None, f"{kind} {name} missing"
        rid = f"{ns}:{obj['kind'].lower()}/{name}"
        assert obj["metadata"]["labels"][GC_MARK_LABEL] == gc_mark(sync_set, rid)
        assert len(obj["metadata"]["annotations"][CHECKSUM_ANNOTATION]) == 40
        managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
        assert "helm-operator" in managers
    namespace = get_obj(cluster, "namespace", ns)
    assert namespace is not None
    assert namespace["metadata"]["labels"][GC_MARK_LABEL] == gc_mark(sync_set, f"<cluster>:namespace/{ns}")
    assert get_obj(cluster, "crd", f"widgets.g{uid}.example.com") is not None

    assert remote.tag("flux-sync") == commit
    status = sync_status(cluster, f"first-{uid}")
    assert status["commit"] == commit and status["errors"] == []
    assert status["applied"] == 8 and status["unchanged"] == 0

    # A second pass over the same commit changes nothing.
    proc, seconds = timed(lambda: sync_once(cluster, tmp_path / "w", "--git-url", remote.url,
                                            "--source-name", f"first-{uid}"))
    print(f"second sync, nothing changed: {seconds:.2f}s")
    assert proc.returncode == 0, proc.stderr
    status = sync_status(cluster, f"first-{uid}")
    assert (status["applied"], status["unchanged"]) == (0, 8)


def test_an_update_in_git_is_applied_and_a_hand_edit_of_managed_fields_is_restored(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"upd-{uid}"
    remote.write("ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    remote.write("cm.yaml", cm("c", ns, "one"))
    remote.commit()
    args = ("--git-url", remote.url, "--source-name", f"upd-{uid}")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    before = get_obj(cluster, "configmap", "c", ns)["metadata"]["annotations"][CHECKSUM_ANNOTATION]  # type: ignore[index]

    remote.write("cm.yaml", cm("c", ns, "two"))
    commit = remote.commit("update")
    cluster.kubectl("patch", "configmap", "c", "-n", ns, "--type=merge", "-p", '{"data":{"k":"by-hand"}}')
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    obj = get_obj(cluster, "configmap", "c", ns)
    assert obj is not None and obj["data"]["k"] == "two"
    assert obj["metadata"]["annotations"][CHECKSUM_ANNOTATION] != before
    assert remote.tag() == commit
    assert sync_status(cluster, f"upd-{uid}")["applied"] == 1


def test_deleting_from_git_keeps_objects_without_gc_and_deletes_them_with_gc(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"del-{uid}"
    remote.write("ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    remote.write("a.yaml", cm("a", ns))
    remote.write("b.yaml", cm("b", ns))
    remote.write("c.yaml", cm("c", ns))
    remote.commit()
    args = ("--git-url", remote.url, "--source-name", f"del-{uid}")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    # An object someone else labelled with a copied mark is not ours to delete.
    cluster.kubectl("create", "configmap", "copied", "-n", ns)
    mark = get_obj(cluster, "configmap", "a", ns)["metadata"]["labels"][GC_MARK_LABEL]  # type: ignore[index]
    cluster.kubectl("label", "configmap", "copied", "-n", ns, f"{GC_MARK_LABEL}={mark}")

    remote.remove("a.yaml")
    remote.commit("delete a")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    assert get_obj(cluster, "configmap", "a", ns) is not None, "deleted without garbage collection"

    proc = sync_once(cluster, tmp_path / "w", *args, "--sync-garbage-collection-dry")
    assert proc.returncode == 0, proc.stderr
    assert get_obj(cluster, "configmap", "a", ns) is not None, "dry run deleted"
    assert sync_status(cluster, f"del-{uid}")["would_delete"] == [f"{ns}:configmap/a"]

    remote.remove("b.yaml")
    remote.commit("delete b")
    proc = sync_once(cluster, tmp_path / "w", *args, "--sync-garbage-collection")
    assert proc.returncode == 0, proc.stderr
    wait_gone(cluster, "configmap", "a", ns)
    wait_gone(cluster, "configmap", "b", ns)
    assert get_obj(cluster, "configmap", "c", ns) is not None
    assert get_obj(cluster, "configmap", "copied", ns) is not None
    assert sync_status(cluster, f"del-{uid}")["deleted"] == 2


def test_ignore_and_sync_only_in_git_and_in_the_cluster(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"ign-{uid}"
    remote.write("ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    remote.write("ignored.yaml", cm("ignored", ns, annotations='fluxcd.io/ignore: "true"'))
    remote.write("synconly.yaml", cm("synconly", ns, annotations="fluxcd.io/ignore: sync_only"))
    remote.write("handled.yaml", cm("handled", ns, "git"))
    remote.write("taken.yaml", cm("taken", ns))
    remote.commit()
    args = ("--git-url", remote.url, "--source-name", f"ign-{uid}", "--sync-garbage-collection")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    assert get_obj(cluster, "configmap", "ignored", ns) is None
    assert get_obj(cluster, "configmap", "synconly", ns) is not None

    # Someone takes over `handled` in the cluster; a later Git change does not reach it.
    cluster.kubectl("annotate", "configmap", "handled", "-n", ns, "fluxcd.io/ignore=true")
    cluster.kubectl("annotate", "configmap", "taken", "-n", ns, "fluxcd.io/ignore=true")
    cluster.kubectl("patch", "configmap", "handled", "-n", ns, "--type=merge", "-p", '{"data":{"k":"hand"}}')
    remote.write("handled.yaml", cm("handled", ns, "git-changed"))
    remote.remove("synconly.yaml")
    remote.remove("taken.yaml")
    remote.commit("changes")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    assert get_obj(cluster, "configmap", "handled", ns)["data"]["k"] == "hand"  # type: ignore[index]
    assert get_obj(cluster, "configmap", "synconly", ns) is not None, "sync_only was garbage-collected"
    assert get_obj(cluster, "configmap", "taken", ns) is not None, "ignored live object was deleted"
    status = sync_status(cluster, f"ign-{uid}")
    assert status["deleted"] == 0 and status["skipped"] == 2


def test_a_broken_file_is_reported_others_apply_and_nothing_is_garbage_collected(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"brk-{uid}"
    remote.write("ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    remote.write("a.yaml", cm("a", ns))
    remote.write("moved.yaml", cm("moved", ns))
    remote.commit()
    args = ("--git-url", remote.url, "--source-name", f"brk-{uid}", "--sync-garbage-collection")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0

    # One commit: a.yaml changes, moved.yaml's object moves into a file that
    # does not parse, a new good file, an object the API server rejects.
    remote.write("a.yaml", cm("a", ns, "changed"))
    remote.remove("moved.yaml")
    remote.write("broken.yaml", cm("moved", ns) + "  bad: [unclosed\n")
    remote.write("b.yaml", cm("b", ns))
    remote.write("rejected.yaml", cm("Not_A_Valid_Name", ns))
    remote.commit("mixed")
    proc = sync_once(cluster, tmp_path / "w", *args)
    assert proc.returncode == 1
    assert get_obj(cluster, "configmap", "a", ns)["data"]["k"] == "changed"  # type: ignore[index]
    assert get_obj(cluster, "configmap", "b", ns) is not None
    assert get_obj(cluster, "configmap", "moved", ns) is not None, "deleted what a broken file might define"
    status = sync_status(cluster, f"brk-{uid}")
    errors = {e["file"]: e for e in status["errors"]}
    assert set(errors) == {"broken.yaml", "rejected.yaml"}
    assert "invalid YAML" in errors["broken.yaml"]["reason"]
    assert errors["rejected.yaml"]["object"] == f"{ns}:configmap/Not_A_Valid_Name"
    assert "Not_A_Valid_Name" in errors["rejected.yaml"]["reason"]
    assert "broken.yaml" in status["gc_blocked"]

    # Fixed: the object is defined again, nothing is blocked.
    remote.write("broken.yaml", cm("moved", ns))
    remote.remove("rejected.yaml")
    remote.remove("b.yaml")
    remote.commit("fix")
    proc = sync_once(cluster, tmp_path / "w", *args)
    assert proc.returncode == 0, proc.stderr
    wait_gone(cluster, "configmap", "b", ns)
    assert get_obj(cluster, "configmap", "moved", ns) is not None


def test_readonly_keeps_the_marker_in_the_cluster_and_pushes_nothing(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    ns = f"ro-{uid}"
    remote.write("cm.yaml", cm("c", "default") + f"---\n{cm('d', 'default')}".replace("name: d", f"name: d-{ns}"))
    commit = remote.commit()
    proc = sync_once(cluster, tmp_path / "w", "--git-url", remote.url, "--source-name", f"ro-{uid}",
                     "--git-readonly")
    assert proc.returncode == 0, proc.stderr
    assert remote.tag() is None
    marker = get_obj(cluster, "configmap", f"helm-operator-sync-marker-ro-{uid}", "default")
    assert marker is not None
    assert marker["metadata"]["annotations"]["helm-operator.dev/sync-marker"] == commit


def test_a_custom_sync_tag_is_moved_to_each_applied_commit(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    remote.write("cm.yaml", cm(f"tag-{uid}", "default"))
    first = remote.commit()
    args = ("--git-url", remote.url, "--source-name", f"tag-{uid}", "--git-sync-tag", f"sync-{uid}")
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    assert remote.tag(f"sync-{uid}") == first
    remote.write("cm.yaml", cm(f"tag-{uid}", "default", "two"))
    second = remote.commit()
    assert sync_once(cluster, tmp_path / "w", *args).returncode == 0
    assert remote.tag(f"sync-{uid}") == second != first


def test_paths_limit_what_is_synced_and_a_missing_path_is_an_error(
        cluster: LocalCluster, remote: GitRemote, uid: str, tmp_path: Path) -> None:
    remote.write("in/cm.yaml", cm(f"in-{uid}", "default"))
    remote.write("out/cm.yaml", cm(f"out-{uid}", "default"))
    remote.commit()
    proc = sync_once(cluster, tmp_path / "w", "--git-url", remote.url, "--source-name", f"paths-{uid}",
                     "--git-path", "in", "--git-path", "missing")
    assert proc.returncode == 1
    assert get_obj(cluster, "configmap", f"in-{uid}", "default") is not None
    assert get_obj(cluster, "configmap", f"out-{uid}", "default") is None
    errors = sync_status(cluster, f"paths-{uid}")["errors"]
    assert errors[0]["file"] == "missing" and "not found" in errors[0]["reason"]
