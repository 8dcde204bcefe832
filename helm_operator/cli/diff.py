"""`helm-operator diff -f FILE|DIR`: what merging these HelmReleases would
change in the cluster, for a review or a CI check on a pull request.

Place in the flow: read the files as the syncer reads them (`.yaml`/`.yml`,
chart directories skipped, within the YAML limits), then for each
HelmRelease ask `release/preview` what the operator would do and print a
values diff and a unified diff per object, in the style of `kubectl diff`,
secrets masked (`release/manifestdiff`). Exit code: 0 nothing would change,
1 something would, 2 something could not be previewed (with one line on
stderr saying what, for which HelmRelease, and what to do).

What this module does NOT do: it changes nothing (no apply, no install, no
upgrade) and reads no Git remote of its own: point it at a checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helm_operator import boundedyaml
from helm_operator.api.constants import API_VERSION, KIND
from helm_operator.cli.clusterargs import (
    Cluster, add_cluster_flags, add_output_flag, connect, dump, one_line_errors,
)
from helm_operator.cli.errors import CommandError
from helm_operator.release.hostpolicy import HostPolicy
from helm_operator.cli.settings import add_yaml_limit_flags, yaml_limits_from_args

if TYPE_CHECKING:
    from helm_operator.release.preview import Preview

NO_CHANGE, CHANGED, ERROR = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "diff", help="show what the HelmReleases in files would change in the cluster (exit 1 if anything)",
        description="For each HelmRelease in the files, fetch its chart and compose its values as the "
                    "operator would, render it with helm, and show what would change against the live "
                    "release: a values diff and a diff per object, Secret data masked. Exit code 0 when "
                    "nothing would change, 1 when something would, 2 on error.")
    p.add_argument("-f", "--filename", action="append", type=Path, required=True, metavar="PATH",
                   help="a YAML file, or a directory whose .yaml/.yml files are read as the syncer reads "
                        "them (chart directories skipped); repeatable")
    add_cluster_flags(p, namespace_help="namespace of HelmReleases, ConfigMaps and Secrets in the files that "
                                        "name none (default: the context's namespace, else default)")
    add_output_flag(p, ("text", "json"), "text")
    g = p.add_argument_group("as the operator runs (use the same values as its flags)")
    g.add_argument("--helm-binary", default=os.environ.get("HELM_BINARY", "helm"), metavar="PATH",
                   help="helm v4 executable (default: $HELM_BINARY, else helm)")
    g.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="keep fetched charts and Git mirrors here for the next run (default: a temporary "
                        "folder, removed at the end)")
    g.add_argument("--git-default-ref", default="master", metavar="REF",
                   help="chart ref when a Git chart names none (default master)")
    g.add_argument("--git-ssh-command", default=os.environ.get("GIT_SSH_COMMAND"), metavar="COMMAND",
                   help="ssh command for ssh Git chart sources (default: $GIT_SSH_COMMAND)")
    g.add_argument("--oci-plain-http", action="store_true", help="talk plain HTTP to OCI registries")
    g.add_argument("--external-source-allow", action="append", default=[], metavar="HOST",
                   help="allow externalSourceRef URLs to reach this IP, CIDR, host name, *.domain or * "
                        "(repeatable; loopback, link-local and cloud metadata addresses are denied otherwise)")
    g.add_argument("--external-source-deny", action="append", default=[], metavar="HOST",
                   help="deny this IP, CIDR, host name, *.domain or * to externalSourceRef URLs (repeatable)")
    add_yaml_limit_flags(p, charts=True)
    p.set_defaults(handler=run_diff)


@dataclass
class Inputs:
    """What the files hold: HelmReleases, and the ConfigMaps and Secrets their values may come from."""

    helmreleases: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (file, object)
    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def read_inputs(paths: list[Path], namespace: str, limits: boundedyaml.Limits) -> Inputs:
    """Every object of the files, as the syncer would parse them; namespaces defaulted like kubectl."""
    from helm_operator.gitsync.manifests import parse_files, select_manifest_files
    from helm_operator.release.preview import secret_data

    files: dict[str, bytes] = {}
    for path in paths:
        if path.is_dir():
            found = {str(f.relative_to(path)): f for f in path.rglob("*") if f.is_file() and ".git" not in f.parts}
            selected, _ = select_manifest_files(found, [""])
            files.update({str(path / name): found[name].read_bytes() for name in selected})
        elif path.is_file():
            files[str(path)] = path.read_bytes()
        else:
            raise CommandError(f"{path} does not exist: pass a YAML file or a directory with -f")
    parsed = parse_files(files, limits)
    out = Inputs(errors=[str(e) for e in parsed.errors])
    for doc in parsed.documents:
        ns = doc.namespace or namespace
        if doc.api_version == API_VERSION and doc.kind == KIND:
            body = dict(doc.body)
            body["metadata"] = {**(doc.body.get("metadata") or {}), "namespace": ns}
            out.helmreleases.append((doc.source, body))
        elif doc.api_version == "v1" and doc.kind == "ConfigMap":
            out.configmaps[(ns, doc.name)] = {str(k): str(v) for k, v in (doc.body.get("data") or {}).items()}
        elif doc.api_version == "v1" and doc.kind == "Secret":
            out.secrets[(ns, doc.name)] = secret_data(doc.body)
    if not out.helmreleases and not out.errors:
        raise CommandError(f"no HelmRelease ({API_VERSION}) in {', '.join(str(p) for p in paths)}")
    return out


@one_line_errors("diff")
def run_diff(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_diff(args))
    except CommandError as e:
        print(f"helm-operator diff: {e}", file=sys.stderr)
        return ERROR


async def _diff(args: argparse.Namespace) -> int:
    limits = yaml_limits_from_args(args)
    try:
        hosts = HostPolicy.from_flags(args.external_source_allow, args.external_source_deny)
    except ValueError as e:
        raise CommandError(f"--external-source-allow/--external-source-deny: {e}") from None
    cluster = connect(args)
    inputs = await asyncio.to_thread(read_inputs, args.filename, cluster.namespace, limits.documents)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="helm-operator-diff-"))
    try:
        results, cost = await _preview_all(args, cluster, inputs, cache, hosts, limits)
    finally:
        if args.cache_dir is None:
            await asyncio.to_thread(shutil.rmtree, cache, True)
    errors = inputs.errors + [r["error"] for r in results if r.get("error")]
    changed = sum(1 for r in results if r.get("changed"))
    if args.output == "json":
        sys.stdout.write(dump({"releases": results, "changed": changed, "errors": errors, "cost": cost}, "json"))
    else:
        for line in inputs.errors:
            print(f"helm-operator diff: {line}", file=sys.stderr)
        _print_text(results)
        print(f"{len(results)} HelmRelease(s): {changed} would change, "
              f"{sum(1 for r in results if r.get('action') == 'none')} unchanged, {len(errors)} error(s)")
    return ERROR if errors else CHANGED if changed else NO_CHANGE


async def _preview_all(args: argparse.Namespace, cluster: Cluster, inputs: Inputs, cache: Path,
                       hosts: HostPolicy, limits: boundedyaml.YamlLimits) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from helm_operator.api.helmrelease import InvalidSpec, parse
    from helm_operator.chartsource import ChartFetchError
    from helm_operator.helm import Helm, HelmError
    from helm_operator.helm.storage import StorageDecodeError
    from helm_operator.kube import KubeError
    from helm_operator.release.charts import ChartFetcher
    from helm_operator.release.preview import OverlayKube, PreviewError, Previewer
    from helm_operator.release.values import ValuesError

    kube = OverlayKube(cluster.kube, inputs.configmaps, inputs.secrets)
    helm = Helm(executable=args.helm_binary, kubeconfig=cluster.kubeconfig, kubecontext=cluster.context)
    charts = ChartFetcher(kube, helm, cache, 0.0, args.git_ssh_command, args.oci_plain_http, limits)
    previewer = Previewer(kube, helm, charts, hosts, limits.documents, limits.charts)
    results = []
    try:
        for source, obj in inputs.helmreleases:
            meta = obj.get("metadata") or {}
            entry: dict[str, Any] = {"file": source, "namespace": meta.get("namespace"), "name": meta.get("name")}
            where = f"HelmRelease {entry['namespace']}/{entry['name']} ({source})"
            try:
                hr = parse(obj, default_git_ref=args.git_default_ref, limits=limits.documents)
                entry.update(releaseName=hr.release_name, targetNamespace=hr.target_namespace)
                entry.update(_result(await previewer.preview(hr)))
            except InvalidSpec as e:
                entry["error"] = f"{where}: invalid HelmRelease: {e}"
            except ChartFetchError as e:
                entry["error"] = f"{where}: chart fetch failed: {e}"
            except ValuesError as e:
                entry["error"] = f"{where}: could not compose values: {e}"
            except HelmError as e:
                entry["error"] = f"{where}: {e.message}; fix the chart or the values (helm template failed)"
            except (KubeError, PreviewError, StorageDecodeError, boundedyaml.YamlError) as e:
                entry["error"] = f"{where}: {e}"
            results.append(entry)
    finally:
        await charts.close()
    for r in results:
        r.setdefault("changed", False)
    # What this run cost, as the report of a CI job may want it (helm's own API requests not counted).
    cost = {"helmCalls": helm.calls, "apiRequests": kube.requests + previewer.storage_requests}
    return results, cost


def _result(preview: Preview) -> dict[str, Any]:
    live = preview.live
    return {
        "action": preview.action, "changed": preview.changed, "reason": preview.reason,
        "chart": preview.chart, "chartRevision": preview.chart_revision, "digest": preview.digest,
        "live": None if live is None else {"revision": live.revision, "status": live.status, "chart": live.chart,
                                           "digest": live.digest},
        "valuesFromFiles": preview.from_files,
        "valuesDiff": "\n".join(preview.values_diff),
        "objects": [{"apiVersion": c.key[0], "kind": c.key[1], "namespace": c.key[2], "name": c.key[3],
                     "change": c.change, "diff": "\n".join(c.diff)} for c in preview.objects],
    }


def _print_text(results: list[dict[str, Any]]) -> None:
    for r in results:
        key = f"HelmRelease {r['namespace']}/{r['name']}"
        if r.get("error"):
            print(f"helm-operator diff: {r['error']}", file=sys.stderr)
            continue
        live = r["live"]
        chart = r["chart"] if not live or live["chart"] in ("", r["chart"]) else f"{live['chart']} -> {r['chart']}"
        print(f"{key} (release {r['releaseName']} in {r['targetNamespace']}, chart {chart}): {r['reason']}")
        if r["valuesFromFiles"]:
            print(f"  values sources taken from the files: {', '.join(r['valuesFromFiles'])}")
        if r["valuesDiff"]:
            print(r["valuesDiff"])
        for obj in r["objects"]:
            print(obj["diff"])
        if r["changed"] and not r["valuesDiff"] and not r["objects"]:
            print(f"  no object and no value would change, but the operator would still make a new revision "
                  f"(configuration digest {r['digest'][:12]}, e.g. a new chart revision)")
