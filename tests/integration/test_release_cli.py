"""The release controls and `diff` as a person runs them: `helm-operator
reconcile|suspend|resume|get|history hr` and `helm-operator diff -f` as
subprocesses against the real cluster, a real operator and real helm.

Every command is also run with `-o json` and its output parsed. Errors are
one line on stderr, never a traceback."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import TESTDATA, ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import (
    apply,
    condition,
    get,
    hello_chart,
    helm_history,
    helmrelease,
    new_namespace,
    status,
    wait_phase,
)

SECRET_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "hello.fullname" . }}-creds
stringData:
  password: {{ .Values.password | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "hello.fullname" . }}-dsn
data:
  dsn: "postgres://app:{{ .Values.password }}@db:5432/app"
"""


@pytest.fixture(scope="module")
def cli_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = start_operator(cluster, tmp_path_factory.mktemp("cli-operator"), "--charts-sync-interval", "10m",
                        "--git-poll-interval", "1h")
    yield op
    op.stop()


@dataclass
class Cli:
    cluster: LocalCluster
    home: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = self.cluster.env()
        env["HELM_CACHE_HOME"] = str(self.home / "helm-cache")
        env["HELM_CONFIG_HOME"] = str(self.home / "helm-config")
        return subprocess.run([sys.executable, "-m", "helm_operator.cli", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    def json(self, *args: str, code: int = 0) -> dict | list:
        r = self.run(*args, "-o", "json")
        assert r.returncode == code, f"exit {r.returncode}, stderr: {r.stderr}"
        assert "Traceback" not in r.stderr
        return json.loads(r.stdout)

    def diff(self, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("diff", "-f", str(path), "--helm-binary", self.cluster.binary("helm"), *args)


@pytest.fixture(scope="module")
def cli(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(cluster, tmp_path_factory.mktemp("cli-home"))


@dataclass
class GitCharts:
    work: Path
    remote: Path

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.work), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def chart(self, path: str) -> dict:
        return {"git": f"file://{self.remote}", "ref": "main", "path": path}

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        self.git("push", "-q", "origin", "main")


@pytest.fixture(scope="module")
def git_charts(tmp_path_factory: pytest.TempPathFactory) -> GitCharts:
    """A Git repository with two charts: `charts/hello` and `charts/vault` (hello plus a Secret
    and a ConfigMap that both carry `.Values.password`)."""
    root = tmp_path_factory.mktemp("git-charts")
    work, remote = root / "work", root / "remote.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    repo = GitCharts(work, remote)
    repo.git("config", "user.email", "t@example.com")
    repo.git("config", "user.name", "t")
    (work / "charts").mkdir()
    for name in ("hello", "vault"):
        subprocess.run(["cp", "-r", str(TESTDATA / "charts" / "hello"), str(work / "charts" / name)], check=True)
    (work / "charts" / "vault" / "templates" / "secret.yaml").write_text(SECRET_TEMPLATE)
    repo.git("add", "-A")
    repo.git("commit", "-qm", "charts")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    return repo


def _write(path: Path, *docs: dict) -> Path:
    path.write_text("".join(f"---\n{yaml.safe_dump(d)}" for d in docs))
    return path


def _hr_doc(ns: str, name: str, spec: dict) -> dict:
    doc = helmrelease(name, spec)
    doc["metadata"]["namespace"] = ns
    return doc


# ---- get, history, reconcile, suspend, resume ---------------------------------------------

def test_get_and_history_show_the_status_as_table_json_and_yaml(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")

    one = cli.json("get", "hr", "web", "-n", ns)
    assert isinstance(one, dict)
    assert (one["namespace"], one["name"], one["ready"], one["phase"], one["revision"], one["suspended"],
            one["failures"]) == (ns, "web", "True", "Succeeded", "0.1.0", False, 0)
    listed = cli.json("get", "hrs", "-n", ns)
    assert [s["name"] for s in listed] == ["web"]
    everywhere = cli.json("get", "helmrelease", "-A")
    assert any(s["namespace"] == ns and s["name"] == "web" for s in everywhere)

    r = cli.run("get", "hr", "-n", ns)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split()[:6] == ["NAME", "READY", "PHASE", "REVISION", "SUSPENDED", "FAILURES"]
    assert row.split()[:6] == ["web", "True", "Succeeded", "0.1.0", "false", "0"]
    r = cli.run("get", "hr", "-A", "--no-headers")
    assert any(line.split()[:2] == [ns, "web"] for line in r.stdout.splitlines())
    assert yaml.safe_load(cli.run("get", "hr", "web", "-n", ns, "-o", "yaml").stdout)["phase"] == "Succeeded"

    history = cli.json("history", "hr", "web", "-n", ns)
    assert isinstance(history, dict) and history["releaseName"] == f"{ns}-web"
    [entry] = history["history"]
    assert (entry["revision"], entry["action"], entry["status"], entry["chartVersion"]) == (1, "install",
                                                                                           "deployed", "0.1.0")
    r = cli.run("history", "hr", "web", "-n", ns, "--no-headers")
    assert r.stdout.split()[:4] == ["1", "install", "deployed", "hello-0.1.0"]


def test_reconcile_wait_answers_ready_for_a_healthy_release_without_a_helm_call_and_force_upgrades(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")
    calls = len(cli_operator.calls(f"{ns}-web"))

    result = cli.json("reconcile", "hr", "web", "-n", ns, "--wait", "--timeout", "60s")
    assert isinstance(result, dict) and result["ok"] is True and result["ready"] == "True"
    assert status(cluster, ns, "web")["lastHandledReconcileAt"] == result["requestedAt"]
    annotations = get(cluster, ns, "helmrelease", "web")["metadata"]["annotations"]
    assert annotations["reconcile.fluxcd.io/requestedAt"] == result["requestedAt"]
    assert len(cli_operator.calls(f"{ns}-web")) == calls, "a release in sync is reconciled without helm"

    r = cli.run("reconcile", "hr", "web", "-n", ns, "--force", "--wait", "--timeout", "60s")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"HelmRelease {ns}/web reconciled:") and r.stdout.count("\n") == 1
    st = status(cluster, ns, "web")
    assert st["lastHandledForceAt"] == st["lastHandledReconcileAt"]
    assert len(helm_history(cluster, ns, f"{ns}-web")) == 2, "the force made one upgrade"

    r = cli.run("reconcile", "hr", "web", "-n", ns)
    assert r.returncode == 0 and "requested" in r.stdout, r.stderr


def test_reconcile_wait_reports_a_failing_release_with_exit_code_1(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("bad", {"chart": hello_chart(chart_repo.url), "values": {"failRender": True}}))
    eventually(lambda: status(cluster, ns, "bad").get("failures", 0) >= 1, timeout=60, what="a failed attempt")
    result = cli.json("reconcile", "hr", "bad", "-n", ns, "--reset", "--wait", "--timeout", "60s", code=1)
    assert isinstance(result, dict) and result["ok"] is False and result["ready"] == "False"
    assert "render failure requested by values.failRender" in result["message"]
    st = status(cluster, ns, "bad")
    assert st["lastHandledResetAt"] == st["lastHandledReconcileAt"] == result["requestedAt"]
    r = cli.run("reconcile", "hr", "bad", "-n", ns, "--wait", "--timeout", "60s")
    assert r.returncode == 1 and r.stdout == ""
    [line] = r.stderr.splitlines()
    assert line.startswith(f"HelmRelease {ns}/bad reconcile failed: ")

    # A failure before helm (a chart version that does not exist) is an answer too, not a timeout.
    apply(cluster, ns, helmrelease("missing", {"chart": hello_chart(chart_repo.url, version="9.9.9")}))
    eventually(lambda: status(cluster, ns, "missing").get("phase") == "ChartFetchFailed", timeout=30,
               what="the chart fetch failure")
    started = time.monotonic()
    result = cli.json("reconcile", "hr", "missing", "-n", ns, "--wait", "--timeout", "60s", code=1)
    assert isinstance(result, dict) and result["reason"] == "ChartFetchFailed" and "9.9.9" in result["message"]
    assert time.monotonic() - started < 30


def test_suspend_and_resume_round_trip(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")

    result = cli.json("suspend", "hr", "web", "-n", ns)
    assert isinstance(result, dict) and result["suspended"] is True
    assert get(cluster, ns, "helmrelease", "web")["spec"]["suspend"] is True
    eventually(lambda: condition(status(cluster, ns, "web"), "Suspended").get("status") == "True", timeout=15,
               what="the Suspended condition")
    listed = cli.json("get", "hr", "web", "-n", ns)
    assert isinstance(listed, dict) and listed["suspended"] is True

    r = cli.run("reconcile", "hr", "web", "-n", ns)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    [line] = r.stderr.splitlines()
    assert "is suspended" in line and f"helm-operator resume hr web -n {ns}" in line

    # While suspended, a change of spec is not acted on; resume --wait acts on it at once.
    cluster.kubectl("patch", "helmrelease", "web", "-n", ns, "--type=merge", "-p",
                    json.dumps({"spec": {"values": {"message": "resumed"}}}))
    result = cli.json("resume", "hr", "web", "-n", ns, "--wait", "--timeout", "60s")
    assert isinstance(result, dict) and result["ok"] is True and result["suspended"] is False
    st = status(cluster, ns, "web")
    assert condition(st, "Suspended") == {} and condition(st, "Ready")["status"] == "True"
    assert len(helm_history(cluster, ns, f"{ns}-web")) == 2, "the change made while suspended was applied"
    r = cli.run("resume", "hr", "web", "-n", ns)
    assert r.returncode == 0 and r.stdout == f"HelmRelease {ns}/web resumed\n"


def test_errors_are_one_line_saying_what_to_do(cluster: LocalCluster, cli: Cli, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    cases = [
        (("get", "hr", "nope", "-n", ns), "HelmRelease " + ns + "/nope not found"),
        (("reconcile", "hr", "nope", "-n", ns), "not found"),
        (("suspend", "hr", "nope", "-n", ns), "not found"),
        (("history", "hr", "nope", "-n", ns), "not found"),
        (("get", "hr", "--kubeconfig", str(tmp_path / "missing")), "not found: pass an existing file"),
        (("get", "hr", "--context", "nowhere"), "context 'nowhere' is not in kubeconfig"),
        (("diff", "-f", str(tmp_path / "none.yaml")), "does not exist"),
    ]
    for args, expected in cases:
        r = cli.run(*args)
        assert r.returncode in (1, 2), (args, r.returncode)
        assert "Traceback" not in r.stderr, r.stderr
        [line] = r.stderr.splitlines()
        assert line.startswith(f"helm-operator {args[0]}: ") and expected in line, line


def test_reconcile_wait_times_out_with_exit_code_1_when_no_operator_answers(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli) -> None:
    ns = new_namespace(cluster)
    apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url)}))
    wait_phase(cluster, ns, "web", "Succeeded")
    cli_operator.stop()
    try:
        started = time.monotonic()
        r = cli.run("reconcile", "hr", "web", "-n", ns, "--wait", "--timeout", "3s")
        assert r.returncode == 1
        [line] = r.stderr.splitlines()
        assert "timed out after 3s" in line and "is the operator running?" in line
        assert time.monotonic() - started < 20
    finally:
        cli_operator.start_again()
    # The request stays on the object: the operator answers it once it is back.
    eventually(lambda: status(cluster, ns, "web").get("lastHandledReconcileAt"), timeout=30,
               what="the request answered after the restart")


# ---- diff ---------------------------------------------------------------------------------

def test_diff_of_a_values_change_and_of_an_unchanged_release(
        cluster: LocalCluster, chart_repo: ChartRepo, cli_operator: OperatorProcess, cli: Cli,
        tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": hello_chart(chart_repo.url), "values": {"message": "one"}}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")

    same = _write(tmp_path / "same.yaml", _hr_doc(ns, "web", spec))
    r = cli.diff(same)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "in sync" in r.stdout and "diff -u" not in r.stdout
    unchanged = cli.json("diff", "-f", str(same), "--helm-binary", cluster.binary("helm"))
    assert isinstance(unchanged, dict)
    assert unchanged["changed"] == 0
    assert unchanged["cost"] == {"helmCalls": 0, "apiRequests": 1}, "in sync: one LIST, nothing rendered"

    changed = _write(tmp_path / "changed.yaml", _hr_doc(ns, "web", {**spec, "values": {"message": "two",
                                                                                        "replicaCount": 3}}))
    r = cli.diff(changed)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "diff -u -N live/values desired/values" in out and "-message: one" in out and "+message: two" in out
    assert f"--- live/apps.v1.Deployment.{ns}-web-hello" in out and "+  replicas: 3" in out
    assert f"--- live/v1.ConfigMap.{ns}-web-hello" in out
    result = cli.json("diff", "-f", str(changed), "--helm-binary", cluster.binary("helm"), code=1)
    assert isinstance(result, dict)
    [release] = result["releases"]
    assert release["action"] == "upgrade" and release["live"]["revision"] == 1
    assert {(o["kind"], o["change"]) for o in release["objects"]} == {("Deployment", "changed"),
                                                                      ("ConfigMap", "changed")}
    assert result["cost"] == {"helmCalls": 1, "apiRequests": 2}  # helm template; storage LIST + GET
    assert len(helm_history(cluster, ns, f"{ns}-web")) == 1, "diff changes nothing"

    # A new HelmRelease: everything would be installed. A broken one: exit 2, one line.
    fresh = _write(tmp_path / "fresh.yaml", _hr_doc(ns, "other", spec),
                   _hr_doc(ns, "broken", {"chart": hello_chart(chart_repo.url, version="9.9.9")}))
    r = cli.diff(fresh)
    assert r.returncode == 2
    assert f"HelmRelease {ns}/other (release {ns}-other" in r.stdout and "would install" in r.stdout
    [line] = r.stderr.splitlines()
    assert line.startswith(f"helm-operator diff: HelmRelease {ns}/broken") and "9.9.9" in line


def test_diff_of_a_template_change_in_a_git_chart(
        cluster: LocalCluster, git_charts: GitCharts, cli_operator: OperatorProcess, cli: Cli,
        tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    spec = {"chart": git_charts.chart("charts/hello")}
    apply(cluster, ns, helmrelease("web", spec))
    wait_phase(cluster, ns, "web", "Succeeded")
    checkout = tmp_path / "checkout"
    (checkout / "releases").mkdir(parents=True)
    _write(checkout / "releases" / "web.yaml", _hr_doc(ns, "web", spec))
    assert cli.diff(checkout).returncode == 0

    template = git_charts.work / "charts" / "hello" / "templates" / "configmap.yaml"
    template.write_text(template.read_text() + "  greeting: {{ printf \"%s, world\" .Values.message | quote }}\n")
    git_charts.commit("configmap: a greeting")
    try:
        r = cli.diff(checkout)  # the directory, as a Git checkout would be given
        assert r.returncode == 1, r.stdout + r.stderr
        assert "+  greeting: hello, world" in r.stdout
        assert "live/values" not in r.stdout, "the values did not change"
        assert "Deployment" not in r.stdout, "only the ConfigMap's template changed"
    finally:
        template.write_text(template.read_text().replace(
            "  greeting: {{ printf \"%s, world\" .Values.message | quote }}\n", ""))
        git_charts.commit("configmap: no greeting")


def test_diff_masks_secret_values_from_a_secret_source_and_in_secret_objects(
        cluster: LocalCluster, git_charts: GitCharts, cli_operator: OperatorProcess, cli: Cli,
        tmp_path: Path) -> None:
    old, new = "0ld-Pa55word-xyz", "n3w-Pa55word-abc"
    ns = new_namespace(cluster)
    cluster.kubectl("create", "secret", "generic", "creds", "-n", ns, f"--from-literal=values.yaml=password: {old}")
    spec = {"chart": git_charts.chart("charts/vault"), "valuesFrom": [{"secretKeyRef": {"name": "creds"}}],
            "values": {"message": "hi"}}
    apply(cluster, ns, helmrelease("db", spec))
    wait_phase(cluster, ns, "db", "Succeeded")

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"values.yaml": f"password: {new}\n"}}
    changed = _write(tmp_path / "db.yaml", secret, _hr_doc(ns, "db", spec))
    r = cli.diff(changed)
    result = cli.json("diff", "-f", str(changed), "--helm-binary", cluster.binary("helm"), code=1)
    assert r.returncode == 1, r.stdout + r.stderr
    everything = r.stdout + r.stderr + json.dumps(result)
    for value in (old, new):
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything
    assert "values sources taken from the files: Secret" in r.stdout
    assert "-password: '*** (before)'" in r.stdout and "+password: '*** (after)'" in r.stdout
    assert f"--- live/v1.Secret.{ns}-db-hello-creds" in r.stdout and "+  password: '*** (after)'" in r.stdout
    assert "postgres://app:***@db:5432/app (after)" in r.stdout, "the secret is hidden inside other objects too"

    # The Secret in the cluster is what the operator reads when the files do not define it: unchanged.
    unchanged = _write(tmp_path / "db-only.yaml", _hr_doc(ns, "db", spec))
    assert cli.diff(unchanged).returncode == 0
