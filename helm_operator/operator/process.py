"""Assemble and run the release operator: watches -> queue -> workers ->
`Reconciler`, plus the periodic resync, the Git poller and the HTTP server.

Everything runs on one asyncio loop; watches run in their own threads and
hand events to the loop. SIGTERM/SIGINT stop taking new work and let
in-flight helm calls finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_operator.api.automation import CONDITION_IMAGE_AUTOMATION
from helm_operator.api.constants import GROUP, PLURAL, VERSION
from helm_operator.api.controls import DriftMode
from helm_operator.api.helmrelease import InvalidSpec, parse_ref
from helm_operator.automation.automator import Automator
from helm_operator.automation.reporting import Condition
from helm_operator.automation.gitwrite import GitTarget, GitWriter
from helm_operator.automation.registry import CredentialStore, RegistryClient
from helm_operator.boundedyaml import DEFAULT_LIMITS, YamlLimits
from helm_operator.helm import Helm
from helm_operator.kube import Kube
from helm_operator.kube.lease import LeaseStore
from helm_operator.kube.watch import ResourceWatcher, collection_path, shard_label_keys, wait_synced
from helm_operator.operator.watching import HelmReleaseEvents, SecretEvents, ValuesSourceEvents, release_changed
from helm_operator.release.base import PROGRESS_DELAY
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.drift import DriftDetector
from helm_operator.release.observe import HelmReleaseStore, KubeStorageReader, ObjectVersions, ReleaseStorage
from helm_operator.release.reconciler import Reconciler
from helm_operator.release.record import Note, Recorder
from helm_operator.release.tenancy import TenancyPolicy
from helm_operator.runtime import health
from helm_operator.runtime.http import Health, HttpServer
from helm_operator.runtime.logs import fields
from helm_operator.runtime.metrics import Metrics
from helm_operator.runtime.leaderelection import LeaderElector, default_identity
from helm_operator.runtime.shutdown import stop_on_signals
from helm_operator.runtime.queueing import Priority, WorkQueue, jittered, run_workers
from helm_operator.runtime.queuemetrics import WorkQueueMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorSettings:
    kubeconfig: Path | None = None
    kube_context: str | None = None  # a kubeconfig context other than the current one
    allow_namespace: str | None = None
    workers: int = 4
    charts_sync_interval: float = 180.0
    git_poll_interval: float = 300.0
    git_default_ref: str = "master"
    git_ssh_command: str | None = None
    listen_host: str = "0.0.0.0"
    listen_port: int = 3030
    cache_dir: Path = field(default_factory=lambda: Path("/tmp/helm-operator-cache"))
    helm_binary: str = "helm"
    oci_plain_http: bool = False
    leader_elect: bool = False
    leader_election_namespace: str = "default"
    leader_election_name: str = "helm-operator"
    lease_duration: float = 15.0
    automation: "AutomationSettings | None" = None
    drift_interval: float = 600.0
    watch_timeout: int = 300  # seconds a watch request lasts before it is renewed
    default_drift_mode: str = "warn"  # for HelmReleases without spec.driftDetection.mode
    shutdown_grace_period: float = 25.0  # in-flight helm calls may finish this long after SIGTERM
    watch_label_selector: str | None = None  # sharding: only HelmReleases matching it
    max_parallel_installs: int = 0  # first installs at once; 0 = as many as workers
    progress_status_delay: float = PROGRESS_DELAY  # an attempt's in-progress status waits so long (ProgressWrite)
    lockdown: TenancyPolicy = field(default_factory=TenancyPolicy)
    webhook_token: str | None = field(default=None, repr=False)  # POST /api/v1/sync-git needs it
    webhook_listen: tuple[str, int] | None = None                # the trigger's own address
    yaml_limits: YamlLimits = DEFAULT_LIMITS  # values, chart files, automation's HelmRelease files
    api_unreachable_threshold: float = health.DEFAULT_API_THRESHOLD  # /healthz fails after a watch failed so long
    loop_stall_threshold: float = health.DEFAULT_LOOP_THRESHOLD      # ...or the event loop was blocked so long


@dataclass(frozen=True)
class AutomationSettings:
    """Image automation: off unless a Git URL is given."""

    git: GitTarget
    interval: float = 300.0
    registry_poll_interval: float = 300.0
    registry_rate_limit: float = 10.0
    registry_plain_http_hosts: tuple[str, ...] = ()
    docker_config: Path | None = None
    registry_secrets: tuple[str, ...] = ()      # "namespace/name" of dockerconfigjson Secrets
    default_namespace: str = "default"


class Operator:
    """One running release operator."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.kube = Kube.from_kubeconfig(settings.kubeconfig, settings.kube_context)
        self.helm = Helm(executable=settings.helm_binary, kubeconfig=settings.kubeconfig,
                         kubecontext=settings.kube_context)
        self.metrics = Metrics()
        # Changes go first; first installs (maybe slow: hooks, --wait) may be capped
        # below --workers so some workers always stay free for changes.
        installs = settings.max_parallel_installs or settings.workers
        self.queue: WorkQueue[str] = WorkQueue(max_installs=min(installs, settings.workers),
                                               observer=WorkQueueMetrics(self.metrics.registry, "helmrelease"))
        self.charts = ChartFetcher(self.kube, self.helm, settings.cache_dir, settings.git_poll_interval,
                                   settings.git_ssh_command, settings.oci_plain_http, settings.yaml_limits)
        self.store = HelmReleaseStore()
        self.versions = ObjectVersions()
        self.storage = ReleaseStorage(KubeStorageReader(self.kube),
                                      release_changed(lambda: self.reconciler.release_keys, self.queue.nudge))
        self.reconciler = Reconciler(self.kube, self.helm, self.charts,
                                     Recorder(self.kube, self.metrics, on_stored=self.store.update),
                                     self.metrics, self.store, self.storage, self.versions,
                                     settings.git_default_ref, DriftDetector(self.kube.cluster),
                                     settings.drift_interval, DriftMode(settings.default_drift_mode),
                                     lockdown=settings.lockdown, yaml_limits=settings.yaml_limits.documents,
                                     shard_labels=shard_label_keys(settings.watch_label_selector),
                                     progress_delay=settings.progress_status_delay)
        self.watchdog = health.LoopWatchdog(settings.loop_stall_threshold)
        self.standby: LeaderElector | None = None  # set while this replica waits for the Lease
        self.http = HttpServer(self.metrics, health=self._health, ready=self._ready,
                               on_sync_git=self.request_git_sync,
                               webhook_token=settings.webhook_token)
        self.hr_events = HelmReleaseEvents(self.store, self._changed, self._seen_at_start,
                                           lambda key: set(self.reconciler.dependants.get(key, ())))
        self.watchers: list[ResourceWatcher] = []
        self.metrics.watch_watchers(lambda: self.watchers)
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()  # a second SIGTERM, or the grace period's end
        self._git_sync_requested = asyncio.Event()  # POST /api/v1/sync-git: poll Git now
        self.automator: Automator | None = None

    async def _helmreleases(self) -> list[dict[str, Any]]:
        """The HelmReleases this process serves, from the watch cache (its shard only)."""
        return [obj for key in self.store.keys() if (obj := self.store.get(key)) is not None]

    async def _credentials(self, auto: AutomationSettings) -> CredentialStore:
        """Registry credentials from a docker config file and dockerconfigjson Secrets."""
        store = CredentialStore()
        if auto.docker_config and auto.docker_config.exists():
            store.add_docker_config(auto.docker_config.read_text())
        for ref in auto.registry_secrets:
            ns, _, name = ref.partition("/")
            try:
                data = await self.kube.get_secret_data(ns, name)
                store.add_docker_config(data.get(".dockerconfigjson") or data.get("config.json") or "{}")
            except Exception as e:  # noqa: BLE001 - a bad secret must not stop the operator
                log.warning("image automation: cannot read registry Secret %s: %s", ref, e)
        return store

    async def _start_automation(self) -> asyncio.Task[None] | None:
        auto = self.settings.automation
        if auto is None:
            return None
        registry = RegistryClient(await self._credentials(auto), auto.registry_rate_limit,
                                  plain_http_hosts=auto.registry_plain_http_hosts,
                                  on_request=self.metrics.automation.registry_request)
        writer = GitWriter(auto.git, self.settings.cache_dir / "automation" / "checkout")
        self.automator = Automator(
            self._helmreleases, writer, registry, self.kube.emit_event,
            interval=auto.interval, poll_interval=auto.registry_poll_interval,
            default_namespace=auto.default_namespace, yaml_limits=self.settings.yaml_limits.documents,
            note_status=self._note_automation, metrics=self.metrics.automation)
        log.info("image automation on: committing to %s (%s) every %.0fs, registries polled every %.0fs",
                 auto.git.url, auto.git.branch, auto.interval, auto.registry_poll_interval)
        return asyncio.create_task(self.automator.run(self._stopping), name="automation")

    async def _note_automation(self, key: str, condition: Condition | None) -> None:
        """The ImageAutomation condition, noted through the engine's recorder (the one status writer)."""
        obj = self.store.get(key)
        if obj is not None:
            note = Note(conditions=((CONDITION_IMAGE_AUTOMATION, condition.status, condition.reason,
                                     condition.message),)) if condition else Note(remove=(CONDITION_IMAGE_AUTOMATION,))
            await self.reconciler.recorder.note(parse_ref(obj), obj, note)

    def _health(self) -> Health:
        watches = health.api_links_health(self.watchers, self.settings.api_unreachable_threshold)
        return health.combine(self.watchdog.check(), watches)

    def _ready(self) -> Health:
        if self.standby is not None:
            lease = self.standby.store
            return health.standby(f"{lease.namespace}/{lease.name}", self.standby.holder)
        return health.caches_ready(self.watchers)

    async def request_git_sync(self) -> None:
        """POST /api/v1/sync-git: wake the Git poll loop and answer at once.

        Why not fetch here: a webhook caller (GitHub waits 10 s) must not wait
        for every Git chart source to be fetched, and two triggers in a burst
        must cost one round of fetches, not two running side by side. The poll
        loop stays the one place that fetches Git chart sources."""
        self._git_sync_requested.set()

    async def sync_git(self) -> None:
        """Fetch every Git chart source now; enqueue the releases whose chart path got a new commit."""
        self.charts.git.refresh()
        releases = sorted(self.reconciler.git_releases.items())
        log.debug("Git chart sources: fetching for %d release(s)", len(releases))
        changes = 0
        for key, hr in releases:
            try:
                changed = await self.charts.git_revision_changed(hr)
            except Exception as e:  # noqa: BLE001 - the reconcile reports fetch errors on the object
                log.debug("%s: checking its Git chart failed: %s", key, e)
                continue
            if changed:
                changes += 1
                log.info("%s: new commit for chart path %s of %s", key, hr.chart.path, hr.chart.describe())
                self._changed(key)
        log.debug("Git chart sources: checked %d release(s), %d with a new commit", len(releases), changes)

    def _changed(self, key: str) -> None:
        """An input of `key` changed: queue it first, as a first install when it has no release yet."""
        self.queue.add(key, Priority.INSTALL if self._first_install(key) else Priority.CHANGE)

    def _seen_at_start(self, key: str) -> None:
        """A HelmRelease listed at start (or after a relist) already reconciled at its generation:
        look at it in the background, spread over a few seconds rather than all at once."""
        self.queue.nudge_after(key, random.uniform(0, min(10.0, 0.01 * len(self.store))))

    def _first_install(self, key: str) -> bool:
        obj = self.store.get(key)
        if obj is None:
            return False
        try:
            ref = parse_ref(obj)
        except InvalidSpec:
            return False
        return not self.storage.revisions(ref.target_namespace, ref.release_name)

    async def _handle(self, key: str) -> None:
        try:
            result = await self.reconciler.reconcile(key)
        except Exception:  # noqa: BLE001 - one bad object must never stop the others
            log.exception("reconcile failed unexpectedly; retrying with backoff", extra=fields(object=key))
            delay = self.queue.add_with_backoff(key)
            log.info("next attempt in %.0fs", delay, extra=fields(object=key))
            return
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after, backoff=result.backoff)
            if result.backoff:
                log.info("next attempt in %.0fs", result.requeue_after, extra=fields(object=key))
        if not result.backoff or result.requeue_after is None:
            self.queue.forget(key)
        self.metrics.set_queue_length(len(self.queue))
        self.metrics.set_release_count(len(self.store))

    def _start_watchers(self, loop: asyncio.AbstractEventLoop) -> None:
        ns = self.settings.allow_namespace
        api = self.kube.rest
        timeout = self.settings.watch_timeout
        refs = lambda: self.reconciler.references  # noqa: E731
        configmaps = ValuesSourceEvents("ConfigMap", self.versions, refs, self._changed)
        secrets = SecretEvents(self.storage, ValuesSourceEvents("Secret", self.versions, refs, self._changed))
        shard = self.settings.watch_label_selector
        # Only this shard's HelmReleases, and only its releases' storage (each revision
        # carries its HelmRelease's shard label, see steps); values sources are any
        # other Secret, metadata only.
        storage_selector = "owner=helm" + (f",{shard}" if shard else "")
        self.watchers = [
            ResourceWatcher("helmreleases", api, collection_path(GROUP, VERSION, PLURAL, ns), self.hr_events,
                            loop, timeout_seconds=timeout, label_selector=shard),
            ResourceWatcher("configmaps", api, collection_path("", "v1", "configmaps", ns), configmaps, loop,
                            metadata_only=True, timeout_seconds=timeout),
            ResourceWatcher("secrets", api, collection_path("", "v1", "secrets", ns), secrets, loop,
                            metadata_only=True, timeout_seconds=timeout, label_selector="owner!=helm"),
            ResourceWatcher("releases", api, collection_path("", "v1", "secrets", ns), secrets, loop,
                            metadata_only=True, timeout_seconds=timeout, label_selector=storage_selector),
        ]
        for w in self.watchers:
            w.start()

    async def _resync(self) -> None:
        """Every charts-sync-interval (with jitter): look at every HelmRelease again.

        Keys waiting on a failure backoff are left to their timer (`nudge`);
        an unchanged, settled release costs no helm call and no API request.
        """
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), jittered(self.settings.charts_sync_interval))
            except TimeoutError:
                pass
            keys = self.store.keys()
            self.metrics.set_release_count(len(keys))
            log.info("periodic resync of %d HelmRelease(s), spread over %.0fs", len(keys),
                     self.settings.charts_sync_interval / 2)
            for key in keys:  # spread, in the background: a change never waits behind a resync
                self.queue.nudge_after(key, random.uniform(0, self.settings.charts_sync_interval / 2))

    async def _poll_git(self) -> None:
        while not self._stopping.is_set():
            await self._wait_for_git_poll()
            self._git_sync_requested.clear()  # triggers that came during the wait are served by this round
            if self.reconciler.git_releases and not self._stopping.is_set():
                try:
                    await self.sync_git()
                except Exception:  # noqa: BLE001 - the loop must outlive one bad round, or Git is never polled again
                    log.exception("polling Git chart sources failed; trying again at the next poll")

    async def _wait_for_git_poll(self) -> None:
        """Sleep until the next poll is due, a sync is requested, or the process stops."""
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._git_sync_requested.wait())]
        try:
            await asyncio.wait(waits, timeout=self.settings.git_poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def stop(self) -> None:
        """SIGTERM: stop taking work, let helm calls in flight finish; a second one stops them now."""
        if self._stopping.is_set():
            log.warning("stopping now: helm calls in flight are stopped; the next leader recovers them")
            self._hurry.set()
        self._stopping.set()

    async def _stop_when(self, event: asyncio.Event) -> None:
        await event.wait()
        log.error("leadership lost: stopping so that only one replica acts")
        self.stop()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop_on_signals(self.stop)
        self.watchdog.start()
        hook_host, hook_port = self.settings.webhook_listen or (None, None)
        port = await self.http.start(self.settings.listen_host, self.settings.listen_port,
                                     trigger_host=hook_host, trigger_port=hook_port)
        log.info("serving /metrics, /healthz on %s:%d and /api/v1/sync-git on port %s", self.settings.listen_host,
                 port, self.http.trigger_port)
        holder: asyncio.Task[None] | None = None
        elector: LeaderElector | None = None
        if self.settings.leader_elect:
            elector = LeaderElector(
                LeaseStore(self.kube.rest, self.settings.leader_election_namespace,
                           self.settings.leader_election_name),
                default_identity(), lease_duration=self.settings.lease_duration,
                renew_interval=max(1.0, self.settings.lease_duration / 3), retry_interval=1.0)
            self.standby = elector
            acquiring = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                acquiring.cancel()
                await self.http.stop()
                self.watchdog.stop()
                return
            stopping.cancel()
            self.standby = None
            holder = asyncio.create_task(elector.hold())
            asyncio.create_task(self._stop_when(elector.lost))
        self._start_watchers(loop)
        # Decide from a full picture: the caches are filled before any reconcile.
        synced = await asyncio.to_thread(wait_synced, self.watchers, 120.0)
        if not synced:
            log.warning("watch caches not filled after 120s; reconciling with what is known")
        tasks = [
            asyncio.create_task(run_workers(self.queue, self.metrics.timed_reconcile(self._handle),
                                            self.settings.workers, retry_on_error=False), name="workers"),
            asyncio.create_task(self._resync(), name="resync"),
            asyncio.create_task(self._poll_git(), name="git-poll"),
        ]
        automation = await self._start_automation()
        if automation is not None:
            tasks.append(automation)
        await self._stopping.wait()
        grace = self.settings.shutdown_grace_period
        log.info("stopping: no new work is taken; in-flight releases get up to %.0fs to finish", grace)
        self.queue.shutdown()
        for w in self.watchers:
            w.stop()
        hurry = asyncio.create_task(self._hurry.wait())
        await asyncio.wait({tasks[0], hurry}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
        if not tasks[0].done():
            log.warning("stopping in-flight helm calls (grace period over or second signal); "
                        "the next leader recovers their releases")
            tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        if holder is not None and elector is not None:
            holder.cancel()
            await elector.release()  # the standby starts now, not when the lease would expire
        await self.reconciler.recorder.drain()
        await self.http.stop()
        self.watchdog.stop()
        await self.charts.close()
        log.info("stopped")
