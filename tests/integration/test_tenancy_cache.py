"""Two tenants, one operator, one chart cache: a private chart that tenant A
(namespace with the credentials Secret) fetched is never served to tenant B
(same chart, no credentials), for each source kind: a Helm repository behind
basic auth, an OCI registry with htpasswd (Debian's docker-registry), and
Git over smart HTTP with basic auth (git http-backend). B always runs after A
has filled the cache, which is what used to leak."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.chartserver import serve_directory
from tests.integration.conftest import TESTDATA, ChartRepo, OperatorProcess, start_operator
from tests.integration.gitsync_support import GitRemote
from tests.integration.hr import apply, condition, get, helmrelease, new_namespace, wait_phase
from tests.integration.registry import Registry, start_registry
from tests.integration.test_gitsync_https import PASSWORD as GIT_PASSWORD
from tests.integration.test_gitsync_https import USER as GIT_USER
from tests.integration.test_gitsync_https import make_handler

REPO_USER, REPO_PASSWORD = "reader", "tenant-A-pa55"
OCI_USER, OCI_PASSWORD = "puller", "tenant-A-oci-pa55"


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The module's only operator, shared by both tenants (one cache directory)."""
    op = start_operator(cluster, tmp_path_factory.mktemp("tenancy-cache"), "--oci-plain-http")
    yield op
    op.stop()
    print(f"operator log: {op.log}")


def _secret(cluster: LocalCluster, ns: str, name: str, username: str, password: str) -> None:
    cluster.kubectl("create", "secret", "generic", "-n", ns, name,
                    f"--from-literal=username={username}", f"--from-literal=password={password}")


def _tenants(cluster: LocalCluster, username: str, password: str) -> tuple[str, str]:
    """Namespace A with Secret `creds`, namespace B without it."""
    a, b = new_namespace(cluster, "tenant-a"), new_namespace(cluster, "tenant-b")
    _secret(cluster, a, "creds", username, password)
    return a, b


def _a_then_b(cluster: LocalCluster, operator: OperatorProcess, chart_a: dict, chart_b: dict,
              refusal: str, creds: tuple[str, str]) -> None:
    """A (chart_a, with the Secret) succeeds first; then B (chart_b, none) must be refused."""
    a, b = _tenants(cluster, *creds)
    apply(cluster, a, helmrelease("web", {"chart": chart_a}))
    wait_phase(cluster, a, "web", "Succeeded")
    assert get(cluster, a, "deployment", f"{a}-web-hello") is not None

    apply(cluster, b, helmrelease("web", {"chart": chart_b}))
    st = wait_phase(cluster, b, "web", "ChartFetchFailed")
    assert refusal in condition(st, "ChartFetched")["message"].lower()
    assert get(cluster, b, "deployment", f"{b}-web-hello") is None
    assert not operator.calls(f"upgrade {b}-web "), "B's release must never reach helm"
    assert creds[1] not in operator.log_text()


# ------------------------------------------------------------ Helm repository


@pytest.fixture(scope="module")
def private_repo(chart_repo: ChartRepo) -> Iterator[str]:
    url, server = serve_directory(chart_repo.root, auth=(REPO_USER, REPO_PASSWORD))
    yield url
    server.shutdown()


def test_helm_repository_chart_fetched_by_tenant_a_is_refused_to_tenant_b_without_credentials(
        cluster: LocalCluster, private_repo: str, operator: OperatorProcess) -> None:
    chart = {"repository": private_repo + "/", "name": "hello", "version": "0.2.0"}
    _a_then_b(cluster, operator, {**chart, "chartPullSecret": {"name": "creds"}}, chart,
              "http 401", (REPO_USER, REPO_PASSWORD))


def test_helm_repository_chart_is_refused_to_tenant_b_with_wrong_credentials(
        cluster: LocalCluster, private_repo: str, operator: OperatorProcess) -> None:
    chart = {"repository": private_repo + "/", "name": "hello", "version": "0.3.0",
             "chartPullSecret": {"name": "creds"}}
    a, b = _tenants(cluster, REPO_USER, REPO_PASSWORD)
    _secret(cluster, b, "creds", REPO_USER, "guessed")
    apply(cluster, a, helmrelease("web", {"chart": chart}))
    wait_phase(cluster, a, "web", "Succeeded")
    apply(cluster, b, helmrelease("web", {"chart": chart}))
    st = wait_phase(cluster, b, "web", "ChartFetchFailed")
    assert "credentials were refused" in condition(st, "ChartFetched")["message"]


# ----------------------------------------------------------------------- OCI


@pytest.fixture(scope="module")
def oci_chart(cluster: LocalCluster, chart_repo: ChartRepo,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """hello 0.2.0 pushed to a registry that requires htpasswd credentials."""
    work = tmp_path_factory.mktemp("tenancy-oci")
    reg: Registry = start_registry(work / "registry", OCI_USER, OCI_PASSWORD)
    helm = cluster.binary("helm")
    env = {**cluster.env(), "HELM_REGISTRY_CONFIG": str(work / "registry.json")}
    subprocess.run([helm, "registry", "login", reg.host, "--username", OCI_USER, "--password-stdin",
                    "--plain-http"], input=OCI_PASSWORD, text=True, env=env, check=True, capture_output=True)
    subprocess.run([helm, "push", str(chart_repo.root / "hello-0.2.0.tgz"), f"oci://{reg.host}/charts",
                    "--plain-http"], env=env, check=True, capture_output=True)
    yield f"oci://{reg.host}/charts"
    reg.stop()


def test_oci_chart_pulled_by_tenant_a_is_refused_to_tenant_b_without_credentials(
        cluster: LocalCluster, oci_chart: str, operator: OperatorProcess) -> None:
    chart = {"repository": oci_chart, "name": "hello", "version": "0.2.0"}
    _a_then_b(cluster, operator, {**chart, "chartPullSecret": {"name": "creds"}}, chart,
              "the registry needs credentials: set spec.chart.chartpullsecret", (OCI_USER, OCI_PASSWORD))


# ----------------------------------------------------------------------- Git


@pytest.fixture(scope="module")
def private_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Git repository holding charts/hello, served over HTTP with basic auth."""
    remote = GitRemote(tmp_path_factory.mktemp("tenancy-git"))
    shutil.copytree(TESTDATA / "charts" / "hello", remote.work / "charts" / "hello")
    remote.commit("the hello chart")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(remote.bare.parent))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/remote.git"
    server.shutdown()
    server.server_close()


def test_git_chart_mirrored_for_tenant_a_is_refused_to_tenant_b_without_credentials(
        cluster: LocalCluster, private_git: str, operator: OperatorProcess) -> None:
    chart = {"git": private_git, "ref": "master", "path": "charts/hello"}
    _a_then_b(cluster, operator, {**chart, "secretRef": {"name": "creds"}}, chart,
              "authentication failed", (GIT_USER, GIT_PASSWORD))


def test_the_cache_never_names_a_credential(operator: OperatorProcess) -> None:
    """Runs last in this module: every source kind has been cached by now."""
    cache = Path(operator.args[operator.args.index("--cache-dir") + 1])
    names = [p.name for p in cache.rglob("*")]
    assert names, "the cache is empty: the tests above did not fetch anything"
    for secret in (REPO_PASSWORD, OCI_PASSWORD, GIT_PASSWORD):
        assert not [n for n in names if secret in n], secret
