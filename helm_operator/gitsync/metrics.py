"""Prometheus metrics of the manifest syncer, per source.

- ``flux_helm_operator_sync_duration_seconds{source,success}`` histogram of passes
- ``flux_helm_operator_sync_objects_total{source,outcome}`` counter
  (created, configured, unchanged, skipped, failed, deleted)
- ``flux_helm_operator_sync_errors{source}`` gauge: errors of the last pass
- ``flux_helm_operator_sync_last_success_timestamp_seconds{source}`` gauge
- ``flux_helm_operator_sync_passes_total{source,result}`` counter (success, failure)
- ``flux_helm_operator_sync_last_pass_objects{source,outcome}`` gauge: objects of
  the last finished pass by outcome (applied = created or configured,
  unchanged, skipped, failed, deleted)

Registered on a registry of their own unless one is given (the operator's
`runtime.metrics.Metrics.registry` when both roles share a process).
What this module does NOT do: serve HTTP (runtime.http does) or decide
anything.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from helm_operator.runtime.metrics import DURATION_BUCKETS, PREFIX


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.duration = Histogram(f"{PREFIX}_sync_duration_seconds", "Duration of sync passes in seconds.",
                                  ["source", "success"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.objects = Counter(f"{PREFIX}_sync_objects", "Objects handled by sync passes, by outcome.",
                               ["source", "outcome"], registry=self.registry)
        self.errors = Gauge(f"{PREFIX}_sync_errors", "Errors in the last sync pass of a source.",
                            ["source"], registry=self.registry)
        self.last_success = Gauge(f"{PREFIX}_sync_last_success_timestamp_seconds",
                                  "Unix time of the last sync pass without errors.", ["source"],
                                  registry=self.registry)
        self.passes = Counter(f"{PREFIX}_sync_passes", "Sync passes by result (failure: any error).",
                              ["source", "result"], registry=self.registry)
        self.last_pass = Gauge(f"{PREFIX}_sync_last_pass_objects",
                               "Objects of the last finished sync pass, by outcome.", ["source", "outcome"],
                               registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
