"""Garbage collection: the inventory of marked objects, and deleting the stale.

Place in the flow: `inventory` lists every object in the cluster that carries
a ``fluxcd.io/sync-gc-mark`` label (any sync set; `plan` keeps only this
set's); after apply, `collect` deletes the plan's stale objects one by one in
the plan's (reverse rank) order, or in dry-run only reports them. A failed
delete is recorded and the next object is still tried.

What this module does NOT do: decide what is stale (plan does, from marks,
Git and policies), or touch objects without a mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from helm_operator.gitsync.manifests import FileError
from helm_operator.gitsync.plan import GC_MARK_LABEL, LiveObject, live_object
from helm_operator.kube.apply import ClusterApi
from helm_operator.kube.discovery import Discovery
from helm_operator.kube.errors import KubeError

log = logging.getLogger(__name__)

# Kinds never worth listing: not created from Git, and numerous.
_SKIP_KINDS = {("v1", "Event"), ("events.k8s.io/v1", "Event"), ("v1", "ComponentStatus"),
               ("v1", "Endpoints"), ("discovery.k8s.io/v1", "EndpointSlice")}


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)


async def inventory(cluster: ClusterApi, discovery: Discovery) -> list[LiveObject]:
    """Every object carrying a gc mark, across listable, deletable kinds."""
    types = [rt for rt in discovery.preferred
             if {"list", "delete"} <= rt.verbs and (rt.group_version, rt.kind) not in _SKIP_KINDS]
    lists = await asyncio.gather(*(cluster.list_labelled(rt, GC_MARK_LABEL) for rt in types))
    return [live_object(item, rt.namespaced) for rt, items in zip(types, lists) for item in items]


async def collect(
    cluster: ClusterApi, discovery: Discovery, stale: Sequence[LiveObject], *, dry_run: bool,
) -> GcReport:
    """Delete (or, dry-run, report) each stale object in order."""
    report = GcReport()
    for obj in stale:
        if dry_run:
            log.info("garbage collection (dry run): would delete %s", obj.resource_id)
            report.would_delete.append(obj.resource_id)
            continue
        rt = discovery.lookup(obj.api_version, obj.kind)
        if rt is None:
            report.errors.append(FileError("<garbage collection>", f"cannot delete: kind {obj.kind} "
                                           f"in {obj.api_version} is no longer served", obj.resource_id))
            continue
        try:
            gone = await cluster.delete(rt, obj.namespace, obj.name)
        except KubeError as e:
            log.warning("garbage collection of %s failed: %s", obj.resource_id, e)
            report.errors.append(FileError("<garbage collection>", str(e), obj.resource_id))
            continue
        log.info("garbage collection: deleted %s%s", obj.resource_id, "" if gone else " (already gone)")
        report.deleted.append(obj.resource_id)
    return report
