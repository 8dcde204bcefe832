"""The sync status of each source, kept in a ConfigMap people and the operator read.

Place in the flow: last step of a pass. `SyncStatus` says what the pass did
(commit, time, duration, applied/unchanged/deleted counts, errors per file
and object, why garbage collection was blocked); `write` server-side-applies
it as JSON under key ``status.json`` of ConfigMap
``helm-operator-sync-<source>`` (label ``helm-operator.dev/sync-status``) in
the syncer's namespace; `read_all` and `format_text` serve
``helm-operator sync-status``.

What this module does NOT do: decide anything, or hold secrets (URLs are
stored without passwords).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from helm_operator.gitsync.manifests import FileError
from helm_operator.kube.apply import CONFIGMAP, ClusterApi
from helm_operator.redaction import redact_text, redact_url

STATUS_LABEL = "helm-operator.dev/sync-status"
STATUS_KEY = "status.json"
FIELD_MANAGER = "helm-operator-sync-status"


def configmap_name(source: str) -> str:
    return f"helm-operator-sync-{source}"


@dataclass
class SyncStatus:
    source: str
    url: str = ""
    branch: str = ""
    paths: list[str] = field(default_factory=list)
    sync_set: str = ""
    commit: str = ""  # last commit applied ("" before the first pass reached apply)
    synced_at: str = ""  # RFC 3339, end of the last pass
    duration_seconds: float = 0.0
    applied: int = 0  # created or changed
    unchanged: int = 0
    skipped: int = 0  # ignore annotation (Git or cluster)
    failed: int = 0
    deleted: int = 0
    would_delete: list[str] = field(default_factory=list)  # dry-run garbage collection
    garbage_collection: str = "off"  # off, on, dry-run
    gc_blocked: str = ""
    pass_error: str = ""  # the pass failed as a whole (Git or API unreachable)
    errors: list[dict[str, str]] = field(default_factory=list)  # {file, object, reason}

    @property
    def ok(self) -> bool:
        return not self.errors and not self.pass_error

    def add_errors(self, errors: Sequence[FileError]) -> None:
        self.errors.extend({"file": e.file, "object": e.obj, "reason": e.reason} for e in errors)

    def to_json(self) -> str:
        """The stored form; URL credentials are removed from every text in it."""
        doc = asdict(self)
        doc["url"] = redact_url(self.url)
        doc["pass_error"] = redact_text(self.pass_error)
        doc["errors"] = [{k: redact_text(v) for k, v in e.items()} for e in self.errors]
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SyncStatus":
        data: dict[str, Any] = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


async def write(cluster: ClusterApi, namespace: str, status: SyncStatus) -> None:
    body = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": configmap_name(status.source), "namespace": namespace,
                     "labels": {STATUS_LABEL: "true"}},
        "data": {STATUS_KEY: status.to_json()},
    }
    await cluster.apply(CONFIGMAP, body, field_manager=FIELD_MANAGER)


async def read_all(cluster: ClusterApi, namespace: str) -> list[SyncStatus]:
    items = await cluster.list_labelled(CONFIGMAP, STATUS_LABEL, namespace)
    out = []
    for cm in items:
        text = (cm.get("data") or {}).get(STATUS_KEY)
        if text:
            out.append(SyncStatus.from_json(text))
    return sorted(out, key=lambda s: s.source)


def format_text(statuses: Sequence[SyncStatus]) -> str:
    """A human summary: one block per source, errors listed per file."""
    if not statuses:
        return "no sync status found (has `helm-operator sync` run in this namespace?)\n"
    lines: list[str] = []
    for s in statuses:
        state = "ok" if s.ok else "errors"
        lines.append(f"source {s.source}: {state}")
        lines.append(f"  git:      {s.url} branch {s.branch} paths {', '.join(s.paths) or '.'}")
        lines.append(f"  commit:   {s.commit or '(none yet)'} at {s.synced_at or '-'} "
                     f"({s.duration_seconds:.2f}s)")
        lines.append(f"  objects:  {s.applied} applied, {s.unchanged} unchanged, {s.skipped} skipped, "
                     f"{s.failed} failed, {s.deleted} deleted")
        lines.append(f"  gc:       {s.garbage_collection}" + (f" (blocked: {s.gc_blocked})" if s.gc_blocked else ""))
        if s.would_delete:
            lines.append(f"  would delete (dry run): {', '.join(s.would_delete)}")
        if s.pass_error:
            lines.append(f"  pass failed: {s.pass_error}")
        for e in s.errors:
            obj = f" {e['object']}" if e.get("object") else ""
            lines.append(f"  error: {e['file']}{obj}: {e['reason']}")
    return "\n".join(lines) + "\n"
