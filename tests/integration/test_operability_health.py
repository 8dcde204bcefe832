"""Health, readiness and structured logs of the real `helm-operator run` and
`helm-operator sync`, with the real kube-apiserver taken away and brought
back on the same port.

- ``/healthz`` turns 503 once the watches (operator) or the API probe
  (syncer) have failed for longer than ``--api-unreachable-threshold``, and
  200 again once the API server is back;
- ``/readyz`` is 200 once the caches are filled; a standby replica of
  ``--leader-elect`` is live but not ready until it holds the Lease;
- with ``--log-format json`` every line is one JSON object whose fields
  (``object``, ``action``, ``revision``, ``duration_ms``, ``error``) carry
  what the message no longer bakes in; urllib3's retry warnings are DEBUG.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.gitsync_support import GitRemote, SyncerProcess
from tests.integration.helpers import eventually
from tests.integration.hr import apply, hello_chart, helmrelease, new_namespace, wait_phase

THRESHOLD = 3  # seconds: --api-unreachable-threshold of the processes here
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a JSON-format log parsed; a line that is not one JSON object fails the test."""
    docs = []
    for line in text.splitlines():
        if line.strip():
            doc = json.loads(line)
            assert isinstance(doc, dict), line
            docs.append(doc)
    return docs


def test_operator_health_follows_the_api_server_and_logs_are_json_fields(
        cluster: LocalCluster, chart_repo: ChartRepo, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    op = start_operator(cluster, tmp_path / "op", "--allow-namespace", ns, "--log-format", "json",
                        "--api-unreachable-threshold", f"{THRESHOLD}s")
    try:
        eventually(lambda: probe(op.port, "/readyz") == (200, "ok\n"), timeout=30, what="operator ready")
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"n": 1}}))
        wait_phase(cluster, ns, "web", "Succeeded")

        docs = json_lines(op.log_text())
        for doc in docs:
            assert RFC3339_MS.match(doc["ts"]), doc
            assert dt.datetime.fromisoformat(doc["ts"]).tzinfo is not None
            assert doc["level"] in {"debug", "info", "warning", "error"} and doc["logger"] and "msg" in doc
        mine = [d for d in docs if d.get("object") == f"{ns}/web"]
        decision = next(d for d in mine if d.get("action") == "install" and d["msg"].startswith("Absent:"))
        assert decision["logger"] == "helm_operator.release.reconciler" and decision["level"] == "info"
        assert f"{ns}/web" not in decision["msg"]  # the object is a field, not baked into the message
        installed = next(d for d in mine if d.get("action") == "install" and "duration_ms" in d)
        assert installed["revision"] == 1
        assert isinstance(installed["duration_ms"], int) and installed["duration_ms"] > 0
        assert installed["msg"] == f"install: helm install of {ns}-web made revision 1"

        mark = len(op.log_text())
        with cluster.apiserver_stopped():
            status, body = eventually(lambda: (lambda r: r if r[0] == 503 else None)(probe(op.port, "/healthz")),
                                      timeout=THRESHOLD + 30, what="/healthz to fail without the API server")
            print(f"/healthz without the API server: {status} {body.strip()}")
            assert "API server unreachable" in body
            assert all(name in body for name in ("helmreleases", "configmaps", "secrets"))
            assert probe(op.port, "/readyz") == (200, "ok\n")  # the caches stay filled
            during = json_lines(op.log_text()[mark:])
        eventually(lambda: probe(op.port, "/healthz") == (200, "ok\n"), timeout=60,
                   what="/healthz to pass with the API server back")

        failures = [d for d in during if d["logger"] == "helm_operator.kube.watch" and d["level"] == "warning"]
        print("\n".join(f"{d['msg']} error={d['error']}" for d in failures))
        for watch in ("helmreleases", "configmaps", "secrets"):
            said = [d["msg"] for d in failures if d["msg"].startswith(f"watch of {watch} failed")]
            # one line per distinct failure (the stream ended; no connection), not one per retry
            assert 1 <= len(said) <= 3, said
        assert any("cannot reach the API server" in d["error"] for d in failures)
        eventually(lambda: all(f"watch of {w} reaches the API server again" in op.log_text()
                               for w in ("helmreleases", "configmaps", "secrets")), timeout=30,
                   what="each watch to say it reached the API server again")
        noisy = [d for d in during if d["logger"].startswith("urllib3") and d["level"] != "debug"]
        assert not noisy, noisy  # urllib3's retries are folded to DEBUG

        # The engine keeps working with the API server back.
        apply(cluster, ns, helmrelease("web", {"chart": hello_chart(chart_repo.url), "values": {"n": 2}}))
        wait_phase(cluster, ns, "web", "Succeeded")
        upgraded = [d for d in json_lines(op.log_text()) if d.get("object") == f"{ns}/web"
                    and d.get("action") == "upgrade" and "duration_ms" in d]
        assert upgraded and upgraded[-1]["revision"] == 2
    finally:
        op.stop()


def test_standby_replica_is_live_but_not_ready(cluster: LocalCluster, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    lease = f"ready-{uuid.uuid4().hex[:6]}"
    flags = ("--leader-elect", "--leader-election-name", lease, "--leader-election-namespace", ns,
             "--lease-duration", "4s", "--allow-namespace", ns)
    first = start_operator(cluster, tmp_path / "a", *flags)
    second: OperatorProcess | None = None
    try:
        eventually(lambda: probe(first.port, "/readyz") == (200, "ok\n"), timeout=30, what="leader ready")
        second = start_operator(cluster, tmp_path / "b", *flags)
        standby = second
        status, body = eventually(
            lambda: (lambda r: r if "held by" in r[1] else None)(probe(standby.port, "/readyz")),
            timeout=30, what="the standby to name the leader")
        assert status == 503 and body.startswith(f"standby: the leader election Lease {ns}/{lease} is held by")
        assert probe(second.port, "/healthz") == (200, "ok\n")
        first.stop()
        eventually(lambda: probe(standby.port, "/readyz") == (200, "ok\n"), timeout=30,
                   what="the former standby to be ready once it leads")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_syncer_health_follows_the_api_server(cluster: LocalCluster, tmp_path: Path) -> None:
    remote = GitRemote(tmp_path / "git")
    name = f"cm-{uuid.uuid4().hex[:6]}"
    remote.write("app/cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
                                "data:\n  a: b\n")
    remote.commit()
    with SyncerProcess(cluster, tmp_path / "sync", "--git-url", remote.url, "--git-poll-interval", "1s",
                       "--log-format", "json", "--api-unreachable-threshold", f"{THRESHOLD}s") as syncer:
        eventually(lambda: syncer.get("/readyz") == "ok\n", timeout=60, what="syncer ready after its first pass")
        docs = json_lines(syncer.log.read_text())
        synced = next(d for d in docs if d.get("action") == "sync" and d["msg"].startswith("synced "))
        assert synced["object"] == "source/default" and len(synced["revision"]) == 40
        assert synced["applied"] + synced["unchanged"] >= 1 and isinstance(synced["duration_ms"], int)
        with cluster.apiserver_stopped():
            status, body = eventually(lambda: (lambda r: r if r[0] == 503 else None)(probe(syncer.port, "/healthz")),
                                      timeout=THRESHOLD + 30, what="syncer /healthz to fail without the API server")
            print(f"syncer /healthz without the API server: {status} {body.strip()}")
            assert "api-server: API server unreachable" in body
        eventually(lambda: probe(syncer.port, "/healthz") == (200, "ok\n"), timeout=60,
                   what="syncer /healthz to pass with the API server back")
        assert all(RFC3339_MS.match(d["ts"]) for d in json_lines(syncer.log.read_text()))
