"""What one sync pass will do: apply order, gc marks, the stale set (pure).

Place in the flow: after `manifests` has resolved the objects in Git and the
cluster has been asked for the objects this sync set marked earlier, this
module decides, without I/O:

- the apply order by kind rank (COMPAT 3, Flux v1's ``rankOfKind``), within a
  rank by namespace then name;
- the label and annotation stamped on each object: ``fluxcd.io/sync-gc-mark:
  sha256.<base64url(sha256(syncSetName + resourceID))>`` (unpadded, Go's
  ``base64.RawURLEncoding``, as Flux v1's ``makeGCMark``) and
  ``fluxcd.io/sync-checksum``;
- the stale set: live objects carrying exactly this sync set's mark for their
  ID, gone from Git, not ``ignore``/``sync_only``, not owned by another object,
  in reverse rank order. Garbage collection is blocked for the whole pass when
  any file failed to parse or a configured path is missing: such a file might
  define anything, so nothing can be proven stale.

What this module does NOT do: no API calls, no deletes; `apply` and `gc` act
on the plan.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from helm_operator.gitsync.manifests import Document, Manifest, Policy, policy_of, resource_id

GC_MARK_LABEL = "fluxcd.io/sync-gc-mark"
CHECKSUM_ANNOTATION = "fluxcd.io/sync-checksum"

_RANKS: dict[str, int] = {
    "namespace": 0,
    **dict.fromkeys(("customresourcedefinition", "serviceaccount", "clusterrole", "role",
                     "persistentvolume", "service"), 1),
    **dict.fromkeys(("resourcequota", "limitrange", "secret", "configmap", "rolebinding",
                     "clusterrolebinding", "persistentvolumeclaim", "ingress"), 2),
    **dict.fromkeys(("daemonset", "deployment", "replicationcontroller", "replicaset", "job",
                     "cronjob", "statefulset"), 3),
}
LAST_RANK = 4


def kind_rank(kind: str) -> int:
    """Apply rank of a kind: lower first; unknown kinds (HelmRelease, CRs) last."""
    return _RANKS.get(kind.lower(), LAST_RANK)


def gc_mark(sync_set: str, resource_id: str) -> str:
    """Flux v1's gc mark: ``sha256.`` + unpadded base64url of sha256(set + ID)."""
    digest = hashlib.sha256(sync_set.encode() + resource_id.encode()).digest()
    return "sha256." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def safe_url(url: str) -> str:
    """A Git URL without its password, scp-like ``user@host:path`` as ``ssh://``.

    Follows Flux v1's ``Remote.SafeURL`` so that sync set names match.
    """
    if "://" not in url:
        m = _SCP_LIKE.match(url)
        if m:
            user = f"{m['user']}@" if m["user"] else ""
            return f"ssh://{user}{m['host']}/{m['path']}"
        return url
    scheme, rest = url.split("://", 1)
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        authority = f"{userinfo.split(':', 1)[0]}@{host}"
    return f"{scheme}://{authority}{slash}{path}"


def default_sync_set_name(url: str, branch: str, paths: Sequence[str]) -> str:
    """Flux v1's sync set name (``makeGitConfigHash``): base64url(sha256(url+branch+paths))."""
    h = hashlib.sha256(safe_url(url).encode() + branch.encode())
    for p in paths:
        h.update(p.encode())
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def scopes_from_crds(documents: Iterable[Document]) -> dict[tuple[str, str], bool]:
    """(apiVersion, kind) -> namespaced, for the kinds CRDs in Git define."""
    out: dict[tuple[str, str], bool] = {}
    for doc in documents:
        if doc.kind != "CustomResourceDefinition":
            continue
        spec = doc.body.get("spec") or {}
        group, names = spec.get("group"), spec.get("names") or {}
        kind = names.get("kind") if isinstance(names, dict) else None
        if not (isinstance(group, str) and isinstance(kind, str)):
            continue
        namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        versions = [v.get("name") for v in spec.get("versions") or [] if isinstance(v, dict)]
        if spec.get("version"):
            versions.append(spec["version"])
        for v in versions:
            if isinstance(v, str):
                out[(f"{group}/{v}", kind)] = namespaced
    return out


def crd_for(doc: Document, documents: Iterable[Document]) -> str | None:
    """The name of the CRD in Git that defines `doc`'s kind, if any."""
    for d in documents:
        if d.kind != "CustomResourceDefinition":
            continue
        spec = d.body.get("spec") or {}
        names = spec.get("names") or {}
        if spec.get("group") == doc.group and isinstance(names, dict) and names.get("kind") == doc.kind:
            return d.name
    return None


def stamp(manifest: Manifest, sync_set: str) -> dict[str, Any]:
    """The body to apply: namespace made explicit, gc mark and checksum added."""
    body = copy.deepcopy(manifest.doc.body)
    meta = body.setdefault("metadata", {})
    if manifest.namespace is None:
        meta.pop("namespace", None)
    else:
        meta["namespace"] = manifest.namespace
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    meta["labels"] = {**labels, GC_MARK_LABEL: gc_mark(sync_set, manifest.resource_id)}
    meta["annotations"] = {**annotations, CHECKSUM_ANNOTATION: manifest.doc.checksum}
    return body


@dataclass(frozen=True)
class LiveObject:
    """An object in the cluster that carries a gc-mark label."""

    resource_id: str
    api_version: str
    kind: str
    name: str
    namespace: str | None
    mark: str
    checksum: str = ""
    policy: Policy = Policy.NONE
    owned: bool = False  # has ownerReferences: its owner decides its life


@dataclass(frozen=True)
class Kept:
    obj: LiveObject
    reason: str


@dataclass
class Plan:
    apply: list[Manifest] = field(default_factory=list)
    ignored: list[Manifest] = field(default_factory=list)  # `ignore` in Git
    stale: list[LiveObject] = field(default_factory=list)  # delete, reverse rank order
    kept: list[Kept] = field(default_factory=list)  # gone from Git but kept, with why
    gc_blocked: str = ""  # why no object may be deleted this pass


def _order(m: Manifest) -> tuple[int, str, str, str]:
    return (kind_rank(m.kind), m.namespace or "", m.kind, m.name)


def make_plan(
    manifests: Sequence[Manifest],
    *,
    sync_set: str,
    live: Sequence[LiveObject],
    protected_ids: Iterable[str] = (),
    failed_files: Sequence[str] = (),
) -> Plan:
    """Decide apply order and the stale set of one pass."""
    plan = Plan()
    for m in sorted(manifests, key=_order):
        (plan.ignored if m.doc.policy is Policy.IGNORE else plan.apply).append(m)
    if failed_files:
        plan.gc_blocked = (f"{len(failed_files)} file(s) could not be read completely "
                           f"({', '.join(failed_files)}); they might define any object, so "
                           "nothing is garbage-collected until they are fixed")
    in_git = {m.resource_id for m in manifests} | set(protected_ids)
    stale: list[LiveObject] = []
    for obj in live:
        if obj.mark != gc_mark(sync_set, obj.resource_id) or obj.resource_id in in_git:
            continue
        if obj.policy is Policy.IGNORE:
            plan.kept.append(Kept(obj, "annotated fluxcd.io/ignore in the cluster"))
        elif obj.policy is Policy.SYNC_ONLY:
            plan.kept.append(Kept(obj, "annotated fluxcd.io/ignore: sync_only"))
        elif obj.owned:
            plan.kept.append(Kept(obj, "has an owner; deleting the owner deletes it"))
        elif plan.gc_blocked:
            plan.kept.append(Kept(obj, "garbage collection blocked by unreadable files"))
        else:
            stale.append(obj)
    plan.stale = sorted(stale, key=lambda o: (-kind_rank(o.kind), o.namespace or "", o.kind, o.name))
    return plan


def live_object(obj: Mapping[str, Any], namespaced: bool) -> LiveObject:
    """A `LiveObject` from an object dict read from the cluster."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") if namespaced else None
    annotations = meta.get("annotations") or {}
    return LiveObject(
        resource_id=resource_id(ns, str(obj.get("kind", "")), str(meta.get("name", ""))),
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=ns,
        mark=str((meta.get("labels") or {}).get(GC_MARK_LABEL, "")),
        checksum=str(annotations.get(CHECKSUM_ANNOTATION, "")),
        policy=policy_of(annotations),
        owned=bool(meta.get("ownerReferences")),
    )
