"""Which watch events enqueue a reconcile."""

from __future__ import annotations

from helm_operator.operator.watching import HelmReleaseEvents, SecretEvents, ValuesSourceEvents, release_changed
from helm_operator.release.observe import HelmReleaseStore, ObjectVersions, ReleaseStorage


def _hr(generation: int, deleting: bool = False, status: dict | None = None, rv: int = 1) -> dict:
    meta = {"namespace": "apps", "name": "web", "generation": generation, "uid": "u1",
            "resourceVersion": str(rv)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status or {}}


def test_status_only_updates_do_not_enqueue() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(HelmReleaseStore(), queued.append)
    events("ADDED", _hr(1))
    events("MODIFIED", _hr(1, status={"phase": "Succeeded"}, rv=2))
    assert queued == ["apps/web"]


def test_spec_change_and_deletion_enqueue_at_once() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(HelmReleaseStore(), queued.append)
    events("ADDED", _hr(1))
    events("MODIFIED", _hr(2, rv=2))
    events("MODIFIED", _hr(2, deleting=True, rv=3))
    assert queued == ["apps/web"] * 3


def test_relist_after_a_410_does_not_enqueue_unchanged_objects() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(HelmReleaseStore(), queued.append)
    events("ADDED", _hr(1))
    events("SYNC", _hr(1))
    events("SYNC", _hr(2, rv=5))
    assert queued == ["apps/web", "apps/web"]


def test_changed_configmap_enqueues_only_the_helmreleases_reading_it() -> None:
    queued: list[str] = []
    refs = {"apps/web": {("ConfigMap", "apps", "web-values")}, "apps/db": {("Secret", "apps", "web-values")}}
    events = ValuesSourceEvents("ConfigMap", ObjectVersions(), lambda: refs, queued.append)
    events("MODIFIED", {"metadata": {"namespace": "apps", "name": "web-values", "resourceVersion": "2"}})
    events("MODIFIED", {"metadata": {"namespace": "apps", "name": "other", "resourceVersion": "3"}})
    assert queued == ["apps/web"]


def test_an_event_older_than_the_cached_object_is_ignored() -> None:
    store = HelmReleaseStore()
    queued: list[str] = []
    events = HelmReleaseEvents(store, queued.append)
    events("ADDED", _hr(1, rv=10))
    events("MODIFIED", _hr(2, rv=9))  # our own write (rv 10) went first
    assert queued == ["apps/web"] and store.get("apps/web")["metadata"]["generation"] == 1


def test_a_reconcile_request_annotation_enqueues() -> None:
    queued: list[str] = []
    events = HelmReleaseEvents(HelmReleaseStore(), queued.append)
    events("ADDED", _hr(1))
    obj = _hr(1, rv=2)
    obj["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": "now"}
    events("MODIFIED", obj)
    assert queued == ["apps/web"] * 2


def _storage_secret(release: str, revision: int, status: str, rv: int) -> dict:
    return {"metadata": {"namespace": "apps", "name": f"sh.helm.release.v1.{release}.v{revision}",
                         "resourceVersion": str(rv),
                         "labels": {"owner": "helm", "name": release, "version": str(revision), "status": status}}}


def test_a_release_storage_change_nudges_the_helmrelease_owning_it() -> None:
    nudged: list[str] = []
    queued: list[str] = []
    storage = ReleaseStorage(reader=None, on_change=release_changed(  # type: ignore[arg-type]
        lambda: {("apps", "apps-web"): "apps/web"}, nudged.append))
    refs = {"apps/web": {("Secret", "apps", "creds")}}
    events = SecretEvents(storage, ValuesSourceEvents("Secret", ObjectVersions(), lambda: refs, queued.append))
    events("ADDED", _storage_secret("apps-web", 1, "deployed", 5))
    events("SYNC", _storage_secret("apps-web", 1, "deployed", 5))   # a relist: nothing new
    events("ADDED", _storage_secret("apps-other", 1, "deployed", 6))  # nobody's release
    events("DELETED", {"metadata": {"namespace": "apps", "name": "sh.helm.release.v1.apps-web.v1"}})
    events("MODIFIED", {"metadata": {"namespace": "apps", "name": "creds", "resourceVersion": "7"}})
    assert nudged == ["apps/web", "apps/web"]
    assert storage.revisions("apps", "apps-web") == ()
    assert queued == ["apps/web"]
