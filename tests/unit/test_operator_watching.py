"""Which watch events enqueue a reconcile."""

from __future__ import annotations

from helm_operator.operator.watching import HelmReleaseEvents, ValuesSourceEvents


def _hr(generation: int, deleting: bool = False, status: dict | None = None) -> dict:
    meta = {"namespace": "apps", "name": "web", "generation": generation, "uid": "u1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status or {}}


def test_status_only_updates_do_not_enqueue() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(queued.append)
    events("ADDED", _hr(1))
    events("MODIFIED", _hr(1, status={"phase": "Succeeded"}))
    assert queued == ["apps/web"]


def test_spec_change_and_deletion_enqueue_at_once() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(queued.append)
    events("ADDED", _hr(1))
    events("MODIFIED", _hr(2))
    events("MODIFIED", _hr(2, deleting=True))
    assert queued == ["apps/web"] * 3


def test_relist_after_a_410_does_not_enqueue_unchanged_objects() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(queued.append)
    events("ADDED", _hr(1))
    events("SYNC", _hr(1))
    events("SYNC", _hr(2))
    assert queued == ["apps/web", "apps/web"]


def test_changed_configmap_enqueues_only_the_helmreleases_reading_it() -> None:
    queued: list[str] = []
    refs = {"apps/web": {("ConfigMap", "apps", "web-values")}, "apps/db": {("Secret", "apps", "web-values")}}
    events = ValuesSourceEvents("ConfigMap", lambda: refs, queued.append)
    events("MODIFIED", {"metadata": {"namespace": "apps", "name": "web-values", "resourceVersion": "2"}})
    events("MODIFIED", {"metadata": {"namespace": "apps", "name": "other", "resourceVersion": "3"}})
    assert queued == ["apps/web"]
