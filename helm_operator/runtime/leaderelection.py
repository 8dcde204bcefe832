"""Leader election on a coordination.k8s.io Lease, so that with several
replicas exactly one operator acts and the others wait.

The holder renews the Lease every `renew_interval`; a candidate takes it
over once `renewTime + leaseDurationSeconds` has passed. A leader that cannot
renew before the lease would expire stops acting (`lost` is set) — the
process then exits and restarts, as client-go's leader election does, so two
replicas never act at once. Lease reads and writes go through
`kube.lease.LeaseStore`; this module only decides.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from typing import Any

from helm_operator.kube.errors import KubeError
from helm_operator.kube.lease import LeaseStore

log = logging.getLogger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    """Acquire, hold and renew one Lease."""

    def __init__(self, store: LeaseStore, identity: str, lease_duration: float = 15.0,
                 renew_interval: float = 5.0, retry_interval: float = 2.0) -> None:
        self.store = store
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self.lost = asyncio.Event()
        self.holder: str | None = None  # who held the Lease when last read (readiness says so)
        self._last_renew = 0.0

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": acquire_time, "renewTime": _fmt(_now()), "leaseTransitions": transitions}

    async def _try_acquire_or_renew(self) -> bool:
        lease = await self.store.get()
        if lease is None:
            await self.store.create(self._spec(_fmt(_now()), 0))
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        transitions = int(spec.get("leaseTransitions") or 0)
        self.holder = holder
        if holder == self.identity:
            await self.store.update(lease["metadata"]["resourceVersion"],
                                    self._spec(spec.get("acquireTime") or _fmt(_now()), transitions))
            return True
        expired = renewed is None or _now() > renewed + dt.timedelta(seconds=duration)
        if holder and not expired:
            return False
        log.info("leader election: lease %s/%s held by %s has expired; taking it over",
                 self.store.namespace, self.store.name, holder or "nobody")
        await self.store.update(lease["metadata"]["resourceVersion"], self._spec(_fmt(_now()), transitions + 1))
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the Lease."""
        log.info("leader election: waiting to acquire lease %s/%s as %s",
                 self.store.namespace, self.store.name, self.identity)
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await self._try_acquire_or_renew():
                    self._last_renew = loop.time()
                    log.info("leader election: acquired lease %s/%s; this replica now acts",
                             self.store.namespace, self.store.name)
                    return
            except KubeError as e:  # Conflict: another replica wrote first
                log.debug("leader election: %s", e)
            await asyncio.sleep(self.retry_interval)

    async def release(self) -> None:
        """Give the Lease up now (at shutdown), so a standby takes over without waiting for it to expire."""
        try:
            lease = await self.store.get()
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            await self.store.update(lease["metadata"]["resourceVersion"], {
                **spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _fmt(_now())})
            log.info("leader election: released lease %s/%s", self.store.namespace, self.store.name)
        except KubeError as e:
            log.warning("leader election: releasing the lease failed (it expires on its own): %s", e)

    async def hold(self) -> None:
        """Renew until stopped; set `lost` if the lease could not be renewed in time."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.renew_interval)
            try:
                if await self._try_acquire_or_renew():
                    self._last_renew = loop.time()
                    continue
                log.error("leader election: another replica took the lease")
            except KubeError as e:  # Conflict: another replica wrote first
                log.warning("leader election: renewing failed: %s", e)
                if loop.time() - self._last_renew < self.lease_duration - self.renew_interval:
                    continue
            self.lost.set()
            return
