"""The chart's operability options, rendered by the real `helm` binary.

Probes on /healthz and /readyz, health thresholds and log flags that the
program's own parser accepts, the ServiceMonitor, the PodDisruptionBudget,
the dashboards ConfigMap, topologySpreadConstraints, extraVolumes and
extraVolumeMounts: each rendered on its own and `helm lint --strict` clean,
each off by default. (Helm only, no cluster: here because it needs the
Go-built helm binary.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.charttemplate import CHART, helm_args, parse_cli, render, run_helm

SOURCE = {"git.sources[0].name": "apps", "git.sources[0].url": "https://git.example.com/org/cluster.git"}
TOPOLOGY = {"topologySpreadConstraints[0].maxSkew": "1",
            "topologySpreadConstraints[0].topologyKey": "topology.kubernetes.io/zone",
            "topologySpreadConstraints[0].whenUnsatisfiable": "ScheduleAnyway"}
VOLUMES = {"extraVolumes[0].name": "registry-ca", "extraVolumes[0].configMap.name": "registry-ca",
           "extraVolumeMounts[0].name": "registry-ca", "extraVolumeMounts[0].mountPath": "/etc/ssl/registry",
           "extraVolumeMounts[0].readOnly": "true"}
OPTIONS = {
    "serviceMonitor": {"serviceMonitor.enabled": "true", "serviceMonitor.labels.release": "prometheus"},
    "podDisruptionBudget": {"podDisruptionBudget.enabled": "true"},
    "dashboards": {"dashboards.enabled": "true"},
    "topologySpreadConstraints": TOPOLOGY,
    "extraVolumes": VOLUMES,
    "networkPolicy": {"networkPolicy.enabled": "true"},
}


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(objects)["containers"]}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_renders_and_lints_strictly_clean(option: str) -> None:
    values = {**SOURCE, **OPTIONS[option]}
    render(values)
    proc = run_helm("lint", "--strict", str(CHART), *helm_args(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_every_new_option_is_off_by_default() -> None:
    docs = render(SOURCE)
    assert not kinds(docs) & {"ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"}
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]
    spec = pod_spec(docs)
    assert "topologySpreadConstraints" not in spec
    assert {v["name"] for v in spec["volumes"]} == {"tmp", "cache", "sync-config", "webhook-token"}


def test_probes_use_healthz_and_readyz_and_the_thresholds_reach_both_programs() -> None:
    docs = render({**SOURCE, "health.apiUnreachableThreshold": "90s", "health.loopStallThreshold": "30s",
                   "syncer.logLevel": "warning", "syncer.logFormat": "json", "operator.logFormat": "json"})
    for name, c in containers(docs).items():
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        args = parse_cli(c["args"])
        assert (args.api_unreachable_threshold, args.loop_stall_threshold) == (90.0, 30.0), name
        assert args.log_format == "json", name
    assert parse_cli(containers(docs)["syncer"]["args"]).log_level == "warning"
    verbose = parse_cli(containers(render({**SOURCE, "syncer.verbose": "true"}))["syncer"]["args"])
    assert verbose.log_level == "debug", "the old syncer.verbose still means debug"


def test_leader_election_lets_every_old_pod_go_since_only_the_leader_is_ready() -> None:
    strategy = one(render({"replicaCount": "2", "leaderElection.enabled": "true"}), "Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "100%"}}


def test_service_monitor_scrapes_both_containers_through_the_service() -> None:
    docs = render({**SOURCE, **OPTIONS["serviceMonitor"]})
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = one(docs, "Service")
    assert all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    endpoints = monitor["spec"]["endpoints"]
    assert [e["port"] for e in endpoints] == ["http-operator", "http-syncer"]
    assert {e["port"] for e in endpoints} <= service_ports
    assert all(e["path"] == "/metrics" and e["honorLabels"] is True for e in endpoints)
    proc = run_helm("template", "x", str(CHART), *helm_args({"serviceMonitor.enabled": "true",
                                                            "service.enabled": "false"}))
    assert proc.returncode != 0 and "needs service.enabled" in proc.stderr


def test_pod_disruption_budget_and_its_guard_with_leader_election() -> None:
    pdb = one(render(OPTIONS["podDisruptionBudget"]), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    deployment = one(render(OPTIONS["podDisruptionBudget"]), "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    le = {"replicaCount": "2", "leaderElection.enabled": "true", "podDisruptionBudget.enabled": "true"}
    proc = run_helm("template", "x", str(CHART), *helm_args(le))
    assert proc.returncode != 0 and "could never be evicted" in proc.stderr
    ok = one(render({**le, "podDisruptionBudget.maxUnavailable": "2"}), "PodDisruptionBudget")
    assert ok["spec"]["maxUnavailable"] == 2


def test_dashboards_config_map_holds_the_shipped_json() -> None:
    docs = render({"dashboards.enabled": "true", "dashboards.namespace": "monitoring"})
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards"))
    assert cm["metadata"]["namespace"] == "monitoring" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "helm-operator.json").read_text())
    assert json.loads(cm["data"]["helm-operator.json"]) == shipped


def test_topology_spread_gets_the_pod_selector_and_extra_volumes_reach_both_containers() -> None:
    docs = render({**SOURCE, **TOPOLOGY, **VOLUMES})
    spec = pod_spec(docs)
    [constraint] = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone" and constraint["maxSkew"] == 1
    assert constraint["labelSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert {"name": "registry-ca", "configMap": {"name": "registry-ca"}} in spec["volumes"]
    for name, c in containers(docs).items():
        assert {"name": "registry-ca", "mountPath": "/etc/ssl/registry", "readOnly": True} in c["volumeMounts"], name
    own = render({"topologySpreadConstraints[0].maxSkew": "2", "topologySpreadConstraints[0].topologyKey": "zone",
                  "topologySpreadConstraints[0].whenUnsatisfiable": "DoNotSchedule",
                  "topologySpreadConstraints[0].labelSelector.matchLabels.team": "a"})
    assert pod_spec(own)["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": {"team": "a"}}


def test_the_network_policy_opens_the_probe_and_metrics_ports_only() -> None:
    """The NetworkPolicy (existing) admits the ports /healthz, /readyz and /metrics are on, nothing else."""
    docs = render({**SOURCE, "networkPolicy.enabled": "true",
                   "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring",
                   "networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.name": "ingress"})
    policy = one(docs, "NetworkPolicy")
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    named = {p["name"] for c in containers(docs).values() for p in c["ports"]}
    probes = {c[probe]["httpGet"]["port"] for c in containers(docs).values()
              for probe in ("livenessProbe", "readinessProbe")}
    assert ports == named == probes == {"http-operator", "http-syncer"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress (API server, Git, registries) stays open


@pytest.mark.parametrize(("values", "complaint"), [
    ({"health.apiUnreachableThreshold": "soon"}, "apiUnreachableThreshold"),
    ({"podDisruptionBudget.maxUnavailable": "half"}, "maxUnavailable"),
    ({"serviceMonitor.interval": "often"}, "interval"),
    ({"syncer.logFormat": "xml"}, "logFormat"),
    ({"dashboard.enabled": "true"}, "dashboard"),
])
def test_bad_operability_values_are_refused_by_the_schema(values: dict[str, str], complaint: str) -> None:
    proc = run_helm("template", "x", str(CHART), *helm_args(values))
    assert proc.returncode != 0, f"accepted {values}"
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr
