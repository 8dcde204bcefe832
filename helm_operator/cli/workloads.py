"""`list-workloads` and `list-images`: the HelmReleases in the cluster, their images and tags.

Place in the flow: the cluster (read only) ─▶ **these commands** ─▶ a table
on stdout, as fluxctl printed it.

``list-workloads [--namespace NS]``
    HelmReleases with their containers, images, release status, policies
    (automated, locked, ignore) and tag filters.
``list-images (--workload W | --namespace NS)``
    Per container the current image and the newest tags its filter allows
    (newest first, ``'->`` marks the current tag), from a registry scan. A
    container whose tags cannot be read says why in its row (the registry
    unreachable, credentials refused, an invalid filter or annotation); when
    no registry the command needed could be read it also says so on stderr
    and exits 1.

What this module does NOT do: change anything, or choose tags for a release
(`imagerelease`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from helm_operator.api.automation import policy_of
from helm_operator.automation.detect import find_images
from helm_operator.automation.policy import InvalidFilter, TagFilter, TagInfo, newest_first, parse_filter
from helm_operator.automation.registry import RegistryClient, RegistryError
from helm_operator.cli.errors import CommandError, runner
from helm_operator.cli.output import format_table
from helm_operator.cli.registryaccess import add_registry_flags, registry_client
from helm_operator.cli.workload import (
    add_default_namespace_flag, add_kubeconfig_flag, add_workload_flag, parse_workload, unknown_workload,
    workload_of,
)


async def cluster_helmreleases(args: argparse.Namespace, namespace: str | None) -> list[dict[str, Any]]:
    """The HelmReleases of `namespace` (all when None), sorted by workload."""
    from helm_operator.kube.client import Kube, KubeError

    try:
        kube = Kube.from_kubeconfig(Path(args.kubeconfig) if args.kubeconfig else None)
        items = await kube.list_helmreleases(namespace)
    except KubeError as e:
        raise CommandError(f"cannot list HelmReleases: {e}; check --kubeconfig and access") from None
    except Exception as e:  # noqa: BLE001 - kubeconfig loading raises many kinds
        raise CommandError(f"cannot reach the cluster: {type(e).__name__}: {e}; check --kubeconfig") from None
    return sorted(items, key=lambda o: workload_of(o))


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


async def list_workloads(args: argparse.Namespace) -> int:
    items = await cluster_helmreleases(args, args.namespace)
    print(format_table(["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY", "FILTER"], workload_rows(items)),
          end="")
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


async def list_images(args: argparse.Namespace) -> int:
    if args.workload:
        workload = parse_workload(args.workload, args.k8s_default_namespace)
        items = await cluster_helmreleases(args, workload.namespace)
        chosen = [o for o in items if workload_of(o) == workload]
        if not chosen:
            raise unknown_workload(workload, [workload_of(o) for o in
                                              await cluster_helmreleases(args, None)], "in the cluster")
        items = chosen
    else:
        items = await cluster_helmreleases(args, args.namespace)
    rows: list[list[str]] = []
    async with registry_client(args) as registry:
        scans = _Scans(registry)
        for obj in items:
            rows += await _image_rows(obj, scans, args.limit)
    print(format_table(["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"], rows), end="")
    failed = scans.failures()
    if failed and len(failed) == len(scans.done):
        repositories = sorted({e.image for e in failed})
        print(f"helm-operator list-images: no registry could be read ({len(failed)} of {len(scans.done)} "
              f"scans failed: {', '.join(repositories)}); the first error: {failed[0]}", file=sys.stderr)
        return 1
    return 0


async def _image_rows(obj: Mapping[str, Any], scans: _Scans, limit: int) -> list[list[str]]:
    """The rows of one workload: each container, then its tags or why there are none."""
    workload = workload_of(obj)
    policy = policy_of(obj)
    found = find_images(obj)
    rows: list[list[str]] = []
    if not found.containers and not found.errors:
        rows.append([str(workload), "", "(no images found)", ""])
    for e in found.errors:
        rows.append([str(workload) if not rows else "", e.container, f"(error: {e.annotation}: {e.message})", ""])
    for c in sorted(found.containers, key=lambda c: c.name):
        rows.append([str(workload) if not rows else "", c.name, c.repository, ""])
        raw = policy.filter_for(c.name)
        try:
            tag_filter = parse_filter(raw)
        except InvalidFilter as e:
            rows.append(["", "", f"({e}: matches nothing)", ""])
            continue
        scanned = await scans.tags(c.repository, tag_filter)
        if isinstance(scanned, RegistryError):
            rows.append(["", "", f"(registry: {scanned})", ""])
            continue
        rows += image_lines(tag_filter, scanned, c.tag, limit)
    return rows


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
    p = subparsers.add_parser("list-workloads", help="HelmReleases with their containers, images and policies")
    add_kubeconfig_flag(p)
    add_default_namespace_flag(p, shown=False)
    add_registry_flags(p, shown=False)
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.set_defaults(handler=runner(list_workloads))

    p = subparsers.add_parser("list-images", help="current images and the newest tags each filter allows")
    add_kubeconfig_flag(p)
    add_default_namespace_flag(p, text="namespace of a --workload that names none")
    add_registry_flags(p)
    add_workload_flag(p, required=False)
    p.add_argument("-n", "--namespace", default=None, help="every workload of this namespace")
    p.add_argument("--limit", type=int, default=10, help="tags shown per container (default 10)")
    p.set_defaults(handler=runner(list_images))
