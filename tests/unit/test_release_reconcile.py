"""Reconcile scenarios as a table, through the real `Reconciler.reconcile`
with a fake helm, a fake release storage and a fake API server
(`tests/unit/fakes_release`), in the manner of Flux helm-controller's
`internal/reconcile` tests.

Each scenario arranges the cluster (`given`: usually through the operator
itself, then what a person or a crash did), scripts helm and changes the
inputs (`when`), reconciles once and checks the helm calls made, the
status (phase, Ready/Released/Reconciling, failures, rollbackCount,
history), helm's storage and the Result; then the `then` reconciles, each
after its own steps (the clock moved, say), and the helm calls each makes.
Time is a fake clock: nothing sleeps.
"""

from __future__ import annotations

import asyncio

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helm_operator.api.constants import ANTECEDENT_ANNOTATION
from helm_operator.helm.storage import ATTEMPT_LABEL, OWNER_LABEL, owner_label, revision_meta
from helm_operator.kube import ObjectRef
from helm_operator.release.state import DIGEST_PREFIX
from tests.unit.fakes_release import helm as fh
from tests.unit.fakes_release.helm import Failure
from tests.unit.fakes_release.steps import (
    BASE,
    CHANGED,
    CHANGED_AGAIN,
    FROM_CONFIGMAP,
    ROLLBACK,
    RETRY,
    TEST,
    TEST_IGNORE,
    TEST_ROLLBACK,
    Step,
    advance,
    apply,
    chart_fetch_fails,
    configmap,
    crash_after,
    crash_during,
    delete,
    fail,
    hand_rollback,
    hand_uninstall,
    hand_upgrade,
    installed_by,
    made_by_older_operator,
    post_renderer_misses,
    reconcile,
    settled,
    spec,
)
from tests.unit.fakes_release.storage import decode_stored, secret_name
from tests.unit.fakes_release.world import KEY, NAMESPACE, RELEASE, World

# ---- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Then:
    """One more reconcile after `steps`, and the helm calls it makes."""

    steps: tuple[Step, ...] = ()
    calls: tuple[str, ...] = ()
    phase: str | None = None


AGAIN = Then()  # a second reconcile right away makes no helm call


@dataclass(frozen=True)
class Scenario:
    name: str
    given: tuple[Step, ...] = ()
    when: tuple[Step, ...] = ()
    calls: tuple[str, ...] = ()
    phase: str | None = "Succeeded"
    ready: tuple[str, str] | None = ("True", "Succeeded")      # (status, reason)
    released: str | None = "True"
    message: str = ""                        # a phrase Ready's message must hold
    failures: int = 0
    rollback_count: int = 0
    revisions: tuple[tuple[int, str], ...] = ()
    history: tuple[tuple[int, str], ...] | None = None   # (revision, action), newest first
    head_status: str | None = None           # status.history[0].status
    requeue_after: float | None = None
    then: tuple[Then, ...] = (AGAIN,)
    gone: bool = False                       # the HelmRelease was deleted
    extra: Callable[[World], None] | None = field(default=None, compare=False)
    xfail: str = ""                          # a known engine bug: why the scenario fails


def quiet(w: World) -> None:
    """The fast path: no storage read, no API request, no chart fetch."""
    assert (w.storage.lists, w.storage.gets, sum(w.kube.calls.values()), w.charts.fetches) == (0, 0, 0, 0)


def nudged(w: World) -> None:
    """The storage watch told the queue about the hand change."""
    assert KEY in w.nudged


def stamped(w: World) -> None:
    """Every object of the release carries the antecedent of this HelmRelease, applied by helm
    with the objects (the post-renderer): no PATCH per object."""
    assert w.kube.objects
    assert {o["metadata"]["annotations"].get(ANTECEDENT_ANNOTATION) for o in w.kube.objects.values()} == {
        "apps:helmrelease/web"}
    assert w.kube.calls["annotate"] == 0


def stamped_by_patch(w: World) -> None:
    """helm applied the objects without the antecedent: the engine patched each one, once."""
    assert {o["metadata"]["annotations"].get(ANTECEDENT_ANNOTATION) for o in w.kube.objects.values()} == {
        "apps:helmrelease/web"}
    assert w.kube.calls["annotate"] == len(w.kube.objects) == 2


def enqueued_once(w: World) -> None:
    """The ConfigMap watch queued the HelmRelease reading values from it."""
    assert w.enqueued == [KEY]


def chart_revision(revision: str) -> Callable[[World], None]:
    def check(w: World) -> None:
        assert (w.status["revision"], w.status["lastAttemptedRevision"]) == (revision, revision)
    return check


def were_tested(w: World) -> None:
    assert w.status["history"][0].get("testResult") == "passed"


def objects_gone(w: World) -> None:
    assert w.kube.objects == {}


SCENARIOS = [
    Scenario("fresh install", when=(apply(BASE),), calls=("install",),
             revisions=((1, "deployed"),), history=((1, "install"),), head_status="deployed", extra=stamped),
    Scenario("fresh install of a chart the post-renderer cannot annotate: objects patched",
             when=(post_renderer_misses(), apply(BASE)), calls=("install",),
             revisions=((1, "deployed"),), extra=stamped_by_patch),
    Scenario("unchanged resync: no helm call, no storage read, no API request", given=(settled(),),
             revisions=((1, "deployed"),), history=((1, "install"),), extra=quiet),
    Scenario("values changed: one upgrade", given=(settled(),), when=(apply(CHANGED),), calls=("upgrade",),
             revisions=((1, "superseded"), (2, "deployed")), history=((2, "upgrade"), (1, "install")),
             head_status="deployed"),
    Scenario("a valuesFrom ConfigMap changed: one upgrade",
             given=(configmap("image: {tag: v1}"), settled(FROM_CONFIGMAP)), when=(configmap("image: {tag: v2}"),),
             calls=("upgrade",), revisions=((1, "superseded"), (2, "deployed")),
             extra=enqueued_once),
    Scenario("a new chart version: one upgrade", given=(settled(),),
             when=(apply({"chart": {"repository": "https://charts.example.com/", "name": "podinfo",
                                    "version": "6.1.0"}}),),
             calls=("upgrade",), revisions=((1, "superseded"), (2, "deployed")),
             extra=chart_revision("6.1.0")),
    Scenario("hand uninstall: installed again", given=(settled(),), when=(hand_uninstall(),), calls=("install",),
             revisions=((1, "deployed"),), history=((1, "install"),), extra=nudged),
    Scenario("hand rollback: upgraded back to the HelmRelease's configuration",
             given=(settled(), settled(CHANGED)), when=(hand_rollback(1),), calls=("upgrade",),
             revisions=((1, "superseded"), (2, "superseded"), (3, "superseded"), (4, "deployed")),
             history=((4, "upgrade"), (2, "upgrade"), (1, "install")), extra=nudged),
    Scenario("hand `helm upgrade --set`: upgraded back", given=(settled(),), when=(hand_upgrade({"replicaCount": 7}),),
             calls=("upgrade",), revisions=((1, "superseded"), (2, "superseded"), (3, "deployed")),
             history=((3, "upgrade"), (1, "install")), extra=nudged),
    Scenario("a release installed by hand is adopted: upgraded and its objects stamped",
             given=(installed_by(None),), when=(apply(BASE),), calls=("upgrade",),
             revisions=((1, "superseded"), (2, "deployed")), extra=stamped),
    Scenario("deployed by an older operator version (digest in the description): nothing to do",
             given=(settled(), made_by_older_operator()), revisions=((1, "deployed"),)),
    Scenario("owned by another HelmRelease (owner label): refused",
             given=(installed_by(owner_label("apps", "other")),), when=(apply(BASE),),
             phase="Failed", ready=("False", "Failed"), released="False",
             message="managed by apps:helmrelease/other", failures=1, revisions=((1, "deployed"),)),
    Scenario("owned by another HelmRelease (antecedent on its objects): refused",
             given=(installed_by(None, antecedent="apps:helmrelease/other"),), when=(apply(BASE),),
             phase="Failed", ready=("False", "Failed"), released="False",
             message="managed by apps:helmrelease/other", failures=1, revisions=((1, "deployed"),)),
    Scenario("failing install: uninstalled, then retried after the backoff only",
             when=(apply(BASE), fail("install", fh.TIMED_OUT)), calls=("install", "uninstall"),
             phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="context deadline exceeded", failures=1, revisions=(), history=((1, "install"),),
             head_status="failed", requeue_after=5.0,
             then=(AGAIN, Then((advance(4),)), Then((advance(1),), ("install",), "Succeeded"), AGAIN)),
    Scenario("install rejected by the API server: the failed revision is uninstalled, the retry waits",
             when=(apply(BASE), fail("install", fh.REJECTED)), calls=("install", "uninstall"),
             phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="expected numeric", failures=1, requeue_after=5.0),
    Scenario("failing upgrade, rollback enabled: rolled back, no retry",
             given=(settled(ROLLBACK),), when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.TIMED_OUT)),
             calls=("upgrade", "rollback 1"), phase="RolledBack", ready=("False", "RolledBack"),
             released="False", failures=1, rollback_count=1,
             revisions=((1, "superseded"), (2, "failed"), (3, "deployed")),
             history=((3, "rollback"), (2, "upgrade"), (1, "install")), head_status="deployed",
             then=(AGAIN, Then((advance(3600),)))),
    Scenario("failing upgrade, rollback.retry: rolled back, retried after the backoff",
             given=(settled(RETRY),), when=(apply(spec(RETRY, CHANGED)), fail("upgrade", fh.TIMED_OUT, 2)),
             calls=("upgrade", "rollback 1"), phase="RolledBack", ready=("False", "RolledBack"),
             released="False", failures=1, rollback_count=1,
             revisions=((1, "superseded"), (2, "failed"), (3, "deployed")), requeue_after=5.0,
             then=(AGAIN, Then((advance(5),), ("upgrade", "rollback 3"), "RolledBack"),
                   Then((advance(10),), ("upgrade",), "Succeeded"), AGAIN)),
    Scenario("rollback.maxRetries: no retry once rollbackCount passes it",
             given=(settled(spec(RETRY, {"rollback": {"enable": True, "retry": True, "maxRetries": 1}})),),
             when=(apply(spec({"rollback": {"enable": True, "retry": True, "maxRetries": 1}}, CHANGED)),
                   fail("upgrade", fh.TIMED_OUT, 5)),
             calls=("upgrade", "rollback 1"), phase="RolledBack", ready=("False", "RolledBack"),
             released="False", failures=1, rollback_count=1, revisions=((1, "superseded"), (2, "failed"),
                                                                         (3, "deployed")), requeue_after=5.0,
             then=(Then((advance(5),), ("upgrade", "rollback 3"), "RolledBack"), Then((advance(3600),)))),
    Scenario("upgrade rejected by the API server: no rollback, the status names the rejection",
             given=(settled(ROLLBACK),), when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.REJECTED)),
             calls=("upgrade",), phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="the API server rejected revision 2; revision 1 stays deployed", failures=1,
             revisions=((1, "deployed"), (2, "failed")), history=((2, "upgrade"), (1, "install")),
             head_status="failed", requeue_after=None,
             # Deterministic and nothing changed: not retried, only a change of the spec acts.
             then=(AGAIN, Then((advance(600),), (), "DeployFailed"))),
    Scenario("immutable field: rejected, no rollback",
             given=(settled(ROLLBACK),),
             when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", Failure(fh.texts.REJECTED_IMMUTABLE,
                                                                           applied=False))),
             calls=("upgrade",), phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="field is immutable", failures=1, revisions=((1, "deployed"), (2, "failed")),
             requeue_after=None),
    Scenario("render error: no revision, no rollback, retried after the backoff",
             given=(settled(ROLLBACK),), when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.RENDER_FAILED)),
             calls=("upgrade",), phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="(no revision was made)", failures=1, revisions=((1, "deployed"),),
             history=((1, "install"),), requeue_after=5.0),
    Scenario("a new configuration after a failure is tried at once",
             given=(settled(), apply(CHANGED), fail("upgrade", fh.TIMED_OUT), reconcile()),
             when=(apply(CHANGED_AGAIN),), calls=("upgrade",),
             revisions=((1, "superseded"), (2, "failed"), (3, "deployed"))),
    Scenario("test failure after install: uninstalled",
             when=(apply(TEST), fail("test", fh.TEST_FAILED)), calls=("install", "test", "uninstall"),
             phase="TestFailed", ready=("False", "TestFailed"), released="False", message="pod apps-web-test failed",
             failures=1, revisions=(), requeue_after=5.0,
             then=(AGAIN, Then((advance(5),), ("install", "test"), "Succeeded"))),
    Scenario("hand uninstall of a tested release: installed and tested again",
             given=(settled(TEST),), when=(hand_uninstall(),), calls=("install", "test"),
             revisions=((1, "deployed"),), history=((1, "install"),),
             extra=were_tested),
    Scenario("test failure after upgrade, rollback enabled: rolled back",
             given=(settled(TEST_ROLLBACK),), when=(apply(spec(TEST_ROLLBACK, CHANGED)), fail("test", fh.TEST_FAILED)),
             calls=("upgrade", "test", "rollback 1"), phase="RolledBack", ready=("False", "RolledBack"),
             released="False", failures=1, rollback_count=1,
             revisions=((1, "superseded"), (2, "superseded"), (3, "deployed")),
             history=((3, "rollback"), (2, "upgrade"), (1, "install"))),
    Scenario("test failure after upgrade, rollback disabled: reported, not tested again",
             given=(settled(TEST),), when=(apply(spec(TEST, CHANGED)), fail("test", fh.TEST_FAILED)),
             calls=("upgrade", "test"), phase="TestFailed", ready=("False", "TestFailed"), released="False",
             failures=1, revisions=((1, "superseded"), (2, "deployed")), history=((2, "upgrade"), (1, "install")),
             then=(AGAIN, Then((advance(3600),)))),
    Scenario("test failure ignored (test.ignoreFailures)", when=(apply(TEST_IGNORE), fail("test", fh.TEST_FAILED)),
             calls=("install", "test"), revisions=((1, "deployed"),)),
    Scenario("helm killed mid-upgrade: recovered by a rollback, the retry waits for the backoff",
             given=(settled(),), when=(apply(CHANGED), fail("upgrade", fh.KILLED)),
             calls=("upgrade", "rollback 1"), phase="RolledBack", ready=("False", "RolledBack"),
             released="False", failures=1, requeue_after=5.0,
             revisions=((1, "superseded"), (2, "pending-upgrade"), (3, "deployed")),
             then=(AGAIN, Then((advance(5),), ("upgrade",), "Succeeded"))),
    Scenario("operator killed mid-upgrade: pending-upgrade recovered, then upgraded",
             given=(settled(), apply(CHANGED), crash_during("upgrade")), calls=("rollback 1", "upgrade"),
             revisions=((1, "superseded"), (2, "pending-upgrade"), (3, "superseded"), (4, "deployed"))),
    Scenario("operator killed mid-install: pending-install uninstalled, then installed",
             given=(apply(BASE), crash_during("install")), calls=("uninstall", "install"),
             revisions=((1, "deployed"),)),
    Scenario("operator killed mid-rollback after a failed upgrade: the rollback is finished, "
             "the failing upgrade is not run again (rollback.retry false)",
             given=(settled(ROLLBACK), apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.TIMED_OUT),
                    crash_during("rollback")),
             calls=("rollback 1",), phase="RolledBack", ready=("False", "RolledBack"), released="False",
             failures=1, rollback_count=1,
             revisions=((1, "superseded"), (2, "failed"), (3, "pending-rollback"), (4, "deployed")),
             then=(AGAIN, Then((advance(3600),)))),
    Scenario("operator killed mid-rollback after failed tests: the rollback is finished to its target",
             given=(settled(TEST_ROLLBACK), apply(spec(TEST_ROLLBACK, CHANGED)), fail("test", fh.TEST_FAILED),
                    crash_during("rollback")),
             calls=("rollback 1",), phase="RolledBack", ready=("False", "RolledBack"), released="False",
             failures=1, rollback_count=1,
             revisions=((1, "superseded"), (2, "superseded"), (3, "pending-rollback"), (4, "deployed")),
             then=(AGAIN, Then((advance(3600),)))),
    Scenario("operator killed mid-test: the tests run again",
             given=(settled(), apply(spec(TEST, CHANGED)), crash_during("test")), calls=("test",),
             revisions=((1, "superseded"), (2, "deployed")), history=((2, "upgrade"), (1, "install"))),
    Scenario("the rollback fails too: RollbackFailed, the rollback is retried after the backoff, "
             "not the failing upgrade",
             given=(settled(ROLLBACK),),
             when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.TIMED_OUT), fail("rollback", fh.TIMED_OUT)),
             calls=("upgrade", "rollback 1"), phase="RollbackFailed", ready=("False", "RollbackFailed"),
             released="False", message="rollback failed", failures=2,
             revisions=((1, "deployed"), (2, "superseded"), (3, "failed")), requeue_after=10.0,
             then=(AGAIN, Then((advance(10),), ("rollback 1",), "RolledBack"), Then((advance(3600),)))),
    Scenario("maxHistory prunes old revisions; a rollback still finds its target",
             given=(settled(spec(ROLLBACK, {"maxHistory": 2})), settled(spec(ROLLBACK, {"maxHistory": 2}, CHANGED))),
             when=(apply(spec(ROLLBACK, {"maxHistory": 2}, CHANGED_AGAIN)), fail("upgrade", fh.TIMED_OUT)),
             calls=("upgrade", "rollback 2"), phase="RolledBack", ready=("False", "RolledBack"), released="False",
             failures=1, rollback_count=1, revisions=((2, "superseded"), (4, "deployed")),
             history=((4, "rollback"), (3, "upgrade"))),
    Scenario("back to the configuration a rollback restored: one upgrade",
             given=(settled(ROLLBACK), apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.TIMED_OUT), reconcile()),
             when=(apply(ROLLBACK),), calls=("upgrade",),
             revisions=((1, "superseded"), (2, "failed"), (3, "superseded"), (4, "deployed"))),
    Scenario("render error on a fresh install: nothing to uninstall, retried after the backoff",
             when=(apply(BASE), fail("install", fh.RENDER_FAILED)), calls=("install",),
             phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="execution error at", failures=1, requeue_after=5.0,
             then=(AGAIN, Then((advance(5),), ("install",), "Succeeded"))),
    Scenario("removed API version on upgrade: rejected before any revision",
             given=(settled(ROLLBACK),), when=(apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.REMOVED_API)),
             calls=("upgrade",), phase="DeployFailed", ready=("False", "DeployFailed"), released="False",
             message="no matches for kind", failures=1, revisions=((1, "deployed"),), requeue_after=5.0),
    Scenario("operator killed after helm finished the upgrade: recorded, not upgraded again",
             given=(settled(), apply(CHANGED), crash_after("upgrade")),
             revisions=((1, "superseded"), (2, "deployed"))),
    Scenario("operator killed after helm finished the upgrade, tests enabled: the tests run",
             given=(settled(TEST), apply(spec(TEST, CHANGED)), crash_after("upgrade")), calls=("test",),
             revisions=((1, "superseded"), (2, "deployed"))),
    Scenario("operator killed after helm finished a rollback: still rolled back, the failing upgrade "
             "is not run again (rollback.retry false)",
             given=(settled(ROLLBACK), apply(spec(ROLLBACK, CHANGED)), fail("upgrade", fh.TIMED_OUT),
                    crash_after("rollback")),
             phase="RolledBack", ready=("False", "RolledBack"), released="False", failures=1,
             revisions=((1, "superseded"), (2, "failed"), (3, "deployed")),
             then=(AGAIN, Then((advance(3600),)))),
    Scenario("chart fetch failure: no helm call, retried",
             when=(apply(BASE), chart_fetch_fails("helm repository https://charts.example.com/ returned 503")),
             phase="ChartFetchFailed", ready=("False", "ChartFetchFailed"), released="False", message="503",
             failures=1, requeue_after=5.0, then=(Then(calls=("install",), phase="Succeeded"),)),
    Scenario("missing valuesFrom ConfigMap: no helm call, the status says which",
             when=(apply(FROM_CONFIGMAP),), phase="Failed", ready=("False", "Failed"), released="False",
             message="ConfigMap apps/web-values not found", failures=1, requeue_after=5.0,
             then=(Then((configmap("replicaCount: 2"),), ("install",), "Succeeded"),)),
    Scenario("deleted: uninstalled and the finalizer removed", given=(settled(),), when=(delete(),),
             calls=("uninstall",), phase=None, ready=None, released=None, gone=True,
             extra=objects_gone),
    Scenario("deleted after a hand uninstall: nothing to uninstall, the finalizer removed",
             given=(settled(), hand_uninstall()), when=(delete(),),
             phase=None, ready=None, released=None, gone=True),
    Scenario("deleted, helm uninstall fails: the finalizer stays, retried",
             given=(settled(),), when=(delete(), fail("uninstall", Failure("uninstallation completed with 1 "
                                                                           "error(s): context deadline exceeded"))),
             calls=("uninstall",), phase="Failed", ready=("False", "Failed"), released="False",
             message="helm uninstall failed", failures=1, revisions=((1, "deployed"),), requeue_after=5.0,
             then=(Then(calls=("uninstall",)),)),
    Scenario("deleted while the release belongs to another HelmRelease: left alone",
             given=(installed_by(owner_label("apps", "other")), apply(BASE), reconcile()), when=(delete(),),
             phase=None, ready=None, released=None, gone=True, revisions=((1, "deployed"),)),
]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


@pytest.mark.parametrize("sc", [
    pytest.param(s, id=s.name, marks=[pytest.mark.xfail(strict=True, reason=s.xfail)] if s.xfail else [])
    for s in SCENARIOS])
async def test_reconcile(sc: Scenario, world: World) -> None:
    w = world
    for step in sc.given:
        await step(w)
    w.flush()
    w.reset_counters()
    for step in sc.when:
        await step(w)
    result = await w.reconcile()
    assert tuple(w.helm.calls) == sc.calls
    assert result.requeue_after == (pytest.approx(sc.requeue_after) if sc.requeue_after is not None else None)
    if sc.gone:
        assert w.obj is None and KEY not in w.store.keys()
    else:
        st = w.status
        assert st.get("phase") == sc.phase, st
        ready, released, reconciling = w.condition("Ready"), w.condition("Released"), w.condition("Reconciling")
        assert ((ready.get("status"), ready.get("reason")) if ready else None) == sc.ready, ready
        assert sc.message in ready.get("message", ""), ready
        assert released.get("status") == sc.released, released
        assert reconciling == {}, reconciling
        assert (st.get("failures"), st.get("rollbackCount")) == (sc.failures, sc.rollback_count)
        assert st.get("observedGeneration") == (w.obj or {})["metadata"]["generation"]
        if sc.history is not None:
            assert [(h[0], h[1]) for h in w.history()] == list(sc.history)
        if sc.head_status is not None:
            assert w.history()[0][2] == sc.head_status
    assert tuple(w.revisions()) == sc.revisions
    if sc.extra is not None:
        sc.extra(w)
    for then in sc.then:
        for step in then.steps:
            await step(w)
        w.reset_counters()
        await w.reconcile()
        assert tuple(w.helm.calls) == then.calls, then
        if then.phase is not None:
            assert w.status.get("phase") == then.phase


# ---- what the table does not show ------------------------------------------------------------
async def test_each_revision_names_its_configuration_and_owner(world: World) -> None:
    await world.settle(BASE)
    await world.settle(CHANGED)
    digest = world.status["lastAttemptedConfigDigest"]
    meta = world.metas()[-1]
    assert (meta.revision, meta.attempt_revision, meta.owner) == (2, 2, "apps.web")
    assert digest.startswith(meta.attempt_digest or "-")
    assert world.storage.get(NAMESPACE, RELEASE, 2).description == DIGEST_PREFIX + digest  # type: ignore[union-attr]
    [upgrade] = [i for i in world.helm.invocations if i.verb == "upgrade"]
    assert upgrade.values == {"replicaCount": 2}


async def test_settled_release_makes_no_status_write_and_no_event(world: World) -> None:
    await world.settle(BASE)
    world.reset_counters()
    for _ in range(3):
        world.clock.advance(600)
        assert (await world.reconcile()).requeue_after is None
    assert (world.helm.calls, world.kube.events, world.kube.calls["patch_helmrelease_status"]) == ([], [], 0)


async def test_a_quick_attempt_records_only_its_result(world: World) -> None:
    """An install that ends within --progress-status-delay writes one status, which names what
    it tried (the in-progress write that would have said so was never sent)."""
    world.apply(BASE)
    await world.reconcile()
    assert world.kube.calls["patch_helmrelease_status"] == 1
    st = world.status
    assert (st["phase"], st["lastAttemptedRevision"], world.condition("Reconciling")) == ("Succeeded", "6.0.0", {})
    assert len(st["lastAttemptedConfigDigest"]) >= 32


async def test_a_slow_attempt_shows_as_in_progress_once_it_outlasts_the_delay(world: World) -> None:
    world.reconciler.progress_delay = 0.05
    real = world.helm.upgrade_install
    seen: list[tuple[str, str]] = []

    async def slow(*args: Any, **kwargs: Any) -> Any:
        for _ in range(500):  # helm is still running; the status catches up after the delay
            await asyncio.sleep(0.01)
            reconciling = world.condition("Reconciling")
            if reconciling:
                seen.append((world.status["phase"], reconciling["status"]))
                break
        return await real(*args, **kwargs)

    world.helm.upgrade_install = slow  # type: ignore[method-assign]
    world.apply(BASE)
    await world.reconcile()
    assert seen == [("Installing", "True")]
    assert world.kube.calls["patch_helmrelease_status"] == 2
    assert (world.status["phase"], world.condition("Reconciling")) == ("Succeeded", {})


async def test_ready_keeps_the_failure_while_the_retry_runs(world: World) -> None:
    """During the attempt after a failure, Ready stays False with the failure's message."""
    world.reconciler.progress_delay = 0  # the attempt's status is written as helm starts
    await world.settle(BASE)
    world.apply(CHANGED)
    world.helm.fail_next("upgrade", fh.TIMED_OUT)
    await world.reconcile()
    seen: list[tuple[str, str, str]] = []
    real = world.helm.upgrade_install

    async def watching(*args: Any, **kwargs: Any) -> Any:
        for _ in range(5):  # the attempt's status is written while helm runs
            await asyncio.sleep(0)
        st = world.kube.helmreleases[KEY]["status"]
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        reconciling = next(c for c in st["conditions"] if c["type"] == "Reconciling")
        seen.append((st["phase"], ready["status"], reconciling["status"]))
        assert "context deadline exceeded" in ready["message"]
        return await real(*args, **kwargs)

    world.helm.upgrade_install = watching  # type: ignore[method-assign]
    world.clock.advance(5)
    await world.reconcile()
    assert seen == [("Upgrading", "False", "True")]
    assert world.condition("Ready")["status"] == "True" and world.condition("Reconciling") == {}
    assert world.status["failures"] == 0


async def test_failures_count_consecutive_attempts_and_the_backoff_grows(world: World) -> None:
    await world.settle(BASE)
    world.apply(CHANGED)
    world.helm.fail_next("upgrade", fh.TIMED_OUT, 4)
    waits = []
    for _ in range(4):
        result = await world.reconcile()
        waits.append(result.requeue_after)
        world.clock.advance(result.requeue_after or 0)
    assert waits == [5, 10, 20, 40]
    assert world.status["failures"] == 4
    assert world.helm.calls == ["install", "upgrade", "upgrade", "upgrade", "upgrade"]
    await world.reconcile()
    assert world.status["failures"] == 0 and world.status["phase"] == "Succeeded"


async def test_events_tell_final_outcomes_only(world: World) -> None:
    world.apply(ROLLBACK)
    await world.reconcile()
    world.apply(spec(ROLLBACK, CHANGED))
    world.helm.fail_next("upgrade", fh.TIMED_OUT)
    world.kube.events.clear()
    await world.reconcile()
    assert [(t, r) for t, r, _ in world.kube.events] == [("Warning", "FailedReleaseSync"),
                                                          ("Warning", "FailedReleaseSync")]
    assert world.kube.events[0][2].startswith("DeployFailed: helm upgrade failed: UPGRADE FAILED:")
    assert world.kube.events[1][2].startswith("RolledBack: rolled back apps-web to revision 1")


async def test_fakes_write_secrets_the_engine_decodes_like_helm_4(world: World) -> None:
    """A guard on the fake itself: labels and encoding as helm v4.3.1 writes them."""
    await world.settle(BASE)
    world.helm.hand_upgrade(NAMESPACE, RELEASE, {"replicaCount": 5})
    secret = world.storage.secrets[(NAMESPACE, secret_name(RELEASE, 2))]
    labels = secret["metadata"]["labels"]
    assert secret["type"] == "helm.sh/release.v1"
    # an update rewrites the labels: modifiedAt replaces createdAt
    assert set(labels) == {ATTEMPT_LABEL, OWNER_LABEL, "modifiedAt", "name", "owner", "status", "version"}
    assert labels[ATTEMPT_LABEL].startswith("1.")  # inherited from revision 1, as `helm upgrade` does
    parsed = revision_meta(secret["metadata"])
    assert parsed is not None and not parsed[1].ours
    record = await world.release_storage.record(NAMESPACE, parsed[1])
    assert record is not None and (record.revision, record.status, record.description) == (
        2, "deployed", "Upgrade complete")
    assert "podinfo-test" not in [h.name for h in record.test_hooks] and record.test_hooks
    ref = ObjectRef("v1", "ConfigMap", RELEASE, NAMESPACE)
    assert '"replicaCount": 5' in world.kube.objects[ref]["data"]["values"]
    real = json.loads((Path(__file__).resolve().parents[1] / "testdata" / "helm4" /
                       "release-secret-failed-upgrade.json").read_text())
    real_doc, fake_doc = (decode_stored(x["data"]["release"]) for x in (real, secret))
    assert set(fake_doc) == set(real_doc) and set(fake_doc["info"]) == set(real_doc["info"])
    assert set(fake_doc["hooks"][0]) <= set(real_doc["hooks"][0])


async def test_a_release_in_another_namespace_is_stored_and_owned_there(world: World) -> None:
    await world.settle({"targetNamespace": "prod"})
    assert world.revisions("apps-prod-web", "prod") == [(1, "deployed")]
    assert [(m.revision, m.owner) for m in world.metas("apps-prod-web", "prod")] == [(1, "apps.web")]
    assert world.status["releaseName"] == "apps-prod-web"
    world.helm.hand_uninstall("prod", "apps-prod-web")
    world.reset_counters()
    world.flush()
    assert world.nudged == [KEY]
    await world.reconcile()
    assert world.helm.calls == ["install"] and world.revisions("apps-prod-web", "prod") == [(1, "deployed")]
