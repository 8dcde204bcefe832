"""The vocabulary of the reconcile scenarios: specs, and steps that arrange
the cluster or script helm, each an `async (World) -> None`.

`settled` arranges through the operator itself; `hand_*` act as a person
with the helm CLI; `crash_during`/`crash_after` kill the operator (and helm)
during a helm call or right after it, then start a new operator process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from helm_operator.api.constants import ANTECEDENT_ANNOTATION
from helm_operator.helm import UpgradeOptions
from helm_operator.helm.storage import ATTEMPT_LABEL, OWNER_LABEL, attempt_label
from tests.unit.fakes_release import helm as fh
from tests.unit.fakes_release.helm import Failure, OperatorKilled
from tests.unit.fakes_release.world import NAMESPACE, RELEASE, World

Step = Callable[[World], Awaitable[None]]

BASE: dict[str, Any] = {}
CHANGED = {"values": {"replicaCount": 2}}
CHANGED_AGAIN = {"values": {"replicaCount": 3}}
ROLLBACK = {"rollback": {"enable": True}}
RETRY = {"rollback": {"enable": True, "retry": True}}
TEST = {"test": {"enable": True}}
TEST_ROLLBACK = {"test": {"enable": True}, "rollback": {"enable": True}}
TEST_IGNORE = {"test": {"enable": True, "ignoreFailures": True}}
FROM_CONFIGMAP = {"valuesFrom": [{"configMapKeyRef": {"name": "web-values"}}]}


def spec(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parts:
        out.update(p)
    return out


# ---- steps -----------------------------------------------------------------------------
def settled(s: dict[str, Any] = BASE) -> Step:
    """The operator has made the release as `s` says (reconciled until nothing is left to do)."""
    async def step(w: World) -> None:
        await w.settle(s)
    return step


def apply(s: dict[str, Any]) -> Step:
    async def step(w: World) -> None:
        w.apply(s)
    return step


def fail(verb: str, failure: Failure, times: int = 1) -> Step:
    async def step(w: World) -> None:
        w.helm.fail_next(verb, failure, times)
    return step


def reconcile() -> Step:
    async def step(w: World) -> None:
        await w.reconcile()
    return step


def crash_during(verb: str) -> Step:
    """The operator is SIGKILLed during its next `verb` (helm dies with it), then starts again."""
    async def step(w: World) -> None:
        w.helm.kill_next(verb, operator_dies=True)
        for _ in range(5):
            try:
                result = await w.reconcile()
            except OperatorKilled:
                w.restart()
                return
            w.clock.advance(result.requeue_after or 0)
        raise AssertionError(f"the operator never ran helm {verb}")
    return step


def crash_after(verb: str) -> Step:
    """helm's next `verb` succeeds, but the operator is SIGKILLed before it records it; it starts again."""
    async def step(w: World) -> None:
        w.helm.fail_next(verb, fh.OPERATOR_KILLED_AFTER)
        for _ in range(5):
            try:
                result = await w.reconcile()
            except OperatorKilled:
                w.restart()
                return
            w.clock.advance(result.requeue_after or 0)
        raise AssertionError(f"the operator never ran helm {verb}")
    return step


def advance(seconds: float) -> Step:
    async def step(w: World) -> None:
        w.clock.advance(seconds)
    return step


def hand_upgrade(values: dict[str, Any]) -> Step:
    async def step(w: World) -> None:
        w.helm.hand_upgrade(NAMESPACE, RELEASE, values)
    return step


def hand_rollback(revision: int) -> Step:
    async def step(w: World) -> None:
        w.helm.hand_rollback(NAMESPACE, RELEASE, revision)
    return step


def hand_uninstall() -> Step:
    async def step(w: World) -> None:
        w.helm.hand_uninstall(NAMESPACE, RELEASE)
    return step


def installed_by(owner: str | None = None, antecedent: str | None = None) -> Step:
    """The release exists before the HelmRelease: installed by hand (`owner` None) or by the
    operator for another HelmRelease (its owner label), objects annotated with `antecedent`."""
    async def step(w: World) -> None:
        labels = {OWNER_LABEL: owner, ATTEMPT_LABEL: attempt_label(1, "c" * 64)} if owner else {}
        w.helm._upgrade_install(RELEASE, "/charts/podinfo/6.0.0", NAMESPACE, {"replicaCount": 9},
                                UpgradeOptions(labels=labels), None)
        if antecedent:
            for ref in list(w.kube.objects):
                w.kube.objects[ref]["metadata"]["annotations"][ANTECEDENT_ANNOTATION] = antecedent
    return step


def post_renderer_misses() -> Step:
    """helm applies the objects without the antecedent (the post-renderer could not annotate them:
    a chart writing flow-style YAML), so the engine must patch them."""
    async def step(w: World) -> None:
        w.helm.post_renders = False
    return step


def made_by_older_operator() -> Step:
    """Storage as an operator version without storage labels left it: digest in the description only."""
    async def step(w: World) -> None:
        for rel in w.storage.history(NAMESPACE, RELEASE):
            rel.labels = {}
            w.storage.update(rel, w.clock.unix())
        w.restart()
    return step


def configmap(values: str) -> Step:
    async def step(w: World) -> None:
        w.kube.put_configmap(NAMESPACE, "web-values", {"values.yaml": values})
    return step


def chart_fetch_fails(message: str) -> Step:
    async def step(w: World) -> None:
        w.charts.fail_next(message)
    return step


def delete() -> Step:
    async def step(w: World) -> None:
        w.delete()
    return step
