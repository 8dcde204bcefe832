"""Kubernetes API access for the operator: HelmReleases, their status and
finalizers, the ConfigMaps and Secrets values come from, helm's release
Secrets, and events.

Place in the flow: the release engine (`release.*`), the operator's
assembly and image automation call `Kube`; it sends every request through
`rest.RestClient` as plain JSON, in a thread. Objects of any kind (a
release's resources) go through `Kube.cluster`, the process's one
`apply.ClusterApi` and its shared discovery. Failures are
`errors.KubeError` (404: `NotFound`, ...), naming the verb and the object.

This module decides nothing: it reads and writes what it is told, and never
logs values (Secret data, values).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from kubernetes import client

from helm_operator.api.constants import GROUP, PLURAL, VERSION
from helm_operator.kube.apply import ClusterApi, ObjectRef
from helm_operator.kube.errors import KubeConfigError, KubeError, NotFound
from helm_operator.kube.rest import MERGE_PATCH, RestClient, api_path, load_api_client
from helm_operator.redaction import redact_text

__all__ = ["Kube", "KubeConfigError", "KubeError", "NotFound", "ObjectRef", "load_api_client", "load_cli_client"]

log = logging.getLogger(__name__)

_META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def _hr_path(namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
    return api_path(GROUP, VERSION, PLURAL, namespace, name, subresource)


def load_cli_client(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for a command run by a person, found as kubectl finds it.

    `--kubeconfig`, else $KUBECONFIG (a list of files is merged), else
    ~/.kube/config, else the in-cluster config; `context` picks a context
    other than the current one. Failures (`KubeConfigError`) say what is
    missing and how to fix it.
    """
    return load_api_client(kubeconfig, context, in_cluster_first=False)


class Kube:
    """Async facade over the Kubernetes API for the roles of this project."""

    def __init__(self, api: client.ApiClient | RestClient) -> None:
        self.rest = api if isinstance(api, RestClient) else RestClient(api)
        self.api_client = self.rest.api_client  # for the watches
        self.cluster = ClusterApi(self.rest)  # objects of any kind, with the process's one discovery

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None, context: str | None = None) -> "Kube":
        return cls(RestClient.from_kubeconfig(kubeconfig, context=context))

    async def _request(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.rest.request(what, method, path, **kwargs)
        return result

    # ---- HelmReleases --------------------------------------------------
    async def get_helmrelease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._request(f"get HelmRelease {namespace}/{name}", "GET", _hr_path(namespace, name))
        except NotFound:
            return None

    async def list_helmreleases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        what = f"list HelmReleases in {namespace}" if namespace else "list HelmReleases"
        result = await self._request(what, "GET", _hr_path(namespace))
        return list(result.get("items", []))

    async def patch_helmrelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource, URL credentials removed from every message in it;
        returns the object the API server stored."""
        return await self._request(f"update status of HelmRelease {namespace}/{name}", "PATCH",
                                   _hr_path(namespace, name, "status"),
                                   body={"status": _redacted_status(status)}, content_type=MERGE_PATCH)

    async def patch_helmrelease_metadata(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch metadata (finalizers, annotations) of a HelmRelease."""
        return await self._request(f"patch HelmRelease {namespace}/{name}", "PATCH", _hr_path(namespace, name),
                                   body={"metadata": patch}, content_type=MERGE_PATCH)

    async def patch_helmrelease(self, namespace: str, name: str, patch: dict[str, Any],
                                field_manager: str | None = None) -> dict[str, Any]:
        """Merge-patch a HelmRelease (spec, metadata); returns the object the API server stored."""
        query = [("fieldManager", field_manager)] if field_manager else []
        return await self._request(f"patch HelmRelease {namespace}/{name}", "PATCH", _hr_path(namespace, name),
                                   body=patch, content_type=MERGE_PATCH, query=query)

    # ---- values sources ----------------------------------------------
    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        cm = await self._request(f"get ConfigMap {namespace}/{name}", "GET",
                                 api_path("", "v1", "configmaps", namespace, name))
        return dict(cm.get("data") or {})

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Secret data decoded to text. Callers must never log the values."""
        raw = await self.get_secret_raw(namespace, name)
        return {k: base64.b64decode(v).decode("utf-8", errors="replace") for k, v in raw.items()}

    async def get_secret_raw(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data as the API returns it (base64), for helm's release records."""
        secret = await self._request(f"get Secret {namespace}/{name}", "GET",
                                     api_path("", "v1", "secrets", namespace, name))
        return dict(secret.get("data") or {})

    async def list_metadata(self, version: str, plural: str, namespace: str | None = None,
                            label_selector: str | None = None, group: str = "") -> list[dict[str, Any]]:
        """Objects' metadata only (PartialObjectMetadataList): no data, no spec."""
        query = [("labelSelector", label_selector)] if label_selector else []
        what = f"list {plural}" + (f" in {namespace}" if namespace else "") + (
            f" ({label_selector})" if label_selector else "")
        result = await self._request(what, "GET", api_path(group, version, plural, namespace), query=query,
                                     accept=_META_LIST)
        return list(result.get("items") or [])

    # ---- events ----------------------------------------------------------
    async def emit_event(self, involved: dict[str, Any], event_type: str, reason: str,
                         message: str, component: str = "helm-operator") -> None:
        """Record a core/v1 Event on `involved` (an object dict). Never raises.

        URL credentials are removed from `message` (defence in depth: callers
        build messages from redacted URLs already).
        """
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace", "default")
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        reference = {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                     "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                     "resourceVersion": meta.get("resourceVersion")}
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {k: v for k, v in reference.items() if v is not None},
            "reason": reason, "message": redact_text(message)[:1024], "type": event_type,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": component},
            "reportingComponent": component, "reportingInstance": component,
        }
        try:
            await self._request("create Event", "POST", api_path("", "v1", "events", namespace), body=body)
        except KubeError as e:
            log.warning("could not record event %s on %s/%s: %s", reason,
                        meta.get("namespace"), meta.get("name"), e)


def _redacted_status(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with URL credentials removed from its strings and its conditions' strings."""
    out: dict[str, Any] = {}
    for key, value in status.items():
        if isinstance(value, str):
            value = redact_text(value)
        elif key == "conditions" and isinstance(value, list):
            value = [{k: redact_text(v) if isinstance(v, str) else v for k, v in c.items()}
                     if isinstance(c, dict) else c for c in value]
        out[key] = value
    return out
