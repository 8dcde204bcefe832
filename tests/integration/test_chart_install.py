"""The Helm chart in `charts/helm-operator` installs into the local cluster,
its pod comes up (kwok plays the kubelet, so the image is never pulled), and
its least-privilege RBAC is enough for the real work.

The RBAC proof runs both roles locally as that ServiceAccount: a token from
`kubectl create token`, a kubeconfig holding only that token, then
`helm-operator sync` applies a Namespace, a ConfigMap and a HelmRelease from
a Git remote (garbage collection on, read-only marker), and `helm-operator
run` (with leader election on the chart's Lease) installs the HelmRelease
to Succeeded. Neither process sees the admin
kubeconfig (not even through $KUBECONFIG), so a missing rule shows up as a
403 in their logs and a test failure here.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.conftest import ChartRepo
from tests.integration.gitsync_support import GitRemote
from tests.integration.helpers import api_refusals, eventually
from tests.integration.hr import condition, get, hello_chart, wait_phase

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "helm-operator"
HELM_OPERATOR = [sys.executable, "-m", "helm_operator.cli"]


class Process:
    """A `helm-operator` subprocess logging to a file, stopped on exit."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.name = name
        self.log = log
        self.port = port
        self._out = log.open("w")
        self.proc = subprocess.Popen([*HELM_OPERATOR, *args], cwd=REPO_ROOT, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {self.proc.returncode}:\n{self.tail()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200

        eventually(healthy, timeout=60, what=f"{name} /healthz")

    def post(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=120) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self._out.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def sa_kubeconfig(cluster: LocalCluster, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates only as `service_account` (a bound token)."""
    token = cluster.kubectl("create", "token", service_account, "-n", namespace,
                            "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": cluster.server, "certificate-authority": ca}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": service_account,
                                                "namespace": namespace}}],
        "current-context": "sa",
    }))
    path.chmod(0o600)
    return path


def sa_env(cluster: LocalCluster, kubeconfig: Path, workdir: Path) -> dict[str, str]:
    """Environment of the local processes: the cluster's binaries, the
    ServiceAccount's kubeconfig, helm's homes in `workdir`."""
    env = {k: v for k, v in cluster.env().items() if not k.startswith(("HELM_", "GIT_"))}
    env.update(KUBECONFIG=str(kubeconfig), HELM_CACHE_HOME=str(workdir / "helm-cache"),
               HELM_CONFIG_HOME=str(workdir / "helm-config"), HELM_DATA_HOME=str(workdir / "helm-data"))
    return env


def git_manifests(ns: str, chart: dict[str, Any], *, with_configmap: bool = True) -> str:
    """The Git repository's one file: a Namespace, a ConfigMap, a HelmRelease."""
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    if with_configmap:
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "from-git", "namespace": ns},
                     "data": {"greeting": "synced by the chart's ServiceAccount"}})
    docs.append({"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
                 "metadata": {"name": "web", "namespace": ns},
                 "spec": {"chart": chart, "values": {"message": "installed by the chart's ServiceAccount"}}})
    return yaml.safe_dump_all(docs)


@pytest.fixture
def installed_chart(cluster: LocalCluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`helm install` of the chart (release namespace `hoc-*`) allowed to
    install into a fresh namespace `hor-*`; uninstalled afterwards."""
    suffix = uuid.uuid4().hex[:6]
    chart_ns, release_ns, release = f"hoc-{suffix}", f"hor-{suffix}", f"helm-operator-{suffix}"
    for ns in (chart_ns, release_ns):
        cluster.kubectl("create", "namespace", ns)
    values = {
        "image": {"repository": "registry.local/helm-operator", "tag": "test"},
        "rbac": {"releaseNamespaces": [release_ns]},
        "operator": {"allowNamespace": release_ns},
        "git": {"sources": [{"name": "apps", "url": "file:///unused-in-kwok", "readonly": True,
                             "garbageCollection": True}]},
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    env = cluster.env()
    env.update(HELM_CACHE_HOME=str(tmp_path / "hc"), HELM_CONFIG_HOME=str(tmp_path / "hcfg"),
               HELM_DATA_HOME=str(tmp_path / "hd"))
    started = time.monotonic()
    install = subprocess.run(
        [cluster.binary("helm"), "install", release, str(CHART), "-n", chart_ns, "-f", str(values_file),
         "--wait", "--timeout", "3m"], env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    cluster.kubectl("wait", "-n", chart_ns, "--for=condition=Available", "--timeout=120s",
                    f"deployment/{release}")
    elapsed = time.monotonic() - started
    print(f"chart installed and Available in {elapsed:.1f}s")
    yield {"chart_ns": chart_ns, "release_ns": release_ns, "release": release,
           "service_account": release, "install_seconds": elapsed, "notes": install.stdout,
           "values_file": values_file, "helm_env": env}
    subprocess.run([cluster.binary("helm"), "uninstall", release, "-n", chart_ns, "--wait"],
                   env=env, capture_output=True, text=True)


def test_chart_installs_and_its_pod_becomes_available(cluster: LocalCluster,
                                                      installed_chart: dict[str, Any]) -> None:
    ns, name = installed_chart["chart_ns"], installed_chart["release"]
    deploy = json.loads(cluster.kubectl("get", "deployment", name, "-n", ns, "-o", "json").stdout)
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"syncer", "operator"}
    assert deploy["status"]["availableReplicas"] == 1
    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={name}",
                                      "-o", "json").stdout)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert "kubectl get hr -A" in installed_chart["notes"]
    # The CRD from crds/ is present (installed by the session; helm keeps it).
    cluster.kubectl("get", "crd", "helmreleases.helm.fluxcd.io")


def test_chart_rbac_is_enough_for_the_syncer_and_the_operator(
        cluster: LocalCluster, chart_repo: ChartRepo, installed_chart: dict[str, Any], tmp_path: Path) -> None:
    chart_ns, release_ns = installed_chart["chart_ns"], installed_chart["release_ns"]
    kubeconfig = sa_kubeconfig(cluster, chart_ns, installed_chart["service_account"], tmp_path / "sa.kubeconfig")
    env = sa_env(cluster, kubeconfig, tmp_path)
    # The token is really that account's, and it is not an admin.
    who = cluster.kubectl("--kubeconfig", str(kubeconfig), "auth", "can-i", "create", "clusterroles",
                          check=False)
    assert who.stdout.strip() == "no"

    remote = GitRemote(tmp_path / "git")
    remote.write("releases/all.yaml", git_manifests(release_ns, hello_chart(chart_repo.url)))
    remote.commit("a namespace, a ConfigMap and a HelmRelease")

    sync_port, run_port = free_port(), free_port()
    syncer = Process("syncer", [
        "sync", "--kubeconfig", str(kubeconfig), "--namespace", chart_ns, "--git-url", remote.url,
        "--source-name", "apps", "--git-readonly", "--sync-garbage-collection",
        "--git-poll-interval", "2s", "--workdir", str(tmp_path / "sync"),
        "--listen", "127.0.0.1", "--listen-port", str(sync_port)], env, tmp_path / "syncer.log", sync_port)
    operator = None
    try:
        operator = Process("operator", [
            "run", "--kubeconfig", str(kubeconfig), "--allow-namespace", release_ns,
            "--listen", f"127.0.0.1:{run_port}", "--cache-dir", str(tmp_path / "cache"),
            "--helm-binary", cluster.binary("helm"), "--charts-sync-interval", "15s", "--log-level", "debug",
            # As the chart passes it with leaderElection.enabled: the Lease
            # in the chart's namespace, named after the installation.
            "--leader-elect", "--leader-election-namespace", chart_ns,
            "--leader-election-name", installed_chart["release"]],
            env, tmp_path / "operator.log", run_port)

        configmap = eventually(lambda: get(cluster, release_ns, "configmap", "from-git"), timeout=60,
                               what="ConfigMap from Git applied by the syncer")
        assert configmap["metadata"]["labels"]["fluxcd.io/sync-gc-mark"].startswith("sha256.")

        st = wait_phase(cluster, release_ns, "web", "Succeeded", timeout=180)
        assert st["releaseStatus"] == "deployed"
        assert condition(st, "Ready")["status"] == "True"
        assert get(cluster, release_ns, "deployment", f"{release_ns}-web-hello") is not None
        lease = get(cluster, chart_ns, "lease", installed_chart["release"])
        assert lease is not None and lease["spec"]["holderIdentity"]

        status = subprocess.run(
            [*HELM_OPERATOR, "sync-status", "--kubeconfig", str(kubeconfig), "--namespace", chart_ns,
             "-o", "json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        [apps] = json.loads(status.stdout)
        assert apps["commit"] and not apps["errors"], apps

        # Garbage collection, through the list-only inventory rule: the
        # ConfigMap leaves Git and the syncer deletes it.
        remote.write("releases/all.yaml", git_manifests(release_ns, hello_chart(chart_repo.url),
                                                        with_configmap=False))
        remote.commit("remove the ConfigMap")
        [result] = syncer.post("/api/v1/sync?wait=true")["results"]
        assert result["ok"] and result["deleted"] == 1, result
        assert get(cluster, release_ns, "configmap", "from-git") is None

        # Uninstall through the finalizer: helm uninstall and the finalizer's
        # removal are within the rights too. (The syncer stops first, so that
        # it does not apply the HelmRelease from Git again.)
        syncer.stop()
        cluster.kubectl("delete", "helmrelease", "web", "-n", release_ns, "--wait=false")
        eventually(lambda: get(cluster, release_ns, "helmrelease", "web") is None, timeout=120,
                   what="HelmRelease uninstalled and its finalizer removed")
        assert get(cluster, release_ns, "deployment", f"{release_ns}-web-hello") is None
    finally:
        logs = {p.name: p.tail() for p in (syncer, operator) if p is not None}
        syncer.stop()
        if operator is not None:
            operator.stop()
    for name, text in logs.items():
        refusals = api_refusals(text)
        assert not refusals, f"{name} was refused by the API server:\n" + "\n".join(refusals)


def _webhook_token(cluster: LocalCluster, ns: str, release: str) -> str:
    secret = json.loads(cluster.kubectl("get", "secret", f"{release}-webhook", "-n", ns, "-o", "json").stdout)
    return base64.b64decode(secret["data"]["token"]).decode()


def test_the_generated_webhook_token_survives_an_upgrade(cluster: LocalCluster,
                                                          installed_chart: dict[str, Any]) -> None:
    """`lookup` keeps the token a Git host's webhook was configured with."""
    ns, release = installed_chart["chart_ns"], installed_chart["release"]
    before = _webhook_token(cluster, ns, release)
    assert len(before) == 48
    upgrade = subprocess.run(
        [cluster.binary("helm"), "upgrade", release, str(CHART), "-n", ns, "-f", str(installed_chart["values_file"]),
         "--set", "operator.workers=2", "--wait", "--timeout", "3m"],
        env=installed_chart["helm_env"], capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    assert _webhook_token(cluster, ns, release) == before
    assert "Authorization: Bearer <token>" in upgrade.stdout


def test_chart_rbac_lets_the_operator_act_as_a_tenant_service_account(
        cluster: LocalCluster, chart_repo: ChartRepo, installed_chart: dict[str, Any], tmp_path: Path) -> None:
    """The operator, holding only the chart's rights, impersonates the
    HelmRelease's ServiceAccount (--default-service-account, as
    tenancy.defaultServiceAccount passes it), installs, and uninstalls on
    delete after checking that the ServiceAccount exists."""
    chart_ns, release_ns = installed_chart["chart_ns"], installed_chart["release_ns"]
    kubeconfig = sa_kubeconfig(cluster, chart_ns, installed_chart["service_account"], tmp_path / "sa.kubeconfig")
    env = sa_env(cluster, kubeconfig, tmp_path)
    cluster.kubectl("create", "serviceaccount", "tenant", "-n", release_ns)
    cluster.kubectl("create", "rolebinding", "tenant-admin", "-n", release_ns, "--clusterrole=admin",
                    f"--serviceaccount={release_ns}:tenant")
    calls = tmp_path / "helm-calls.txt"
    wrapper = tmp_path / "helm"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {cluster.binary("helm")} "$@"\n')
    wrapper.chmod(0o755)
    run_port = free_port()
    operator = Process("operator", [
        "run", "--kubeconfig", str(kubeconfig), "--allow-namespace", release_ns,
        "--listen", f"127.0.0.1:{run_port}", "--cache-dir", str(tmp_path / "cache"),
        "--helm-binary", str(wrapper), "--log-level", "debug",
        "--default-service-account", "tenant", "--no-cross-namespace-refs"],
        env, tmp_path / "operator.log", run_port)
    try:
        cluster.kubectl("apply", "-n", release_ns, "-f", "-", input=json.dumps({
            "apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "web"},
            "spec": {"chart": hello_chart(chart_repo.url)}}))
        wait_phase(cluster, release_ns, "web", "Succeeded", timeout=180)
        deployment = get(cluster, release_ns, "deployment", f"{release_ns}-web-hello")
        assert deployment is not None
        cluster.kubectl("delete", "helmrelease", "web", "-n", release_ns, "--wait=false")
        eventually(lambda: get(cluster, release_ns, "helmrelease", "web") is None, timeout=120,
                   what="HelmRelease uninstalled as the tenant and its finalizer removed")
        assert get(cluster, release_ns, "deployment", f"{release_ns}-web-hello") is None
        actions = [c for c in calls.read_text().splitlines() if c.startswith(("upgrade ", "uninstall "))]
        assert [c.split()[0] for c in actions] == ["upgrade", "uninstall"]
        assert all(f"--kube-as-user system:serviceaccount:{release_ns}:tenant" in c for c in actions)
    finally:
        log = operator.tail(20000)
        operator.stop()
    refusals = api_refusals(log)
    assert not refusals, "operator was refused by the API server:\n" + "\n".join(refusals)
