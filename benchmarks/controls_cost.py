"""What each release control costs: helm processes and API requests of
`helm-operator reconcile|suspend|resume|get|history hr` and `helm-operator
diff`, and of the operator's answer to them.

Run by hand (about a minute once the binaries are built):

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.controls_cost

It starts a local cluster with the audit log on, serves the `hello` chart,
runs `helm-operator run` behind a counting helm wrapper (drift checks and
periodic resyncs off, so it acts only when asked), installs one HelmRelease
and then runs each command as a person would, as a subprocess. For each it
counts, from the audit log and the wrappers, between the command's start
and the moment the HelmRelease is settled again: the command's own API
requests (user agent `helm-operator-cli/...`; its watch counted apart), the
operator's requests, helm processes (the operator's, or `diff`'s own) and
helm's requests. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from benchmarks.engine_bench.observe import HelmCalls, helm_wrapper
from benchmarks.engine_bench.world import CHART_VERSION, OperatorRun, World, is_done
from tests.cluster.localcluster import ensure_binaries
from tests.integration.hr import hello_chart, helmrelease

NS = "cost"
NAME = "web"


def classify(user_agent: str) -> str:
    ua = user_agent.lower()
    if ua.startswith("helm-operator-cli"):
        return "cli"
    if ua.startswith("helm/"):
        return "helm"
    if ua.startswith("openapi-generator") or "python/" in ua and not ua.startswith("python-urllib"):
        return "operator"
    return "other"


class Meter:
    def __init__(self, world: World, op: OperatorRun, workdir: Path) -> None:
        self.world = world
        self.op = op
        self.workdir = workdir
        self.diff_helm = HelmCalls(workdir / "diff-helm-calls.txt")
        self.diff_wrapper = helm_wrapper(workdir / "diff-helm", world.cluster.binary("helm"), self.diff_helm.path)
        self.rows: list[dict[str, object]] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = self.world.helm_env(self.workdir)
        return subprocess.run([sys.executable, "-m", "helm_operator.cli", *args], env=env, capture_output=True,
                              text=True, timeout=300)

    def settled(self, token: str | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj = self.world.helmrelease(NS, NAME)
            handled = token is None or (obj.get("status") or {}).get("lastHandledReconcileAt") == token
            suspended = bool((obj.get("spec") or {}).get("suspend"))
            if handled and (suspended or is_done(obj)):
                return
            time.sleep(0.2)
        raise RuntimeError(f"HelmRelease {NS}/{NAME} did not settle")

    def measure(self, label: str, *args: str, expect: int = 0) -> dict[str, object]:
        t0 = time.time()
        r = self.cli(*args)
        if r.returncode != expect:
            raise RuntimeError(f"{label}: exit {r.returncode}: {r.stderr.strip()}")
        token = None
        if args[0] == "reconcile" and "--wait" not in args:
            token = json.loads(r.stdout)["requestedAt"]
        self.settled(token)
        time.sleep(1.5)  # the status patch and event after the answer
        t1 = time.time()
        self.world.audit.refresh()
        reqs = [q for q in self.world.audit.requests if t0 <= q.t <= t1]
        by: Counter[str] = Counter()
        cli_kinds: Counter[str] = Counter()
        for q in reqs:
            who = classify(q.user_agent)
            key = f"{who}-watch" if q.is_watch else who
            by[key] += 1
            if who == "cli":
                cli_kinds[q.kind] += 1
        helm_calls = [c.verb for c in self.op.helm.between(t0, t1)] + [c.verb for c in self.diff_helm.between(t0, t1)]
        row: dict[str, object] = {
            "command": label, "cli requests": by["cli"], "cli watches": by["cli-watch"],
            "operator requests": by["operator"], "helm processes": len(helm_calls),
            "helm verbs": ", ".join(f"{v} x{n}" for v, n in Counter(helm_calls).items()) or "-",
            "helm requests": by["helm"], "cli request kinds": dict(cli_kinds), "seconds": round(t1 - t0 - 1.5, 1),
        }
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.controls_cost")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="controls-cost-"))
    print(f"work folder: {workdir}", flush=True)
    world = World(workdir, ensure_binaries())
    op = None
    try:
        op = OperatorRun(world, workdir / "operator", "--drift-detection-interval", "0",
                         "--charts-sync-interval", "1h", "--allow-namespace", NS)
        world.create_namespace(NS)
        spec = {"chart": hello_chart(world.chart_url, CHART_VERSION), "values": {"message": "one"}}
        doc = helmrelease(NAME, spec)
        doc["metadata"]["namespace"] = NS
        world.cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
        m = Meter(world, op, workdir)
        m.settled()
        base = ("-n", NS, "--kubeconfig", str(world.cluster.kubeconfig))
        same, changed = workdir / "same.yaml", workdir / "changed.yaml"
        same.write_text(yaml.safe_dump(doc))
        doc2 = json.loads(json.dumps(doc))
        doc2["spec"]["values"] = {"message": "two"}
        changed.write_text(yaml.safe_dump(doc2))
        diff = ("diff", "--helm-binary", str(m.diff_wrapper), "--kubeconfig", str(world.cluster.kubeconfig))

        m.measure("get hr NAME", "get", "hr", NAME, *base, "-o", "json")
        m.measure("get hr -A", "get", "hr", "-A", "--kubeconfig", str(world.cluster.kubeconfig), "-o", "json")
        m.measure("history hr NAME", "history", "hr", NAME, *base, "-o", "json")
        m.measure("reconcile hr (in sync, no --wait)", "reconcile", "hr", NAME, *base, "-o", "json")
        m.measure("reconcile hr --wait (in sync)", "reconcile", "hr", NAME, *base, "--wait", "-o", "json")
        m.measure("reconcile hr --reset --wait (in sync)", "reconcile", "hr", NAME, *base, "--reset", "--wait",
                  "-o", "json")
        m.measure("reconcile hr --force --wait", "reconcile", "hr", NAME, *base, "--force", "--wait", "-o", "json")
        m.measure("suspend hr", "suspend", "hr", NAME, *base, "-o", "json")
        m.measure("resume hr --wait", "resume", "hr", NAME, *base, "--wait", "-o", "json")
        m.measure("diff (unchanged)", *diff, "-f", str(same), "-o", "json")
        m.measure("diff (values changed)", *diff, "-f", str(changed), "-o", "json", expect=1)

        cols = ["command", "cli requests", "cli watches", "operator requests", "helm processes", "helm verbs",
                "helm requests"]
        print("\n| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in m.rows:
            print("| " + " | ".join(str(row[c]) for c in cols) + " |")
        return 0
    finally:
        if op is not None:
            op.stop()
        world.close()


if __name__ == "__main__":
    sys.exit(main())
