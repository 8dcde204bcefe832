"""The sync loop: per source, fetch every poll interval, sync when Git moved,
every sync interval, or at once on a trigger.

Place in the flow: the driver. One `SourceSyncer` per source runs, in one
task, the whole flow of a pass (mirror -> manifests -> plan -> apply -> gc ->
marker -> status) so passes of one source never overlap; sources run side by
side. `Syncer` owns the sources, the HTTP server and the metrics:

- ``POST /api/v1/sync`` (optional ``?source=NAME``, ``?wait=true`` to answer
  after the pass with its status) triggers an immediate pull and sync;
  ``POST /api/v1/sync-git`` does the same for Flux v1 webhooks;
- ``GET /healthz``: ok while every source loop runs, the API server answers
  (a light request every few seconds) and the event loop is not blocked
  (`runtime.health`); ``GET /readyz``: ok once every source finished its
  first pass;
- ``GET /metrics``: see `gitsync.metrics`.

What this module does NOT do: parse, order or apply by itself; it calls the
modules that do, and turns their reports into status and metrics.
"""

from __future__ import annotations

import asyncio
from typing import Any
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from helm_operator.boundedyaml import Limits
from helm_operator.gitsync import gc as gc_step
from helm_operator.gitsync import status as status_store
from helm_operator.gitsync.apply import Outcome, apply_plan
from helm_operator.gitsync.config import SourceConfig, SyncerConfig
from helm_operator.gitsync.manifests import FileError, parse_files, resolve, select_manifest_files
from helm_operator.gitsync.marker import ClusterMarker, GitTagMarker, Marker
from helm_operator.gitsync.metrics import SyncMetrics
from helm_operator.gitsync.mirror import GitAuth, GitError, GitMirror, HttpsCredentials
from helm_operator.gitsync.plan import make_plan, scopes_from_crds
from helm_operator.gitsync.status import SyncStatus
from helm_operator.kube.apply import ClusterApi
from helm_operator.kube.errors import KubeError
from helm_operator.runtime.shutdown import stop_on_signals
from helm_operator.kube.lease import LeaseStore
from helm_operator.runtime import health as checks
from helm_operator.runtime.leaderelection import LeaderElector, default_identity
from helm_operator.runtime.http import Health, HttpServer
from helm_operator.runtime.logs import fields

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class SourceSyncer:
    """Keeps the cluster equal to one Git source."""

    def __init__(self, source: SourceConfig, *, cluster: ClusterApi, namespace: str,
                 workdir: Path, default_namespace: str, metrics: SyncMetrics,
                 yaml_limits: Limits = Limits()) -> None:
        self.source = source
        self.yaml_limits = yaml_limits
        self.cluster = cluster
        self.namespace = namespace
        self.default_namespace = source.default_namespace or default_namespace
        self.metrics = metrics
        https = (HttpsCredentials.from_dir(source.https_credentials_dir)
                 if source.https_credentials_dir else HttpsCredentials.from_env())
        auth = GitAuth(source.ssh_key_file, source.known_hosts_file, https)
        self.mirror = GitMirror(source.url, source.branch, workdir / source.name, auth)
        self.marker: Marker = (ClusterMarker(cluster, namespace, source.name) if source.readonly
                               else GitTagMarker(self.mirror, source.sync_tag))
        self.last_status: SyncStatus | None = None
        self._trigger = asyncio.Event()
        self._waiters: list[asyncio.Future[SyncStatus]] = []
        self._last_commit: str | None = None
        self._last_sync = float("-inf")

    def trigger(self, wait: bool = False) -> asyncio.Future[SyncStatus] | None:
        """Ask for an immediate pull and sync; with `wait`, a future of its status."""
        future: asyncio.Future[SyncStatus] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
        self._trigger.set()
        return future

    def _new_status(self) -> SyncStatus:
        s = self.source
        return SyncStatus(
            source=s.name, url=self.mirror.display_url, branch=s.branch, paths=list(s.paths),
            sync_set=s.sync_set_name,
            garbage_collection="dry-run" if s.gc_dry else ("on" if s.gc else "off"),
        )

    async def sync_once(self, commit: str | None = None) -> SyncStatus:
        """One full pass; errors end up in the returned (and stored) status."""
        started = time.perf_counter()
        status = self._new_status()
        try:
            if commit is None:
                commit = await self.mirror.fetch()
            await self._pass(commit, status)
        except (GitError, KubeError) as e:
            self._failed(status, e)
        return await self._finish(status, started)

    @property
    def log_object(self) -> str:
        """The ``object`` field of this source's log lines."""
        return f"source/{self.source.name}"

    def _failed(self, status: SyncStatus, e: Exception) -> None:
        log.error("sync failed: %s", e, extra=fields(object=self.log_object, action="sync", error=e))
        status.pass_error = str(e)
        if self.last_status is not None:  # keep what is in the cluster on record
            status.commit = self.last_status.commit

    async def _finish(self, status: SyncStatus, started: float) -> SyncStatus:
        status.duration_seconds = round(time.perf_counter() - started, 3)
        status.synced_at = _now()
        self._record(status)
        if not status.pass_error:
            log.info("synced %s", (status.commit or "")[:12], extra=fields(
                object=self.log_object, action="sync", revision=status.commit,
                duration_ms=status.duration_seconds * 1000, applied=status.applied, unchanged=status.unchanged,
                skipped=status.skipped, failed=status.failed, deleted=status.deleted, errors=len(status.errors)))
        try:
            await status_store.write(self.cluster, self.namespace, status)
        except KubeError as e:
            log.error("could not store sync status: %s", e, extra=fields(object=self.log_object, error=e))
        self.last_status = status
        return status

    async def _pass(self, commit: str, status: SyncStatus) -> None:
        s = self.source
        paths = await self.mirror.list_files(commit)
        selected, path_errors = select_manifest_files(paths, s.paths)
        files = await self.mirror.read_files(commit, selected)
        parsed = await asyncio.to_thread(parse_files, files, self.yaml_limits)  # CPU-bound: off the loop
        parsed.errors[:0] = path_errors
        discovery = await self.cluster.discover()
        crd_scopes = scopes_from_crds(parsed.documents)

        def namespaced(api_version: str, kind: str) -> bool | None:
            known = discovery.namespaced(api_version, kind)
            return known if known is not None else crd_scopes.get((api_version, kind))

        resolved = resolve(parsed.documents, namespaced, self.default_namespace)
        live = await gc_step.inventory(self.cluster, discovery) if (s.gc or s.gc_dry) else []
        plan = make_plan(resolved.manifests, sync_set=s.sync_set_name, live=live,
                         protected_ids=resolved.protected_ids, failed_files=parsed.failed_files)
        report = await apply_plan(self.cluster, discovery, plan.apply, sync_set=s.sync_set_name,
                                  documents=parsed.documents)
        status.commit = commit
        status.applied = report.count(Outcome.CREATED, Outcome.CONFIGURED)
        status.unchanged = report.count(Outcome.UNCHANGED)
        status.skipped = report.count(Outcome.SKIPPED) + len(plan.ignored)
        status.failed = report.count(Outcome.FAILED)
        status.add_errors(parsed.errors + resolved.errors + report.errors)
        for r in report.results:
            self.metrics.objects.labels(s.name, r.outcome.value).inc()
        if s.gc or s.gc_dry:
            status.gc_blocked = plan.gc_blocked
            gc_report = await gc_step.collect(self.cluster, discovery, plan.stale, dry_run=s.gc_dry)
            status.deleted = len(gc_report.deleted)
            status.would_delete = gc_report.would_delete
            status.add_errors(gc_report.errors)
            self.metrics.objects.labels(s.name, "deleted").inc(len(gc_report.deleted))
        for kept in plan.kept:
            log.info("keeping %s: %s", kept.obj.resource_id, kept.reason, extra=fields(object=self.log_object))
        try:
            if await self.marker.move(commit):
                log.info("moved %s to %s", self.marker.describe(), commit[:12],
                         extra=fields(object=self.log_object, action="mark", revision=commit))
        except (GitError, KubeError) as e:
            status.add_errors([_marker_error(self.marker, e)])

    def _record(self, status: SyncStatus) -> None:
        name = self.source.name
        self.metrics.duration.labels(name, "true" if status.ok else "false").observe(status.duration_seconds)
        self.metrics.errors.labels(name).set(len(status.errors) + (1 if status.pass_error else 0))
        self.metrics.passes.labels(name, "success" if status.ok else "failure").inc()
        if not status.pass_error:  # a pass that ran: its objects (a failed fetch keeps the last ones)
            for outcome, count in (("applied", status.applied), ("unchanged", status.unchanged),
                                   ("skipped", status.skipped), ("failed", status.failed),
                                   ("deleted", status.deleted)):
                self.metrics.last_pass.labels(name, outcome).set(count)
        if status.ok:
            self.metrics.last_success.labels(name).set(time.time())

    async def run(self) -> None:
        """Poll, sync and wait, forever (until cancelled)."""
        s = self.source
        while True:
            forced = self._trigger.is_set()
            self._trigger.clear()
            waiters, self._waiters = self._waiters, []
            started = time.perf_counter()
            try:
                commit: str | None = await self.mirror.fetch()
            except GitError as e:
                commit, result = None, self._new_status()
                self._failed(result, e)
                result = await self._finish(result, started)
            due = forced or commit != self._last_commit or time.monotonic() - self._last_sync >= s.sync_interval
            if commit is None:
                pass
            elif due:
                result = await self.sync_once(commit)
                if not result.pass_error:  # else retried at the next poll
                    self._last_commit, self._last_sync = commit, time.monotonic()
            else:
                result = self.last_status or self._new_status()
            for w in waiters:
                if not w.done():
                    w.set_result(result)
            try:
                await asyncio.wait_for(self._trigger.wait(), timeout=s.poll_interval)
            except asyncio.TimeoutError:
                pass


def _marker_error(marker: Marker, e: Exception) -> FileError:
    return FileError("<sync marker>", f"could not move {marker.describe()}: {e}")


class Syncer:
    """All sources of one process, their HTTP endpoints and metrics."""

    def __init__(self, config: SyncerConfig, cluster: ClusterApi, default_namespace: str,
                 metrics: SyncMetrics | None = None, *, webhook_token: str | None = None) -> None:
        self.config = config
        self.cluster = cluster
        self._webhook_token = webhook_token
        self.watchdog = checks.LoopWatchdog(config.loop_stall_threshold)
        # The syncer has no watch: a light request tells when the API server last answered.
        self.api = checks.ApiContact("api-server", lambda: cluster.discover_group_version("v1"),
                                     interval=max(1.0, min(10.0, config.api_unreachable_threshold / 3)))
        self.metrics = metrics or SyncMetrics()
        self.sources = [
            SourceSyncer(s, cluster=cluster, namespace=config.namespace, workdir=config.workdir,
                         default_namespace=default_namespace, metrics=self.metrics,
                         yaml_limits=config.yaml_limits)
            for s in config.sources
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.standby: LeaderElector | None = None  # set while this replica waits for the Lease

    async def sync_all_once(self) -> list[SyncStatus]:
        return list(await asyncio.gather(*(s.sync_once() for s in self.sources)))

    def health(self) -> Health:
        dead = [s.source.name for s, t in zip(self.sources, self._tasks) if t.done()]
        loops = Health(not dead, f"sync loop stopped for {', '.join(dead)}" if dead else "")
        api = checks.api_links_health([self.api], self.config.api_unreachable_threshold)
        return checks.combine(self.watchdog.check(), loops, api)

    def ready(self) -> Health:
        """Ready once every source finished its first pass (whatever its result); a standby
        (leader election, waiting for the Lease) is live but not ready."""
        if self.standby is not None:
            holder = self.standby.holder or "another replica"
            return Health(False, f"standby: {holder} holds the Lease")
        waiting = [s.source.name for s in self.sources if s.last_status is None]
        if not self._tasks or waiting:
            return Health(False, f"first sync pass not finished for {', '.join(waiting) or 'any source'}")
        return Health(True)

    def _select(self, name: str | None) -> Sequence[SourceSyncer]:
        return [s for s in self.sources if name is None or s.source.name == name]

    async def trigger_all(self) -> None:
        for s in self.sources:
            s.trigger()

    async def _serve_sync(self, request: web.Request) -> web.Response:
        name = request.query.get("source")
        selected = self._select(name)
        if not selected:
            return web.json_response({"status": "error", "error": f"no source named {name!r}"}, status=404)
        wait = request.query.get("wait", "").lower() in ("1", "true", "yes")
        futures = [s.trigger(wait=wait) for s in selected]
        if not wait:
            return web.json_response({"status": "triggered", "sources": [s.source.name for s in selected]},
                                     status=202)
        results = await asyncio.gather(*(f for f in futures if f is not None))
        return web.json_response({"status": "synced", "results": [
            {"source": r.source, "commit": r.commit, "ok": r.ok, "applied": r.applied,
             "unchanged": r.unchanged, "deleted": r.deleted, "errors": len(r.errors)} for r in results]})

    async def run(self) -> None:
        """Run every source loop and the HTTP server until cancelled."""
        server = HttpServer(self.metrics, health=self.health, ready=self.ready, on_sync_git=self.trigger_all,
                            webhook_token=self._webhook_token)
        server.add_route("POST", "/api/v1/sync", self._serve_sync)
        hook_host, hook_port = self.config.webhook_listen or (None, None)
        port = await server.start(self.config.listen_host, self.config.listen_port,
                                  trigger_host=hook_host, trigger_port=hook_port)
        log.info("syncer listening on %s:%d (triggers on port %s) with %d source(s)", self.config.listen_host,
                 port, server.trigger_port, len(self.sources))
        self.watchdog.start()
        contact = self.api.start()
        stopping = asyncio.Event()
        stop_on_signals(stopping.set)
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
        elector = self._elector() if self.config.leader_elect else None
        holder: asyncio.Task[None] | None = None
        lost: asyncio.Future[Any] | None = None
        loops: asyncio.Future[Any] | None = None
        try:
            if elector is not None:
                self.standby = elector
                acquiring: asyncio.Future[Any] = asyncio.ensure_future(elector.acquire())
                await asyncio.wait([acquiring, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                if not acquiring.done():
                    acquiring.cancel()
                    await asyncio.gather(acquiring, return_exceptions=True)
                    return
                self.standby = None
                holder = asyncio.create_task(elector.hold())
                lost = asyncio.ensure_future(elector.lost.wait())
            self._tasks = [asyncio.create_task(s.run(), name=f"sync-{s.source.name}") for s in self.sources]
            loops = asyncio.ensure_future(asyncio.gather(*self._tasks))
            pending: list[asyncio.Future[Any]] = [loops, stop_wait] + ([lost] if lost is not None else [])
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if loops.done():
                loops.result()
            elif lost is not None and lost.done():
                log.error("syncer lost its Lease: stopping so that only one replica applies")
            else:
                log.info("syncer stopping")
        finally:
            stop_wait.cancel()
            if loops is not None:
                loops.cancel()
            contact.cancel()
            self.watchdog.stop()
            for t in self._tasks:
                t.cancel()
            # collect every outcome, so nothing is left "never retrieved"
            await asyncio.gather(*(f for f in (loops, stop_wait, contact, lost) if f is not None), *self._tasks,
                                 return_exceptions=True)
            if holder is not None and elector is not None:
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
                await elector.release()  # a standby syncer takes over now, not when the Lease expires
            await server.stop()

    def _elector(self) -> LeaderElector:
        store = LeaseStore(self.cluster.rest, self.config.namespace, self.config.leader_election_name)
        return LeaderElector(store, default_identity(), lease_duration=self.config.lease_duration,
                             renew_interval=max(1.0, self.config.lease_duration / 3), retry_interval=1.0)
