"""Helm's release storage, read without the helm binary. Pure.

Helm keeps one Secret per revision, type `helm.sh/release.v1`, named
`sh.helm.release.v1.<release>.v<revision>`, labelled `owner=helm`,
`name=<release>`, `version=<revision>`, `status=<status>`; its `release` data
is base64 (helm's) of gzip of the release as JSON. Custom labels given with
`helm upgrade --labels` are merged onto every later revision (a hand
`helm upgrade` keeps ours) and copied by a rollback from its target.

So the operator labels each revision it makes with `ATTEMPT_LABEL:
<revision>.<config digest>`: a revision is ours, with that configuration,
exactly when the label names its own revision number. Decisions need only
Secret metadata (a cheap metadata-only watch); the record itself (manifest,
description, test hooks) is decoded only when an action or a report needs it.

What this module does NOT do: it does no I/O (the `kube` adapter reads the
Secrets, `release/observe` keeps the index) and never returns values, except
`decode_release_json`, which `helm-operator diff` alone uses.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

STORAGE_SECRET_TYPE = "helm.sh/release.v1"
OWNER_SELECTOR = "owner=helm"
ATTEMPT_LABEL = "helm.fluxcd.io/attempt"
OWNER_LABEL = "helm.fluxcd.io/owner"
MAX_DIGEST_IN_LABEL = 40          # label values are at most 63 characters
MAX_RECORD_BYTES = 64 * 1024 * 1024  # decompressed; helm's own Secrets are at most 1 MiB compressed

PENDING_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})
DEPLOYED_STATUSES = frozenset({"deployed", "superseded"})


class StorageDecodeError(Exception):
    """A release Secret could not be decoded (corrupt, or not helm's format)."""


@dataclass(frozen=True, order=True)
class RevisionMeta:
    """One revision as its Secret's labels tell it (no decoding)."""

    revision: int
    status: str
    attempt_revision: int | None = None   # from ATTEMPT_LABEL
    attempt_digest: str | None = None
    owner: str | None = None              # from OWNER_LABEL
    secret: str = field(default="", compare=False)
    modified_at: int | None = field(default=None, compare=False)  # helm's modifiedAt/createdAt (epoch s)

    @property
    def ours(self) -> bool:
        """Made by this operator (the attempt label names this very revision)."""
        return self.attempt_revision == self.revision

    @property
    def digest(self) -> str | None:
        """The configuration digest this revision applied, when it is ours."""
        return self.attempt_digest if self.ours else None

    def matches(self, digest: str) -> bool:
        """Whether this revision is ours and applied `digest`."""
        return self.ours and self.attempt_digest is not None and digest.startswith(self.attempt_digest)


def secret_name(release: str, revision: int) -> str:
    """The name helm gives a revision's Secret."""
    return f"sh.helm.release.v1.{release}.v{revision}"


def attempt_label(revision: int, digest: str) -> str:
    """The ATTEMPT_LABEL value for the revision about to be made."""
    return f"{revision}.{digest[:MAX_DIGEST_IN_LABEL]}"


def owner_label(namespace: str, name: str) -> str:
    """The OWNER_LABEL value: `<ns>.<name>` (namespaces hold no dots), hashed when too long."""
    value = f"{namespace}.{name}"
    if len(value) <= 63:
        return value
    import hashlib

    return "h." + hashlib.sha256(value.encode()).hexdigest()[:40]


def parse_owner(value: str) -> tuple[str, str] | None:
    """(namespace, name) from an OWNER_LABEL value; None when hashed or malformed."""
    if value.startswith("h."):
        return None
    ns, sep, name = value.partition(".")
    return (ns, name) if sep and ns and name else None


def revision_meta(metadata: dict[str, Any]) -> tuple[str, RevisionMeta] | None:
    """(release name, revision) from a storage Secret's metadata; None if not helm's."""
    labels = metadata.get("labels") or {}
    if labels.get("owner") != "helm" or "name" not in labels:
        return None
    try:
        revision = int(labels.get("version", ""))
    except ValueError:
        return None
    attempt_rev: int | None = None
    attempt_digest: str | None = None
    attempt = labels.get(ATTEMPT_LABEL)
    if attempt:
        rev_text, _, digest = attempt.partition(".")
        if rev_text.isdigit() and digest:
            attempt_rev, attempt_digest = int(rev_text), digest
    modified = labels.get("modifiedAt") or labels.get("createdAt") or ""  # helm writes createdAt on create
    return labels["name"], RevisionMeta(
        revision=revision, status=labels.get("status", "unknown"), attempt_revision=attempt_rev,
        attempt_digest=attempt_digest, owner=labels.get(OWNER_LABEL), secret=metadata.get("name", ""),
        modified_at=int(modified) if modified.isdigit() else None,
    )


@dataclass(frozen=True)
class TestHook:
    """One test hook of a revision and the phase of its last run."""

    __test__ = False  # not a pytest test class

    name: str
    phase: str  # "", "Running", "Succeeded", "Failed"


@dataclass(frozen=True)
class ReleaseRecord:
    """What the operator reads from a decoded revision (never its values)."""

    name: str
    namespace: str
    revision: int
    status: str
    description: str
    chart_name: str
    chart_version: str
    app_version: str
    first_deployed: str
    last_deployed: str
    manifest: str
    test_hooks: tuple[TestHook, ...] = ()

    @property
    def test_result(self) -> str | None:
        """"passed", "failed", or None when the tests never ran on this revision."""
        phases = [h.phase for h in self.test_hooks if h.phase]
        if not phases:
            return None
        return "failed" if any(p == "Failed" for p in phases) else "passed"


def decode_release(data: str | bytes, max_bytes: int = MAX_RECORD_BYTES) -> ReleaseRecord:
    """Decode a storage Secret's `release` value as the API returns it (see `decode_release_json`)."""
    return record_from_json(decode_release_json(data, max_bytes))


def decode_release_json(data: str | bytes, max_bytes: int = MAX_RECORD_BYTES) -> dict[str, Any]:
    """The whole release document helm stored, values (`config`) included: only for
    `helm-operator diff`, which compares them and masks what came from Secrets.

    The API's base64 wraps helm's base64, which wraps gzip (helm also
    accepts a plain JSON payload). Decompression stops at `max_bytes`.
    """
    try:
        raw = base64.b64decode(data, validate=False)
        payload = base64.b64decode(raw, validate=False)
    except (ValueError, TypeError) as e:
        raise StorageDecodeError(f"not base64: {e}") from e
    if payload[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            payload = inflater.decompress(payload, max_bytes)
            if inflater.unconsumed_tail:
                raise StorageDecodeError(f"release record is larger than {max_bytes} bytes")
        except (zlib.error, gzip.BadGzipFile) as e:
            raise StorageDecodeError(f"not gzip: {e}") from e
    try:
        doc = json.loads(payload)
    except ValueError as e:
        raise StorageDecodeError(f"not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise StorageDecodeError("release record is not a JSON object")
    return doc


def record_from_json(doc: dict[str, Any]) -> ReleaseRecord:
    """A ReleaseRecord from helm's release JSON (storage or `-o json` output)."""
    info = doc.get("info") or {}
    meta = (doc.get("chart") or {}).get("metadata") or {}
    hooks = []
    for hook in doc.get("hooks") or ():
        if "test" in (hook.get("events") or ()):
            hooks.append(TestHook(str(hook.get("name", "")), str((hook.get("last_run") or {}).get("phase", ""))))
    return ReleaseRecord(
        name=str(doc.get("name", "")), namespace=str(doc.get("namespace", "")),
        revision=int(doc.get("version") or 0), status=str(info.get("status", "unknown")),
        description=str(info.get("description", "")), chart_name=str(meta.get("name", "")),
        chart_version=str(meta.get("version", "")), app_version=str(meta.get("appVersion", "")),
        first_deployed=str(info.get("first_deployed", "")), last_deployed=str(info.get("last_deployed", "")),
        manifest=str(doc.get("manifest", "")), test_hooks=tuple(hooks),
    )
