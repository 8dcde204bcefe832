"""Which HelmRelease owns a release: the antecedent annotation on its objects.

Every object of a release carries `helm.fluxcd.io/antecedent:
<ns>:helmrelease/<name>`. A release whose objects name another HelmRelease is
refused; one whose objects name none (installed by hand) is adopted. The
annotation normally arrives with the objects: helm's post-renderer writes it
into the manifest (`helm.postrender`). After a deploy, only objects whose
manifest document lacks it (a chart writing flow-style YAML, a revision made
without the post-renderer) are stamped with a PATCH each. The manifest comes
from helm's own output or its release storage, never from `helm get`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import yaml

from helm_operator.api.constants import ANTECEDENT_ANNOTATION
from helm_operator.kube import KubeError, NotFound, ObjectRef
from helm_operator.kube.apply import ClusterApi

log = logging.getLogger(__name__)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # helm's own output: libyaml is safe and fast


def _documents(manifest: str, release_namespace: str) -> list[tuple[ObjectRef, dict[str, Any]]]:
    """Each object a release manifest names (namespace defaulted to the release's), with its metadata."""
    out: list[tuple[ObjectRef, dict[str, Any]]] = []
    for doc in yaml.load_all(manifest, Loader=_LOADER):
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            continue
        meta = doc.get("metadata") or {}
        if not isinstance(meta, dict) or not meta.get("name"):
            continue
        out.append((ObjectRef(doc["apiVersion"], doc["kind"], meta["name"],
                              meta.get("namespace") or release_namespace), meta))
    return out


def manifest_objects(manifest: str, release_namespace: str) -> list[ObjectRef]:
    """The objects a release manifest names (namespace defaulted to the release's)."""
    return [ref for ref, _ in _documents(manifest, release_namespace)]


def unstamped(manifest: str, release_namespace: str, antecedent: str) -> list[ObjectRef]:
    """The objects whose manifest document does not carry `antecedent`: helm applied them
    without it, so they need a PATCH to be marked as this HelmRelease's."""
    return [ref for ref, meta in _documents(manifest, release_namespace)
            if ((meta.get("annotations") or {}).get(ANTECEDENT_ANNOTATION)) != antecedent]


async def foreign_owner(api: ClusterApi, objects: list[ObjectRef], antecedent: str) -> str | None:
    """The antecedent of another HelmRelease found on the release's objects, if any."""
    for ref in objects[:5]:
        try:
            rt = await api.resource_type(ref.api_version, ref.kind)
            live = await api.get(rt, ref.namespace if rt.namespaced else None, ref.name) if rt else None
        except KubeError:
            continue
        if not live:
            continue
        owner = ((live.get("metadata") or {}).get("annotations") or {}).get(ANTECEDENT_ANNOTATION)
        if owner and owner != antecedent:
            return str(owner)
    return None


async def stamp(api: ClusterApi, objects: list[ObjectRef], antecedent: str) -> None:
    """Put the antecedent annotation on every object of the release (one merge patch each, at once)."""
    patch = {"metadata": {"annotations": {ANTECEDENT_ANNOTATION: antecedent}}}

    async def one(ref: ObjectRef) -> None:
        try:
            rt = await api.resource_type(ref.api_version, ref.kind)
            if rt is not None:
                await api.merge_patch(rt, ref.namespace if rt.namespaced else None, ref.name, patch)
        except NotFound:
            pass
        except KubeError as e:
            log.warning("could not annotate %s with its antecedent: %s", ref, e)

    await asyncio.gather(*(one(ref) for ref in objects))
