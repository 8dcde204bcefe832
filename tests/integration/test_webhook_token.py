"""Authenticated triggers on the real processes: `helm-operator run` and
`helm-operator sync` with `--webhook-token-file` answer 401 to a POST without
the token or with a wrong one, act on the right one, and keep /metrics and
/healthz open; `--webhook-listen` moves the triggers to their own port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.conftest import start_operator
from tests.integration.gitsync_support import GitRemote, SyncerProcess, get_obj

TOKEN = "Zq9-webhook-token-" + uuid.uuid4().hex


def _token_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-token"
    path.write_text(TOKEN + "\n")
    return path


def _request(url: str, method: str = "GET", token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _assert_guarded(base: str, path: str, ok_status: int) -> bytes:
    for token in (None, "wrong", TOKEN + "x", ""):
        status, body = _request(f"{base}{path}", "POST", token)
        assert status == 401, (path, token, status)
        assert TOKEN.encode() not in body
    status, body = _request(f"{base}{path}", "POST", TOKEN)
    assert status == ok_status, body
    return body


def test_the_operator_sync_git_trigger_needs_the_token_and_reads_stay_open(
        cluster: LocalCluster, tmp_path: Path) -> None:
    op = start_operator(cluster, tmp_path / "op", "--webhook-token-file", str(_token_file(tmp_path)))
    try:
        base = f"http://127.0.0.1:{op.port}"
        assert json.loads(_assert_guarded(base, "/api/v1/sync-git", 200)) == {"status": "triggered"}
        assert _request(f"{base}/healthz") == (200, b"ok\n")
        status, metrics = _request(f"{base}/metrics")
        assert status == 200 and b"flux_helm_operator_release_count" in metrics
        assert TOKEN not in op.log_text()
    finally:
        op.stop()


def test_the_operator_serves_the_trigger_on_its_own_port(cluster: LocalCluster, tmp_path: Path) -> None:
    hook_port = free_port()
    op = start_operator(cluster, tmp_path / "op", "--webhook-token-file", str(_token_file(tmp_path)),
                        "--webhook-listen", f"127.0.0.1:{hook_port}")
    try:
        main, hooks = f"http://127.0.0.1:{op.port}", f"http://127.0.0.1:{hook_port}"
        assert _request(f"{main}/api/v1/sync-git", "POST", TOKEN)[0] in (404, 405)
        _assert_guarded(hooks, "/api/v1/sync-git", 200)
        assert _request(f"{hooks}/metrics")[0] == 404
        assert _request(f"{main}/metrics")[0] == 200
    finally:
        op.stop()


def test_the_syncer_triggers_need_the_token_and_the_right_one_syncs(
        cluster: LocalCluster, tmp_path: Path) -> None:
    remote = GitRemote(tmp_path / "git")
    name = f"hook-{uuid.uuid4().hex[:6]}"
    remote.write("cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n")
    remote.commit()
    with SyncerProcess(cluster, tmp_path / "w", "--git-url", remote.url, "--source-name", name,
                       "--git-poll-interval", "1h", "--sync-interval", "1h",
                       "--webhook-token-file", str(_token_file(tmp_path))) as syncer:
        base = f"http://127.0.0.1:{syncer.port}"
        remote.write("cm2.yaml",
                     f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-2, namespace: default}}\n")
        remote.commit()
        _assert_guarded(base, "/api/v1/sync-git", 200)
        body = json.loads(_assert_guarded(base, "/api/v1/sync?wait=true", 200))
        assert body["status"] == "synced" and body["results"][0]["ok"]
        assert get_obj(cluster, "configmap", f"{name}-2", "default") is not None
        assert syncer.get("/healthz") == "ok\n"
        assert "sync" in syncer.get("/metrics")
        assert TOKEN not in syncer.log.read_text()


def test_a_missing_or_empty_token_file_stops_the_start_with_a_clear_message(
        cluster: LocalCluster, tmp_path: Path) -> None:
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, says in ((empty, "is empty"), (tmp_path / "missing", "cannot read it")):
        for command in (["run", "--kubeconfig", str(cluster.kubeconfig)],
                        ["sync", "--kubeconfig", str(cluster.kubeconfig), "--git-url", "file:///nowhere"]):
            proc = subprocess.run([sys.executable, "-m", "helm_operator.cli", *command,
                                   "--webhook-token-file", str(path)],
                                  env=cluster.env(), capture_output=True, text=True, timeout=60)
            assert proc.returncode != 0
            assert says in proc.stderr and "--webhook-token-file" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
