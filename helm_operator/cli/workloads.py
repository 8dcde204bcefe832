"""`list-workloads` and `list-images`: the HelmReleases in the cluster, their images and tags.

Place in the flow: the cluster (read only) ─▶ **these commands** ─▶ a table
on stdout, as fluxctl printed it, or a document (``-o json|yaml``) for scripts.

``list-workloads [-n NS | -A]``
    HelmReleases with their containers, images, release status, policies
    (automated, locked, ignore) and tag filters.
``list-images (-w W | -n NS | -A)``
    Per container the current image and the newest tags its filter allows
    (newest first, ``'->`` marks the current tag), from a registry scan. A
    container whose tags cannot be read says why in its row (the registry
    unreachable, credentials refused, an invalid filter or annotation); when
    no registry the command needed could be read it also says so on stderr
    and exits 1.

The namespace is kubectl's: ``-n``, else the kubeconfig context's, else
``default``; ``-A`` for every namespace. Connecting and failing are
`clusterargs`' (one line on stderr, exit 1).

What this module does NOT do: change anything, or choose tags for a release
(`imagerelease`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from helm_operator.api.automation import policy_of
from helm_operator.automation.detect import find_images
from helm_operator.automation.policy import InvalidFilter, TagFilter, TagInfo, newest_first, parse_filter
from helm_operator.automation.registry import RegistryClient, RegistryError
from helm_operator.cli.clusterargs import Cluster, add_cluster_flags, add_output_flag, connect, dump, one_line_errors
from helm_operator.cli.output import format_table
from helm_operator.cli.parsing import positive
from helm_operator.cli.registryaccess import add_registry_flags, registry_client
from helm_operator.cli.workload import (
    add_default_namespace_flag, add_workload_flag, parse_workload, unknown_workload, workload_of,
)

WORKLOAD_COLUMNS = ("WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY", "FILTER")
IMAGE_COLUMNS = ("WORKLOAD", "CONTAINER", "IMAGE", "CREATED")


async def cluster_helmreleases(cluster: Cluster, namespace: str | None) -> list[dict[str, Any]]:
    """The HelmReleases of `namespace` (all when None), sorted by workload."""
    items = await cluster.kube.list_helmreleases(namespace)
    return sorted(items, key=lambda o: workload_of(o))


def _scope(args: argparse.Namespace, cluster: Cluster) -> str | None:
    """The namespace to list: None (all) with -A."""
    return None if args.all_namespaces else cluster.namespace


def _none_found(command: str, namespace: str | None) -> None:
    where = "any namespace" if namespace is None else f"namespace {namespace}"
    print(f"helm-operator {command}: no HelmReleases in {where}", file=sys.stderr)


def workload_rows(items: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for obj in items:
        workload = workload_of(obj)
        policy = policy_of(obj)
        status = obj.get("status") or {}
        state = str(status.get("releaseStatus") or status.get("phase") or "")
        found = find_images(obj)
        first = [str(workload), state, policy.words()]
        lines = [[c.name, c.image_ref, policy.filters.get(c.name, "")]
                 for c in sorted(found.containers, key=lambda c: c.name)]
        lines += [[e.container, f"(error: {e.message})", ""] for e in found.errors]
        for i, (container, image, tag_filter) in enumerate(lines or [["", "", ""]]):
            head = first if i == 0 else ["", "", ""]
            rows.append([head[0], container, image, head[1], head[2], tag_filter])
    return rows


def workload_doc(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One workload for ``list-workloads -o json|yaml``: what its row says, as fields."""
    workload = workload_of(obj)
    policy = policy_of(obj)
    status = obj.get("status") or {}
    found = find_images(obj)
    return {
        "workload": str(workload), "namespace": workload.namespace, "name": workload.name,
        "release": str(status.get("releaseStatus") or status.get("phase") or ""),
        "policy": {"automated": policy.automated, "locked": policy.locked, "lockedUser": policy.locked_user,
                   "lockedMessage": policy.locked_msg, "ignore": policy.ignored},
        "containers": [{"name": c.name, "image": c.image_ref, "repository": c.repository, "tag": c.tag,
                        "filter": policy.filters.get(c.name, "")}
                       for c in sorted(found.containers, key=lambda c: c.name)],
        "errors": [{"container": e.container, "annotation": e.annotation, "message": e.message}
                   for e in found.errors],
    }


@one_line_errors("list-workloads")
def run_list_workloads(args: argparse.Namespace) -> int:
    return asyncio.run(list_workloads(args))


async def list_workloads(args: argparse.Namespace) -> int:
    cluster = connect(args)
    namespace = _scope(args, cluster)
    items = await cluster_helmreleases(cluster, namespace)
    if args.output != "table":
        sys.stdout.write(dump([workload_doc(o) for o in items], args.output))
    elif items:
        print(format_table(WORKLOAD_COLUMNS, workload_rows(items), args.no_headers), end="")
    else:
        _none_found("list-workloads", namespace)
    return 0


def _created(when: datetime | None) -> str:
    return when.strftime("%d %b %Y %H:%M:%S %Z") if when else ""


class _Scans:
    """Registry scans of one listing, once per (repository, filter); failures kept as their message."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self.done: dict[tuple[str, str], list[TagInfo] | RegistryError] = {}

    async def tags(self, repository: str, tag_filter: TagFilter) -> list[TagInfo] | RegistryError:
        key = (repository, str(tag_filter))
        if key not in self.done:
            try:
                self.done[key] = await self.registry.scan(repository, tag_filter)
            except RegistryError as e:
                self.done[key] = e
        return self.done[key]

    def failures(self) -> list[RegistryError]:
        return [r for r in self.done.values() if isinstance(r, RegistryError)]


@one_line_errors("list-images")
def run_list_images(args: argparse.Namespace) -> int:
    return asyncio.run(list_images(args))


async def list_images(args: argparse.Namespace) -> int:
    cluster = connect(args)
    namespace = _scope(args, cluster)
    if args.workload:
        workload = parse_workload(args.workload, args.k8s_default_namespace or cluster.namespace)
        namespace = workload.namespace
        chosen = [o for o in await cluster_helmreleases(cluster, namespace) if workload_of(o) == workload]
        if not chosen:
            raise unknown_workload(workload, [workload_of(o) for o in
                                              await cluster_helmreleases(cluster, None)], "in the cluster")
        items = chosen
    else:
        items = await cluster_helmreleases(cluster, namespace)
    rows: list[list[str]] = []
    docs: list[dict[str, Any]] = []
    async with registry_client(args) as registry:
        scans = _Scans(registry)
        for obj in items:
            doc, lines = await _image_report(obj, scans, args.limit)
            docs.append(doc)
            rows += lines
    if args.output != "table":
        sys.stdout.write(dump(docs, args.output))
    elif rows:
        print(format_table(IMAGE_COLUMNS, rows, args.no_headers), end="")
    else:
        _none_found("list-images", namespace)
    failed = scans.failures()
    if failed and len(failed) == len(scans.done):
        repositories = sorted({e.image for e in failed})
        print(f"helm-operator list-images: no registry could be read ({len(failed)} of {len(scans.done)} "
              f"scans failed: {', '.join(repositories)}); the first error: {failed[0]}", file=sys.stderr)
        return 1
    return 0


async def _image_report(obj: Mapping[str, Any], scans: _Scans,
                        limit: int) -> tuple[dict[str, Any], list[list[str]]]:
    """One workload for ``list-images``: its document (``-o json|yaml``) and its table rows, made in
    one pass so both say the same: each container, then its tags or why there are none."""
    workload = workload_of(obj)
    policy = policy_of(obj)
    found = find_images(obj)
    doc: dict[str, Any] = {
        "workload": str(workload), "namespace": workload.namespace, "name": workload.name, "containers": [],
        "errors": [{"container": e.container, "annotation": e.annotation, "message": e.message}
                   for e in found.errors]}
    rows: list[list[str]] = []
    if not found.containers and not found.errors:
        rows.append([str(workload), "", "(no images found)", ""])
    for e in found.errors:
        rows.append([str(workload) if not rows else "", e.container, f"(error: {e.annotation}: {e.message})", ""])
    for c in sorted(found.containers, key=lambda c: c.name):
        raw = policy.filter_for(c.name)
        entry: dict[str, Any] = {"name": c.name, "repository": c.repository, "image": c.image_ref,
                                 "current": c.tag, "filter": raw, "error": None, "tags": [],
                                 "currentInRegistry": None}
        doc["containers"].append(entry)
        rows.append([str(workload) if not rows else "", c.name, c.repository, ""])
        try:
            tag_filter = parse_filter(raw)
        except InvalidFilter as e:
            entry["error"] = f"{e}: matches nothing"
            rows.append(["", "", f"({entry['error']})", ""])
            continue
        scanned = await scans.tags(c.repository, tag_filter)
        if isinstance(scanned, RegistryError):
            entry["error"] = f"registry: {scanned}"
            rows.append(["", "", f"({entry['error']})", ""])
            continue
        created = {t.tag: t.created for t in scanned}
        entry["tags"] = [{"tag": tag, "created": _iso(created.get(tag)), "current": tag == c.tag}
                         for tag in newest_first(tag_filter, scanned, limit)]
        entry["currentInRegistry"] = c.tag in created
        rows += image_lines(tag_filter, scanned, c.tag, limit)
    return doc, rows


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def image_lines(tag_filter: TagFilter, tags: Sequence[TagInfo], current: str, limit: int) -> list[list[str]]:
    """fluxctl's layout: ``|   tag`` per allowed tag, newest first, ``'-> tag`` the current one."""
    created = {t.tag: t.created for t in tags}
    shown = newest_first(tag_filter, tags, limit)
    lines = []
    for tag in shown:
        marker = "'->" if tag == current else "|  "
        lines.append(["", "", f"{marker} {tag}", _created(created.get(tag))])
    if current not in shown:
        note = "" if current in created else " (not in the registry)"
        if shown:
            lines.append(["", "", ":", ""])
        lines.append(["", "", f"'-> {current}{note}", _created(created.get(current))])
    if not shown and not tags:
        lines.insert(0, ["", "", "(no tags in the registry)", ""])
    return lines


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "list-workloads", help="HelmReleases with their containers, images and policies",
        description="The HelmReleases of a namespace (-A: all) with their containers, images, release "
                    "status, automation policy and tag filters. Exit code 0, also when there are none; 1 "
                    "when the cluster cannot be read (one line on stderr says why).")
    add_cluster_flags(p, all_namespaces=True, namespace_help="only this namespace (default: the context's "
                                                             "namespace, else default)")
    add_output_flag(p, ("table", "json", "yaml"), "table", tables=True)
    add_default_namespace_flag(p, shown=False)
    add_registry_flags(p, shown=False)
    p.set_defaults(handler=run_list_workloads)

    p = subparsers.add_parser(
        "list-images", help="current images and the newest tags each filter allows",
        description="Per container of each HelmRelease (one with -w, a namespace's with -n, all with -A) "
                    "the current image and the newest tags its filter allows, read from the registries. "
                    "A container whose tags cannot be read says why in its row. Exit code 0; 1 when no "
                    "registry it needed could be read, the workload does not exist or the cluster cannot "
                    "be read (one line on stderr says why).")
    add_workload_flag(p, required=False)
    add_cluster_flags(p, all_namespaces=True, namespace_help="every workload of this namespace, and the "
                                                             "namespace of a --workload that names none "
                                                             "(default: the context's namespace, else default)")
    add_output_flag(p, ("table", "json", "yaml"), "table", tables=True)
    p.add_argument("--limit", type=positive, default=10, metavar="N", help="tags shown per container (default 10)")
    add_registry_flags(p)
    add_default_namespace_flag(p, shown=False, default=None)
    p.set_defaults(handler=run_list_images)
