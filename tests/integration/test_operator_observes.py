"""The cluster is the operator's memory: what happens beside it (helm run by
hand) is seen from helm's release storage within seconds and put back as the
HelmRelease says, with a resync far away; a configuration the API server
rejects leaves the deployed revision alone; a values change is seen at once
even after the watches have been renewed and bookmarked many times."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually, holds
from tests.integration.hr import (
    apply,
    condition,
    get,
    hello_chart,
    helm_history,
    helmrelease,
    new_namespace,
    wait_phase,
)


@pytest.fixture(scope="module")
def slow_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """Resync every 10 minutes and no drift checks: only the storage watch can notice."""
    op = start_operator(cluster, tmp_path_factory.mktemp("observes"), "--charts-sync-interval", "10m",
                        "--drift-detection-interval", "0", "--watch-timeout", "20s")
    yield op
    op.stop()


def _helm(cluster: LocalCluster, *args: str) -> None:
    subprocess.run([cluster.binary("helm"), *args], env=cluster.env(), check=True, capture_output=True)


def _env(cluster: LocalCluster, ns: str, deployment: str) -> dict[str, str]:
    d = get(cluster, ns, "deployment", deployment) or {}
    containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}


def test_hand_uninstall_is_installed_again_within_seconds(
        cluster: LocalCluster, chart_repo: ChartRepo, slow_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")
    _helm(cluster, "uninstall", f"{ns}-web", "-n", ns)
    gone = time.monotonic()
    eventually(lambda: get(cluster, ns, "deployment", f"{ns}-web-hello") is not None, timeout=10, interval=0.2,
               what="the release installed again after a hand helm uninstall")
    restored = time.monotonic() - gone
    print(f"hand uninstall restored in {restored:.1f}s")
    st = wait_phase(cluster, ns, "web", "Succeeded")
    assert condition(st, "Ready")["status"] == "True"
    assert [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")] == ["deployed"]


def test_hand_rollback_to_an_older_revision_is_corrected(
        cluster: LocalCluster, chart_repo: ChartRepo, slow_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "values": {"message": "first"}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"message": "second"}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded", generation=2)
    _helm(cluster, "rollback", f"{ns}-web", "1", "-n", ns)  # revision 3 applies "first" again
    eventually(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == 4, timeout=15, interval=0.3,
               what="an upgrade after the hand rollback")
    eventually(lambda: _env(cluster, ns, f"{ns}-web-hello").get("MESSAGE") == "second", timeout=15,
               what="the HelmRelease's values back in the Deployment")
    history = helm_history(cluster, ns, f"{ns}-web")
    assert [h["status"] for h in history][-1] == "deployed"
    assert history[2]["description"].startswith("Rollback to 1")


def test_hand_helm_upgrade_with_set_is_corrected(
        cluster: LocalCluster, chart_repo: ChartRepo, slow_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"message": "git"}}))
    wait_phase(cluster, ns, "web", "Succeeded")
    chart = str(chart_repo.root / "hello-0.1.0.tgz")
    _helm(cluster, "upgrade", f"{ns}-web", chart, "-n", ns, "--reuse-values", "--set", "message=by-hand")
    eventually(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == 3, timeout=15, interval=0.3,
               what="an upgrade after the hand upgrade")
    eventually(lambda: _env(cluster, ns, f"{ns}-web-hello").get("MESSAGE") == "git", timeout=15, interval=0.3,
               what="the hand upgrade undone")
    history = helm_history(cluster, ns, f"{ns}-web")
    assert history[1]["description"] == "Upgrade complete"  # the hand upgrade
    assert history[2]["description"].startswith("helm-operator config ")


def test_a_value_the_api_server_rejects_leaves_the_deployed_revision_alone(
        cluster: LocalCluster, chart_repo: ChartRepo, slow_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "rollback": {"enable": True}, "timeout": 30}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"replicaCount": "faulty"}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "DeployFailed", generation=2)
    message = condition(st, "Ready")["message"]
    assert ".spec.replicas" in message and "stays deployed" in message, message
    assert st["rollbackCount"] == 0 and st["failures"] == 1
    statuses = [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")]
    assert statuses == ["deployed", "failed"]
    holds(lambda: [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")] == statuses, window=12,
          what="no rollback and no retry of the rejected revision past two backoff periods")
    # A fix is acted on at once.
    spec["values"] = {"replicaCount": 2}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "Succeeded", generation=3)
    assert st["failures"] == 0 and condition(st, "Ready")["status"] == "True"


def _metric(op: OperatorProcess, name: str, watch: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf'^{name}{{watch="{watch}"}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_configmap_change_is_seen_at_once_after_the_watch_was_renewed_and_bookmarked(
        cluster: LocalCluster, chart_repo: ChartRepo, slow_operator: OperatorProcess) -> None:
    """The watches of this operator are renewed every ~20 s: once they have been
    renewed and have received bookmarks (what used to drop the watch and grow its
    backoff to 30 s), a ConfigMap change still reaches the release in under 3 s."""
    ns = new_namespace(cluster)
    cluster.kubectl("create", "configmap", "-n", ns, "vals", "--from-literal=values.yaml=message: one\n")
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url),
                                           "valuesFrom": [{"configMapKeyRef": {"name": "vals"}}]}))
    wait_phase(cluster, ns, "web", "Succeeded")
    restarts = _metric(slow_operator, "helm_operator_watch_restarts_total", "configmaps")
    eventually(lambda: _metric(slow_operator, "helm_operator_watch_restarts_total", "configmaps") >= restarts + 2
               and _metric(slow_operator, "helm_operator_watch_bookmarks_total", "configmaps") >= 1,
               timeout=150, interval=2, what="two renewals of the ConfigMap watch and a bookmark")
    assert "watch of configmaps failed" not in slow_operator.log_text()
    changed = time.monotonic()
    cluster.kubectl("patch", "configmap", "-n", ns, "vals", "--type=merge",
                    "-p", json.dumps({"data": {"values.yaml": "message: two\n"}}))
    eventually(lambda: _env(cluster, ns, f"{ns}-web-hello").get("MESSAGE") == "two", timeout=10, interval=0.1,
               what="the ConfigMap change in the Deployment")
    seen = time.monotonic() - changed
    print(f"ConfigMap change to upgraded Deployment: {seen:.2f}s")
    assert seen < 3.0
