"""The sync marker: where the last applied commit is recorded.

Place in the flow: after apply and garbage collection, `move` records the
commit of the pass.

- `GitTagMarker` (default): annotated tag ``flux-sync`` (name configurable),
  moved to the commit and force-pushed, as Flux v1 did.
- `ClusterMarker` (``--git-readonly``): no pushes; the commit is annotation
  ``helm-operator.dev/sync-marker`` on ConfigMap
  ``helm-operator-sync-marker-<source>`` in the syncer's namespace.

What this module does NOT do: decide whether a pass deserves a marker (the
syncer does), or read manifests.
"""

from __future__ import annotations

from typing import Protocol

from helm_operator.gitsync.mirror import GitMirror
from helm_operator.kube.apply import CONFIGMAP, ClusterApi

MARKER_ANNOTATION = "helm-operator.dev/sync-marker"
FIELD_MANAGER = "helm-operator-sync-marker"


class Marker(Protocol):
    async def read(self) -> str | None: ...

    async def move(self, commit: str) -> bool: ...

    def describe(self) -> str: ...


class GitTagMarker:
    def __init__(self, mirror: GitMirror, tag: str) -> None:
        self.mirror, self.tag = mirror, tag

    async def read(self) -> str | None:
        return await self.mirror.tag_commit(self.tag)

    async def move(self, commit: str) -> bool:
        return await self.mirror.move_tag(self.tag, commit)

    def describe(self) -> str:
        return f"tag {self.tag} in {self.mirror.display_url}"


def marker_configmap(source: str) -> str:
    return f"helm-operator-sync-marker-{source}"


class ClusterMarker:
    def __init__(self, cluster: ClusterApi, namespace: str, source: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, marker_configmap(source)

    async def read(self) -> str | None:
        cm = await self.cluster.get(CONFIGMAP, self.namespace, self.name)
        return ((cm or {}).get("metadata", {}).get("annotations") or {}).get(MARKER_ANNOTATION)

    async def move(self, commit: str) -> bool:
        if await self.read() == commit:
            return False
        await self.cluster.apply(CONFIGMAP, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "annotations": {MARKER_ANNOTATION: commit}},
        }, field_manager=FIELD_MANAGER)
        return True

    def describe(self) -> str:
        return f"annotation {MARKER_ANNOTATION} of ConfigMap {self.namespace}/{self.name}"
