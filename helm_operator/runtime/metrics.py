"""Prometheus metrics of the release operator: the Flux v1 Helm Operator
names, the Flux v2 (``gotk_*``) reconcile metrics, helm action durations and
image automation.

Place in the flow: the release reconcile records what it did here (action
durations, condition statuses, release count), the queue's length is copied
in, the workers time each reconcile (`timed_reconcile`), image automation
calls the `AutomationMetrics` hooks, and `http` serves `render()` at
``/metrics``. Each `Metrics` owns its own `CollectorRegistry`, so tests can
make several and other roles (the manifest syncer) can register their own
collectors on `Metrics.registry`. The work queue's metrics are in
`runtime.queuemetrics`.

Names, labels and values (COMPAT section 1):

- ``flux_helm_operator_release_count`` gauge
- ``flux_helm_operator_release_queue_length_count`` gauge
- ``flux_helm_operator_release_action_duration_seconds`` histogram
  ``{action, success, target_namespace, release_name}``, success ``true``/``false``
- ``flux_helm_operator_release_condition_info`` gauge
  ``{target_namespace, release_name, condition}``: -1 False, 0 Unknown, 1 True

Flux v2 compatible (the names and labels of Flux's controllers, so their
dashboards and alerts work), per HelmRelease (``kind="HelmRelease"``):

- ``gotk_reconcile_duration_seconds{kind, name, namespace}`` histogram of reconciles
- ``gotk_reconcile_condition{kind, name, namespace, type, status}`` gauge: 1 for
  the condition's current status (``True``/``False``/``Unknown``), 0 for the
  other two; the series go when the HelmRelease is deleted

Ours:

- ``helm_operator_helm_action_duration_seconds{action, result}`` histogram of
  helm calls; result ``success`` or the failure kind (``timeout``,
  ``rejected``, ``renderfailed``, ``hookfailed``, ``failed``)
- ``helm_operator_automation_image_scans_total{result}``,
  ``helm_operator_automation_registry_requests_total{registry, code}`` (code:
  the HTTP status, or ``error`` when the registry could not be reached),
  ``helm_operator_automation_commits_total{result}``,
  ``helm_operator_automation_updates_total`` (image tags committed),
  ``helm_operator_automation_last_scan_timestamp_seconds``

What this module does NOT do: it does not decide when to record, does not
read the cluster, and serves nothing over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "flux_helm_operator"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Prometheus' default buckets, extended because Helm actions with --wait
# often take minutes.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0,
)

CONDITION_VALUES: dict[str, float] = {"False": -1.0, "Unknown": 0.0, "True": 1.0}
KIND = "HelmRelease"  # the `kind` label of the gotk_* metrics


class Action(StrEnum):
    """Values of the `action` label: Flux v1's, plus `test` (ours)."""

    SYNC = "sync"
    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    TEST = "test"
    DRY_RUN_COMPARE = "dry-run-compare"
    ANNOTATE = "annotate"


@dataclass
class ActionTiming:
    """Handed out by `Metrics.time_action`; set `success = False` to record a
    failure that did not raise."""

    success: bool = True


class Metrics:
    """The operator's metrics on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.release_count = Gauge(
            f"{PREFIX}_release_count",
            "Count of releases managed by the operator.",
            registry=self.registry,
        )
        self.queue_length = Gauge(
            f"{PREFIX}_release_queue_length_count",
            "Count of release jobs waiting in the queue to be processed.",
            registry=self.registry,
        )
        self.action_duration = Histogram(
            f"{PREFIX}_release_action_duration_seconds",
            "Duration of release sync actions in seconds.",
            ["action", "success", "target_namespace", "release_name"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.condition_info = Gauge(
            f"{PREFIX}_release_condition_info",
            "Release condition status: -1 False, 0 Unknown, 1 True.",
            ["target_namespace", "release_name", "condition"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "gotk_reconcile_duration_seconds", "The duration in seconds of a HelmRelease reconciliation.",
            ["kind", "name", "namespace"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.reconcile_condition = Gauge(
            "gotk_reconcile_condition", "The current condition status of a HelmRelease reconciliation.",
            ["kind", "name", "namespace", "type", "status"], registry=self.registry)
        self.helm_action_duration = Histogram(
            "helm_operator_helm_action_duration_seconds",
            "Duration of helm calls by action and result (success, or the kind of failure).",
            ["action", "result"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.automation = AutomationMetrics(self.registry)
        # Label sets written per release, so forget_release can remove them.
        self._action_labels: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._conditions: dict[tuple[str, str], set[str]] = {}
        self._object_conditions: dict[tuple[str, str], set[str]] = {}

    def observe_action(
        self,
        action: str,
        success: bool,
        target_namespace: str,
        release_name: str,
        seconds: float,
    ) -> None:
        """Record one action's duration."""
        outcome = "true" if success else "false"
        self.action_duration.labels(
            str(action), outcome, target_namespace, release_name
        ).observe(seconds)
        labels = self._action_labels.setdefault((target_namespace, release_name), set())
        labels.add((str(action), outcome))

    @contextmanager
    def time_action(
        self, action: str, target_namespace: str, release_name: str
    ) -> Iterator[ActionTiming]:
        """Time the body; success is false when it raises or sets ``timing.success = False``.

        A body ended by cancellation (or another BaseException that is not an
        Exception) records nothing: it is not a failed action.
        """
        timing = ActionTiming()
        started = time.perf_counter()
        try:
            yield timing
        except Exception as e:
            timing.success = False
            self._observe_since(action, timing, target_namespace, release_name, started, failure_of(e))
            raise
        self._observe_since(action, timing, target_namespace, release_name, started)

    def set_condition(
        self, target_namespace: str, release_name: str, condition: str, status: str,
        obj: tuple[str, str] | None = None,
    ) -> None:
        """Set a condition gauge from its status string ``True``/``False``/``Unknown``.

        With `obj`, the HelmRelease's (namespace, name), also the Flux v2 gauge.
        """
        try:
            value = CONDITION_VALUES[status]
        except KeyError:
            raise ValueError(f"condition status must be True, False or Unknown, got {status!r}") from None
        self.condition_info.labels(target_namespace, release_name, condition).set(value)
        self._conditions.setdefault((target_namespace, release_name), set()).add(condition)
        if obj is not None:
            namespace, name = obj
            for each in CONDITION_VALUES:
                self.reconcile_condition.labels(KIND, name, namespace, condition, each).set(
                    1.0 if each == status else 0.0)
            self._object_conditions.setdefault(obj, set()).add(condition)

    def observe_reconcile(self, namespace: str, name: str, seconds: float) -> None:
        self.reconcile_duration.labels(KIND, name, namespace).observe(seconds)

    def timed_reconcile(self, handler: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        """`handler` of a ``namespace/name`` key, recording each call in gotk_reconcile_duration_seconds."""

        async def timed(key: str) -> None:
            started = time.perf_counter()
            try:
                await handler(key)
            finally:
                namespace, _, name = key.partition("/")
                self.observe_reconcile(namespace, name, time.perf_counter() - started)

        return timed

    def forget_object(self, namespace: str, name: str) -> None:
        """Remove the gotk_* series of a deleted HelmRelease."""
        for condition in self._object_conditions.pop((namespace, name), set()):
            for each in CONDITION_VALUES:
                self.reconcile_condition.remove(KIND, name, namespace, condition, each)
        try:
            self.reconcile_duration.remove(KIND, name, namespace)
        except KeyError:
            pass

    def forget_release(self, target_namespace: str, release_name: str) -> None:
        """Remove every label set recorded for a release (after it is deleted)."""
        release = (target_namespace, release_name)
        for action, outcome in self._action_labels.pop(release, set()):
            self.action_duration.remove(action, outcome, target_namespace, release_name)
        for condition in self._conditions.pop(release, set()):
            self.condition_info.remove(target_namespace, release_name, condition)

    def set_release_count(self, count: int) -> None:
        self.release_count.set(count)

    def set_queue_length(self, length: int) -> None:
        self.queue_length.set(length)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)

    def watch_watchers(self, watchers: Callable[[], Sequence["WatchStats"]]) -> None:
        """Export the watches' counters (read at scrape time, so nothing is copied)."""
        self.registry.register(_WatchCollector(watchers))

    def _observe_since(
        self,
        action: str,
        timing: ActionTiming,
        target_namespace: str,
        release_name: str,
        started: float,
        failure: str = "failed",
    ) -> None:
        elapsed = time.perf_counter() - started
        self.observe_action(action, timing.success, target_namespace, release_name, elapsed)
        self.helm_action_duration.labels(str(action), "success" if timing.success else failure).observe(elapsed)


def failure_of(error: BaseException) -> str:
    """The `result` label of a failed helm call: its failure kind (`helm.HelmError.kind`), lower-case."""
    kind = getattr(error, "kind", None)
    return str(kind).lower() if kind else "failed"


class AutomationMetrics:
    """The hooks image automation calls (`automation.automator`, `automation.registry`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scans = Counter("helm_operator_automation_image_scans",
                             "Image repositories scanned for tags, by result.", ["result"], registry=registry)
        self.requests = Counter("helm_operator_automation_registry_requests",
                                "Requests to container registries by registry host and HTTP status code "
                                "(error: the registry could not be reached).", ["registry", "code"],
                                registry=registry)
        self.commits = Counter("helm_operator_automation_commits",
                               "Automation commits pushed to Git, by result.", ["result"], registry=registry)
        self.updates = Counter("helm_operator_automation_updates",
                               "Image tag updates committed to Git.", registry=registry)
        self.last_scan = Gauge("helm_operator_automation_last_scan_timestamp_seconds",
                               "Unix time of the last registry scan.", registry=registry)

    def registry_request(self, registry: str, code: int | str) -> None:
        self.requests.labels(registry, str(code)).inc()

    def scanned(self, ok: bool) -> None:
        self.scans.labels("success" if ok else "failure").inc()
        self.last_scan.set_to_current_time()

    def committed(self, ok: bool, updates: int = 0) -> None:
        self.commits.labels("success" if ok else "failure").inc()
        if ok:
            self.updates.inc(updates)


class WatchStats(Protocol):
    """What a watch tells about itself (`kube.watch.ResourceWatcher`)."""

    name: str
    bookmarks: int
    restarts: int
    relists: int
    last_contact: float | None


class _WatchCollector(Collector):
    """`helm_operator_watch_*`: bookmarks, restarts, relists and the age of the last answer."""

    def __init__(self, watchers: Callable[[], Sequence[WatchStats]]) -> None:
        self._watchers = watchers

    def collect(self):  # type: ignore[no-untyped-def]
        bookmarks = CounterMetricFamily("helm_operator_watch_bookmarks", "BOOKMARK events received.",
                                        labels=["watch"])
        restarts = CounterMetricFamily("helm_operator_watch_restarts", "Watch requests renewed after the "
                                       "server ended them.", labels=["watch"])
        relists = CounterMetricFamily("helm_operator_watch_relists", "Full lists (start, or after 410 Gone).",
                                      labels=["watch"])
        age = GaugeMetricFamily("helm_operator_watch_last_contact_age_seconds",
                                "Seconds since the API server last answered this watch.", labels=["watch"])
        now = time.monotonic()
        for w in self._watchers():
            bookmarks.add_metric([w.name], w.bookmarks)
            restarts.add_metric([w.name], w.restarts)
            relists.add_metric([w.name], w.relists)
            if w.last_contact is not None:
                age.add_metric([w.name], now - w.last_contact)
        yield from (bookmarks, restarts, relists, age)
