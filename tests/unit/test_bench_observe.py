"""The pure parts of the release-engine benchmark (benchmarks/engine_bench):
how it tells a burst of work has ended, which client made an API request,
what a helm command line was, and how it reads the audit log.
The benchmark itself runs by hand; these keep its reading of the world right."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.engine_bench.observe import (
    AuditLog, HelmCalls, burst_start, client_of, helm_verb, helm_wrapper, quiet_after, request_kind,
)
from benchmarks.engine_bench.report import table
from benchmarks.engine_bench.steady import steady_keys


def test_a_burst_ends_at_its_last_activity_once_quiet_long_enough() -> None:
    activity = [10.5, 11.0, 13.0, 30.0]
    assert quiet_after(activity, start=10.0, quiet=5.0, now=40.0) == 13.0  # 30.0 is another burst
    assert quiet_after(activity[:3], start=10.0, quiet=5.0, now=17.0) is None  # maybe not over yet
    assert quiet_after([], start=10.0, quiet=5.0, now=16.0) == 10.0        # nothing happened at all
    assert quiet_after([1.0, 2.0], start=10.0, quiet=5.0, now=16.0) == 10.0  # earlier activity is ignored


def test_a_burst_starts_where_a_pause_longer_than_the_gap_is_found_going_back() -> None:
    activity = [1.0, 20.0, 21.0, 23.5, 24.0, 50.0]
    assert burst_start(activity, 24.0, gap=5.0) == 20.0
    assert burst_start(activity, 24.0, gap=1.0) == 23.5
    assert burst_start([], 24.0, gap=5.0) == 24.0


@pytest.mark.parametrize("args, verb", [
    ("history r1 --namespace ns --output json --max 20 --kubeconfig /k", "history"),
    ("upgrade r1 /cache/hello --install --namespace ns --values -", "upgrade"),
    ("get manifest r1 --namespace ns", "get manifest"),
    ("--kubeconfig=/k uninstall r1", "uninstall"),
    ("", "?"),
])
def test_helm_verb_names_the_command(args: str, verb: str) -> None:
    assert helm_verb(args) == verb


@pytest.mark.parametrize("agent, client", [
    ("OpenAPI-Generator/37.0.2/python", "operator"),
    ("helm-operator/0.1 (linux)", "operator"),
    ("Helm/4.3.1", "helm"),
    ("kubectl/v1.36.3 (linux/amd64) kubernetes/0000000", "kubectl"),
    ("release-engine-bench", "bench"),
    ("Python-urllib/3.11", "bench"),
    ("kube-controller-manager/v1.36.3 (linux/amd64) kubernetes/0000000/deployment-controller", "control-plane"),
    ("kwok/v0.8.0 (linux/amd64)", "control-plane"),
    ("curl/8.0", "other"),
])
def test_requests_are_told_apart_by_user_agent(agent: str, client: str) -> None:
    assert client_of(agent) == client


def test_request_kinds_separate_dry_runs_discovery_and_subresources() -> None:
    assert request_kind("patch", "/apis/apps/v1/namespaces/a/deployments/x?dryRun=All&force=true",
                        "deployments", None) == "patch deployments (dry-run)"
    assert request_kind("patch", "/apis/helm.fluxcd.io/v1/namespaces/a/helmreleases/x/status",
                        "helmreleases", "status") == "patch helmreleases/status"
    for path in ("/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1"):
        assert request_kind("get", path, None, None) == "discovery"
    assert request_kind("get", "/openapi/v3", None, None) == "openapi"


def _event(audit_id: str, stage: str, verb: str, agent: str, stamp: str, uri: str = "/api/v1/secrets") -> str:
    return json.dumps({"auditID": audit_id, "stage": stage, "verb": verb, "userAgent": agent,
                       "requestURI": uri, "stageTimestamp": stamp,
                       "objectRef": {"resource": "secrets", "namespace": "a", "name": "s"}})


def test_audit_log_counts_each_request_once_and_reads_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = [_event("1", "ResponseStarted", "watch", "OpenAPI-Generator/37.0.2/python", "2026-01-01T00:00:01Z"),
             _event("2", "ResponseComplete", "get", "Helm/4.3.1", "2026-01-01T00:00:02.500000Z"),
             _event("1", "ResponseComplete", "watch", "OpenAPI-Generator/37.0.2/python", "2026-01-01T00:01:00Z")]
    later = _event("3", "ResponseComplete", "list", "Helm/4.3.1", "2026-01-01T00:00:03Z")
    path.write_text("\n".join(lines) + "\n" + later[:40])  # a line still being written
    log = AuditLog(path)
    log.refresh()
    assert [(r.client, r.verb) for r in log.requests] == [("operator", "watch"), ("helm", "get")]
    assert log.requests[1].t == pytest.approx(1767225602.5)
    with path.open("a") as f:  # the rest of the partial line arrives
        f.write(later[40:] + "\n")
    assert len(log.between(0, clients=("helm",))) == 2
    assert log.between(0) == []  # the operator's only request was a watch
    assert len(log.between(0, watches=True)) == 1


def test_the_helm_wrapper_records_a_timestamp_and_the_arguments(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    wrapper = helm_wrapper(tmp_path / "helm", "/bin/echo", calls)
    out = subprocess.run([str(wrapper), "get", "manifest", "r1"], capture_output=True, text=True, check=True)
    assert out.stdout == "get manifest r1\n"
    [call] = HelmCalls(calls).all()
    assert call.verb == "get manifest" and call.t > 1.7e9


def test_steady_releases_spread_over_namespaces_of_at_most_100() -> None:
    keys = steady_keys(250)
    assert len(keys) == 3 and sum(len(v) for v in keys.values()) == 250
    assert max(len(v) for v in keys.values()) <= 100
    assert steady_keys(5) == {"steady-0": ["s0000", "s0001", "s0002", "s0003", "s0004"]}


def test_summary_is_a_markdown_table() -> None:
    text = table([["restart", "1000", "12 s", "", "", "≤ 30 s"]]).splitlines()
    assert text[0].startswith("| what | N |") and text[1] == "|---|---|---|---|---|---|"
    assert text[2] == "| restart | 1000 | 12 s |  |  | ≤ 30 s |"
