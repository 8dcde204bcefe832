"""Start and stop the local control plane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with one fake Ready node.

Used by the pytest session fixture and by the demo (`python -m tests.cluster`).
Every component binds 127.0.0.1 on a free port; every file (PKI, etcd data,
kubeconfig, logs) lives in one work folder. `LocalCluster` is a context
manager: leaving it (normally, on Ctrl-C, or on a test failure) stops exactly
the processes it started, and each child is also told to die with its parent
(PR_SET_PDEATHSIG) so a killed launcher leaves nothing behind.

`stop_apiserver` and `start_apiserver` take kube-apiserver away and bring
it back on the same port, with the same certificates and etcd, so a test can
watch clients lose the API server and find it again (`apiserver_stopped()`
does both around a block).

Opt-in: `audit_log=<path>` makes kube-apiserver write an audit log there
(JSON lines, one event per request at Metadata level: verb, URI, user agent,
timestamps; never request or response bodies), so a benchmark can count the
API requests each client made. Off by default; nothing else changes with it.

This module does not build binaries; `build.sh` does, and `ensure_binaries`
runs it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.cluster import kwokstages, pki

HERE = Path(__file__).resolve().parent
NODE_NAME = "kwok-node-0"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
_PR_SET_PDEATHSIG = 1
# Every request at Metadata level (no bodies, so no Secret data), recorded once
# when the response is complete (watches also when they start).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


class ClusterError(RuntimeError):
    """The local control plane could not be built or started."""


def versions() -> dict[str, str]:
    """The pinned versions from versions.env."""
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# Where `ensure_binaries` sends build.sh's progress lines, as they come. The
# pytest session (tests/conftest.py) replaces it with one that gets past
# pytest's output capture, so a long build (or a wait on another build's
# lock) shows instead of looking like a hung test.
progress: Callable[[str], None] = _to_stderr
_built: Path | None = None


def ensure_binaries() -> Path:
    """Build the binaries if missing and return their folder; build.sh's progress goes to `progress`."""
    global _built
    if _built is not None:
        return _built
    proc = subprocess.Popen(["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None and proc.stdout is not None
    tail: list[str] = []
    for line in proc.stderr:  # one line at a time, while the build runs
        progress(line.rstrip("\n"))
        tail = [*tail[-19:], line.rstrip("\n")]
    stdout = proc.stdout.read()
    if proc.wait() != 0:
        last = "\n".join(tail)
        raise ClusterError(
            f"building the local cluster binaries failed (exit {proc.returncode}); its last lines:\n{last}\n"
            "fix it and run tests/cluster/build.sh again"
        )
    _built = Path(stdout.strip().splitlines()[-1])
    return _built


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class LocalCluster:
    """One local control plane in `workdir`, using binaries from `bin_dir`."""

    workdir: Path
    bin_dir: Path
    verbose: bool = True
    procs: list[_Proc] = field(default_factory=list)
    api_port: int = 0
    audit_log: Path | None = None  # opt-in: kube-apiserver's audit log (AUDIT_POLICY) goes here
    _apiserver_argv: list[str] = field(default_factory=list)

    # ---- public surface -------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name)

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, helm) that should use this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary("kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, check=check, input=input,
        )

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- start ------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        certs = pki.generate(self.workdir / "pki")
        # Cluster state never outlives one start: a reused work folder (the
        # demo's) keeps its PKI and kubeconfig path but gets a fresh etcd.
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        etcd_port, peer_port = free_port(), free_port()
        self.api_port = free_port()
        self._write_kubeconfig(certs)

        self._spawn("etcd", [
            self.binary("etcd"),
            "--name=node0",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=node0=http://127.0.0.1:{peer_port}",
            f"--listen-metrics-urls=http://127.0.0.1:{free_port()}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        self._apiserver_argv = [
            self.binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            *self._audit_flags(),
        ]
        self._spawn("kube-apiserver", self._apiserver_argv)
        self._wait_for_api(deadline=started + timeout)
        self._spawn("kube-controller-manager", [
            self.binary("kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--root-ca-file={certs.ca_cert}",
            f"--service-account-private-key-file={certs.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
        ])
        self._spawn("kube-scheduler", [
            self.binary("kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
        ])
        stage_dir = self.bin_dir.parent / "kwok-stages"
        kwok_config = kwokstages.write_config(stage_dir, self.workdir / "kwok-stages.yaml")
        self._spawn("kwok", [
            self.binary("kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={kwok_config}",
            "--manage-all-nodes=true",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            # Renew the node's Lease (every 10 s). Without this flag kwok
            # keeps no Lease when stages come from --config, the node
            # lifecycle controller marks the node NotReady every ~50 s, and
            # the pods it marks not-ready are never made Ready again.
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{free_port()}",
        ])
        self._create_node()
        self._wait_until(self._node_ready, "the fake node to become Ready", started + timeout)
        self._wait_until(self._default_service_account, "the default ServiceAccount", started + timeout)
        self._say(f"control plane ready in {time.monotonic() - started:.1f}s; kubeconfig: {self.kubeconfig}")

    def _audit_flags(self) -> list[str]:
        """kube-apiserver flags for the opt-in audit log; none when it is off."""
        if self.audit_log is None:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json", "--audit-log-mode=blocking",
                "--audit-log-maxsize=0"]  # one file: a reader keeps its offset

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[local-cluster] {msg}", file=sys.stderr, flush=True)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.log_dir / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent, cwd=self.workdir,
        )
        handle.close()
        self.procs.append(_Proc(name, popen, log))
        self._say(f"started {name} (pid {popen.pid}), log {log}")

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace")[-3000:]
                raise ClusterError(f"{p.name} exited with code {p.popen.returncode}; last log lines:\n{tail}")

    def _write_kubeconfig(self, certs: pki.Pki) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.server, "certificate-authority": str(certs.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(certs.admin_cert), "client-key": str(certs.admin_key)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        certs = pki.generate(self.workdir / "pki")
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        return ctx

    def api_get(self, path: str) -> dict:
        """GET a JSON document from the API server as the admin user."""
        with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=10) as r:
            return json.loads(r.read())

    def _api_post(self, path: str, body: dict) -> None:
        req = urllib.request.Request(
            self.server + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, context=self._ssl_context(), timeout=10).close()
        except urllib.error.HTTPError as e:
            if e.code != 409:  # already exists: a reused work folder
                raise

    def _wait_until(self, probe, what: str, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                if probe():
                    return
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs are in {self.log_dir}")
            time.sleep(0.25)

    def _wait_for_api(self, deadline: float) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(self.server + "/readyz", context=self._ssl_context(), timeout=5) as r:
                return r.status == 200

        self._wait_until(ready, "kube-apiserver /readyz", deadline)
        self._say("kube-apiserver is ready")

    def _create_node(self) -> None:
        self._api_post("/api/v1/nodes", {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {"type": "kwok", "kubernetes.io/hostname": NODE_NAME,
                           "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                "annotations": {"kwok.x-k8s.io/node": "fake",
                                "node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            },
        })

    def _node_ready(self) -> bool:
        node = self.api_get(f"/api/v1/nodes/{NODE_NAME}")
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        blocking = [t for t in node.get("spec", {}).get("taints", []) if t.get("effect") == "NoSchedule"]
        return ready and not blocking

    def _default_service_account(self) -> bool:
        self.api_get("/api/v1/namespaces/default/serviceaccounts/default")
        return True

    # ---- the API server away and back ----------------------------------------
    def stop_apiserver(self, grace: float = 10.0) -> None:
        """Stop kube-apiserver only; etcd and the other components keep running."""
        for p in [p for p in self.procs if p.name == "kube-apiserver"]:
            p.popen.terminate()
            try:
                p.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
            self.procs.remove(p)
        self._say("stopped kube-apiserver")

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again on the same port (after `stop_apiserver`) and wait for /readyz."""
        if any(p.name == "kube-apiserver" for p in self.procs):
            return
        deadline = time.monotonic() + timeout
        self._spawn("kube-apiserver", self._apiserver_argv)
        self._wait_for_api(deadline=deadline)

    @contextmanager
    def apiserver_stopped(self) -> Iterator[None]:
        """kube-apiserver is down inside the block and up again after it, whatever the block did."""
        self.stop_apiserver()
        try:
            yield
        finally:
            self.start_apiserver()

    # ---- stop -------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> None:
        """Stop the processes this object started, newest first."""
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                p.popen.terminate()
        deadline = time.monotonic() + grace
        for p in reversed(self.procs):
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        if self.procs:
            self._say("stopped " + ", ".join(p.name for p in reversed(self.procs)))
        self.procs.clear()
