"""The foundation: the real local control plane, kwok's fake pods, the CRD,
and the real helm binary against them."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cluster.kwokstages import FAIL, POD_STATE_LABEL, UNREADY
from tests.cluster.localcluster import LocalCluster, versions
from tests.integration.helpers import eventually

CHART = Path(__file__).resolve().parents[1] / "testdata" / "charts" / "hello"


def _ns(cluster: LocalCluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def _apply(cluster: LocalCluster, doc: dict, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=check)


def _get(cluster: LocalCluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _deployment(name: str, labels: dict[str, str] | None = None) -> dict:
    pod_labels = {"app": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": pod_labels},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/x:1"}]}},
        },
    }


def _available(cluster: LocalCluster, ns: str, name: str) -> bool:
    d = _get(cluster, "-n", ns, "deployment", name)
    return any(c["type"] == "Available" and c["status"] == "True"
               for c in d.get("status", {}).get("conditions", []))


def test_api_server_reports_the_pinned_kubernetes_version(cluster: LocalCluster) -> None:
    assert cluster.api_get("/version")["gitVersion"] == versions()["KUBERNETES_VERSION"]


def test_helm_reports_the_pinned_version(cluster: LocalCluster) -> None:
    out = subprocess.run([cluster.binary("helm"), "version", "--short"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(versions()["HELM_VERSION"])


def test_fake_node_is_ready_without_taints(cluster: LocalCluster) -> None:
    node = _get(cluster, "node", "kwok-node-0")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert not node["spec"].get("taints")


def test_crd_is_established_with_short_names(cluster: LocalCluster) -> None:
    crd = _get(cluster, "crd", "helmreleases.helm.fluxcd.io")
    established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
    assert established[0]["status"] == "True"
    assert set(crd["spec"]["names"]["shortNames"]) == {"hr", "hrs"}
    assert cluster.kubectl("get", "hr", "-A").returncode == 0


FULL_SPEC: dict = {
    "chart": {
        "repository": "https://charts.example.com/",
        "name": "podinfo",
        "version": "6.5.0",
        "chartPullSecret": {"name": "repo-creds"},
        "git": "ssh://git@example.com/org/charts.git",
        "ref": "main",
        "path": "charts/podinfo",
        "secretRef": {"name": "git-creds", "namespace": "flux"},
        "skipDepUpdate": True,
    },
    "releaseName": "my-release",
    "targetNamespace": "apps",
    "helmVersion": "v3",
    "maxHistory": 3,
    "timeout": 120,
    "resetValues": False,
    "skipCRDs": True,
    "wait": True,
    "forceUpgrade": True,
    "disableOpenAPIValidation": True,
    "values": {"replicaCount": 2, "nested": {"anything": ["goes", 1, True, None]}},
    "valuesFrom": [
        {"configMapKeyRef": {"name": "cm", "namespace": "other", "key": "v.yaml", "optional": True}},
        {"secretKeyRef": {"name": "sec", "namespace": "other", "key": "s.yaml", "optional": False}},
        {"externalSourceRef": {"url": "https://example.com/values.yaml", "optional": True}},
        {"chartFileRef": {"path": "ci/values.yaml", "optional": True}},
    ],
    "valueFileSecrets": [{"name": "legacy-values"}],
    "rollback": {"enable": True, "retry": True, "maxRetries": 3, "force": True, "recreate": True,
                 "disableHooks": True, "timeout": 60, "wait": True},
    "test": {"enable": True, "ignoreFailures": True, "timeout": 90, "cleanup": True},
}


def _hr(name: str, spec: dict) -> dict:
    return {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
            "metadata": {"name": name}, "spec": spec}


def test_helmrelease_with_every_spec_field_round_trips_unchanged(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_hr("full", FULL_SPEC)))
    stored = _get(cluster, "-n", ns, "helmrelease", "full")
    assert stored["spec"] == FULL_SPEC


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"releaseName": "no-chart"}, "spec.chart: Required value"),
        ({"chart": {"name": "x"}, "timeout": "five minutes"}, "spec.timeout: Invalid value"),
        ({"chart": {"name": "x"}, "helmVersion": "v4"}, 'spec.helmVersion: Unsupported value: "v4"'),
        ({"chart": {"name": "x"}, "unknownField": 1}, 'unknown field "spec.unknownField"'),
    ],
    ids=["missing-chart", "wrong-type", "unknown-helm-version", "unknown-field"],
)
def test_schema_rejects_invalid_helmreleases_with_the_api_servers_message(
    cluster: LocalCluster, spec: dict, message: str
) -> None:
    ns = _ns(cluster)
    result = cluster.kubectl("create", "-n", ns, "--validate=strict", "-f", "-",
                             input=json.dumps(_hr("bad", spec)), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_deployment_becomes_available(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_deployment("web")))
    eventually(lambda: _available(cluster, ns, "web"), timeout=60, what="Deployment web Available")


def test_job_pod_completes(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    cluster.kubectl("create", "-n", ns, "job", "once", "--image=registry.local/x:1")
    cluster.kubectl("wait", "-n", ns, "--for=condition=Complete", "--timeout=60s", "job/once")


def test_pod_with_fail_label_fails(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    cluster.kubectl("run", "-n", ns, "doomed", "--image=registry.local/x:1", "--restart=Never",
                    f"--labels={POD_STATE_LABEL}={FAIL}")
    eventually(lambda: _get(cluster, "-n", ns, "pod", "doomed")["status"].get("phase") == "Failed",
               timeout=60, what="pod doomed Failed")


def _helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cluster.binary("helm"), *args], capture_output=True, text=True,
                          env=cluster.env(), timeout=120)


def test_helm_install_wait_reaches_deployed(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    result = _helm(cluster, "install", "ok", str(CHART), "-n", ns, "--wait", "--timeout", "60s")
    assert result.returncode == 0, result.stderr
    status = json.loads(_helm(cluster, "status", "ok", "-n", ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert _available(cluster, ns, "ok-hello")


def test_helm_test_pod_succeeds(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    assert _helm(cluster, "install", "tested", str(CHART), "-n", ns, "--wait", "--timeout", "60s").returncode == 0
    result = _helm(cluster, "test", "tested", "-n", ns, "--timeout", "60s")
    assert result.returncode == 0, result.stderr


def test_unready_deployment_stays_unavailable_and_helm_wait_fails(cluster: LocalCluster) -> None:
    ns = _ns(cluster)
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    input=json.dumps(_deployment("stuck", {POD_STATE_LABEL: UNREADY})))
    result = _helm(cluster, "install", "stuck", str(CHART), "-n", ns, "--wait", "--timeout", "20s",
                   "--set-json", f"podLabels={json.dumps({POD_STATE_LABEL: UNREADY})}")
    assert result.returncode != 0
    status = json.loads(_helm(cluster, "status", "stuck", "-n", ns, "-o", "json").stdout)
    assert status["info"]["status"] == "failed"
    assert not _available(cluster, ns, "stuck")
    assert not _available(cluster, ns, "stuck-hello")
    pods = _get(cluster, "-n", ns, "pods", "-l", f"{POD_STATE_LABEL}={UNREADY}")["items"]
    assert pods and all(p["status"].get("phase") == "Running" for p in pods)


def _apiserver_args(c: LocalCluster) -> list[str]:
    proc = next(p for p in c.procs if p.name == "kube-apiserver")
    return Path(f"/proc/{proc.popen.pid}/cmdline").read_bytes().decode().split("\0")


def test_audit_log_is_off_by_default(cluster: LocalCluster) -> None:
    assert cluster.audit_log is None
    assert not [a for a in _apiserver_args(cluster) if a.startswith("--audit-")]


def test_opt_in_audit_log_names_each_clients_requests_by_user_agent(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """A second cluster with the audit log on: helm's and kubectl's requests
    are told apart by user agent, and no request body is recorded."""
    audit = tmp_path / "audit.log"
    with LocalCluster(workdir=tmp_path / "c", bin_dir=cluster.bin_dir, verbose=False, audit_log=audit) as c:
        assert f"--audit-log-path={audit}" in _apiserver_args(c)
        c.kubectl("create", "secret", "generic", "s", "-n", "default", "--from-literal=k=not-in-the-log")
        subprocess.run([c.binary("helm"), "list", "-n", "default"], env=c.env(), check=True, capture_output=True)

        def seen() -> list[dict]:
            events = [json.loads(line) for line in audit.read_text().splitlines()]
            ok = (any(e["userAgent"].startswith("Helm/") and e["verb"] == "list" for e in events)
                  and any(e["userAgent"].startswith("kubectl/") and e["verb"] == "create"
                          and e.get("objectRef", {}).get("resource") == "secrets" for e in events))
            return events if ok else []

        events = eventually(seen, timeout=10, what="helm's list and kubectl's create in the audit log")
        assert all(e["level"] == "Metadata" and "requestObject" not in e for e in events)
        text = audit.read_text()
        assert "not-in-the-log" not in text and base64.b64encode(b"not-in-the-log").decode() not in text
