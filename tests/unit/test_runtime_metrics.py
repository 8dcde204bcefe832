"""Scenarios for the Flux v1 compatible metrics."""

from __future__ import annotations

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from helm_operator.runtime.metrics import Action, Metrics

DURATION = "flux_helm_operator_release_action_duration_seconds"
CONDITION = "flux_helm_operator_release_condition_info"


def action_count(metrics: Metrics, action: str, success: str, ns: str, name: str) -> float | None:
    return metrics.registry.get_sample_value(
        f"{DURATION}_count",
        {"action": action, "success": success, "target_namespace": ns, "release_name": name},
    )


def condition_value(metrics: Metrics, ns: str, name: str, condition: str) -> float | None:
    return metrics.registry.get_sample_value(
        CONDITION, {"target_namespace": ns, "release_name": name, "condition": condition}
    )


def test_render_shows_every_compat_metric_name() -> None:
    metrics = Metrics()
    metrics.set_release_count(3)
    metrics.set_queue_length(2)
    metrics.observe_action("install", True, "apps", "podinfo", 1.5)
    metrics.set_condition("apps", "podinfo", "Released", "True")

    text = metrics.render().decode()

    assert "# TYPE flux_helm_operator_release_count gauge" in text
    assert "flux_helm_operator_release_count 3.0" in text
    assert "# TYPE flux_helm_operator_release_queue_length_count gauge" in text
    assert "flux_helm_operator_release_queue_length_count 2.0" in text
    assert f"# TYPE {DURATION} histogram" in text
    assert f"# TYPE {CONDITION} gauge" in text

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    release = (("release_name", "podinfo"), ("target_namespace", "apps"))
    install = (("action", "install"), *release[:1], ("success", "true"), *release[1:])
    assert samples[(f"{DURATION}_count", install)] == 1
    assert samples[(CONDITION, (("condition", "Released"), *release))] == 1


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.set_release_count(5)
    assert second.registry.get_sample_value("flux_helm_operator_release_count") == 0


def test_condition_statuses_map_to_minus_one_zero_one() -> None:
    metrics = Metrics()
    metrics.set_condition("apps", "podinfo", "Released", "False")
    metrics.set_condition("apps", "podinfo", "Tested", "Unknown")
    metrics.set_condition("apps", "podinfo", "Deployed", "True")
    assert condition_value(metrics, "apps", "podinfo", "Released") == -1
    assert condition_value(metrics, "apps", "podinfo", "Tested") == 0
    assert condition_value(metrics, "apps", "podinfo", "Deployed") == 1
    with pytest.raises(ValueError):
        metrics.set_condition("apps", "podinfo", "Deployed", "yes")


def test_time_action_records_success_for_a_body_that_returns() -> None:
    metrics = Metrics()
    with metrics.time_action(Action.UPGRADE, "apps", "podinfo"):
        pass
    assert action_count(metrics, "upgrade", "true", "apps", "podinfo") == 1
    assert action_count(metrics, "upgrade", "false", "apps", "podinfo") is None


def test_time_action_records_failure_and_reraises_when_the_body_raises() -> None:
    metrics = Metrics()
    with pytest.raises(RuntimeError):
        with metrics.time_action("install", "apps", "podinfo"):
            raise RuntimeError("helm failed")
    assert action_count(metrics, "install", "false", "apps", "podinfo") == 1


def test_time_action_records_failure_the_body_reports_without_raising() -> None:
    metrics = Metrics()
    with metrics.time_action("test", "apps", "podinfo") as timing:
        timing.success = False
    assert action_count(metrics, "test", "false", "apps", "podinfo") == 1


async def test_time_action_wraps_awaited_code_and_skips_cancellation() -> None:
    import asyncio

    metrics = Metrics()
    with metrics.time_action("sync", "apps", "podinfo"):
        await asyncio.sleep(0.01)
    total = metrics.registry.get_sample_value(
        f"{DURATION}_sum",
        {"action": "sync", "success": "true", "target_namespace": "apps", "release_name": "podinfo"},
    )
    assert total is not None and total >= 0.005

    with pytest.raises(asyncio.CancelledError):
        with metrics.time_action("rollback", "apps", "podinfo"):
            raise asyncio.CancelledError()
    assert action_count(metrics, "rollback", "false", "apps", "podinfo") is None


def test_forget_release_removes_only_that_release() -> None:
    metrics = Metrics()
    for name in ("podinfo", "redis"):
        metrics.observe_action("install", True, "apps", name, 1)
        metrics.observe_action("upgrade", False, "apps", name, 2)
        metrics.set_condition("apps", name, "Released", "True")
        metrics.set_condition("apps", name, "Ready", "False")

    metrics.forget_release("apps", "podinfo")

    text = metrics.render().decode()
    assert 'release_name="podinfo"' not in text
    assert action_count(metrics, "upgrade", "false", "apps", "redis") == 1
    assert condition_value(metrics, "apps", "redis", "Ready") == -1
    metrics.forget_release("apps", "podinfo")  # twice is harmless
    metrics.forget_release("other", "never-seen")


def test_another_role_can_add_metrics_to_the_same_registry() -> None:
    metrics = Metrics()
    applied = Counter("flux_sync_objects_applied", "Objects applied.", registry=metrics.registry)
    applied.inc()
    assert "flux_sync_objects_applied_total 1.0" in metrics.render().decode()
