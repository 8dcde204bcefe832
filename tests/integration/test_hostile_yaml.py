"""Hostile YAML from someone with only namespace rights: an alias bomb (10^8
elements from under 500 bytes) and deep nesting in a valuesFrom ConfigMap,
in inline values, in an externalSourceRef reply, and in Git manifests for the
syncer. Each ends as a clear status, event or sync error naming the source
and the flag that raises the limit; a canary HelmRelease and a canary
manifest keep reconciling in the same run; /healthz answers within 1 s
throughout (polled every 100 ms while the hostile input is parsed); no
traceback reaches the logs.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.gitsync_support import GitRemote, SyncerProcess, get_obj, sync_status
from tests.integration.helpers import eventually
from tests.integration.hr import (
    apply, condition, events, get, hello_chart, helmrelease, new_namespace, status, wait_phase,
)


def alias_bomb(levels: int = 8) -> str:
    """The "billion laughs": 10**levels scalars once the aliases are expanded."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DEEP_LISTS = "deep: " + "[" * 20000 + "]" * 20000 + "\n"          # 20 000 nested lists
DEEP_MAPS = "".join(" " * i + "k:\n" for i in range(1000)) + " " * 1000 + "k: v\n"  # 1000 nested maps


class HealthProbe:
    """Polls a /healthz every 100 ms in a thread; records the slowest answer and any failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=1.0) as r:
                    r.read()
                self.answers += 1
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.failures.append(f"{type(e).__name__}: {e}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        print(f"/healthz: {self.answers} answers, slowest {self.slowest * 1000:.0f} ms")
        assert not self.failures, self.failures[:5]
        assert self.slowest < 1.0, f"/healthz took {self.slowest:.2f}s"
        assert self.answers > 10


@pytest.fixture(scope="module")
def values_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server for externalSourceRef: path -> body (404 otherwise)."""
    bodies: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = bodies.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()


@pytest.fixture(scope="module")
def hostile_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = start_operator(cluster, tmp_path_factory.mktemp("hostile-operator"), "--charts-sync-interval", "15s",
                        "--external-source-allow", "127.0.0.1")  # the test servers are on loopback
    yield op
    op.stop()
    print(f"operator log: {op.log}")


def _configmap(cluster: LocalCluster, ns: str, name: str, text: str) -> None:
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"values.yaml": text}}
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(doc), check=False)
    assert r.returncode == 0, r.stderr


def _failed_with(cluster: LocalCluster, ns: str, name: str, *needles: str) -> str:
    """Wait for Failed; the Released condition and a FailedReleaseSync event both say `needles`."""
    st = wait_phase(cluster, ns, name, "Failed", timeout=90)
    message = condition(st, "Released")["message"]
    for needle in needles:
        assert needle in message, message

    def event_says() -> bool:
        return any(e["reason"] == "FailedReleaseSync" and all(n in e["message"] for n in needles)
                   for e in events(cluster, ns, name))

    eventually(event_says, timeout=30, what=f"FailedReleaseSync event on {ns}/{name}")
    return message


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "v"}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_hostile_values_fail_clearly_while_the_canary_reconciles_and_healthz_answers(
        cluster: LocalCluster, chart_repo: ChartRepo, hostile_operator: OperatorProcess,
        values_server: tuple[str, dict[str, bytes]]) -> None:
    op = hostile_operator
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 12_000))  # this test reads the 5000-level object too
    ns = new_namespace(cluster, "hostile")
    chart = hello_chart(chart_repo.url)
    apply(cluster, ns, helmrelease("canary", {"chart": chart, "values": {"message": "one"}}))
    wait_phase(cluster, ns, "canary", "Succeeded")
    base_url, bodies = values_server
    bodies["/bomb.yaml"] = alias_bomb().encode()
    bodies["/deep.yaml"] = DEEP_LISTS.encode()
    _configmap(cluster, ns, "bomb", alias_bomb())
    _configmap(cluster, ns, "deep-lists", DEEP_LISTS)
    _configmap(cluster, ns, "deep-maps", DEEP_MAPS)

    started = time.monotonic()
    with HealthProbe(f"http://127.0.0.1:{op.port}/healthz") as health:
        hostile = {
            "cm-bomb": {"valuesFrom": [{"configMapKeyRef": {"name": "bomb"}}]},
            "cm-deep-lists": {"valuesFrom": [{"configMapKeyRef": {"name": "deep-lists"}}]},
            "cm-deep-maps": {"valuesFrom": [{"configMapKeyRef": {"name": "deep-maps", "optional": True}}]},
            "ext-bomb": {"valuesFrom": [{"externalSourceRef": {"url": f"{base_url}/bomb.yaml"}}]},
            "ext-deep": {"valuesFrom": [{"externalSourceRef": {"url": f"{base_url}/deep.yaml"}}]},
            "inline-deep": {"values": _nested(500)},
        }
        for name, spec in hostile.items():
            apply(cluster, ns, helmrelease(name, {"chart": chart, **spec}))
        # 5000 levels: the API server takes up to 10 000. Python's json decoder needs a raised
        # recursion limit for it; without the operator's own, this one release would stop
        # the HelmRelease watch of the whole cluster
        very_deep = json.dumps(helmrelease("inline-very-deep", {"chart": chart}))[:-2] + \
            ', "values": ' + '{"k":' * 5000 + '"v"' + "}" * 5000 + "}}"
        created = cluster.kubectl("create", "-n", ns, "-f", "-", input=very_deep, check=False)
        assert created.returncode == 0, created.stderr
        # the canary keeps reconciling meanwhile: a change is deployed
        apply(cluster, ns, helmrelease("canary", {"chart": chart, "values": {"message": "two"}}))

        nodes = ("once its aliases (*name) are expanded", "--yaml-max-nodes raises the limit")
        depth = ("nest deeper than 128 levels", "--yaml-max-depth raises the limit")
        _failed_with(cluster, ns, "cm-bomb", f"configMapKeyRef {ns}/bomb[values.yaml]", *nodes)
        _failed_with(cluster, ns, "cm-deep-lists", f"configMapKeyRef {ns}/deep-lists[values.yaml]", *depth)
        # over a limit is never skipped, even for an optional source
        _failed_with(cluster, ns, "cm-deep-maps", f"configMapKeyRef {ns}/deep-maps[values.yaml]", *depth)
        _failed_with(cluster, ns, "ext-bomb", f"externalSourceRef {base_url}/bomb.yaml", *nodes)
        _failed_with(cluster, ns, "ext-deep", f"externalSourceRef {base_url}/deep.yaml", *depth)
        _failed_with(cluster, ns, "inline-deep", "spec.values: maps and lists nest deeper than 128 levels",
                     "--yaml-max-depth")
        _failed_with(cluster, ns, "inline-very-deep", "spec.values: maps and lists nest deeper than 128 levels")
        reported = time.monotonic() - started
        canary_obj = get(cluster, ns, "helmrelease", "canary") or {}
        wait_phase(cluster, ns, "canary", "Succeeded", generation=canary_obj["metadata"]["generation"])
        # and still does after the hostile ones were retried at least once
        eventually(lambda: op.log_text().count(f"{ns}/cm-bomb: values:") >= 2, timeout=60,
                   what="a retry of the bomb release")
        apply(cluster, ns, helmrelease("canary", {"chart": chart, "values": {"message": "three"}}))
        canary_obj = get(cluster, ns, "helmrelease", "canary") or {}
        wait_phase(cluster, ns, "canary", "Succeeded", generation=canary_obj["metadata"]["generation"])
    print(f"seven hostile releases reported in {reported:.1f}s")
    health.check()

    log = op.log_text()
    assert "Traceback" not in log and "RecursionError" not in log
    for name in [*hostile, "inline-very-deep"]:  # one line per attempt, never a flood
        lines = [line for line in log.splitlines() if f"{ns}/{name}:" in line and "WARNING" in line]
        assert 1 <= len(lines) <= 10, (name, len(lines))
    assert status(cluster, ns, "canary")["releaseStatus"] == "deployed"


def _cm(name: str, ns: str, value: str = "v") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: {value}}}\n"


def test_hostile_manifests_are_sync_errors_while_every_other_file_syncs(
        cluster: LocalCluster, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    ns = f"hostile-sync-{uid}"
    source = f"hostile-{uid}"
    cluster.kubectl("create", "namespace", ns)
    remote = GitRemote(tmp_path / "git")
    remote.write("canary.yaml", _cm("canary", ns, "one"))
    remote.write("team-b/bomb.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb, namespace: {ns}}}\n"
                 "data:\n" + "".join("  " + line + "\n" for line in alias_bomb().splitlines()))
    remote.write("team-b/deep-lists.yaml", _cm("deep-lists", ns) + DEEP_LISTS)
    remote.write("team-b/deep-maps.yaml", DEEP_MAPS)
    # 4 MiB in one object: a valid file, but more than the API server takes in one request
    remote.write("team-b/big-object.yaml", _cm("big-object", ns, "x" * (4 * 2**20)))
    # 50 MB: more than --yaml-max-bytes
    remote.write("team-b/huge-file.yaml", _cm("huge-file", ns) + "# " + "x" * (50 * 10**6) + "\n")
    remote.write("team-b/after.yaml", _cm("after", ns))
    remote.commit("hostile files beside good ones")

    with SyncerProcess(cluster, tmp_path / "w", "--git-url", remote.url, "--source-name", source,
                       "--git-poll-interval", "1s", "--sync-interval", "2s") as syncer:
        with HealthProbe(f"http://127.0.0.1:{syncer.port}/healthz") as health:
            eventually(lambda: get_obj(cluster, "configmap", "canary", ns), timeout=120, what="canary applied")
            assert get_obj(cluster, "configmap", "after", ns) is not None

            def errors() -> dict[str, str] | None:
                st = sync_status(cluster, source)
                found = {e["file"]: e["reason"] for e in st["errors"]}
                return found if len(found) >= 5 else None

            found = eventually(errors, timeout=120, what="all hostile files reported")
            remote.write("canary.yaml", _cm("canary", ns, "two"))
            remote.commit("canary change")
            eventually(lambda: (get_obj(cluster, "configmap", "canary", ns) or {}).get("data", {}).get("k") == "two",
                       timeout=60, what="canary change applied")
        assert syncer.proc.poll() is None, "the syncer exited"
        health.check()
        log = syncer.log.read_text(errors="replace")

    print(json.dumps(found, indent=1)[:3000])
    assert "once its aliases (*name) are expanded" in found["team-b/bomb.yaml"]
    assert "--yaml-max-nodes" in found["team-b/bomb.yaml"]
    assert "nest deeper than 128 levels" in found["team-b/deep-lists.yaml"]
    assert "nest deeper than 128 levels" in found["team-b/deep-maps.yaml"]
    assert "--yaml-max-depth" in found["team-b/deep-maps.yaml"]
    assert "more than the limit of 16 MiB (--yaml-max-bytes raises it)" in found["team-b/huge-file.yaml"]
    big = found["team-b/big-object.yaml"]
    assert "apply ConfigMap" in big and "big-object" in big and "4.0 MiB as JSON" in big
    assert "3 MiB the API server accepts in one request" in big and "--max-request-bytes" in big
    assert get_obj(cluster, "configmap", "bomb", ns) is None
    assert "Traceback" not in log and "RecursionError" not in log and "EOF" not in log
