"""What kind of failure a helm error message describes. Pure.

Place in the flow: `release/actions` classify helm's stderr after a failed
call, and `release/observe` classifies a failed revision's stored
description (helm replaces it with "Upgrade "x" failed: <error>"), so the
kind survives a restart. `release/state.determine` acts on the kind:
a configuration the API server rejected (schema, types, immutable fields,
removed API versions, admission webhooks, RBAC) is deterministic, so it is
never remediated by a rollback or an uninstall of a deployed release; a
failure while waiting, in hooks or in tests changed the cluster and is.

What this module does NOT do: it does not decide what to do about a kind.
"""

from __future__ import annotations

import re
from enum import StrEnum


class FailureKind(StrEnum):
    REJECTED = "Rejected"        # the API server refused the configuration; nothing to undo
    RENDER = "RenderFailed"      # the chart did not render (templates, values schema)
    TIMEOUT = "Timeout"          # resources did not become ready in time (--wait)
    HOOK = "HookFailed"          # a hook (pre/post install/upgrade, test) failed
    OTHER = "Failed"


_REJECTED = re.compile(
    r"failed to create typed patch object"          # server-side apply: wrong type / unknown field
    r"|\bis invalid: "                               # 422 Invalid
    r"|field is immutable"
    r"|\bno matches for kind\b|resource mapping not found"  # removed or unknown API version
    r"|\bunknown field\b"
    r"|admission webhook .* denied the request"
    r"|\bis forbidden: "                             # RBAC (also impersonated ServiceAccounts)
    r"|\bBadRequest\b|\bUnprocessable Entity\b"
    r"|error validating data",
    re.IGNORECASE,
)
_RENDER = re.compile(
    r"parse error|template: |execution error at|values don't meet the specifications of the schema"
    r"|error converting YAML to JSON|unable to build kubernetes objects from",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"context deadline exceeded|timed out waiting|\btimeout\b", re.IGNORECASE)
_HOOK = re.compile(r"\bhook\b|pre-install|post-install|pre-upgrade|post-upgrade|job failed", re.IGNORECASE)


def classify(message: str) -> FailureKind:
    """The kind of failure `message` (helm's error or a revision description) names."""
    if _REJECTED.search(message):
        return FailureKind.REJECTED
    if _RENDER.search(message):
        return FailureKind.RENDER
    if _HOOK.search(message):
        return FailureKind.HOOK
    if _TIMEOUT.search(message):
        return FailureKind.TIMEOUT
    return FailureKind.OTHER
