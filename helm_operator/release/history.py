"""`status.history`: the revisions this operator made, newest first. Pure.

Place in the flow: `record` writes a snapshot after each action that made
or changed a revision (install, upgrade, test, rollback, recovery);
`state.determine` reads the newest one to know what the operator itself did
last (a rollback it made, tests it ran), which helm's storage cannot tell:
a rollback by hand and one by the operator look the same there. So
`kubectl get hr -o yaml` answers "what happened" without helm.

What this module does NOT do: it reads no cluster and decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from helm_operator.helm.storage import ReleaseRecord

DEFAULT_LIMIT = 5


@dataclass(frozen=True)
class Snapshot:
    """One revision as the operator recorded it."""

    revision: int
    action: str                       # install, upgrade, rollback, recover, test
    config_digest: str = ""
    status: str = ""                  # helm's status when recorded
    chart_name: str = ""
    chart_version: str = ""
    app_version: str = ""
    test_result: str | None = None    # passed, failed, or None (not run)
    first_deployed: str = ""
    last_deployed: str = ""

    def to_status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "revision": self.revision, "action": self.action, "configDigest": self.config_digest,
            "status": self.status, "chartName": self.chart_name, "chartVersion": self.chart_version,
            "appVersion": self.app_version, "firstDeployed": self.first_deployed,
            "lastDeployed": self.last_deployed,
        }
        if self.test_result is not None:
            doc["testResult"] = self.test_result
        return {k: v for k, v in doc.items() if v not in ("", None)}

    @classmethod
    def from_status(cls, doc: Mapping[str, Any]) -> Snapshot | None:
        try:
            return cls(
                revision=int(doc.get("revision") or 0), action=str(doc.get("action") or ""),
                config_digest=str(doc.get("configDigest") or ""), status=str(doc.get("status") or ""),
                chart_name=str(doc.get("chartName") or ""), chart_version=str(doc.get("chartVersion") or ""),
                app_version=str(doc.get("appVersion") or ""),
                test_result=doc.get("testResult") if doc.get("testResult") in ("passed", "failed") else None,
                first_deployed=str(doc.get("firstDeployed") or ""),
                last_deployed=str(doc.get("lastDeployed") or ""),
            )
        except (TypeError, ValueError, AttributeError):
            return None

    @classmethod
    def of(cls, record: ReleaseRecord, action: str, config_digest: str = "") -> Snapshot:
        return cls(revision=record.revision, action=action, config_digest=config_digest,
                   status=record.status, chart_name=record.chart_name, chart_version=record.chart_version,
                   app_version=record.app_version, first_deployed=record.first_deployed,
                   last_deployed=record.last_deployed)


def read_history(status: Mapping[str, Any]) -> list[Snapshot]:
    """The snapshots in a HelmRelease status, newest first (malformed entries skipped)."""
    out = []
    for doc in status.get("history") or ():
        if isinstance(doc, Mapping):
            snap = Snapshot.from_status(doc)
            if snap is not None:
                out.append(snap)
    return out


def head(status: Mapping[str, Any]) -> Snapshot | None:
    history = read_history(status)
    return history[0] if history else None


def with_snapshot(history: Sequence[Snapshot], snap: Snapshot, limit: int = DEFAULT_LIMIT) -> list[Snapshot]:
    """`snap` first, replacing the entry of the same revision; older entries kept up to `limit`.

    A snapshot of a revision already in the list (a test result, a status
    change) keeps the fields it does not know from the older entry. One
    deployed at another time is a new revision that reuses the number (an
    install after an uninstall starts at 1 again): it keeps nothing, least
    of all the old revision's test result.
    """
    merged = snap
    rest = []
    for old in history:
        if old.revision == snap.revision and old.last_deployed and snap.last_deployed \
                and old.last_deployed != snap.last_deployed:
            continue
        if old.revision == snap.revision:
            merged = replace(old, **{k: v for k, v in snap.__dict__.items()
                                     if v not in ("", None) and k != "revision"})
        else:
            rest.append(old)
    return [merged, *rest][:max(1, limit)]


def with_statuses(history: Sequence[Snapshot], statuses: Mapping[int, str]) -> list[Snapshot]:
    """Entries' helm status brought up to date from storage (e.g. deployed -> superseded)."""
    return [replace(s, status=statuses[s.revision]) if s.revision in statuses and statuses[s.revision] != s.status
            else s for s in history]


def history_limit(max_history: int) -> int:
    """At most 5 entries, and no more than the release's maxHistory (0 = unlimited)."""
    return DEFAULT_LIMIT if max_history <= 0 else min(DEFAULT_LIMIT, max_history)
