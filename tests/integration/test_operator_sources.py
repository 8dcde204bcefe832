"""Chart sources with credentials and options: a Helm repository behind
basic auth (chartPullSecret), OCI charts in a real registry, and the helm
options resetValues and maxHistory."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.hr import apply, condition, get, hello_chart, helmrelease, new_namespace, wait_phase
from tests.integration.registry import Registry, start_registry


class _AuthHandler(http.server.SimpleHTTPRequestHandler):
    expected = ""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def private_repo(cluster: LocalCluster, chart_repo: ChartRepo) -> Iterator[str]:
    """The same charts as `chart_repo`, served only with user `reader` / `pa55word`."""
    handler = type("H", (_AuthHandler,), {"expected": "Basic " + base64.b64encode(b"reader:pa55word").decode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(chart_repo.root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory: pytest.TempPathFactory, cluster: LocalCluster) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("oci-registry"), "pusher", "pushpass")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def oci_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """Replaces the module's operator: this one talks plain HTTP to registries."""
    op = start_operator(cluster, tmp_path_factory.mktemp("oci-operator"), "--charts-sync-interval", "15s",
                        "--oci-plain-http")
    yield op
    op.stop()


def _secret(cluster: LocalCluster, ns: str, name: str, username: str, password: str) -> None:
    cluster.kubectl("create", "secret", "generic", "-n", ns, name,
                    f"--from-literal=username={username}", f"--from-literal=password={password}")


def test_helm_repository_with_chart_pull_secret(
        cluster: LocalCluster, private_repo: str, oci_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("nocreds", {"chart": hello_chart(private_repo)}))
    st = wait_phase(cluster, ns, "nocreds", "ChartFetchFailed")
    assert "HTTP 401" in condition(st, "ChartFetched")["message"]
    _secret(cluster, ns, "repo-creds", "reader", "pa55word")
    chart = {**hello_chart(private_repo), "chartPullSecret": {"name": "repo-creds"}}
    apply(cluster, ns, helmrelease("withcreds", {"chart": chart}))
    wait_phase(cluster, ns, "withcreds", "Succeeded")
    assert "pa55word" not in oci_operator.log_text()


def test_oci_chart_from_a_registry_with_basic_auth(
        cluster: LocalCluster, chart_repo: ChartRepo, oci_registry: Registry, oci_operator: OperatorProcess,
        tmp_path: Path) -> None:
    helm = cluster.binary("helm")
    env = {**cluster.env(), "HELM_REGISTRY_CONFIG": str(tmp_path / "registry.json")}
    subprocess.run([helm, "registry", "login", oci_registry.host, "--username", "pusher", "--password-stdin",
                    "--plain-http"], input="pushpass", text=True, env=env, check=True, capture_output=True)
    subprocess.run([helm, "push", str(chart_repo.root / "hello-0.2.0.tgz"), f"oci://{oci_registry.host}/charts",
                    "--plain-http"], env=env, check=True, capture_output=True)
    ns = new_namespace(cluster)
    _secret(cluster, ns, "registry-creds", "pusher", "pushpass")
    apply(cluster, ns, helmrelease("oci", {"chart": {
        "repository": f"oci://{oci_registry.host}/charts", "name": "hello", "version": "0.2.0",
        "chartPullSecret": {"name": "registry-creds"}}}))
    st = wait_phase(cluster, ns, "oci", "Succeeded")
    assert st["revision"] == "0.2.0"
    assert get(cluster, ns, "deployment", f"{ns}-oci-hello") is not None
    assert "pushpass" not in oci_operator.log_text()


def _release_values(cluster: LocalCluster, ns: str, release: str) -> dict:
    out = subprocess.run([cluster.binary("helm"), "get", "values", release, "-n", ns, "-o", "json"],
                         env=cluster.env(), check=True, capture_output=True, text=True).stdout
    return json.loads(out) or {}


def test_reset_values_false_reuses_the_previous_values(
        cluster: LocalCluster, chart_repo: ChartRepo, oci_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("keep", {"chart": hello_chart(chart_repo.url), "resetValues": False,
                                            "values": {"replicaCount": 2}}))
    wait_phase(cluster, ns, "keep", "Succeeded")
    apply(cluster, ns, helmrelease("keep", {"chart": hello_chart(chart_repo.url), "resetValues": False,
                                            "values": {"message": "second"}}))
    wait_phase(cluster, ns, "keep", "Succeeded", generation=2)
    assert _release_values(cluster, ns, f"{ns}-keep") == {"replicaCount": 2, "message": "second"}

    apply(cluster, ns, helmrelease("reset", {"chart": hello_chart(chart_repo.url), "values": {"replicaCount": 2}}))
    wait_phase(cluster, ns, "reset", "Succeeded")
    apply(cluster, ns, helmrelease("reset", {"chart": hello_chart(chart_repo.url), "values": {"message": "second"}}))
    wait_phase(cluster, ns, "reset", "Succeeded", generation=2)
    assert _release_values(cluster, ns, f"{ns}-reset") == {"message": "second"}


def test_max_history_limits_stored_revisions(
        cluster: LocalCluster, chart_repo: ChartRepo, oci_operator: OperatorProcess) -> None:
    ns = new_namespace(cluster)
    for i in range(4):
        apply(cluster, ns, helmrelease("hist", {"chart": hello_chart(chart_repo.url), "maxHistory": 2,
                                                "values": {"message": f"v{i}"}}))
        wait_phase(cluster, ns, "hist", "Succeeded", generation=i + 1)
    out = subprocess.run([cluster.binary("helm"), "history", f"{ns}-hist", "-n", ns, "-o", "json"],
                         env=cluster.env(), check=True, capture_output=True, text=True).stdout
    assert [h["revision"] for h in json.loads(out)] == [3, 4]
