"""Tenant lockdown against the real cluster: helm impersonating a release's
ServiceAccount (refused by RBAC with a status that says what to grant, then
succeeding once granted), `--default-service-account` enforced,
`--no-cross-namespace-refs`, and the externalSourceRef host policy.

Each test runs its own operator watching only its namespace
(`--allow-namespace`), so operators with different flags never share a
HelmRelease.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.hr import (
    apply, condition, get, hello_chart, helm_history, helmrelease, new_namespace, wait_phase,
)

# What helm needs in the release namespace besides the chart's kinds: its
# release records are Secrets there.
HELM_STORAGE_RULE = {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["*"]}
DEPLOYMENTS_RULE = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}


@pytest.fixture
def operators(cluster: LocalCluster, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Operators a test starts (each for its own namespace), stopped after it."""
    started: list[OperatorProcess] = []
    yield started
    for op in started:
        op.stop()
        print(f"operator log: {op.log}")


def _operator(cluster: LocalCluster, started: list[OperatorProcess], workdir: Path, ns: str,
              *flags: str) -> OperatorProcess:
    op = start_operator(cluster, workdir, "--allow-namespace", ns, *flags)
    started.append(op)
    return op


def _service_account(cluster: LocalCluster, ns: str, name: str, *rules: dict) -> None:
    """A ServiceAccount with a Role of `rules` bound to it (no rules: no Role)."""
    docs: list[dict] = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}]
    if rules:
        docs += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
             "rules": list(rules)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        ]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": docs}))


def _message(st: dict) -> str:
    return condition(st, "Released").get("message") or condition(st, "Deployed").get("message") or ""


# ------------------------------------------------------------- impersonation


def test_a_service_account_that_may_not_create_deployments_fails_clearly_then_succeeds_once_granted(
        cluster: LocalCluster, chart_repo: ChartRepo, operators: list[OperatorProcess], tmp_path: Path) -> None:
    ns = new_namespace(cluster, "sa")
    op = _operator(cluster, operators, tmp_path / "op", ns)
    _service_account(cluster, ns, "deployer", HELM_STORAGE_RULE)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url),
                                            "serviceAccountName": "deployer"}))

    st = wait_phase(cluster, ns, "web", "DeployFailed")
    message = _message(st)
    assert f"RBAC refused ServiceAccount {ns}/deployer" in message
    assert f"deployments.apps in namespace {ns}" in message
    assert 'apiGroups: ["apps"], resources: [deployments]' in message
    assert f"--serviceaccount={ns}:deployer" in message
    assert get(cluster, ns, "deployment", f"{ns}-web-hello") is None
    assert op.calls(f"--kube-as-user system:serviceaccount:{ns}:deployer")
    assert not op.calls("--create-namespace") or all(
        "--kube-as-user" not in c for c in op.calls("--create-namespace"))

    _service_account(cluster, ns, "deployer", HELM_STORAGE_RULE, DEPLOYMENTS_RULE)
    wait_phase(cluster, ns, "web", "Succeeded", timeout=180)
    assert get(cluster, ns, "deployment", f"{ns}-web-hello") is not None
    assert all("--kube-as-user" in c for c in op.calls(f"upgrade {ns}-web "))

    # With its ServiceAccount gone (as when the namespace is deleted), deleting
    # the HelmRelease must not hang on an uninstall nobody may run.
    cluster.kubectl("delete", "-n", ns, "serviceaccount", "deployer")
    cluster.kubectl("delete", "-n", ns, "helmrelease", "web", "--wait=true", "--timeout=60s")
    assert not op.calls("uninstall")
    assert "ServiceAccount " + f"{ns}/deployer no longer exists" in op.log_text()


def test_the_default_service_account_is_enforced_for_releases_that_name_none(
        cluster: LocalCluster, chart_repo: ChartRepo, operators: list[OperatorProcess], tmp_path: Path) -> None:
    ns = new_namespace(cluster, "dsa")
    op = _operator(cluster, operators, tmp_path / "op", ns, "--default-service-account", "helm")
    _service_account(cluster, ns, "helm")  # exists, but may do nothing
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))

    st = wait_phase(cluster, ns, "web", "DeployFailed")
    assert f"RBAC refused ServiceAccount {ns}/helm" in _message(st)
    assert op.calls(f"upgrade {ns}-web ")
    assert all(f"--kube-as-user system:serviceaccount:{ns}:helm" in c for c in op.calls(f"upgrade {ns}-web "))
    assert get(cluster, ns, "deployment", f"{ns}-web-hello") is None

    _service_account(cluster, ns, "helm", HELM_STORAGE_RULE, DEPLOYMENTS_RULE)
    wait_phase(cluster, ns, "web", "Succeeded", timeout=180)

    cluster.kubectl("delete", "-n", ns, "helmrelease", "web", "--wait=true", "--timeout=60s")
    [uninstall] = op.calls(f"uninstall {ns}-web ")
    assert f"--kube-as-user system:serviceaccount:{ns}:helm" in uninstall
    assert helm_history(cluster, ns, f"{ns}-web") == []


# ------------------------------------------------------ cross-namespace refs


def test_cross_namespace_references_are_refused_and_reach_no_helm_call(
        cluster: LocalCluster, chart_repo: ChartRepo, operators: list[OperatorProcess], tmp_path: Path) -> None:
    ns, other = new_namespace(cluster, "xns"), new_namespace(cluster, "victim")
    op = _operator(cluster, operators, tmp_path / "op", ns, "--no-cross-namespace-refs")
    cluster.kubectl("create", "configmap", "-n", other, "shared", "--from-literal=values.yaml=message: stolen")
    apply(cluster, ns, helmrelease("escape", {"chart": hello_chart(chart_repo.url), "targetNamespace": other}))
    apply(cluster, ns, helmrelease("peek", {"chart": hello_chart(chart_repo.url), "valuesFrom": [
        {"configMapKeyRef": {"name": "shared", "namespace": other}}]}))
    apply(cluster, ns, helmrelease("home", {"chart": hello_chart(chart_repo.url)}))

    escape = _message(wait_phase(cluster, ns, "escape", "Failed"))
    assert "cross-namespace references are not allowed (--no-cross-namespace-refs)" in escape
    assert f"spec.targetNamespace {other}" in escape
    peek = _message(wait_phase(cluster, ns, "peek", "Failed"))
    assert f"ConfigMap {other}/shared" in peek
    wait_phase(cluster, ns, "home", "Succeeded")
    assert not op.calls(f"upgrade {ns}-{other}-escape") and not op.calls(f"upgrade {ns}-peek")
    assert helm_history(cluster, other, f"{ns}-{other}-escape") == []

    # Deleting the refused HelmRelease must not uninstall what someone else put there.
    cluster.kubectl("delete", "-n", ns, "helmrelease", "escape", "--wait=true", "--timeout=60s")
    assert not op.calls("uninstall")


# ------------------------------------------------------ externalSourceRef hosts


@pytest.fixture
def values_server() -> Iterator[tuple[str, list[str]]]:
    """A values file on 127.0.0.1, recording each request's path."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            body = b"message: from-an-admin-port\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/values.yaml", hits
    server.shutdown()
    server.server_close()


def test_an_external_source_on_loopback_is_refused_by_default(
        cluster: LocalCluster, chart_repo: ChartRepo, operators: list[OperatorProcess], tmp_path: Path,
        values_server: tuple[str, list[str]]) -> None:
    url, hits = values_server
    ns = new_namespace(cluster, "ext")
    op = _operator(cluster, operators, tmp_path / "op", ns)
    for name, optional in (("ext", False), ("ext-optional", True)):
        apply(cluster, ns, helmrelease(name, {"chart": hello_chart(chart_repo.url), "valuesFrom": [
            {"externalSourceRef": {"url": url, "optional": optional}}]}))

    for name in ("ext", "ext-optional"):
        message = _message(wait_phase(cluster, ns, name, "Failed"))
        assert "host 127.0.0.1 is a loopback address" in message
        assert "--external-source-allow 127.0.0.1" in message
    assert hits == [], "nothing may be sent to a denied host"
    assert not op.calls("upgrade")


def test_an_external_source_on_loopback_is_fetched_when_allowed(
        cluster: LocalCluster, chart_repo: ChartRepo, operators: list[OperatorProcess], tmp_path: Path,
        values_server: tuple[str, list[str]]) -> None:
    url, hits = values_server
    ns = new_namespace(cluster, "ext")
    _operator(cluster, operators, tmp_path / "op", ns, "--external-source-allow", "127.0.0.1")
    apply(cluster, ns, helmrelease("ext", {"chart": hello_chart(chart_repo.url), "valuesFrom": [
        {"externalSourceRef": {"url": url}}]}))

    wait_phase(cluster, ns, "ext", "Succeeded")
    assert hits
    cm = get(cluster, ns, "configmap", f"{ns}-ext-hello")
    assert cm is not None and cm["data"]["message"] == "from-an-admin-port"
