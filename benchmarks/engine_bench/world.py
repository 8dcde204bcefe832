"""The world a benchmark section runs in: a local cluster (audit log on), the
`hello` chart served as a Helm repository, an API client that says who it
is, `helm-operator run` as a subprocess behind a counting helm wrapper, the
bare helm the comparison runs, and a watch of HelmReleases that knows when
each is done.

"Done" is read from the HelmRelease alone, as `kubectl wait` would:
`status.observedGeneration` equals `metadata.generation`, `Ready` is True
and no `Reconciling` condition is True.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from benchmarks.engine_bench.observe import BENCH_USER_AGENT, AuditLog, HelmCalls, helm_wrapper
from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.chartserver import package_chart, serve_directory
from tests.integration.hr import hello_chart, helmrelease

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "helm.fluxcd.io", "v1", "helmreleases"
CHART_VERSION = "0.1.0"


class World:
    """One local cluster with the CRD, the chart repository and an API client."""

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        self.workdir = workdir
        self.audit = AuditLog(workdir / "audit.log")
        self.cluster = LocalCluster(workdir=workdir / "cluster", bin_dir=bin_dir, verbose=False,
                                    audit_log=self.audit.path)
        self.cluster.__enter__()
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        c = self.cluster
        c.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "helmrelease.yaml"))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/helmreleases.helm.fluxcd.io")
        charts = self.workdir / "charts"
        charts.mkdir()
        self.chart_tgz = package_chart(c.binary("helm"), REPO / "tests" / "testdata" / "charts" / "hello",
                                       CHART_VERSION, charts)
        self.chart_url, self._server = serve_directory(charts)
        subprocess.run([c.binary("helm"), "repo", "index", str(charts), "--url", self.chart_url],
                       check=True, capture_output=True)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(c.kubeconfig), client_configuration=cfg)
        self.api = client.ApiClient(cfg)
        self.api.user_agent = BENCH_USER_AGENT
        # Typed as Any: the client's stubs do not know raw dicts and _preload_content.
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._server.shutdown()
        self.cluster.__exit__(None, None, None)

    # ---- processes of the control plane -------------------------------------
    def control_plane_pids(self) -> list[int]:
        return [p.popen.pid for p in self.cluster.procs if p.name in ("kube-apiserver", "etcd")]

    # ---- objects ---------------------------------------------------------------
    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name}})

    def create_helmreleases(self, namespace: str, names: list[str], values: dict[str, Any]) -> None:
        """One `kubectl create` of all of them (the operator may start on the first at once).
        Each names its release after itself, as the bare loop does."""
        docs = [helmrelease(n, {"chart": hello_chart(self.chart_url, CHART_VERSION), "releaseName": n,
                                "values": values})
                for n in names]
        self.cluster.kubectl("create", "-n", namespace, "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def patch_values(self, namespace: str, name: str, values: dict[str, Any]) -> int:
        """Merge `values` into spec.values; returns the new generation."""
        obj = self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                         {"spec": {"values": values}})
        return int(obj["metadata"]["generation"])

    def deployment_exists(self, namespace: str, name: str) -> bool:
        try:
            self.apps.read_namespaced_deployment(name, namespace, _preload_content=False)
            return True
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise

    def helmrelease(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return obj

    def deployed_revision(self, namespace: str, release: str) -> int:
        """Newest revision helm's storage holds as `deployed` (0: none)."""
        secrets = self.core.list_namespaced_secret(
            namespace, label_selector=f"owner=helm,name={release},status=deployed", _preload_content=False)
        items = json.loads(secrets.data)["items"]
        return max((int(s["metadata"]["labels"].get("version", 0)) for s in items), default=0)

    def release_secret_count(self) -> int:
        """Revisions in helm's storage, all namespaces."""
        r = self.core.list_secret_for_all_namespaces(label_selector="owner=helm", _preload_content=False)
        return len(json.loads(r.data)["items"])

    # ---- bare helm ---------------------------------------------------------------
    def bare_helm(self, workdir: Path) -> tuple[Path, HelmCalls]:
        """A counting wrapper for the bare loop: the same wrapper the operator gets."""
        workdir.mkdir(parents=True, exist_ok=True)
        calls = workdir / "helm-calls.txt"
        return helm_wrapper(workdir / "helm", self.cluster.binary("helm"), calls), HelmCalls(calls)

    def helm_env(self, workdir: Path) -> dict[str, str]:
        env = self.cluster.env()
        env["HELM_CACHE_HOME"] = str(workdir / "helm-cache")
        env["HELM_CONFIG_HOME"] = str(workdir / "helm-config")
        return env

    def upgrade_install(self, helm: Path, env: dict[str, str], namespace: str, release: str,
                        values: dict[str, Any], install: bool = True) -> None:
        """What a person types: `helm upgrade [--install] NAME CHART -n NS --values -`."""
        args = [str(helm), "upgrade", release, str(self.chart_tgz), "--namespace", namespace, "--values", "-"]
        if install:
            args.insert(2, "--install")
        r = subprocess.run(args, input=json.dumps(values), capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"bare helm upgrade of {namespace}/{release} failed: {r.stderr.strip()}")


class OperatorRun:
    """`helm-operator run` as a subprocess, its helm behind a counting wrapper."""

    def __init__(self, world: World, workdir: Path, *flags: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.helm = HelmCalls(workdir / "helm-calls.txt")
        wrapper = helm_wrapper(workdir / "helm", world.cluster.binary("helm"), self.helm.path)
        self.port = free_port()
        self.args = [sys.executable, "-m", "helm_operator.cli", "run",
                     "--kubeconfig", str(world.cluster.kubeconfig), "--listen", f"127.0.0.1:{self.port}",
                     "--cache-dir", str(workdir / "cache"), "--helm-binary", str(wrapper),
                     "--log-level", "info", *flags]
        self.log = workdir / "operator.log"
        env = world.helm_env(workdir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        self.started = time.time()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_healthy()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def flags_text(self) -> str:
        keep = [a for a in self.args[4:] if not a.startswith(("/", "127.0.0.1"))]
        return " ".join(a for a in keep if a not in ("--kubeconfig", "--listen", "--cache-dir", "--helm-binary"))

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"operator not healthy after {timeout}s; log: {self.log}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def is_done(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    return (st.get("observedGeneration") == obj["metadata"].get("generation")
            and conds.get("Ready") == "True" and conds.get("Reconciling") != "True")


class ReleaseWatch:
    """Watches HelmReleases (one namespace or all) and keeps, per object, the
    generation it was last seen done at and when."""

    def __init__(self, world: World, namespace: str | None = None) -> None:
        self.world = world
        self.namespace = namespace
        self.done_generation: dict[str, int] = {}   # "ns/name" -> generation seen done
        self.done_at: dict[str, float] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hr-watch", daemon=True)

    def start(self) -> "ReleaseWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _list_call(self) -> tuple[Any, tuple[Any, ...]]:
        custom = self.world.custom
        if self.namespace:
            return custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL)
        return custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)

    def _update(self, obj: dict[str, Any], now: float) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.objects[key] = obj
        gen = int(obj["metadata"].get("generation", 0))
        if is_done(obj) and self.done_generation.get(key, -1) < gen:
            self.done_generation[key] = gen
            self.done_at[key] = now

    def _run(self) -> None:
        fn, args = self._list_call()
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    listed = fn(*args)
                    with self._cond:
                        for obj in listed["items"]:
                            self._update(obj, time.time())
                        self._cond.notify_all()
                    rv = listed["metadata"]["resourceVersion"]
                w = watch.Watch()
                for ev in w.stream(fn, *args, resource_version=rv, timeout_seconds=120,
                                   allow_watch_bookmarks=True):
                    if self._stop.is_set():
                        w.stop()
                        return
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = ""  # e.g. 410 Gone: list again
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        with self._cond:
                            self._update(obj, time.time())
                            self._cond.notify_all()
            except Exception:  # noqa: BLE001 - a dropped watch is re-listed
                rv = ""
                time.sleep(0.5)

    def wait_done(self, keys: list[str], generation: int = 1, timeout: float = 600,
                  progress: str = "") -> float:
        """Wait until every key was seen done at `generation` or later; returns
        the time the last of them became done. With `progress`, says how far
        it got every minute."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 60
        with self._cond:
            while True:
                missing = [k for k in keys if self.done_generation.get(k, -1) < generation]
                if not missing:
                    return max(self.done_at[k] for k in keys)
                if progress and time.monotonic() > next_report:
                    print(f"  ... {progress}: {len(keys) - len(missing)} of {len(keys)} done", flush=True)
                    next_report += 60
                left = deadline - time.monotonic()
                if left <= 0:
                    sample = ", ".join(missing[:3])
                    raise TimeoutError(f"{len(missing)} of {len(keys)} HelmReleases not done after "
                                       f"{timeout:.0f}s (e.g. {sample}); status of the first: "
                                       f"{(self.objects.get(missing[0]) or {}).get('status')}")
                self._cond.wait(min(left, 1.0))
