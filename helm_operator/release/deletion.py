"""Deletion: the finalizer that makes a delete uninstall the release, also
when the operator was down; left alone when the release belongs to another
HelmRelease, when the HelmRelease is suspended, or when tenancy forbids it.

Place in the flow: the first branch of a reconcile, before anything else.
"""

from __future__ import annotations

import time
from typing import Any

from helm_operator.api.constants import FINALIZER, Phase
from helm_operator.api.helmrelease import HelmReleaseRef, InvalidSpec, parse
from helm_operator.kube import KubeError
from helm_operator.release import tenancy
from helm_operator.release.actions.uninstall import uninstall
from helm_operator.release.base import DONE, Result, log
from helm_operator.release.gather import GatherMixin
from helm_operator.release.record import Outcome
from helm_operator.release.state import retry_delay
from helm_operator.runtime.logs import fields, since_ms


class DeletionMixin(GatherMixin):
    async def _add_finalizer(self, ref: HelmReleaseRef) -> dict[str, Any]:
        finalizers = list(ref.finalizers) + [FINALIZER]
        obj = await self.kube.patch_helmrelease_metadata(
            ref.namespace, ref.name, {"finalizers": finalizers, "resourceVersion": ref.resource_version})
        self.store.update(obj)
        return obj

    async def _finalize(self, ref: HelmReleaseRef, obj: dict[str, Any]) -> Result:
        if not ref.has_finalizer:
            return DONE
        try:
            revisions = await self.storage.refresh(ref.target_namespace, ref.release_name)
        except KubeError as e:
            log.warning("reading release before uninstall failed: %s", e,
                        extra=fields(object=ref.key, action="uninstall", error=e))
            return Result(retry_delay(1))
        suspended = (obj.get("spec") or {}).get("suspend") is True
        if revisions and suspended:
            log.warning("deleted while suspended: leaving release %s installed", ref.release_name,
                        extra=fields(object=ref.key))
            await self.kube.emit_event(obj, "Normal", "ReleaseLeftInstalled",
                                       f"deleted while suspended (spec.suspend): release {ref.release_name} "
                                       "is left installed")
        elif revisions:
            owner = await self._foreign_owner(ref, revisions[0])
            refused = None if owner else await self._uninstall_refusal(ref)
            if owner:
                log.warning("deleted, but release %s belongs to %s: leaving it", ref.release_name, owner,
                            extra=fields(object=ref.key))
            elif refused:
                log.warning("deleted, but not uninstalling release %s: %s", ref.release_name, refused,
                            extra=fields(object=ref.key))
            else:
                started = time.monotonic()
                log.info("HelmRelease deleted: uninstalling %s", ref.release_name,
                         extra=fields(object=ref.key, action="uninstall", revision=revisions[0].revision))
                timeout = getattr(ref, "timeout", 300)
                try:
                    timeout = parse(obj, default_git_ref=self.default_git_ref, limits=self.yaml_limits).timeout
                except InvalidSpec:
                    pass
                result = await uninstall(self.helm, self.metrics, ref.release_name, ref.target_namespace, timeout,
                                         self._as(ref))
                if not result.ok:
                    log.warning("helm uninstall failed", extra=fields(
                        object=ref.key, action="uninstall", error=result.message,
                        duration_ms=since_ms(started, time.monotonic())))
                    await self.recorder.record(ref, obj, Outcome(Phase.FAILED,
                                                                 f"helm uninstall failed: {result.message}"))
                    return Result(retry_delay(1))
                log.info("uninstalled in %.1fs", time.monotonic() - started, extra=fields(
                    object=ref.key, action="uninstall", duration_ms=since_ms(started, time.monotonic())))
        self.metrics.forget_release(ref.target_namespace, ref.release_name)
        self.metrics.forget_object(ref.namespace, ref.name)
        remaining = [f for f in ref.finalizers if f != FINALIZER]
        try:
            stored = await self.kube.patch_helmrelease_metadata(
                ref.namespace, ref.name, {"finalizers": remaining, "resourceVersion": ref.resource_version})
            self.store.update(stored)
        except KubeError as e:
            log.warning("could not remove finalizer: %s", e, extra=fields(object=ref.key, error=e))
            return Result(retry_delay(1))
        self._forget(ref.key)
        return DONE

    async def _uninstall_refusal(self, ref: HelmReleaseRef) -> str | None:
        """Why deleting `ref` must not uninstall: outside its namespace under the policy, or
        its ServiceAccount is gone (a namespace being deleted; nothing could act as it)."""
        refused = tenancy.delete_refusal(ref, self.lockdown)
        account = tenancy.service_account(ref, self.lockdown)
        if refused is None and account is not None:
            rt = await self.cluster.resource_type("v1", "ServiceAccount")
            sa = await self.cluster.get(rt, ref.namespace, account) if rt else None
            if sa is None:
                refused = f"its ServiceAccount {ref.namespace}/{account} no longer exists"
        return refused
