"""One coordination.k8s.io/v1 Lease, read and written as plain dicts.

Place in the flow: `runtime.leaderelection.LeaderElector` decides; this
store only gets, creates and updates the Lease through `rest.RestClient`.
Optimistic concurrency is the API server's: a create of an existing Lease,
or an update from an old resourceVersion, raises `errors.Conflict`.

What this module does NOT do: decide who leads, or retry.
"""

from __future__ import annotations

from typing import Any

from helm_operator.kube.errors import NotFound
from helm_operator.kube.rest import RestClient, api_path

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"


class LeaseStore:
    """Get/create/update one Lease."""

    def __init__(self, rest: RestClient, namespace: str, name: str) -> None:
        self.rest = rest
        self.namespace = namespace
        self.name = name

    def _body(self, spec: dict[str, Any], resource_version: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Lease", "metadata": meta, "spec": spec}

    async def get(self) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await self.rest.request(
                f"get Lease {self.namespace}/{self.name}", "GET",
                api_path(GROUP, VERSION, PLURAL, self.namespace, self.name))
        except NotFound:
            return None
        return lease

    async def create(self, spec: dict[str, Any]) -> None:
        await self.rest.request(f"create Lease {self.namespace}/{self.name}", "POST",
                                api_path(GROUP, VERSION, PLURAL, self.namespace), body=self._body(spec))

    async def update(self, resource_version: str, spec: dict[str, Any]) -> None:
        await self.rest.request(f"update Lease {self.namespace}/{self.name}", "PUT",
                                api_path(GROUP, VERSION, PLURAL, self.namespace, self.name),
                                body=self._body(spec, resource_version))
