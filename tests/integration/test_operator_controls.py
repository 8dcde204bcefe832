"""Release controls against the real cluster and helm: suspend and resume,
reconcile/force/reset requests, dependsOn, drift modes, and status.history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.cluster.kwokstages import POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually, holds
from tests.integration.hr import (
    apply,
    condition,
    events,
    get,
    hello_chart,
    helm_history,
    helmrelease,
    new_namespace,
    status,
    wait_phase,
)


@pytest.fixture(scope="module")
def controls_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = start_operator(cluster, tmp_path_factory.mktemp("controls"), "--charts-sync-interval", "10m",
                        "--drift-detection-interval", "2s")
    yield op
    op.stop()


def _annotate(cluster: LocalCluster, ns: str, name: str, **annotations: str) -> None:
    pairs = [f"reconcile.fluxcd.io/{k}={v}" for k, v in annotations.items()]
    cluster.kubectl("annotate", "helmrelease", name, "-n", ns, "--overwrite", *pairs)


def _patch_spec(cluster: LocalCluster, ns: str, name: str, spec: dict) -> None:
    cluster.kubectl("patch", "helmrelease", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}))


def test_suspend_stops_a_retry_storm_and_resume_acts_at_once(
        cluster: LocalCluster, chart_repo: ChartRepo, controls_operator: OperatorProcess) -> None:
    op = controls_operator
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"failRender": True}}))
    eventually(lambda: status(cluster, ns, "web").get("failures", 0) >= 2, timeout=60,
               what="a retry storm (two failed attempts)")
    _patch_spec(cluster, ns, "web", {"suspend": True})
    eventually(lambda: condition(status(cluster, ns, "web"), "Suspended").get("status") == "True", timeout=15,
               what="the Suspended condition")
    calls = len(op.calls(f"{ns}-web"))
    holds(lambda: len(op.calls(f"{ns}-web")) == calls, window=20,
          what="no helm call while suspended, past two backoff periods")
    assert "suspended" in condition(status(cluster, ns, "web"), "Suspended")["message"]
    # Resume with the values fixed: it acts at once, with no backoff left to wait.
    resumed = time.monotonic()
    _patch_spec(cluster, ns, "web", {"suspend": False, "values": {"failRender": False}})
    st = wait_phase(cluster, ns, "web", "Succeeded", generation=3, timeout=30)
    assert time.monotonic() - resumed < 10
    assert condition(st, "Suspended") == {} and st["failures"] == 0


def test_reset_clears_the_counters_and_force_upgrades_past_a_rolled_back_state(
        cluster: LocalCluster, chart_repo: ChartRepo, controls_operator: OperatorProcess) -> None:
    op = controls_operator
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "timeout": 10, "rollback": {"enable": True},
            "values": {"message": "one"}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    # The new pods never become ready: the upgrade fails its --wait and is rolled back.
    spec["values"] = {"message": "two", "podLabels": {POD_STATE_LABEL: UNREADY}}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "RolledBack", generation=2, timeout=90)
    assert st["rollbackCount"] == 1 and st["failures"] >= 1
    assert [h["action"] for h in st["history"]][:3] == ["rollback", "upgrade", "install"]

    calls = len(op.calls(f"{ns}-web"))
    _annotate(cluster, ns, "web", resetAt="r1")
    eventually(lambda: status(cluster, ns, "web").get("lastHandledResetAt") == "r1", timeout=15,
               what="the reset handled")
    st = status(cluster, ns, "web")
    assert st["failures"] == 0 and st["rollbackCount"] == 0
    holds(lambda: len(op.calls(f"{ns}-web")) == calls, window=6, what="a reset makes no helm call")

    # Force: one upgrade of the same configuration, whatever the state; it fails
    # again (the pods are still unready) and is rolled back again.
    _annotate(cluster, ns, "web", forceAt="f1", requestedAt="f1")
    eventually(lambda: status(cluster, ns, "web").get("lastHandledForceAt") == "f1", timeout=60,
               what="the forced upgrade handled")
    st = wait_phase(cluster, ns, "web", "RolledBack", generation=2, timeout=60)
    assert st["rollbackCount"] == 1 and st["lastHandledReconcileAt"] == "f1"
    history = helm_history(cluster, ns, f"{ns}-web")
    assert [h["status"] for h in history][-2:] == ["failed", "deployed"] and len(history) == 5
    holds(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == 5, window=12,
          what="the force acted once, not again")


def test_depends_on_installs_in_order_holds_behind_a_failing_release_and_reports_a_cycle(
        cluster: LocalCluster, chart_repo: ChartRepo, controls_operator: OperatorProcess) -> None:
    op = controls_operator
    ns = new_namespace(cluster)
    chart = hello_chart(chart_repo.url)
    # C -> B -> A, created dependants first
    apply(cluster, ns, helmrelease("c", {"chart": chart, "dependsOn": [{"name": "b"}]}))
    apply(cluster, ns, helmrelease("b", {"chart": chart, "dependsOn": [{"name": "a", "namespace": ns}]}))
    eventually(lambda: "waiting for dependencies" in condition(status(cluster, ns, "b"), "Ready").get("message", ""),
               timeout=15, what="B waiting for A")
    assert f"{ns}/b" in condition(status(cluster, ns, "c"), "Ready")["message"]
    apply(cluster, ns, helmrelease("a", {"chart": chart}))
    for name in ("a", "b", "c"):
        wait_phase(cluster, ns, name, "Succeeded", timeout=60)
    installs = [line.split()[1] for line in op.calls(f"--namespace {ns}") if line.startswith("upgrade")]
    assert installs == [f"{ns}-a", f"{ns}-b", f"{ns}-c"], installs

    # A failing dependency holds its dependant, with a status that names it.
    apply(cluster, ns, helmrelease("bad", {"chart": chart, "values": {"failRender": True}}))
    apply(cluster, ns, helmrelease("held", {"chart": chart, "dependsOn": [{"name": "bad"}]}))
    eventually(lambda: f"{ns}/bad is not Ready" in condition(status(cluster, ns, "held"), "Ready").get("message", ""),
               timeout=30, what="the dependant naming the failing dependency")
    assert condition(status(cluster, ns, "held"), "Ready")["reason"] == "DependencyNotReady"
    assert op.calls(f"{ns}-held") == []

    # A cycle is reported, never a deadlock of the operator.
    apply(cluster, ns, helmrelease("x", {"chart": chart, "dependsOn": [{"name": "y"}]}))
    apply(cluster, ns, helmrelease("y", {"chart": chart, "dependsOn": [{"name": "x"}]}))
    eventually(lambda: "dependency cycle" in condition(status(cluster, ns, "x"), "Ready").get("message", ""),
               timeout=30, what="the cycle reported")
    apply(cluster, ns, helmrelease("after-cycle", {"chart": chart}))
    wait_phase(cluster, ns, "after-cycle", "Succeeded", timeout=60)


def _deployment(cluster: LocalCluster, ns: str, name: str) -> dict:
    return get(cluster, ns, "deployment", name) or {}


def test_drift_warn_reports_enabled_corrects_and_ignore_rules_and_opt_out_are_respected(
        cluster: LocalCluster, chart_repo: ChartRepo, controls_operator: OperatorProcess) -> None:
    op = controls_operator
    ns = new_namespace(cluster)
    chart = hello_chart(chart_repo.url)
    apply(cluster, ns, helmrelease("warned", {"chart": chart, "values": {"message": "git"}}))
    apply(cluster, ns, helmrelease("fixed", {"chart": chart, "values": {"message": "git"}, "driftDetection": {
        "mode": "enabled",
        "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}]}}))
    for name in ("warned", "fixed"):
        wait_phase(cluster, ns, name, "Succeeded")

    # warn (the default): reported by path, never by value, and left as it is.
    cluster.kubectl("scale", "-n", ns, f"deployment/{ns}-warned-hello", "--replicas=3")
    eventually(lambda: condition(status(cluster, ns, "warned"), "Drifted").get("status") == "True", timeout=30,
               what="the Drifted condition on the warned release")
    drifted = condition(status(cluster, ns, "warned"), "Drifted")["message"]
    assert drifted == f"Deployment {ns}/{ns}-warned-hello: /spec/replicas"  # paths, never values
    assert any(e["reason"] == "DriftDetected" for e in events(cluster, ns, "warned"))
    holds(lambda: _deployment(cluster, ns, f"{ns}-warned-hello")["spec"]["replicas"] == 3, window=6,
          what="warn mode leaves the hand change")

    # enabled: the env change is put back, the ignored replicas stay, no helm call, no new revision.
    calls = len(op.calls(f"{ns}-fixed"))
    name = f"{ns}-fixed-hello"
    cluster.kubectl("set", "env", "-n", ns, f"deployment/{name}", "MESSAGE=by-hand")
    cluster.kubectl("scale", "-n", ns, f"deployment/{name}", "--replicas=4")

    def env_back() -> bool:
        d = _deployment(cluster, ns, name)
        return {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}.get(
            "MESSAGE") == "git"

    eventually(env_back, timeout=30, what="the hand env change put back")
    assert _deployment(cluster, ns, name)["spec"]["replicas"] == 4
    assert len(op.calls(f"{ns}-fixed")) == calls and len(helm_history(cluster, ns, name.removesuffix("-hello"))) == 1
    assert "by-hand" not in op.log_text()

    # An object annotated as opted out is neither reported nor corrected.
    cm = f"{ns}-fixed-hello"
    cluster.kubectl("annotate", "configmap", cm, "-n", ns, "helm.toolkit.fluxcd.io/driftDetection=disabled")
    cluster.kubectl("patch", "configmap", cm, "-n", ns, "--type=merge", "-p", '{"data":{"message":"mine"}}')
    checks = op.log_text().count(f"{ns}/fixed: drift check: live objects match")
    eventually(lambda: op.log_text().count(f"{ns}/fixed: drift check: live objects match") >= checks + 2,
               timeout=30, what="two clean drift checks with the opted-out ConfigMap changed")
    assert (get(cluster, ns, "configmap", cm) or {})["data"]["message"] == "mine"


def test_history_records_install_upgrade_and_test_results(
        cluster: LocalCluster, chart_repo: ChartRepo, controls_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "test": {"enable": True, "timeout": 60}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["chart"] = hello_chart(chart_repo.url, "0.2.0")
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "Succeeded", generation=2)
    history = st["history"]
    assert [(h["revision"], h["action"], h.get("testResult")) for h in history] == [
        (2, "upgrade", "passed"), (1, "install", "passed")]
    assert history[0]["chartVersion"] == "0.2.0" and history[1]["chartVersion"] == "0.1.0"
    assert history[0]["status"] == "deployed" and history[0]["configDigest"]
    assert history[0]["chartName"] == "hello" and history[0]["appVersion"]
