"""Command line for the local control plane.

    python -m tests.cluster build         build the pinned binaries (once)
    python -m tests.cluster up [--workdir DIR] [--crds DIR] [--audit-log FILE]
                                          start it, apply the CRDs, print the
                                          kubeconfig path, run until Ctrl-C
                                          (--audit-log: kube-apiserver audit log
                                          of every request, Metadata level)

`up` stops everything it started on Ctrl-C, SIGTERM, or any error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.localcluster import ClusterError, LocalCluster, ensure_binaries

REPO = Path(__file__).resolve().parents[2]


def _up(args: argparse.Namespace) -> int:
    bin_dir = ensure_binaries()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="helm-operator-cluster-"))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        audit_log = Path(args.audit_log).resolve() if args.audit_log else None
        with LocalCluster(workdir=workdir, bin_dir=bin_dir, audit_log=audit_log) as cluster:
            cluster.kubectl("apply", "--server-side", "-f", str(args.crds))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                            "crd/helmreleases.helm.fluxcd.io")
            print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
            print(f"try: kubectl --kubeconfig {cluster.kubeconfig} get nodes", flush=True)
            print("press Ctrl-C to stop the cluster", flush=True)
            while True:
                time.sleep(1)
                cluster._check_alive()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 0
    except ClusterError as e:
        print(f"local cluster failed: {e}", file=sys.stderr)
        return 1


def _interrupt(*_: object) -> None:
    """SIGTERM stops like Ctrl-C: everything started is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the pinned binaries")
    up = sub.add_parser("up", help="start the local cluster until Ctrl-C")
    up.add_argument("--workdir", help="folder for PKI, etcd data, logs (default: a new temp folder)")
    up.add_argument("--crds", default=str(REPO / "crds"), help="CRD folder to apply")
    up.add_argument("--audit-log", help="write kube-apiserver's audit log (every request, Metadata level) here")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        print(ensure_binaries())
        return 0
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
