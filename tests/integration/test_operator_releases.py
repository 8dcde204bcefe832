"""The release operator against the real cluster and helm: install, upgrade,
values sources, delete, ownership, and the zero-helm-call resync."""

from __future__ import annotations

import json

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess
from tests.integration.helpers import eventually, holds
from tests.integration.hr import (apply, condition, events, get, hello_chart, helmrelease, new_namespace,
                                  status, wait_phase)


def _deployment_env(cluster: LocalCluster, ns: str, name: str) -> dict[str, str]:
    d = get(cluster, ns, "deployment", name) or {}
    containers = d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    return {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}


def _antecedent_writers(cluster: LocalCluster, ns: str, kind: str, name: str) -> set[tuple[str, str]]:
    """(field manager, operation) of every entry of managedFields that owns the antecedent annotation."""
    r = cluster.kubectl("get", "-n", ns, kind, name, "-o", "json", "--show-managed-fields")
    return {(m["manager"], m["operation"]) for m in json.loads(r.stdout)["metadata"].get("managedFields", [])
            if '"f:helm.fluxcd.io/antecedent"' in json.dumps(m.get("fieldsV1", {}))}


def _stored_manifest(cluster: LocalCluster, ns: str, release: str, revision: int) -> str:
    """The manifest in helm's release Secret (base64, gzip, JSON), as helm stored it."""
    import base64
    import gzip
    r = cluster.kubectl("get", "-n", ns, "secret", f"sh.helm.release.v1.{release}.v{revision}",
                        "-o", "jsonpath={.data.release}")
    doc = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(r.stdout))))
    return str(doc["manifest"])


def test_helmrelease_from_helm_repository_is_installed_and_ready(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url),
                                           "values": {"message": "first"}}))
    st = wait_phase(cluster, ns, "web", "Succeeded")
    assert st["releaseName"] == f"{ns}-web"
    assert st["releaseStatus"] == "deployed"
    assert st["revision"] == "0.1.0"
    assert condition(st, "Released")["status"] == "True"
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "ChartFetched")["status"] == "True"
    deployment = get(cluster, ns, "deployment", f"{ns}-web-hello")
    assert deployment is not None
    assert deployment["metadata"]["annotations"]["helm.fluxcd.io/antecedent"] == f"{ns}:helmrelease/web"
    # ...applied by helm with the objects (the post-renderer), not patched on afterwards
    for kind in ("deployment", "configmap"):
        assert _antecedent_writers(cluster, ns, kind, f"{ns}-web-hello") == {("helm", "Apply")}
    assert _stored_manifest(cluster, ns, f"{ns}-web", 1).count(
        f"helm.fluxcd.io/antecedent: '{ns}:helmrelease/web'") == 2
    assert _deployment_env(cluster, ns, f"{ns}-web-hello")["MESSAGE"] == "first"
    assert any(e["reason"] == "ReleaseSynced" for e in events(cluster, ns, "web"))
    cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=5s", "hr/web")


def test_spec_change_upgrades_the_release(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"message": "one"}}))
    wait_phase(cluster, ns, "web", "Succeeded")
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url, "0.2.0"),
                                           "values": {"message": "two"}}))
    st = wait_phase(cluster, ns, "web", "Succeeded", generation=2)
    assert st["revision"] == "0.2.0"
    assert _deployment_env(cluster, ns, f"{ns}-web-hello")["MESSAGE"] == "two"


def test_target_namespace_and_release_name_defaults(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    target = new_namespace(cluster, "target")
    apply(cluster, ns, helmrelease("app", {"chart": hello_chart(chart_repo.url), "targetNamespace": target}))
    st = wait_phase(cluster, ns, "app", "Succeeded")
    assert st["releaseName"] == f"{ns}-{target}-app"
    assert get(cluster, target, "deployment", f"{ns}-{target}-app-hello") is not None


def test_configmap_values_change_triggers_an_upgrade_without_waiting_for_resync(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    cluster.kubectl("create", "configmap", "-n", ns, "web-values", "--from-literal=values.yaml=message: from-cm")
    apply(cluster, ns, helmrelease("web", {
        "chart": hello_chart(chart_repo.url),
        "valuesFrom": [{"configMapKeyRef": {"name": "web-values"}}],
    }))
    wait_phase(cluster, ns, "web", "Succeeded")
    assert _deployment_env(cluster, ns, f"{ns}-web-hello")["MESSAGE"] == "from-cm"
    cluster.kubectl("create", "configmap", "-n", ns, "web-values", "--from-literal=values.yaml=message: changed",
                    "--dry-run=client", "-o", "yaml")
    cluster.kubectl("patch", "configmap", "-n", ns, "web-values", "--type=merge",
                    "-p", json.dumps({"data": {"values.yaml": "message: changed"}}))
    eventually(lambda: _deployment_env(cluster, ns, f"{ns}-web-hello").get("MESSAGE") == "changed",
               timeout=12, what="the upgrade after the ConfigMap change (well before the 15s resync)")


def test_values_merge_order_secret_then_inline(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    cluster.kubectl("create", "secret", "generic", "-n", ns, "base",
                    "--from-literal=values.yaml=message: from-secret\nreplicaCount: 2\n")
    apply(cluster, ns, helmrelease("web", {
        "chart": hello_chart(chart_repo.url),
        "valuesFrom": [{"secretKeyRef": {"name": "base"}},
                       {"configMapKeyRef": {"name": "absent", "optional": True}}],
        "values": {"message": "inline-wins"},
    }))
    wait_phase(cluster, ns, "web", "Succeeded")
    d = get(cluster, ns, "deployment", f"{ns}-web-hello") or {}
    assert d["spec"]["replicas"] == 2
    assert _deployment_env(cluster, ns, f"{ns}-web-hello")["MESSAGE"] == "inline-wins"
    assert "from-secret" not in operator.log_text()


def test_deleting_the_helmrelease_uninstalls_the_release(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("gone", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "gone", "Succeeded")
    cluster.kubectl("delete", "-n", ns, "helmrelease", "gone", "--timeout=60s")
    assert get(cluster, ns, "deployment", f"{ns}-gone-hello") is None
    assert get(cluster, ns, "helmrelease", "gone") is None


def test_release_owned_by_another_helmrelease_is_refused(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("first", {"chart": hello_chart(chart_repo.url), "releaseName": "shared"}))
    wait_phase(cluster, ns, "first", "Succeeded")
    apply(cluster, ns, helmrelease("second", {"chart": hello_chart(chart_repo.url, "0.2.0"),
                                              "releaseName": "shared"}))
    st = wait_phase(cluster, ns, "second", "Failed")
    assert f"appears to be managed by {ns}:helmrelease/first" in condition(st, "Released")["message"]
    assert status(cluster, ns, "first")["revision"] == "0.1.0"


def test_release_installed_by_hand_is_adopted(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    from tests.integration.test_local_cluster import CHART
    import subprocess
    subprocess.run([cluster.binary("helm"), "install", "byhand", str(CHART), "-n", ns],
                   env=cluster.env(), check=True, capture_output=True)
    apply(cluster, ns, helmrelease("adopt", {"chart": hello_chart(chart_repo.url), "releaseName": "byhand"}))
    st = wait_phase(cluster, ns, "adopt", "Succeeded")
    assert st["releaseName"] == "byhand"
    d = get(cluster, ns, "deployment", "byhand-hello") or {}
    assert d["metadata"]["annotations"]["helm.fluxcd.io/antecedent"] == f"{ns}:helmrelease/adopt"
    assert _antecedent_writers(cluster, ns, "deployment", "byhand-hello") == {("helm", "Apply")}


def test_resync_of_unchanged_helmreleases_makes_no_helm_call(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    names = [f"r{i}" for i in range(20)]
    for name in names:
        apply(cluster, ns, helmrelease(name, {"chart": hello_chart(chart_repo.url)}))
    for name in names:
        wait_phase(cluster, ns, name, "Succeeded", timeout=240)
    marker = operator.log_text().count("periodic resync of")
    before = len(operator.calls(ns))
    assert before == len(names), operator.calls(ns)  # one helm process per install, nothing else
    eventually(lambda: operator.log_text().count("periodic resync of") >= marker + 2, timeout=60,
               what="two full resyncs")
    holds(lambda: len(operator.calls(ns)) == before, window=2, what="no helm call after the resyncs")
    after = len(operator.calls(ns))
    print(f"helm invocations during two full resyncs of {len(names)} unchanged HelmReleases: {after - before}")
    assert after - before == 0
