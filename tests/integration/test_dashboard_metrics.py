"""The shipped Grafana dashboard asks only for metrics the real processes export.

A real `helm-operator run` installs a HelmRelease and a real `helm-operator
sync` applies a Git source, both against the local cluster; then every
PromQL expression of charts/helm-operator/dashboards/*.json (panels and
template variables) is taken apart: each metric name must be exported by the
operator or the syncer (as a sample, or as a family declared in ``# TYPE``),
and each label a selector names must be a label of that metric's samples.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, start_operator
from tests.integration.gitsync_support import GitRemote, SyncerProcess
from tests.integration.helpers import eventually
from tests.integration.hr import apply, hello_chart, helmrelease, new_namespace, wait_phase

DASHBOARDS = Path(__file__).resolve().parents[2] / "charts" / "helm-operator" / "dashboards"
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "rate", "irate", "increase", "histogram_quantile",
    "time", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "label_values", "topk", "bottomk", "abs", "clamp_min", "delta", "deriv", "vector", "scalar",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("_count", "_sum", "_created"), "info": ("_info",), "unknown": ("",)}
# What a short run must have produced samples of: the dashboard's main panels.
MUST_HAVE_SAMPLES = {
    "gotk_reconcile_condition", "gotk_reconcile_duration_seconds_bucket",
    "helm_operator_helm_action_duration_seconds_bucket", "workqueue_depth", "workqueue_queue_duration_seconds_bucket",
    "flux_helm_operator_release_count", "flux_helm_operator_release_condition_info",
    "helm_operator_watch_last_contact_age_seconds", "flux_helm_operator_sync_last_pass_objects",
    "flux_helm_operator_sync_last_success_timestamp_seconds", "flux_helm_operator_sync_passes_total",
}


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        found += [t["expr"] for t in panel.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (functions, keywords, labels and ranges removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_]+\s*\)", r"\1", text)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS


def selector_labels(expr: str) -> dict[str, set[str]]:
    """metric name -> the label names its selectors use."""
    out: dict[str, set[str]] = {}
    for name, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        out.setdefault(name, set()).update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body))
    for name, label in re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]+)\s*\)", expr):
        out.setdefault(name, set()).add(label)
    return out


def exported(*texts: str) -> tuple[set[str], dict[str, set[str]]]:
    """Every name a scrape of `texts` can be queried by, and the label names seen on each sample name."""
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
            for sample in family.samples:
                names.add(sample.name)
                labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_every_dashboard_query_names_metrics_and_labels_the_processes_export(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    remote = GitRemote(tmp_path / "git")
    remote.write("app/cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dash\n  namespace: {ns}\n")
    remote.commit()
    op = start_operator(cluster, tmp_path / "op", "--allow-namespace", ns)
    try:
        with SyncerProcess(cluster, tmp_path / "sync", "--git-url", remote.url, "--git-poll-interval", "1s") as syncer:
            apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
            wait_phase(cluster, ns, "web", "Succeeded")
            eventually(lambda: syncer.get("/readyz") == "ok\n", timeout=60, what="the syncer's first pass")
            operator_text, syncer_text = scrape(op.port), scrape(syncer.port)
    finally:
        op.stop()
    names, labels = exported(operator_text, syncer_text)

    assert MUST_HAVE_SAMPLES <= set(labels), sorted(MUST_HAVE_SAMPLES - set(labels))
    ready = {(s.labels["status"], s.value) for f in text_string_to_metric_families(operator_text)
             for s in f.samples if s.name == "gotk_reconcile_condition" and s.labels["name"] == "web"
             and s.labels["namespace"] == ns and s.labels["type"] == "Ready" and s.labels["kind"] == "HelmRelease"}
    assert ready == {("True", 1.0), ("False", 0.0), ("Unknown", 0.0)}, ready
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "the chart ships a dashboard"
    checked = 0
    for path in files:
        for expr in expressions(json.loads(path.read_text())):
            for name in metric_names(expr):
                assert name in names, f"{path.name}: {expr!r} asks for {name}, which neither process exports"
                checked += 1
            for name, wanted in selector_labels(expr).items():
                if name in labels:  # samples seen: their labels must include the selector's
                    missing = wanted - labels[name]
                    assert not missing, f"{path.name}: {expr!r} selects {name} by {missing}, not among {labels[name]}"
    print(f"{checked} metric references checked against /metrics of the operator and the syncer")
    assert checked >= 30

