"""Carry out one decision: run its action (one helm call, `actions/`), record
the outcome (`record`), and leave helm's storage observed again.

Place in the flow: act -> record, called by the reconciler's converge loop,
which then decides again. Install and upgrade take helm's own report as the
next observation; a failed call, a rollback or an uninstall reads the
storage (one metadata LIST).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helm_operator.api.constants import Phase
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef
from helm_operator.helm.storage import MAX_DIGEST_IN_LABEL, RevisionMeta, owner_label, secret_name
from helm_operator.release import ownership
from helm_operator.release.actions.deploy import DeployRequest, deploy
from helm_operator.release.actions.recover import recover
from helm_operator.release.actions.rollback import roll_back
from helm_operator.release.actions.test import run_tests
from helm_operator.release.actions.uninstall import uninstall
from helm_operator.release.base import EngineBase, Inputs, ProgressWrite
from helm_operator.release.history import Snapshot, head
from helm_operator.release.record import Outcome
from helm_operator.release.state import Action, Decision, Facts, State


class StepsMixin(EngineBase):
    async def _act(self, hr: HelmRelease, inputs: Inputs, facts: Facts, d: Decision,
                   ) -> tuple[HelmRelease, bool]:
        """Run one action and record its result; returns the HelmRelease as recorded and success."""
        obj = self.store.get(hr.key) or {}
        started = time.monotonic()
        if d.action in (Action.INSTALL, Action.UPGRADE):
            return await self._deploy(hr, obj, inputs, facts, d.action is Action.INSTALL)
        if d.action is Action.TEST:
            return await self._test(hr, obj, inputs, facts)
        if d.action is Action.ROLLBACK:
            return await self._rollback(hr, obj, d, "rollback")
        if d.action is Action.RECOVER:
            if d.target is None:
                result = await recover(self.helm, self.metrics, hr, None, self._as(hr))
                self._log_result(hr, "recover", result, started)
                await self._refresh(hr)
                if not result.ok:
                    hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"recovering failed: {result.message}"))
                return hr, result.ok
            return await self._rollback(hr, obj, d, "rollback" if d.details.get("finishes") else "recover")
        if d.action is Action.UNINSTALL:
            result = await uninstall(self.helm, self.metrics, hr.release_name, hr.target_namespace, hr.timeout,
                                     self._as(hr))
            self._log_result(hr, "uninstall", result, started)
            if result.ok:
                self.storage.forget(hr.target_namespace, hr.release_name)
            else:
                await self._refresh(hr)
            self._stamped.pop(hr.key, None)
            if not result.ok:
                hr = await self._record(hr, obj, Outcome(Phase.FAILED, f"helm uninstall failed: {result.message}"))
            return hr, result.ok
        return hr, True

    async def _deploy(self, hr: HelmRelease, obj: dict[str, Any], inputs: Inputs, facts: Facts,
                      install: bool) -> tuple[HelmRelease, bool]:
        verb = "install" if install else "upgrade"
        newest = facts.newest
        # every outcome of the attempt names what it tried: the progress write may not happen
        tried, digest = inputs.chart.revision, inputs.desired
        running = hr
        progress = ProgressWrite(lambda: self._record(running, obj, Outcome(
            Phase.INSTALLING if install else Phase.UPGRADING,
            f"running helm {verb} of {hr.release_name} ({hr.chart})", event=False,
            attempted_revision=tried, attempted_digest=digest)),
            self.progress_delay)
        shard = {k: v for k in self.shard_labels if (v := hr.labels.get(k))}
        started = time.monotonic()
        req = DeployRequest(hr, inputs.chart.path, inputs.values, inputs.desired,
                            (newest.revision if newest else 0) + 1, install, self._as(hr), shard)
        try:
            result = await deploy(self.helm, self.metrics, req)
        except BaseException:
            progress.cancel()
            raise
        hr = await progress.settle(hr)
        self._log_result(hr, verb, result, started, None if result.ok else req.next_revision)
        if result.ok and result.record is not None and result.record.revision == req.next_revision:
            self.storage.observed(hr.target_namespace, hr.release_name, RevisionMeta(
                revision=result.record.revision, status=result.record.status,
                attempt_revision=req.next_revision, attempt_digest=inputs.desired[:MAX_DIGEST_IN_LABEL],
                owner=owner_label(hr.namespace, hr.name),
                secret=secret_name(hr.release_name, result.record.revision)))
        else:
            await self._refresh(hr)  # what did the failed call leave? (or our cache was behind)
        if not result.ok:
            after = self.storage.revisions(hr.target_namespace, hr.release_name)
            made = after[0] if after and (newest is None or after[0].revision > newest.revision) else None
            message = f"helm {verb} failed: {result.message}"
            if made is None:
                message += " (no revision was made)"
            elif result.failure is not None and result.failure.value == "Rejected" and newest is not None:
                message += (f" (the API server rejected revision {made.revision}; "
                            f"revision {newest.revision} stays deployed)")
            snapshot = Snapshot(revision=made.revision, action=verb, config_digest=inputs.desired,
                                status=made.status) if made else None
            return await self._record(hr, obj, Outcome(Phase.DEPLOY_FAILED, message,
                                                       release_status=made.status if made else None,
                                                       snapshot=snapshot, attempted_revision=tried,
                                                       attempted_digest=digest)), False
        record = result.record
        assert record is not None
        await self._stamp(hr, record.manifest, fresh=install)
        snapshot = Snapshot.of(record, verb, inputs.desired)
        if hr.test.enable:
            hr = await self._record(hr, obj, Outcome(
                Phase.DEPLOYED, f"helm {verb} of {hr.release_name} succeeded (revision {record.revision})",
                release_status=record.status, snapshot=snapshot, event=False,
                attempted_revision=tried, attempted_digest=digest))
        else:
            hr = await self._record(hr, obj, Outcome(
                Phase.SUCCEEDED, f"release {hr.release_name} {verb}{'ed' if install else 'd'} with chart "
                                 f"{hr.chart} (revision {record.revision})",
                release_status=record.status, revision=inputs.chart.revision, snapshot=snapshot,
                attempted_revision=tried, attempted_digest=digest))
        return hr, True

    async def _test(self, hr: HelmRelease, obj: dict[str, Any], inputs: Inputs,
                    facts: Facts) -> tuple[HelmRelease, bool]:
        newest = facts.newest
        assert newest is not None
        hr = await self._record(hr, obj, Outcome(Phase.TESTING, f"running helm test of {hr.release_name}",
                                                 event=False))
        started = time.monotonic()
        result = await run_tests(self.helm, self.metrics, hr, self._as(hr))
        self._log_result(hr, "test", result, started, newest.revision)
        last = head(hr.status)
        action = last.action if last and last.revision == newest.revision else "upgrade"
        snapshot = Snapshot(revision=newest.revision, action=action, status=newest.status,
                            test_result="passed" if result.ok else "failed")
        if result.ok:
            hr = await self._record(hr, obj, Outcome(Phase.TESTED, result.message, snapshot=snapshot,
                                                     event=False))
            return hr, True
        message = f"helm test failed: {result.message}"
        if hr.test.ignore_failures:
            message += " (ignored: test.ignoreFailures)"
        return await self._record(hr, obj, Outcome(Phase.TEST_FAILED, message, snapshot=snapshot,
                                                   counts_as_failure=not hr.test.ignore_failures)), result.ok

    async def _rollback(self, hr: HelmRelease, obj: dict[str, Any], d: Decision,
                        action: str) -> tuple[HelmRelease, bool]:
        hr = await self._record(hr, obj, Outcome(Phase.ROLLING_BACK, d.reason, event=False))
        started = time.monotonic()
        if d.action is Action.RECOVER:  # unlock: helm's defaults (no wait), also when finishing a rollback
            result = await recover(self.helm, self.metrics, hr, d.target, self._as(hr))
        else:
            result = await roll_back(self.helm, self.metrics, hr, d.target, self._as(hr))
        self._log_result(hr, action, result, started, d.target)
        if not result.ok:
            before = self.storage.revisions(hr.target_namespace, hr.release_name)
            after = await self.storage.refresh(hr.target_namespace, hr.release_name)
            made = after[0] if after and (not before or after[0].revision > before[0].revision) else None
            snapshot = Snapshot(revision=made.revision, action="rollback", status=made.status) if made else None
            return await self._record(hr, obj, Outcome(Phase.ROLLBACK_FAILED, f"rollback failed: {result.message}",
                                                       snapshot=snapshot)), False
        revisions = await self.storage.refresh(hr.target_namespace, hr.release_name)
        snapshot = None
        if revisions:
            record = await self.storage.record(hr.target_namespace, revisions[0])
            snapshot = Snapshot.of(record, action) if record else Snapshot(
                revision=revisions[0].revision, action=action, status=revisions[0].status)
        if action == "recover":
            message = f"recovered {hr.release_name}: {d.reason.split(': ', 1)[-1]}"
            return await self._record(hr, obj, Outcome(Phase.ROLLED_BACK, message, release_status="deployed",
                                                       snapshot=snapshot, counts_as_failure=False)), True
        return await self._record(hr, obj, Outcome(
            Phase.ROLLED_BACK, f"rolled back {hr.release_name} to revision {d.target} after a failed "
                               f"{'test' if d.state is State.TEST_FAILED else 'upgrade'}",
            release_status="deployed", snapshot=snapshot, rolled_back=True)), True

    async def _stamp(self, hr: HelmReleaseRef, manifest: str, fresh: bool) -> None:
        """Annotate the release's objects with their antecedent: only those helm applied
        without it (see `helm.postrender`) and not stamped by an earlier deploy."""
        lacking = await asyncio.to_thread(ownership.unstamped, manifest, hr.target_namespace, hr.antecedent)
        done = set() if fresh else self._stamped.get(hr.key, set())
        todo = [o for o in lacking if o not in done]
        if todo:
            await ownership.stamp(self.cluster, todo, hr.antecedent)
        self._stamped[hr.key] = set(lacking)
