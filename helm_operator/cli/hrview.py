"""What the release commands read in a HelmRelease object: its summary for
`get`, its history for `history`, the request token `reconcile` writes, and
whether a request has been answered. Pure: objects in, rows and verdicts out.

Place in the flow: `cli/release.py` reads objects from the API server and
hands them here; nothing here talks to the cluster or prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from helm_operator.api.conditions import get_condition
from helm_operator.api.controls import FORCE_AT, REQUESTED_AT, RESET_AT

SUSPENDED = "Suspended"
RECONCILING = "Reconciling"
GET_COLUMNS = ("NAME", "READY", "PHASE", "REVISION", "SUSPENDED", "FAILURES", "MESSAGE")
HISTORY_COLUMNS = ("REVISION", "ACTION", "STATUS", "CHART", "APP VERSION", "TESTS", "DIGEST", "DEPLOYED")


def request_token(now_ns: int | None = None) -> str:
    """The token Flux v2's CLI writes: the time, RFC 3339 with nanoseconds (Go's RFC3339Nano), in UTC."""
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}{'.' + digits if digits else ''}Z"


def request_annotations(token: str, force: bool, reset: bool) -> dict[str, str]:
    """The `reconcile.fluxcd.io/*` annotations one `reconcile` writes."""
    out = {REQUESTED_AT: token}
    if force:
        out[FORCE_AT] = token
    if reset:
        out[RESET_AT] = token
    return out


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def key(obj: dict[str, Any]) -> str:
    return f"{_meta(obj).get('namespace', '')}/{_meta(obj).get('name', '')}"


def summary(obj: dict[str, Any]) -> dict[str, Any]:
    """One HelmRelease as `get -o json` shows it: what `kubectl get hr -o yaml` holds, flattened."""
    meta, spec, st = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ready = get_condition(st.get("conditions"), "Ready") or {}
    suspended_cond = get_condition(st.get("conditions"), SUSPENDED)
    out: dict[str, Any] = {
        "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
        "ready": ready.get("status", "Unknown"), "reason": ready.get("reason", ""),
        "message": ready.get("message", "") or _not_reconciled(obj),
        "phase": st.get("phase", ""), "revision": st.get("revision", ""),
        "releaseName": st.get("releaseName", ""), "releaseStatus": st.get("releaseStatus", ""),
        "suspended": bool(spec.get("suspend")), "failures": int(st.get("failures") or 0),
        "rollbackCount": int(st.get("rollbackCount") or 0),
        "generation": meta.get("generation"), "observedGeneration": st.get("observedGeneration"),
    }
    if suspended_cond is not None:
        out["suspendedMessage"] = suspended_cond.get("message", "")
    for field in ("lastHandledReconcileAt", "lastHandledForceAt", "lastHandledResetAt"):
        if st.get(field):
            out[field] = st[field]
    return out


def _not_reconciled(obj: dict[str, Any]) -> str:
    return "" if obj.get("status") else "not reconciled yet: is the operator running?"


def short_revision(revision: str) -> str:
    """A Git commit SHA shortened as git does (12); chart versions as they are."""
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision[:12]
    return revision


def get_row(s: dict[str, Any], all_namespaces: bool) -> list[str]:
    row = [s["name"], s["ready"], s["phase"] or "-", short_revision(s["revision"]) or "-",
           str(s["suspended"]).lower(), str(s["failures"]), s["message"] or "-"]
    return [s["namespace"], *row] if all_namespaces else row


def history_rows(obj: dict[str, Any]) -> list[list[str]]:
    rows = []
    for entry in (obj.get("status") or {}).get("history") or ():
        if not isinstance(entry, dict):
            continue
        chart = "-".join(x for x in (str(entry.get("chartName") or ""), str(entry.get("chartVersion") or "")) if x)
        rows.append([str(entry.get("revision", "")), str(entry.get("action", "")), str(entry.get("status", "")),
                     chart or "-", str(entry.get("appVersion") or "-"), str(entry.get("testResult") or "-"),
                     str(entry.get("configDigest") or "")[:12] or "-", str(entry.get("lastDeployed") or "-")])
    return rows


@dataclass(frozen=True)
class Verdict:
    """How a request ended: Ready or not, and the Ready condition's words."""

    ok: bool
    ready: str      # True, False, Unknown
    reason: str
    message: str
    revision: str
    forced: bool = False  # the forced upgrade ran (lastHandledForceAt is the token)


def _verdict(obj: dict[str, Any], forced: bool = False) -> Verdict:
    st = obj.get("status") or {}
    ready = get_condition(st.get("conditions"), "Ready") or {}
    status = str(ready.get("status", "Unknown"))
    return Verdict(status == "True", status, str(ready.get("reason", "")), str(ready.get("message", "")),
                   str(st.get("revision", "")), forced)


def _busy(st: dict[str, Any]) -> bool:
    return (get_condition(st.get("conditions"), RECONCILING) or {}).get("status") == "True"


def reconcile_answer(obj: dict[str, Any], token: str, reset: bool) -> Verdict | None:
    """The answer to the request `token`, once the operator echoed it; None while it has not."""
    st = obj.get("status") or {}
    if st.get("lastHandledReconcileAt") != token or _busy(st):
        return None
    if reset and st.get("lastHandledResetAt") != token:
        return None
    return _verdict(obj, forced=st.get("lastHandledForceAt") == token)


def resume_answer(obj: dict[str, Any], generation: int) -> Verdict | None:
    """The release's state once the resumed spec (`generation`) was reconciled; None before."""
    st = obj.get("status") or {}
    if st.get("observedGeneration") != generation or _busy(st):
        return None
    if get_condition(st.get("conditions"), SUSPENDED) is not None:
        return None
    ready = get_condition(st.get("conditions"), "Ready") or {}
    if ready.get("status") not in ("True", "False"):
        return None
    return _verdict(obj)
