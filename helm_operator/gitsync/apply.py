"""Apply a plan with server-side apply, object by object, never stopping.

Place in the flow: takes the ordered `plan.Plan` and the cluster's
`Discovery`, applies every object (field manager ``helm-operator``, conflicts
forced, as Flux v1's ``kubectl apply`` took over fields too) rank by rank,
and returns one `ObjectResult` per object. Within a rank objects are applied
concurrently (bounded). A custom resource whose CRD is applied in the same
pass waits for that CRD to be Established, then its kind is discovered.

Skipped: objects annotated ``fluxcd.io/ignore: "true"`` in the cluster
(someone took them over by hand). Failures (API rejection, unknown kind, CRD
not established) are recorded with file, object and the server's reason; the
other objects still apply.

What this module does NOT do: no ordering decisions (plan), no deletes (gc),
no status writes (status).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from helm_operator.gitsync.manifests import Document, FileError, Manifest, Policy, policy_of
from helm_operator.gitsync.plan import crd_for, kind_rank, stamp
from helm_operator.kube.apply import ClusterApi
from helm_operator.kube.discovery import Discovery, ResourceType
from helm_operator.kube.errors import KubeError

log = logging.getLogger(__name__)

FIELD_MANAGER = "helm-operator"
CONCURRENCY = 8
CRD_ESTABLISHED_TIMEOUT = 60.0


class Outcome(Enum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class ObjectResult:
    manifest: Manifest
    outcome: Outcome
    reason: str = ""

    def as_error(self) -> FileError:
        return FileError(self.manifest.doc.source, self.reason, self.manifest.resource_id)


@dataclass
class ApplyReport:
    results: list[ObjectResult] = field(default_factory=list)

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome in outcomes)

    @property
    def errors(self) -> list[FileError]:
        return [r.as_error() for r in self.results if r.outcome is Outcome.FAILED]


class _CrdWaiter:
    """Waits once per CRD name, however many custom resources need it."""

    def __init__(self, cluster: ClusterApi) -> None:
        self._cluster = cluster
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def wait(self, name: str) -> None:
        if name not in self._tasks:
            self._tasks[name] = asyncio.create_task(
                self._cluster.wait_crd_established(name, CRD_ESTABLISHED_TIMEOUT))
        await asyncio.shield(self._tasks[name])


async def _resource_type(
    cluster: ClusterApi, discovery: Discovery, m: Manifest,
    documents: Sequence[Document], crds: _CrdWaiter,
) -> ResourceType:
    rt = discovery.lookup(m.doc.api_version, m.kind)
    if rt is not None:
        return rt
    crd = crd_for(m.doc, documents)
    if crd is None:
        raise KubeError(f"kind {m.kind} in apiVersion {m.doc.api_version} is not served by the "
                        "cluster; install its CustomResourceDefinition or fix apiVersion/kind")
    try:
        await crds.wait(crd)
    except KubeError as e:
        raise KubeError(f"waiting for CustomResourceDefinition {crd}: {e}") from e
    discovery.add(await cluster.discover_group_version(m.doc.api_version), preferred=False)
    rt = discovery.lookup(m.doc.api_version, m.kind)
    if rt is None:
        raise KubeError(f"CustomResourceDefinition {crd} is Established but does not serve "
                        f"{m.kind} in {m.doc.api_version}; check its group, versions and names")
    return rt


async def apply_one(
    cluster: ClusterApi, discovery: Discovery, m: Manifest, *, sync_set: str,
    documents: Sequence[Document], crds: _CrdWaiter,
) -> ObjectResult:
    """Apply one object and say what happened; never raises for API errors."""
    try:
        rt = await _resource_type(cluster, discovery, m, documents, crds)
        live = await cluster.get(rt, m.namespace, m.name)
        if live is not None and policy_of((live.get("metadata") or {}).get("annotations")) is Policy.IGNORE:
            return ObjectResult(m, Outcome.SKIPPED, "annotated fluxcd.io/ignore in the cluster")
        stored = await cluster.apply(rt, stamp(m, sync_set), field_manager=FIELD_MANAGER)
    except KubeError as e:
        log.warning("%s (%s): %s", m.resource_id, m.doc.source, e)
        return ObjectResult(m, Outcome.FAILED, str(e))
    if live is None:
        return ObjectResult(m, Outcome.CREATED)
    before = (live.get("metadata") or {}).get("resourceVersion")
    after = (stored.get("metadata") or {}).get("resourceVersion")
    return ObjectResult(m, Outcome.UNCHANGED if before == after else Outcome.CONFIGURED)


async def apply_plan(
    cluster: ClusterApi, discovery: Discovery, to_apply: Sequence[Manifest], *,
    sync_set: str, documents: Sequence[Document],
) -> ApplyReport:
    """Apply `to_apply` (already in rank order) rank by rank."""
    report = ApplyReport()
    crds = _CrdWaiter(cluster)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(m: Manifest) -> ObjectResult:
        async with limit:
            return await apply_one(cluster, discovery, m, sync_set=sync_set,
                                   documents=documents, crds=crds)

    for _, group in itertools.groupby(to_apply, key=lambda m: kind_rank(m.kind)):
        report.results.extend(await asyncio.gather(*(bounded(m) for m in group)))
    for r in report.results:
        if r.outcome in (Outcome.CREATED, Outcome.CONFIGURED):
            log.info("%s %s (%s)", r.outcome.value, r.manifest.resource_id, r.manifest.doc.source)
    return report
