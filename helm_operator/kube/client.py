"""Kubernetes API access for the operator: HelmReleases, their status and
finalizers, the ConfigMaps and Secrets values come from, events, and the
annotations put on a release's objects.

Blocking client calls run in threads. Objects of any kind (a release's
resources) go through `apply.ClusterApi` and its shared discovery. This
module decides nothing: it reads and writes what it is told.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from helm_operator.api.constants import GROUP, PLURAL, VERSION
from helm_operator.redaction import redact_text

log = logging.getLogger(__name__)


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the call and object (URL credentials removed)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact_text(message))
        self.status = status


class NotFound(KubeError):
    """The object asked for does not exist."""


@dataclass(frozen=True)
class ObjectRef:
    """Enough to find one object of any kind."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


def _translate(what: str, e: Exception) -> KubeError:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None) or str(e)
    body = getattr(e, "body", None)
    message = f"{what}: {status or ''} {reason}".strip()
    if body:
        try:
            message = f"{what}: {json.loads(body).get('message', reason)}"
        except (ValueError, TypeError, AttributeError):
            pass
    cls = NotFound if status == 404 else KubeError
    return cls(message, status)


def load_api_client(kubeconfig: Path | None = None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, $KUBECONFIG, or in-cluster config."""
    cfg = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    return client.ApiClient(cfg)


class KubeConfigError(KubeError):
    """No usable kubeconfig (missing file, unknown context, no cluster to reach)."""


def load_cli_client(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for a command run by a person, found as kubectl finds it.

    `--kubeconfig`, else $KUBECONFIG (a list of files is merged), else
    ~/.kube/config, else the in-cluster config; `context` picks a context
    other than the current one. Failures say what is missing and how to fix it.
    """
    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    default = Path("~/.kube/config").expanduser()
    if kubeconfig is not None and not kubeconfig.is_file():
        raise KubeConfigError(f"kubeconfig {kubeconfig} not found: pass an existing file with --kubeconfig")
    if kubeconfig is None and path is not None and not any(Path(p).expanduser().is_file()
                                                         for p in str(path).split(os.pathsep) if p):
        raise KubeConfigError(f"$KUBECONFIG names {path}, which does not exist: fix $KUBECONFIG or pass "
                              "--kubeconfig")
    if path is None and not default.is_file():
        try:
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        except config.ConfigException:
            raise KubeConfigError("no kubeconfig: pass --kubeconfig, set $KUBECONFIG or create "
                                  f"{default}") from None
    try:
        config.load_kube_config(config_file=str(path) if path else None, context=context,
                                client_configuration=cfg)
    except (config.ConfigException, OSError, ValueError, TypeError) as e:
        where = path or str(default)
        if context and f"name {context}" in str(e):
            raise KubeConfigError(f"context {context!r} is not in kubeconfig {where}: pick one of "
                                  "kubectl config get-contexts") from None
        raise KubeConfigError(f"kubeconfig {where} cannot be used ({e}); check it with kubectl config view") from None
    return client.ApiClient(cfg)


class Kube:
    """Async facade over the Kubernetes API for the roles of this project."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None) -> "Kube":
        return cls(load_api_client(kubeconfig))

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as e:
            raise _translate(what, e) from e

    # ---- HelmReleases --------------------------------------------------
    async def get_helmrelease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(
                f"get HelmRelease {namespace}/{name}",
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
            )
        except NotFound:
            return None

    async def list_helmreleases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace:
            result = await self._call(
                f"list HelmReleases in {namespace}",
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
            )
        else:
            result = await self._call(
                "list HelmReleases", self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
            )
        return list(result.get("items", []))

    async def patch_helmrelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource, URL credentials removed from every message in it;
        returns the object the API server stored."""
        return await self._call(
            f"update status of HelmRelease {namespace}/{name}",
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, PLURAL, name, {"status": _redacted_status(status)},
        )

    async def patch_helmrelease_metadata(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch metadata (finalizers, annotations) of a HelmRelease."""
        return await self._call(
            f"patch HelmRelease {namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": patch},
        )

    async def patch_helmrelease(self, namespace: str, name: str, patch: dict[str, Any],
                                field_manager: str | None = None) -> dict[str, Any]:
        """Merge-patch a HelmRelease (spec, metadata); returns the object the API server stored."""
        kwargs = {"field_manager": field_manager} if field_manager else {}
        return await self._call(
            f"patch HelmRelease {namespace}/{name}",
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch, **kwargs,
        )

    # ---- values sources ----------------------------------------------
    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        cm = await self._call(f"get ConfigMap {namespace}/{name}",
                              self.core.read_namespaced_config_map, name, namespace)
        return dict(cm.data or {})

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Secret data decoded to text. Callers must never log the values."""
        secret = await self._call(f"get Secret {namespace}/{name}",
                                  self.core.read_namespaced_secret, name, namespace)
        out: dict[str, str] = {}
        for k, v in (secret.data or {}).items():
            out[k] = base64.b64decode(v).decode("utf-8", errors="replace")
        for k, v in (secret.string_data or {}).items():
            out[k] = v
        return out

    async def get_secret_raw(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data as the API returns it (base64), for helm's release records."""
        secret = await self._call(f"get Secret {namespace}/{name}",
                                  self.core.read_namespaced_secret, name, namespace)
        return dict(secret.data or {})

    async def list_metadata(self, version: str, plural: str, namespace: str | None = None,
                            label_selector: str | None = None, group: str = "") -> list[dict[str, Any]]:
        """Objects' metadata only (PartialObjectMetadataList): no data, no spec."""
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        query = [("labelSelector", label_selector)] if label_selector else []
        what = f"list {plural}" + (f" in {namespace}" if namespace else "") + (
            f" ({label_selector})" if label_selector else "")

        def call() -> list[dict[str, Any]]:
            params = self.api_client.param_serialize(
                method="GET", resource_path=path, query_params=query,
                header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
                auth_settings=["BearerToken"])
            response = self.api_client.call_api(*params, _request_timeout=(10.0, 60.0))
            data = response.read()
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason, http_resp=None)
            return list(json.loads(data).get("items") or [])

        return await self._call(what, call)

    # ---- events ----------------------------------------------------------
    async def emit_event(self, involved: dict[str, Any], event_type: str, reason: str,
                         message: str, component: str = "helm-operator") -> None:
        """Record a core/v1 Event on `involved` (an object dict). Never raises.

        URL credentials are removed from `message` (defence in depth: callers
        build messages from redacted URLs already).
        """
        message = redact_text(message)
        meta = involved.get("metadata", {})
        now = dt.datetime.now(dt.timezone.utc)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'object')}.",
                                         namespace=meta.get("namespace", "default")),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"), kind=involved.get("kind"),
                name=meta.get("name"), namespace=meta.get("namespace"), uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=reason, message=message[:1024], type=event_type,
            first_timestamp=now, last_timestamp=now, count=1,
            source=client.V1EventSource(component=component),
            reporting_component=component, reporting_instance=component,
        )
        try:
            await self._call("create Event", self.core.create_namespaced_event,
                             meta.get("namespace", "default"), body)
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


class LeaseConflict(KubeError):
    """Someone else wrote the Lease first (optimistic concurrency)."""


class LeaseStore:
    """Get/create/update one coordination.k8s.io/v1 Lease, as plain dicts."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self._api = client.CoordinationV1Api(kube.api_client)
        self._kube = kube
        self.namespace = namespace
        self.name = name

    async def get(self) -> dict[str, Any] | None:
        try:
            lease = await self._kube._call(f"get Lease {self.namespace}/{self.name}",
                                           self._api.read_namespaced_lease, self.name, self.namespace)
        except NotFound:
            return None
        return self._kube.api_client.sanitize_for_serialization(lease)

    async def create(self, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        try:
            await self._kube._call(f"create Lease {self.namespace}/{self.name}",
                                   self._api.create_namespaced_lease, self.namespace, body)
        except KubeError as e:
            if e.status == 409:
                raise LeaseConflict(str(e), 409) from e
            raise

    async def update(self, resource_version: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": resource_version}, "spec": spec}
        try:
            await self._kube._call(f"update Lease {self.namespace}/{self.name}",
                                   self._api.replace_namespaced_lease, self.name, self.namespace, body)
        except KubeError as e:
            if e.status == 409:
                raise LeaseConflict(str(e), 409) from e
            raise
