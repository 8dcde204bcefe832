"""The README demo: the whole system on its own local cluster.

    python -m tests.demo [--workdir DIR] [--no-wait]

Starts, on 127.0.0.1 only: the local control plane; a Docker registry holding
the demo image tags and an OCI chart; a Helm chart repository; Git remotes (a
chart repository, and the cluster repository seeded from `examples/` with its
public URLs pointed at those local servers); then the manifest syncer and the
release operator as the chart would run them. It shows the releases becoming
Ready, pushes a newer image tag, and shows the automation commit and the
upgrade that follows. Ctrl-C stops everything it started (`--no-wait` stops
after the automation step, for tests).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.cluster.localcluster import LocalCluster, ensure_binaries, free_port
from tests.integration.chartserver import package_chart, serve_directory
from tests.integration.images import Pusher
from tests.integration.registry import start_registry

REPO = Path(__file__).resolve().parents[1]
DEMO_CHART = REPO / "tests" / "testdata" / "charts" / "demo"
EXAMPLE_WEB_IMAGE = "registry.example.com/acme/web"


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def init_repo(path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(path, "config", "user.email", "demo@example.com")
    git(path, "config", "user.name", "Demo User")


def publish(work: Path, remote: Path) -> None:
    """Push `work` to a new bare repository `remote` and track it as origin."""
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    git(work, "remote", "add", "origin", f"file://{remote}")
    git(work, "fetch", "-q", "origin")


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stoppers: list = []

    # ---- the local world -------------------------------------------------
    def start_world(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        bin_dir = ensure_binaries()
        self.helm = str(bin_dir / "helm")
        say("Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        self.cluster = LocalCluster(workdir=self.dir / "cluster", bin_dir=bin_dir)
        self.cluster.start()
        self.stoppers.append(self.cluster.stop)
        self.cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "helmrelease.yaml"))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             "crd/helmreleases.helm.fluxcd.io")

        say("Starting a container registry with image acme/web:1.0.0 and an OCI chart")
        self.registry = start_registry(self.dir / "registry")
        self.stoppers.append(self.registry.stop)
        self.pusher = Pusher(self.registry.host)
        self.pusher.push_image("acme/web", "1.0.0", datetime(2026, 11, 1, tzinfo=timezone.utc))
        charts = self.dir / "charts"
        charts.mkdir()
        podinfo = package_chart(self.helm, DEMO_CHART, "6.7.1", charts, name="podinfo")
        package_chart(self.helm, DEMO_CHART, "1.4.0", charts, name="web")
        subprocess.run([self.helm, "push", str(podinfo), f"oci://{self.registry.host}/charts", "--plain-http"],
                       check=True, capture_output=True, env=self.cluster.env())

        say("Serving a Helm chart repository (podinfo 6.7.1, web 1.4.0)")
        self.chart_url, server = serve_directory(charts)
        self.stoppers.append(server.shutdown)
        subprocess.run([self.helm, "repo", "index", str(charts), "--url", self.chart_url], check=True)

        say("Creating Git remotes: a chart repository, and the cluster repository from examples/")
        chart_work = self.dir / "git-work" / "podinfo"
        init_repo(chart_work)
        shutil.copytree(DEMO_CHART, chart_work / "charts" / "podinfo")
        chart_yaml = chart_work / "charts" / "podinfo" / "Chart.yaml"
        chart_yaml.write_text(chart_yaml.read_text().replace("name: demo", "name: podinfo"))
        git(chart_work, "add", "-A")
        git(chart_work, "commit", "-qm", "podinfo chart")
        git(chart_work, "tag", "6.7.1")
        self.chart_remote = self.dir / "git" / "podinfo.git"
        publish(chart_work, self.chart_remote)

        self.work = self.dir / "git-work" / "cluster"
        init_repo(self.work)
        shutil.copytree(REPO / "examples", self.work, dirs_exist_ok=True)
        for file in self.work.rglob("*.yaml"):
            file.write_text(self.localise(file.read_text()))
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", "Seed from examples/")
        self.cluster_remote = self.dir / "git" / "cluster.git"
        publish(self.work, self.cluster_remote)
        print(f"    cluster repository: file://{self.cluster_remote}")

    def localise(self, text: str) -> str:
        """Point the examples' public URLs at the demo's local servers."""
        return (text
                .replace("https://stefanprodan.github.io/podinfo", self.chart_url)
                .replace("https://charts.example.com/acme", self.chart_url)
                .replace("https://github.com/stefanprodan/podinfo", f"file://{self.chart_remote}")
                .replace("oci://ghcr.io/stefanprodan/charts", f"oci://{self.registry.host}/charts")
                .replace(EXAMPLE_WEB_IMAGE, f"{self.registry.host}/acme/web"))

    # ---- the project ------------------------------------------------------
    def spawn(self, name: str, *args: str) -> None:
        log = self.dir / f"{name}.log"
        proc = subprocess.Popen([sys.executable, "-m", "helm_operator.cli", *args],
                                stdout=log.open("ab"), stderr=subprocess.STDOUT, env=self.cluster.env(),
                                start_new_session=True)
        self.procs.append(proc)
        print(f"    {name}: pid {proc.pid}, log {log}")

    def start_project(self) -> None:
        say("Starting the manifest syncer and the release operator")
        url = f"file://{self.cluster_remote}"
        kubeconfig = str(self.cluster.kubeconfig)
        self.spawn("syncer", "sync", "--kubeconfig", kubeconfig, "--git-url", url, "--git-branch", "main",
                   "--git-poll-interval", "2s", "--sync-interval", "1m", "--sync-garbage-collection",
                   "--listen", "127.0.0.1", "--listen-port", str(free_port()),
                   "--workdir", str(self.dir / "syncer"))
        self.spawn("operator", "run", "--kubeconfig", kubeconfig, "--listen", f"127.0.0.1:{free_port()}",
                   "--cache-dir", str(self.dir / "operator-cache"), "--helm-binary", self.helm,
                   "--oci-plain-http", "--charts-sync-interval", "1m", "--git-poll-interval", "30s",
                   "--git-url", url, "--git-branch", "main", "--git-user", "helm-operator demo",
                   "--git-email", "demo-bot@example.com", "--registry-poll-interval", "3s",
                   "--automation-interval", "1m", "--registry-insecure-host", self.registry.host)

    def helmreleases(self) -> list[dict]:
        out = self.cluster.kubectl("get", "hr", "-A", "-o", "json", check=False).stdout
        return json.loads(out).get("items", []) if out else []

    def show_until_ready(self, timeout: float = 240) -> None:
        say("Waiting for the HelmReleases to become Ready (kubectl get hr -A)")
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            items = self.helmreleases()
            table = self.cluster.kubectl("get", "hr", "-A", check=False).stdout.strip()
            if table and table != last:
                print(table, flush=True)
                print(flush=True)
                last = table
            ready = [i for i in items if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in i.get("status", {}).get("conditions", []))]
            if items and len(ready) == len(items) and len(items) >= 5:
                print(f"    all {len(items)} HelmReleases are Ready", flush=True)
                return
            self.check_alive()
            time.sleep(2)
        raise SystemExit("demo: not every HelmRelease became Ready; see the logs above")

    def web_image(self) -> str:
        out = self.cluster.kubectl("get", "deployment", "-n", "apps", "apps-web-automated", "-o",
                                   "jsonpath={.spec.template.spec.containers[0].image}", check=False)
        return out.stdout.strip()

    def show_automation(self, timeout: float = 120) -> None:
        say(f"Deployment apps/apps-web-automated runs {self.web_image()}")
        before = git(self.work, "rev-parse", "HEAD").strip()
        say("Pushing a newer image tag: acme/web:1.0.1 (the filter is semver:~1.0)")
        self.pusher.push_image("acme/web", "1.0.1", datetime(2026, 11, 2, tzinfo=timezone.utc))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            git(self.work, "fetch", "-q", "origin")
            head = git(self.work, "rev-parse", "origin/main").strip()
            if head != before:
                break
            self.check_alive()
            time.sleep(1)
        else:
            raise SystemExit("demo: no automation commit appeared; see operator.log")
        say("The operator committed the new tag to Git:")
        print(git(self.work, "show", "--stat", "--format=%h %s%n  by %an <%ae>", "origin/main"))
        print(git(self.work, "diff", f"{before}..origin/main"))
        say("The syncer applies the commit; the operator upgrades the release")
        expected = f"{self.registry.host}/acme/web:1.0.1"
        while time.monotonic() < deadline:
            if self.web_image() == expected:
                print(f"    Deployment apps/apps-web-automated now runs {expected}")
                print(self.cluster.kubectl("get", "hr", "-n", "apps", "web-automated").stdout)
                return
            self.check_alive()
            time.sleep(1)
        raise SystemExit("demo: the upgrade to 1.0.1 did not happen; see operator.log")

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise SystemExit(f"demo: {p.args[3]} exited with code {p.returncode}; see its log in {self.dir}")

    def explain(self) -> None:
        say("Try your own change")
        print(f"""    export KUBECONFIG={self.cluster.kubeconfig}
    git clone file://{self.cluster_remote} my-cluster && cd my-cluster
    # e.g. change ui.message in releases/web-values-from.yaml, then:
    git commit -am "my change" && git push
    kubectl get hr -A -w          # the syncer applies it within 2s, the operator upgrades
    helm-operator sync-status --kubeconfig $KUBECONFIG
Logs: {self.dir}/operator.log, {self.dir}/syncer.log. Press Ctrl-C to stop everything.""", flush=True)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for stop in reversed(self.stoppers):
            stop()
        print("demo stopped", file=sys.stderr)


def _interrupt(*_: object) -> None:
    """SIGTERM stops like Ctrl-C: everything started is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo")
    parser.add_argument("--workdir", type=Path, default=REPO / ".run" / "demo")
    parser.add_argument("--no-wait", action="store_true", help="stop after the automation step")
    args = parser.parse_args(argv)
    demo = Demo(args.workdir)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.start_world()
        demo.start_project()
        demo.show_until_ready()
        demo.show_automation()
        demo.explain()
        if not args.no_wait:
            while True:
                time.sleep(1)
                demo.check_alive()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
