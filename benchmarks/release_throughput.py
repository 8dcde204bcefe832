"""How fast one operator installs N HelmReleases, and what a resync of the
unchanged set costs (helm calls, seconds). Prints numbers; asserts nothing."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.cluster.localcluster import LocalCluster, ensure_binaries
from tests.integration.chartserver import package_chart, serve_directory
from tests.integration.conftest import start_operator
from tests.integration.hr import hello_chart, helmrelease

REPO = Path(__file__).resolve().parents[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    bin_dir = ensure_binaries()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    with LocalCluster(workdir=work / "cluster", bin_dir=bin_dir, verbose=False) as cluster:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "helmrelease.yaml"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/helmreleases.helm.fluxcd.io")
        charts = work / "charts"
        charts.mkdir()
        package_chart(cluster.binary("helm"), REPO / "tests" / "testdata" / "charts" / "hello", "0.1.0", charts)
        url, server = serve_directory(charts)
        import subprocess
        subprocess.run([cluster.binary("helm"), "repo", "index", str(charts), "--url", url], check=True)
        op = start_operator(cluster, work / "op", "--workers", str(args.workers), "--charts-sync-interval", "20s")
        try:
            cluster.kubectl("create", "namespace", "bench")
            docs = [helmrelease(f"r{i}", {"chart": hello_chart(url)}) for i in range(args.releases)]
            started = time.monotonic()
            cluster.kubectl("apply", "-n", "bench", "-f", "-",
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
            while True:
                items = json.loads(cluster.kubectl("get", "hr", "-n", "bench", "-o", "json").stdout)["items"]
                done = [i for i in items if i.get("status", {}).get("phase") == "Succeeded"]
                if len(done) == args.releases:
                    break
                time.sleep(0.5)
            install_s = time.monotonic() - started
            calls = len(op.calls("bench"))
            before = len(op.calls())
            marker = op.log_text().count("periodic resync of")
            while op.log_text().count("periodic resync of") < marker + 1:
                time.sleep(0.2)
            time.sleep(3)
            resync_calls = len(op.calls()) - before
            print(f"releases: {args.releases}, workers: {args.workers}")
            print(f"install all to Succeeded: {install_s:.1f}s ({args.releases / install_s:.2f} releases/s)")
            print(f"helm calls during install: {calls} ({calls / args.releases:.1f} per release)")
            print(f"helm calls during one full resync of the unchanged set: {resync_calls}")
            print(f"operator RSS after: {_rss_kib(op.proc.pid) / 1024:.0f} MiB")
        finally:
            op.stop()
            server.shutdown()


if __name__ == "__main__":
    main()
