"""Failure handling of the release operator: rollback, tests, retries, and
bad input that must end in a clear status while the others keep going."""

from __future__ import annotations

import json

from tests.cluster.kwokstages import FAIL, POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess
from tests.integration.helpers import eventually, holds
from tests.integration.hr import (helm_history, apply, condition, events, get, hello_chart, helmrelease, new_namespace,
                                  wait_phase)




def test_failed_upgrade_with_rollback_enabled_rolls_back(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "timeout": 15,
            "rollback": {"enable": True}, "values": {"message": "good"}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"message": "bad", "podLabels": {POD_STATE_LABEL: UNREADY}}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "RolledBack", generation=2, timeout=90)
    assert st["rollbackCount"] == 1
    assert condition(st, "RolledBack")["status"] == "True"
    assert condition(st, "Released")["status"] == "False"
    assert condition(st, "Ready")["status"] == "False"
    statuses = [h["status"] for h in helm_history(cluster, ns, f"{ns}-web")]
    assert statuses[-2:] == ["failed", "deployed"]
    assert any(e["reason"] == "FailedReleaseSync" for e in events(cluster, ns, "web"))
    # rollback.retry is false: the same configuration is not tried again
    revisions = len(helm_history(cluster, ns, f"{ns}-web"))
    holds(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == revisions, window=20,
          what="no new revision through a 15s resync")


def test_render_error_creates_no_revision_and_triggers_no_rollback(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "rollback": {"enable": True}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"failRender": True}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "DeployFailed", generation=2)
    assert "render failure requested" in condition(st, "Released")["message"]
    assert st.get("rollbackCount", 0) == 0
    assert len(helm_history(cluster, ns, f"{ns}-web")) == 1


def test_failed_test_on_fresh_install_uninstalls_it(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {
        "chart": hello_chart(chart_repo.url), "test": {"enable": True, "timeout": 30},
        "values": {"test": {"podLabels": {POD_STATE_LABEL: FAIL}}},
    }))
    st = wait_phase(cluster, ns, "web", "TestFailed")
    assert condition(st, "Tested")["status"] == "False"
    eventually(lambda: not helm_history(cluster, ns, f"{ns}-web"), timeout=30, what="release uninstalled")


def test_failed_test_with_ignore_failures_keeps_the_release(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {
        "chart": hello_chart(chart_repo.url), "test": {"enable": True, "ignoreFailures": True, "timeout": 30},
        "values": {"test": {"podLabels": {POD_STATE_LABEL: FAIL}}},
    }))
    st = wait_phase(cluster, ns, "web", "Succeeded")
    assert condition(st, "Tested")["status"] == "False"
    assert helm_history(cluster, ns, f"{ns}-web")[-1]["status"] == "deployed"


def test_passing_test_marks_the_release_tested(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "test": {"enable": True}}))
    st = wait_phase(cluster, ns, "web", "Succeeded")
    assert condition(st, "Tested")["status"] == "True"


def test_failed_test_on_upgrade_rolls_back_when_enabled(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "test": {"enable": True, "timeout": 30},
            "rollback": {"enable": True}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"test": {"podLabels": {POD_STATE_LABEL: FAIL}}}
    apply(cluster, ns, helmrelease("web", spec))
    st = wait_phase(cluster, ns, "web", "RolledBack", generation=2)
    assert st["rollbackCount"] == 1
    assert helm_history(cluster, ns, f"{ns}-web")[-1]["status"] == "deployed"
    # rollback.retry is false: the failed configuration is not upgraded to again
    revisions = len(helm_history(cluster, ns, f"{ns}-web"))
    holds(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == revisions, window=12,
          what="no new revision past the first backoff retries (5 s, 10 s)")
    assert (get(cluster, ns, "helmrelease", "web") or {})["status"]["rollbackCount"] == 1


def test_rollback_retry_stops_after_max_retries(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "timeout": 8,
            "rollback": {"enable": True, "retry": True, "maxRetries": 1}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    spec["values"] = {"podLabels": {POD_STATE_LABEL: UNREADY}}
    apply(cluster, ns, helmrelease("web", spec))
    eventually(lambda: (get(cluster, ns, "helmrelease", "web") or {}).get("status", {}).get("rollbackCount") == 2,
               timeout=150, interval=1, what="a second rollback after one retry")
    revisions = len(helm_history(cluster, ns, f"{ns}-web"))
    holds(lambda: len(helm_history(cluster, ns, f"{ns}-web")) == revisions, window=25,
          what="no third attempt after maxRetries")


BAD_SPECS = {
    "no-source": ({"chart": {"name": "hello"}}, "ChartFetchFailed",
                  "could not find valid chart source configuration for release"),
    "unknown-version": ({"chart": {"repository": "REPO/", "name": "hello", "version": "9.9.9"}},
                        "ChartFetchFailed", "9.9.9"),
    "unreachable-repo": ({"chart": {"repository": "http://127.0.0.1:9/", "name": "hello", "version": "0.1.0"}},
                         "ChartFetchFailed", "127.0.0.1:9"),
    "helm-v2": ({"chart": {"repository": "REPO/", "name": "hello", "version": "0.1.0"}, "helmVersion": "v2"},
                "Failed", "helmVersion v2"),
    "missing-configmap": ({"chart": {"repository": "REPO/", "name": "hello", "version": "0.1.0"},
                           "valuesFrom": [{"configMapKeyRef": {"name": "nope"}}]}, "Failed", "nope"),
    "not-yaml": ({"chart": {"repository": "REPO/", "name": "hello", "version": "0.1.0"},
                  "valuesFrom": [{"configMapKeyRef": {"name": "broken"}}]}, "Failed", "not valid YAML"),
    "escaping-chart-file": ({"chart": {"repository": "REPO/", "name": "hello", "version": "0.1.0"},
                             "valuesFrom": [{"chartFileRef": {"path": "../../etc/passwd"}}]}, "Failed", "chart"),
}


def test_bad_helmreleases_report_what_is_wrong_and_never_block_the_others(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    cluster.kubectl("create", "configmap", "-n", ns, "broken", "--from-literal=values.yaml=a: [unclosed")
    cluster.kubectl("create", "secret", "generic", "-n", ns, "secret-values",
                    "--from-literal=values.yaml=password: s3cr3t-value-never-logged")
    for name, (spec, _, _) in BAD_SPECS.items():
        spec = json.loads(json.dumps(spec).replace("REPO", chart_repo.url))
        apply(cluster, ns, helmrelease(name, spec))
    apply(cluster, ns, helmrelease("good", {"chart": hello_chart(chart_repo.url),
                                            "valuesFrom": [{"secretKeyRef": {"name": "secret-values"}}]}))
    wait_phase(cluster, ns, "good", "Succeeded")
    for name, (_, phase, message) in BAD_SPECS.items():
        st = wait_phase(cluster, ns, name, phase)
        text = condition(st, "Released").get("message", "") + condition(st, "ChartFetched").get("message", "")
        assert message in text, (name, st)
        assert condition(st, "Ready")["status"] == "False"
        assert any(e["reason"] == "FailedReleaseSync" for e in events(cluster, ns, name)), name
    log = operator.log_text()
    assert "s3cr3t-value-never-logged" not in log
    for ev in events(cluster, ns, "good"):
        assert "s3cr3t" not in ev["message"]
