"""The CLI convention against the real cluster: `--context` carried through
`sync` and `run` (the API and helm), the context's namespace as the default,
`sync-status -o json|yaml|table` parsed, and `--listen HOST:PORT` on both
processes. The listing commands' `-o json` is in test_automation_cli.py,
beside the registry they read."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, start_operator
from tests.integration.gitsync_support import HELM_OPERATOR, REPO_ROOT, GitRemote
from tests.integration.hr import apply, hello_chart, helmrelease, new_namespace, wait_phase

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-git
  namespace: {ns}
data:
  hello: world
"""


def kubeconfig_with_team_context(cluster: LocalCluster, ns: str, path: Path) -> Path:
    """The cluster's kubeconfig plus a context `team` whose namespace is `ns` (current stays `local`)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    [local] = config["contexts"]
    config["contexts"].append({"name": "team", "context": {**local["context"], "namespace": ns}})
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def cli(cluster: LocalCluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in cluster.env().items() if k != "KUBECONFIG"}   # only what the flags say
    return subprocess.run([*HELM_OPERATOR, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_sync_and_sync_status_through_a_context_and_its_namespace(cluster: LocalCluster, tmp_path: Path) -> None:
    ns = new_namespace(cluster, "clisync")
    kubeconfig = kubeconfig_with_team_context(cluster, ns, tmp_path / "kubeconfig")
    remote = GitRemote(tmp_path / "git")
    remote.write("app/configmap.yaml", CONFIGMAP.format(ns=ns))
    commit = remote.commit("a ConfigMap")
    source = f"cli-{uuid.uuid4().hex[:6]}"

    # New spellings: --context (the status namespace is the context's, no -n), --listen HOST:PORT.
    synced = cli(cluster, "sync", "--once", "--kubeconfig", str(kubeconfig), "--context", "team",
                 "--git-url", remote.url, "--git-path", "app", "--source-name", source, "--git-readonly",
                 "--workdir", str(tmp_path / "work"), "--listen", "127.0.0.1:0", "--log-format", "json")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert cluster.kubectl("get", "configmap", "from-git", "-n", ns, "-o", "name").stdout.strip() == \
        "configmap/from-git"

    as_json = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "--context", "team", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    [status] = json.loads(as_json.stdout)
    assert (status["source"], status["commit"], status["applied"], status["errors"]) == (source, commit, 1, [])

    as_yaml = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "--context", "team", "-o", "yaml")
    assert as_yaml.returncode == 0 and yaml.safe_load(as_yaml.stdout) == [status]

    table = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "-n", ns, "-o", "table", "--no-headers")
    assert table.returncode == 0, table.stderr
    [row] = table.stdout.splitlines()
    assert row.split()[:5] == [source, "True", commit[:12], status["synced_at"], "1"]

    text = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "--context", "team")
    assert text.returncode == 0 and text.stdout.startswith(f"source {source}: ok\n"), "text stays the default"

    elsewhere = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "-o", "json", "-n", new_namespace(cluster))
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout) == []

    unknown = cli(cluster, "sync-status", "--kubeconfig", str(kubeconfig), "--context", "nowhere")
    assert unknown.returncode == 1 and unknown.stdout == ""
    [line] = unknown.stderr.splitlines()
    assert line.startswith(f"helm-operator sync-status: context 'nowhere' is not in kubeconfig {kubeconfig}")


def test_run_acts_through_the_context_it_is_given(cluster: LocalCluster, chart_repo: ChartRepo,
                                                  tmp_path: Path) -> None:
    """`run --context` reaches the API server and helm through that context (helm gets --kube-context)."""
    ns = new_namespace(cluster, "clictx")
    op = start_operator(cluster, tmp_path / "op", "--context", "local", "--allow-namespace", ns,
                        "--charts-sync-interval", "10m")
    try:
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
        wait_phase(cluster, ns, "web", "Succeeded")
        installs = op.calls("install")
        assert installs and all("--kube-context local" in call for call in installs), installs
    finally:
        op.stop()


@pytest.mark.parametrize("command", ["run", "sync"])
def test_an_unreachable_kubeconfig_context_stops_a_process_with_one_line(cluster: LocalCluster, tmp_path: Path,
                                                                         command: str) -> None:
    extra = ["--git-url", "file:///nowhere.git", "--once"] if command == "sync" else []
    result = cli(cluster, command, "--kubeconfig", str(cluster.kubeconfig), "--context", "nowhere",
                 "--listen", "127.0.0.1:0", *extra, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    [line] = result.stderr.splitlines()
    assert line == f"helm-operator {command}: context 'nowhere' is not in kubeconfig {cluster.kubeconfig}: " \
                   "name one that 'kubectl config get-contexts' lists"
