"""Flux v2 reconcile metrics, helm action results and the work queue's metrics."""

from __future__ import annotations

import asyncio

import pytest

from helm_operator.helm import HelmError
from helm_operator.runtime.metrics import Metrics
from helm_operator.runtime.queueing import WorkQueue
from helm_operator.runtime.queuemetrics import WorkQueueMetrics


def value(m: Metrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_reconcile_condition_is_one_for_the_current_status_and_goes_with_the_object() -> None:
    m = Metrics()
    m.set_condition("apps", "apps-web", "Ready", "False", obj=("team", "web"))
    labels = {"kind": "HelmRelease", "name": "web", "namespace": "team", "type": "Ready"}
    assert value(m, "gotk_reconcile_condition", **labels, status="False") == 1.0
    assert value(m, "gotk_reconcile_condition", **labels, status="True") == 0.0
    m.set_condition("apps", "apps-web", "Ready", "True", obj=("team", "web"))
    assert value(m, "gotk_reconcile_condition", **labels, status="True") == 1.0
    assert value(m, "gotk_reconcile_condition", **labels, status="False") == 0.0
    assert value(m, "flux_helm_operator_release_condition_info", target_namespace="apps",
                 release_name="apps-web", condition="Ready") == 1.0  # the v1 gauge as before
    m.observe_reconcile("team", "web", 0.2)
    m.forget_object("team", "web")
    assert value(m, "gotk_reconcile_condition", **labels, status="True") is None
    assert value(m, "gotk_reconcile_duration_seconds_count", kind="HelmRelease", name="web",
                 namespace="team") is None


async def test_timed_reconcile_observes_each_call_by_key() -> None:
    m = Metrics()
    calls: list[str] = []

    async def handle(key: str) -> None:
        calls.append(key)
        if key.endswith("bad"):
            raise RuntimeError("boom")

    timed = m.timed_reconcile(handle)
    await timed("team/web")
    with pytest.raises(RuntimeError):
        await timed("team/bad")
    for name in ("web", "bad"):
        assert value(m, "gotk_reconcile_duration_seconds_count", kind="HelmRelease", name=name,
                     namespace="team") == 1.0
    assert calls == ["team/web", "team/bad"]


def test_helm_action_durations_by_action_and_result() -> None:
    m = Metrics()
    with m.time_action("install", "ns", "rel"):
        pass
    with pytest.raises(HelmError):
        with m.time_action("upgrade", "ns", "rel"):
            raise HelmError("upgrade", "rel", "context deadline exceeded")
    with m.time_action("test", "ns", "rel") as timing:
        timing.success = False
    count = "helm_operator_helm_action_duration_seconds_count"
    assert value(m, count, action="install", result="success") == 1.0
    assert value(m, count, action="upgrade", result="timeout") == 1.0
    assert value(m, count, action="test", result="failed") == 1.0
    assert value(m, "flux_helm_operator_release_action_duration_seconds_count", action="upgrade",
                 success="false", target_namespace="ns", release_name="rel") == 1.0


async def test_work_queue_reports_depth_adds_latency_work_and_retries() -> None:
    m = Metrics()
    q: WorkQueue[str] = WorkQueue(observer=WorkQueueMetrics(m.registry, "helmrelease"))
    q.add("a")
    q.add("b")
    q.add("a")  # already waiting: not an add
    assert value(m, "workqueue_depth", name="helmrelease") == 2.0
    assert value(m, "workqueue_adds_total", name="helmrelease") == 2.0
    await asyncio.sleep(0.05)
    key = await q.get()
    assert value(m, "workqueue_depth", name="helmrelease") == 1.0
    assert value(m, "workqueue_queue_duration_seconds_sum", name="helmrelease") >= 0.05
    await asyncio.sleep(0.02)
    assert value(m, "workqueue_longest_running_processor_seconds", name="helmrelease") >= 0.02
    q.add_with_backoff(key)
    q.done(key)
    assert value(m, "workqueue_retries_total", name="helmrelease") == 1.0
    assert value(m, "workqueue_work_duration_seconds_count", name="helmrelease") == 1.0
    assert value(m, "workqueue_longest_running_processor_seconds", name="helmrelease") == 0.0
    q.shutdown()
    assert value(m, "workqueue_depth", name="helmrelease") == 0.0


def test_automation_hooks() -> None:
    m = Metrics()
    m.automation.registry_request("registry.example.com", 200)
    m.automation.registry_request("registry.example.com", "error")
    m.automation.scanned(True)
    m.automation.committed(True, 2)
    m.automation.committed(False)
    assert value(m, "helm_operator_automation_registry_requests_total", registry="registry.example.com",
                 code="200") == 1.0
    assert value(m, "helm_operator_automation_registry_requests_total", registry="registry.example.com",
                 code="error") == 1.0
    assert value(m, "helm_operator_automation_image_scans_total", result="success") == 1.0
    assert value(m, "helm_operator_automation_commits_total", result="failure") == 1.0
    assert value(m, "helm_operator_automation_updates_total") == 2.0
    assert (value(m, "helm_operator_automation_last_scan_timestamp_seconds") or 0) > 0
