"""The chart with two shards, installed into the local cluster.

kwok plays the kubelet, so the image is never pulled: what is checked in the
cluster is what Kubernetes itself makes of the chart's objects (each
Deployment's pods, which pods each Service, PodDisruptionBudget and selector
reaches, and which HelmReleases each operator's --watch-label-selector picks,
evaluated by the API server). Then the shard's and the default shard's
operators and the syncer run here, each with the arguments taken from its
Deployment in the cluster and holding only the chart's ServiceAccount token
(as in test_chart_install.py): the syncer (leader on its Lease) applies
HelmReleases from Git, the shard installs the one labelled for it on its own
Lease, the main operator the unlabelled one, and relabelling in Git hands a
release over without an uninstall, all without one refusal by the API
server. And an existing installation gains and loses shards by `helm
upgrade` (the main Deployment's immutable selector never changes).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.conftest import ChartRepo
from tests.integration.gitsync_support import GitRemote
from tests.integration.helpers import api_refusals, eventually, holds
from tests.integration.hr import get, hello_chart, helm_history, status, wait_phase
from tests.integration.test_chart_install import Process, sa_env, sa_kubeconfig

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "helm-operator"
KEY = "sharding.fluxcd.io/key"
# The chart's flags the local processes take over from their Deployments; the
# rest (paths, ports, the config file) are the pod's and replaced here.
OPERATOR_FLAGS = {"--watch-label-selector", "--leader-elect", "--leader-election-name", "--lease-duration",
                  "--allow-namespace", "--workers", "--shutdown-grace-period"}
SYNCER_FLAGS = {"--leader-elect", "--leader-election-name", "--lease-duration"}


def chart_flags(args: list[str], keep: set[str]) -> list[str]:
    return [a for a in args if a.split("=", 1)[0] in keep]


def container_args(cluster: LocalCluster, ns: str, deployment: str, container: str) -> list[str]:
    obj = json.loads(cluster.kubectl("get", "deployment", deployment, "-n", ns, "-o", "json").stdout)
    [found] = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == container]
    args: list[str] = found["args"]
    return args


def flag(args: list[str], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return value


class Installation:
    """One installation of the chart in fresh namespaces (`hsc-*` for the
    chart, `hsr-*` for the releases it may install into)."""

    def __init__(self, cluster: LocalCluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.tmp_path = tmp_path
        suffix = uuid.uuid4().hex[:6]
        self.chart_ns, self.release_ns, self.release = f"hsc-{suffix}", f"hsr-{suffix}", f"helm-operator-{suffix}"
        for ns in (self.chart_ns, self.release_ns):
            cluster.kubectl("create", "namespace", ns)
        self.env = cluster.env()
        self.env.update(HELM_CACHE_HOME=str(tmp_path / "hc"), HELM_CONFIG_HOME=str(tmp_path / "hcfg"),
                        HELM_DATA_HOME=str(tmp_path / "hd"))

    def values(self, **more: Any) -> dict[str, Any]:
        return {
            "image": {"repository": "registry.local/helm-operator", "tag": "test"},
            "rbac": {"releaseNamespaces": [self.release_ns]},
            "operator": {"allowNamespace": self.release_ns},
            "git": {"sources": [{"name": "apps", "url": "file:///unused-in-kwok", "readonly": True}]},
            **more,
        }

    def helm(self, verb: str, values: dict[str, Any], shards: list[str]) -> str:
        """`helm install|upgrade --wait` with `values`; waits until the main
        Deployment and each shard's are Available; returns helm's output."""
        values_file = self.tmp_path / f"values-{verb}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        proc = subprocess.run(
            [self.cluster.binary("helm"), verb, self.release, str(CHART), "-n", self.chart_ns, "-f",
             str(values_file), "--wait", "--timeout", "3m"], env=self.env, capture_output=True, text=True,
            check=False)
        assert proc.returncode == 0, proc.stderr
        for name in [self.release, *(f"{self.release}-{s}" for s in shards)]:
            self.cluster.kubectl("wait", "-n", self.chart_ns, "--for=condition=Available", "--timeout=120s",
                                 f"deployment/{name}")
        return proc.stdout

    def uninstall(self) -> None:
        subprocess.run([self.cluster.binary("helm"), "uninstall", self.release, "-n", self.chart_ns, "--wait"],
                       env=self.env, capture_output=True, text=True, check=False)


@pytest.fixture
def sharded_chart(cluster: LocalCluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`helm install` of the chart with two shards, leader election and two
    main replicas, allowed to install into a fresh namespace; uninstalled
    afterwards."""
    chart = Installation(cluster, tmp_path)
    started = time.monotonic()
    notes = chart.helm("install", chart.values(
        replicaCount=2, leaderElection={"enabled": True},
        sharding={"shards": [{"name": "shard1"}, {"name": "shard2", "replicaCount": 1, "workers": 2}]},
        podDisruptionBudget={"enabled": True, "maxUnavailable": 2}, networkPolicy={"enabled": True},
    ), ["shard1", "shard2"])
    release = chart.release
    print(f"chart with two shards installed and Available in {time.monotonic() - started:.1f}s")
    yield {"chart_ns": chart.chart_ns, "release_ns": chart.release_ns, "release": release,
           "deployments": {"main": release, "shard1": f"{release}-shard1", "shard2": f"{release}-shard2"},
           "service_account": release, "notes": notes}
    chart.uninstall()


def test_an_existing_installation_gains_and_loses_shards_by_helm_upgrade(cluster: LocalCluster,
                                                                          tmp_path: Path) -> None:
    """The main Deployment's selector is immutable: adding shards to an
    installation must not touch it, and removing them returns the main
    operator to serving everything."""
    chart = Installation(cluster, tmp_path)
    try:
        chart.helm("install", chart.values(), [])
        main_selector = json.loads(cluster.kubectl("get", "deployment", chart.release, "-n", chart.chart_ns,
                                                   "-o", "json").stdout)["spec"]["selector"]
        assert not [a for a in container_args(cluster, chart.chart_ns, chart.release, "operator")
                    if a.startswith("--watch-label-selector")]

        chart.helm("upgrade", chart.values(sharding={"shards": [{"name": "shard1"}]}), ["shard1"])
        after = json.loads(cluster.kubectl("get", "deployment", chart.release, "-n", chart.chart_ns,
                                           "-o", "json").stdout)
        assert after["spec"]["selector"] == main_selector
        assert flag(container_args(cluster, chart.chart_ns, chart.release, "operator"),
                    "--watch-label-selector") == f"{KEY} notin (shard1)"
        assert flag(container_args(cluster, chart.chart_ns, f"{chart.release}-shard1", "operator"),
                    "--watch-label-selector") == f"{KEY}=shard1"

        chart.helm("upgrade", chart.values(), [])
        assert get(cluster, chart.chart_ns, "deployment", f"{chart.release}-shard1") is None
        assert get(cluster, chart.chart_ns, "service", f"{chart.release}-shards") is None
        assert not [a for a in container_args(cluster, chart.chart_ns, chart.release, "operator")
                    if a.startswith("--watch-label-selector")], "no shards: the main operator serves everything"
    finally:
        chart.uninstall()


def _pods_by_deployment(cluster: LocalCluster, ns: str, release: str) -> dict[str, list[dict[str, Any]]]:
    """The release's pods, grouped by the Deployment that owns their ReplicaSet."""
    replicasets = json.loads(cluster.kubectl("get", "replicasets", "-n", ns, "-o", "json").stdout)["items"]
    owner_of = {rs["metadata"]["name"]: rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets}
    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release}",
                                      "-o", "json").stdout)["items"]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            continue
        grouped.setdefault(owner_of[p["metadata"]["ownerReferences"][0]["name"]], []).append(p)
    return grouped


def _endpoint_pods(cluster: LocalCluster, ns: str, service: str) -> set[str]:
    slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", ns, "-l",
                                        f"kubernetes.io/service-name={service}", "-o", "json").stdout)["items"]
    return {e["targetRef"]["name"] for s in slices for e in (s.get("endpoints") or []) if e.get("targetRef")}


def test_each_shard_is_a_deployment_of_its_own_and_the_selectors_split_the_helmreleases(
        cluster: LocalCluster, sharded_chart: dict[str, Any]) -> None:
    ns, release, release_ns = sharded_chart["chart_ns"], sharded_chart["release"], sharded_chart["release_ns"]
    deployments = sharded_chart["deployments"]

    pods = eventually(lambda: (g := _pods_by_deployment(cluster, ns, release))
                      and {d: len(g.get(d, [])) for d in deployments.values()} == {
                          release: 2, f"{release}-shard1": 2, f"{release}-shard2": 1} and g,
                      timeout=60, what="2 main pods, 2 of shard1 (replicaCount), 1 of shard2")
    for name, group in pods.items():
        expected = ["syncer", "operator"] if name == release else ["operator"]
        for p in group:
            assert [c["name"] for c in p["spec"]["containers"]] == expected, p["metadata"]["name"]
            assert p["status"]["phase"] == "Running"
            assert p["spec"]["serviceAccountName"] == sharded_chart["service_account"]
    main_pods = {p["metadata"]["name"] for p in pods[release]}
    shard_pods = {p["metadata"]["name"] for n in (f"{release}-shard1", f"{release}-shard2") for p in pods[n]}

    # What Kubernetes itself selects: the main Service reaches the main pods
    # only (webhooks, syncer port), the shards' Service the shard pods only.
    eventually(lambda: _endpoint_pods(cluster, ns, release) == main_pods, timeout=60,
               what="the main Service's endpoints: the main pods")
    eventually(lambda: _endpoint_pods(cluster, ns, f"{release}-shards") == shard_pods, timeout=60,
               what="the shards' Service's endpoints: the shard pods")
    # The disruption controller counts each budget's pods by its selector.
    expected_pods = {release: 2, f"{release}-shard1": 2, f"{release}-shard2": 1}

    def budgets() -> dict[str, int]:
        items = json.loads(cluster.kubectl("get", "pdb", "-n", ns, "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: (p.get("status") or {}).get("expectedPods") for p in items}

    eventually(lambda: budgets() == expected_pods, timeout=60, what=f"PDB expectedPods {expected_pods}")

    # Leader election everywhere (leaderElection.enabled), each on its own Lease.
    leases = {d: flag(container_args(cluster, ns, d, "operator"), "--leader-election-name")
              for d in deployments.values()}
    leases["syncer"] = flag(container_args(cluster, ns, release, "syncer"), "--leader-election-name")
    assert leases == {release: release, f"{release}-shard1": f"{release}-shard1",
                      f"{release}-shard2": f"{release}-shard2", "syncer": f"{release}-syncer"}

    # The API server evaluates each operator's selector over HelmReleases
    # labelled for shard1, shard2, an unknown shard, and none.
    labels = {"plain": None, "one": "shard1", "two": "shard2", "typo": "shard9"}
    for name, shard in labels.items():
        meta: dict[str, Any] = {"name": name, "namespace": release_ns}
        if shard:
            meta["labels"] = {KEY: shard}
        cluster.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": meta,
            "spec": {"suspend": True, "chart": {"repository": "https://charts.example.com", "name": "x",
                                                "version": "1.0.0"}}}))
    served = {}
    for shard, deployment in deployments.items():
        selector = flag(container_args(cluster, ns, deployment, "operator"), "--watch-label-selector")
        out = cluster.kubectl("get", "helmreleases", "-n", release_ns, "-l", selector, "-o", "name").stdout
        served[shard] = {line.rsplit("/", 1)[1] for line in out.split()}
    assert served == {"main": {"plain", "typo"}, "shard1": {"one"}, "shard2": {"two"}}, \
        "each HelmRelease served by exactly one operator; the default shard takes the unclaimed"
    assert f"logs deploy/{release}-shard1" in sharded_chart["notes"]


def _helm_wrapper(tmp_path: Path, name: str, helm: str) -> tuple[Path, Path]:
    calls = tmp_path / f"{name}-helm-calls.txt"
    calls.touch()
    wrapper = tmp_path / f"{name}-helm"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {helm} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, calls


def _git_manifests(ns: str, chart: dict[str, Any], *, shard1: bool, message: str) -> str:
    """Two HelmReleases in Git: `web` for the default shard, `api` (labelled shard1 or not)."""
    api_meta: dict[str, Any] = {"name": "api", "namespace": ns}
    if shard1:
        api_meta["labels"] = {KEY: "shard1"}
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-git", "namespace": ns},
         "data": {"by": "the syncer that holds the Lease"}},
        {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "web", "namespace": ns},
         "spec": {"chart": chart}},
        {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": api_meta,
         "spec": {"chart": chart, "values": {"message": message}}},
    ]
    return yaml.safe_dump_all(docs)


def test_a_shard_the_default_shard_and_the_syncer_run_on_the_charts_rbac(
        cluster: LocalCluster, chart_repo: ChartRepo, sharded_chart: dict[str, Any], tmp_path: Path) -> None:
    chart_ns, release_ns, release = sharded_chart["chart_ns"], sharded_chart["release_ns"], sharded_chart["release"]
    kubeconfig = sa_kubeconfig(cluster, chart_ns, sharded_chart["service_account"], tmp_path / "sa.kubeconfig")
    # POD_NAMESPACE as the chart sets it: the Leases go to the chart's namespace.
    env = {**sa_env(cluster, kubeconfig, tmp_path), "POD_NAMESPACE": chart_ns}

    remote = GitRemote(tmp_path / "git")
    remote.write("releases.yaml", _git_manifests(release_ns, hello_chart(chart_repo.url), shard1=True,
                                                 message="first"))
    remote.commit("two HelmReleases, one for shard1")

    syncer_args = chart_flags(container_args(cluster, chart_ns, release, "syncer"), SYNCER_FLAGS)
    main_args = chart_flags(container_args(cluster, chart_ns, release, "operator"), OPERATOR_FLAGS)
    shard_args = chart_flags(container_args(cluster, chart_ns, f"{release}-shard1", "operator"), OPERATOR_FLAGS)
    assert "--leader-elect" in syncer_args and "--leader-elect" in shard_args
    assert flag(shard_args, "--watch-label-selector") == f"{KEY}=shard1"

    processes: list[Process] = []
    helm_calls = {}

    def operator(name: str, args: list[str]) -> Process:
        wrapper, helm_calls[name] = _helm_wrapper(tmp_path, name, cluster.binary("helm"))
        port = free_port()
        return Process(name, ["run", "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}",
                              "--cache-dir", str(tmp_path / f"{name}-cache"), "--helm-binary", str(wrapper),
                              "--charts-sync-interval", "15s", "--drift-detection-interval", "0", *args],
                       env, tmp_path / f"{name}.log", port)

    try:
        sync_port = free_port()
        processes.append(Process("syncer", [
            "sync", "--kubeconfig", str(kubeconfig), "--git-url", remote.url, "--source-name", "apps",
            "--git-readonly", "--git-poll-interval", "2s", "--workdir", str(tmp_path / "sync"),
            "--listen", "127.0.0.1", "--listen-port", str(sync_port), *syncer_args],
            env, tmp_path / "syncer.log", sync_port))
        syncer = processes[-1]
        processes.append(operator("shard1", shard_args))
        processes.append(operator("main", main_args))
        by_name = {p.name: p for p in processes}

        def cm_from_git() -> dict[str, Any] | None:
            return get(cluster, release_ns, "configmap", "from-git")

        eventually(cm_from_git, timeout=60, what="the syncer, leading, applies Git")
        for name in ("web", "api"):
            st = wait_phase(cluster, release_ns, name, "Succeeded", timeout=180)
            assert st["releaseStatus"] == "deployed", name

        def actions(who: str, hr: str) -> list[str]:
            text = helm_calls[who].read_text()
            return [c.split()[0] for c in text.splitlines()
                    if c.startswith(("install ", "upgrade ", "uninstall ")) and f"{release_ns}-{hr}" in c.split()]

        assert actions("shard1", "api") and not actions("shard1", "web"), "shard1 serves only its label"
        assert actions("main", "web") and not actions("main", "api"), "the default shard serves the rest"

        # Each holds its own Lease in the chart's namespace, created with the chart's Role.
        for lease, who in ((f"{release}-syncer", "syncer"), (f"{release}-shard1", "shard1"), (release, "main")):
            holder = eventually(lambda lease=lease: (get(cluster, chart_ns, "lease", lease) or {}).get(
                "spec", {}).get("holderIdentity"), timeout=30, what=f"Lease {lease} held")
            assert holder.endswith(f"_{by_name[who].proc.pid}"), (lease, holder)

        # Hand `api` over in Git: its label goes, its values change. The default
        # shard adopts and upgrades it; shard1 lets go without an uninstall.
        remote.write("releases.yaml", _git_manifests(release_ns, hello_chart(chart_repo.url), shard1=False,
                                                     message="moved"))
        remote.commit("api leaves shard1")
        [result] = syncer.post("/api/v1/sync?wait=true")["results"]
        assert result["ok"], result
        hr = get(cluster, release_ns, "helmrelease", "api")
        assert hr is not None and KEY not in (hr["metadata"].get("labels") or {}), "the label left with Git"
        eventually(lambda: "upgrade" in actions("main", "api"), timeout=90,
                   what="the default shard to upgrade the handed-over release")
        eventually(lambda: status(cluster, release_ns, "api").get("phase") == "Succeeded"
                   and status(cluster, release_ns, "api").get("observedGeneration") == 2, timeout=90,
                   what="the handed-over release upgraded to its new values")
        history = helm_history(cluster, release_ns, f"{release_ns}-api")
        assert history[0]["revision"] == 1 and all(h["status"] != "uninstalled" for h in history)
        seen = list(actions("shard1", "api"))
        holds(lambda: actions("shard1", "api") == seen, window=5,
              what="the old shard never acts on the release again")
        assert "uninstall" not in seen
    finally:
        logs = {p.name: p.tail(20000) for p in processes}
        for p in processes:
            p.stop()
    for name, text in logs.items():
        refusals = api_refusals(text)
        assert not refusals, f"{name} was refused by the API server:\n" + "\n".join(refusals)
