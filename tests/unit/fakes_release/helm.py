"""A fake helm v4 behind `release.actions.HelmActions`, writing `FakeStorage`.

It follows helm v4.3.1's `pkg/action` where the engine depends on it:

- `upgrade --install` installs when there is no revision (or the newest is
  `uninstalled`), else upgrades; an upgrade refuses a `pending-*` newest
  revision ("another operation ... is in progress").
- install: revision 1 stored `pending-install` ("Initial install
  underway") with the given labels, then `deployed` (description: the
  `--description`, else "Install complete") or `failed`
  (`Release "x" failed: <error>`).
- upgrade: revision newest+1 stored `pending-upgrade` ("Preparing
  upgrade") with the newest revision's custom labels merged with the given
  ones (so a hand `helm upgrade` inherits ours); success supersedes the
  deployed revision; failure leaves it deployed and stores
  `Upgrade "x" failed: <error>`. Render and build errors fail before any
  revision. `--history-max` prunes the oldest revisions, never the deployed one.
- rollback: revision newest+1 stored `pending-rollback` ("Rollback to N",
  `rollback_revision`) with the *target's* labels, config and manifest;
  success supersedes every deployed revision (a `pending-upgrade` stays as
  it is); failure supersedes the newest and stores `Rollback "x" failed: ...`.
- test: runs the newest revision's test hooks and records their phase.
- uninstall: deletes the objects and every revision (helm 4 purges).

Each call pops what the scenario scripted for that verb (`fail_next`,
`kill_next`), else succeeds. `calls` lists what the engine ran, as
"install", "upgrade", "test", "rollback 1", "uninstall"; `hand_*` act as a
person with the helm CLI would, without appearing in `calls`.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_operator.api.constants import ANTECEDENT_ANNOTATION
from helm_operator.helm import HelmError, ReleaseNotFound, UpgradeOptions
from helm_operator.helm.storage import ReleaseRecord, record_from_json
from tests.unit.fakes_release import texts
from tests.unit.fakes_release.kube import FakeClock, FakeKube
from tests.unit.fakes_release.storage import FakeStorage, StoredRelease


class OperatorKilled(BaseException):
    """The operator process died during a helm call (SIGKILL): nothing after it runs."""


@dataclass(frozen=True)
class Failure:
    """What the next call of a verb does instead of succeeding."""

    text: str = ""                  # helm's error ({ns} and {name} are filled in)
    made_revision: bool = True      # the revision was stored before the error
    applied: bool = True            # objects were changed before the error
    install_text: str | None = None # the text when the upgrade ran as an install
    killed: bool = False            # helm was SIGKILLed: the revision stays pending-*
    operator_dies: bool = False     # ... and the operator with it (raises OperatorKilled); without
                                    # `killed`: helm succeeds, the operator dies before it hears so


REJECTED = Failure(texts.REJECTED_TYPE, made_revision=True, applied=False)
TIMED_OUT = Failure(texts.TIMED_OUT)
HOOK_FAILED = Failure(texts.HOOK_FAILED_UPGRADE, install_text=texts.HOOK_FAILED_INSTALL)
RENDER_FAILED = Failure(texts.RENDER_FAILED, made_revision=False, applied=False)
REMOVED_API = Failure(texts.REMOVED_API, made_revision=False, applied=False, install_text=texts.REMOVED_API_INSTALL)
TEST_FAILED = Failure(texts.TEST_FAILED)
KILLED = Failure(texts.KILLED, killed=True)
OPERATOR_KILLED = Failure(texts.KILLED, killed=True, operator_dies=True)
OPERATOR_KILLED_AFTER = Failure(operator_dies=True)


@dataclass
class Invocation:
    verb: str
    release: str
    namespace: str
    revision: int | None = None
    opts: UpgradeOptions | None = None
    values: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)


def chart_of(path: Path | str) -> tuple[str, str]:
    """(name, version) of a chart the fake fetcher handed out: /charts/<name>/<version>."""
    p = Path(path)
    return p.parent.name, p.name


def render(release: str, values: dict[str, Any], antecedent: str = "") -> str:
    """The manifest: a ConfigMap holding the values and a Deployment (YAML as JSON lines);
    with `antecedent`, as the post-renderer leaves it (the annotation on each object)."""
    meta: dict[str, Any] = {"name": release}
    if antecedent:
        meta["annotations"] = {ANTECEDENT_ANNOTATION: antecedent}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"values": json.dumps(values, sort_keys=True)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": values.get("replicaCount", 1)}},
    ]
    return "".join(f"---\n# Source: podinfo/templates/{d['kind'].lower()}.yaml\n{json.dumps(d)}\n" for d in docs)


def test_hook(release: str) -> dict[str, Any]:
    return {"name": f"{release}-test", "kind": "Pod", "path": "podinfo/templates/tests/test.yaml",
            "manifest": "", "events": ["test"], "last_run": {"phase": ""},
            "delete_policies": ["before-hook-creation"]}


class FakeHelm:
    """helm v4 against `FakeStorage` and `FakeKube`'s objects."""

    def __init__(self, storage: FakeStorage, kube: FakeKube, clock: FakeClock) -> None:
        self.storage = storage
        self.kube = kube
        self.clock = clock
        self.calls: list[str] = []
        self.impersonated: list[str | None] = []  # who each call acted as (tenancy)
        self.invocations: list[Invocation] = []
        self._next: dict[str, deque[Failure]] = defaultdict(deque)
        self._dies_after = False
        # The antecedent post-renderer ran (helm.postrender); False: a chart it could not
        # annotate (flow style), so the engine must patch the objects itself.
        self.post_renders = True

    # ---- scripting ------------------------------------------------------------
    def fail_next(self, verb: str, failure: Failure, times: int = 1) -> None:
        """The next `times` calls of `verb` (install, upgrade, rollback, test, uninstall) fail so."""
        self._next[verb].extend([failure] * times)

    def kill_next(self, verb: str, operator_dies: bool = False) -> None:
        self.fail_next(verb, OPERATOR_KILLED if operator_dies else KILLED)

    def _pop(self, verb: str) -> Failure | None:
        queue = self._next.get(verb)
        failure = queue.popleft() if queue else None
        if failure is not None and failure.operator_dies and not failure.killed:
            self._dies_after = True
            return None
        return failure

    def _heard(self, verb: str, release: str) -> None:
        """Helm succeeded; unless the operator died before it could read the answer."""
        if self._dies_after:
            self._dies_after = False
            raise OperatorKilled(f"operator killed right after helm {verb} of {release} succeeded")

    def _text(self, failure: Failure, ns: str, name: str, install: bool = False) -> str:
        text = failure.install_text if install and failure.install_text else failure.text
        return text.format(ns=ns, name=name)

    def _die(self, failure: Failure, action: str, release: str) -> None:
        if failure.operator_dies:
            raise OperatorKilled(f"operator killed during helm {action} of {release}")
        raise HelmError(action, release, texts.KILLED)

    # ---- HelmActions ------------------------------------------------------------
    async def upgrade_install(self, release: str, chart: Path | str, namespace: str,
                              values: dict[str, Any], opts: UpgradeOptions, *,
                              impersonate: str | None = None) -> ReleaseRecord:
        self.impersonated.append(impersonate)
        history = self.storage.history(namespace, release)
        install = not history or history[-1].status == "uninstalled"
        self.calls.append("install" if install else "upgrade")
        self.invocations.append(Invocation(self.calls[-1], release, namespace, opts=opts, values=values))
        record = self._upgrade_install(release, chart, namespace, values, opts, self._pop(self.calls[-1]))
        self._heard(self.calls[-1], release)
        return record

    async def rollback(self, release: str, namespace: str, revision: int | None, *,
                       timeout_seconds: int, wait: bool, force: bool, disable_hooks: bool,
                       max_history: int, impersonate: str | None = None) -> None:
        self.impersonated.append(impersonate)
        self.calls.append(f"rollback {revision}" if revision is not None else "rollback")
        self.invocations.append(Invocation("rollback", release, namespace, revision, kwargs=dict(
            timeout_seconds=timeout_seconds, wait=wait, force=force, disable_hooks=disable_hooks,
            max_history=max_history)))
        self._rollback(release, namespace, revision, max_history, self._pop("rollback"))
        self._heard("rollback", release)

    async def test(self, release: str, namespace: str, timeout_seconds: int, *,
                   impersonate: str | None = None) -> None:
        self.impersonated.append(impersonate)
        self.calls.append("test")
        self.invocations.append(Invocation("test", release, namespace))
        history = self.storage.history(namespace, release)
        if not history:
            raise ReleaseNotFound("test", release, "release: not found")
        rel = history[-1]
        failure = self._pop("test")
        phase = "Running" if failure and failure.killed else "Failed" if failure else "Succeeded"
        stamp = self.clock.helm_time()
        rel.hooks = [{**h, "last_run": {"started_at": stamp, "completed_at": stamp, "phase": phase}}
                     if "test" in (h.get("events") or ()) else h for h in rel.hooks]
        self.storage.update(rel, self.clock.unix())
        if failure and failure.killed:
            self._die(failure, "test", release)
        if failure:
            raise HelmError("test", release, self._text(failure, namespace, release))
        self._heard("test", release)

    async def uninstall(self, release: str, namespace: str, timeout_seconds: int, wait: bool = False, *,
                        impersonate: str | None = None) -> None:
        self.impersonated.append(impersonate)
        self.calls.append("uninstall")
        self.invocations.append(Invocation("uninstall", release, namespace))
        self._uninstall(release, namespace, self._pop("uninstall"))

    # ---- by hand (the helm CLI, outside the operator) ------------------------------
    def hand_upgrade(self, namespace: str, release: str, values: dict[str, Any]) -> None:
        """`helm upgrade <release> <same chart> --set ...`: no labels, no description of ours."""
        newest = self.storage.history(namespace, release)[-1]
        chart = Path("/charts") / newest.chart_name / newest.chart_version
        self._upgrade_install(release, chart, namespace, values, UpgradeOptions(), None)

    def hand_rollback(self, namespace: str, release: str, revision: int) -> None:
        self._rollback(release, namespace, revision, 10, None)

    def hand_uninstall(self, namespace: str, release: str) -> None:
        self._uninstall(release, namespace, None)

    # ---- helm's actions --------------------------------------------------------------
    def _upgrade_install(self, release: str, chart: Path | str, namespace: str, values: dict[str, Any],
                         opts: UpgradeOptions, failure: Failure | None) -> ReleaseRecord:
        history = self.storage.history(namespace, release)
        chart_name, chart_version = chart_of(chart)
        now = self.clock.helm_time()
        new = StoredRelease(name=release, namespace=namespace, version=1, status="", description="",
                            chart_name=chart_name, chart_version=chart_version, app_version=chart_version,
                            config=dict(values), hooks=[test_hook(release)],
                            manifest=render(release, values, opts.antecedent if self.post_renders else ""),
                            first_deployed=now, last_deployed=now)
        if not history or history[-1].status == "uninstalled":
            return self._install(new, history, opts, failure)
        last = history[-1]
        if last.status.startswith("pending-"):
            raise HelmError("upgrade", release, texts.upgrade_stderr(texts.PENDING))
        current = last if last.status == "deployed" else next(
            (r for r in reversed(history) if r.status == "deployed"), None)
        if current is None:
            if last.status not in ("failed", "superseded"):
                raise HelmError("upgrade", release, texts.upgrade_stderr(f'"{release}" has no deployed releases'))
            current = last
        if failure is not None and not failure.made_revision:
            raise HelmError("upgrade", release, texts.upgrade_stderr(self._text(failure, namespace, release)))
        new.version = last.version + 1
        new.first_deployed = current.first_deployed
        new.labels = {k: v for k, v in {**last.labels, **opts.labels}.items() if v != "null"}
        new.status, new.description = "pending-upgrade", "Preparing upgrade"
        self._prune(namespace, release, opts.max_history)
        self.storage.create(new, self.clock.unix())
        if failure is not None:
            if failure.killed:
                self._die(failure, "upgrade", release)
            text = self._text(failure, namespace, release)
            if failure.applied:
                self.kube.apply_manifest(namespace, release, new.manifest)
            self.storage.update(current, self.clock.unix())  # helm records the original again, unchanged
            new.status, new.description = "failed", texts.upgrade_description(release, text)
            self.storage.update(new, self.clock.unix())
            raise HelmError("upgrade", release, texts.upgrade_stderr(text))
        self.kube.apply_manifest(namespace, release, new.manifest, previous=current.manifest)
        current.status = "superseded"
        self.storage.update(current, self.clock.unix())
        new.status, new.description = "deployed", opts.description or "Upgrade complete"
        self.storage.update(new, self.clock.unix())
        return record_from_json(new.to_json())

    def _install(self, new: StoredRelease, history: list[StoredRelease], opts: UpgradeOptions,
                 failure: Failure | None) -> ReleaseRecord:
        release, namespace = new.name, new.namespace
        if failure is not None and not failure.made_revision:
            raise HelmError("upgrade", release, self._text(failure, namespace, release, install=True))
        new.labels = dict(opts.labels)
        if history:  # replace an uninstalled release kept with --keep-history
            new.version = history[-1].version + 1
            history[-1].status, history[-1].description = "superseded", "superseded by new release"
            self.storage.update(history[-1], self.clock.unix())
        new.status, new.description = "pending-install", "Initial install underway"
        self.storage.create(new, self.clock.unix())
        if failure is not None:
            if failure.killed:
                self._die(failure, "upgrade", release)
            text = self._text(failure, namespace, release, install=True)
            if failure.applied:
                self.kube.apply_manifest(namespace, release, new.manifest)
            new.status, new.description = "failed", texts.install_description(release, text)
            self.storage.update(new, self.clock.unix())
            raise HelmError("upgrade", release, text)
        self.kube.apply_manifest(namespace, release, new.manifest)
        new.status, new.description = "deployed", opts.description or "Install complete"
        self.storage.update(new, self.clock.unix())
        return record_from_json(new.to_json())

    def _rollback(self, release: str, namespace: str, revision: int | None, max_history: int,
                  failure: Failure | None) -> None:
        history = self.storage.history(namespace, release)
        if not history:
            raise ReleaseNotFound("rollback", release, "release: not found")
        current = history[-1]
        target_version = revision if revision else current.version - 1
        target = next((r for r in history if r.version == target_version), None)
        if target is None:
            raise HelmError("rollback", release, f"release has no {target_version} version")
        if failure is not None and not failure.made_revision:
            raise HelmError("rollback", release, self._text(failure, namespace, release))
        new = StoredRelease(name=release, namespace=namespace, version=current.version + 1,
                            status="pending-rollback", description=f"Rollback to {target_version}",
                            chart_name=target.chart_name, chart_version=target.chart_version,
                            app_version=target.app_version, config=target.config, manifest=target.manifest,
                            hooks=target.hooks, labels=dict(target.labels),
                            first_deployed=current.first_deployed, last_deployed=self.clock.helm_time(),
                            rollback_revision=target_version)
        self._prune(namespace, release, max_history)
        self.storage.create(new, self.clock.unix())
        if failure is not None:
            if failure.killed:
                self._die(failure, "rollback", release)
            text = self._text(failure, namespace, release)
            current.status = "superseded"
            self.storage.update(current, self.clock.unix())
            new.status, new.description = "failed", f'Rollback "{release}" failed: {text}'
            self.storage.update(new, self.clock.unix())
            raise HelmError("rollback", release, text)
        self.kube.apply_manifest(namespace, release, new.manifest, previous=current.manifest)
        for rel in self.storage.history(namespace, release):
            if rel.status == "deployed":
                rel.status = "superseded"
                self.storage.update(rel, self.clock.unix())
        new.status = "deployed"
        self.storage.update(new, self.clock.unix())

    def _uninstall(self, release: str, namespace: str, failure: Failure | None) -> None:
        history = self.storage.history(namespace, release)
        if not history:
            raise ReleaseNotFound("uninstall", release, texts.NOT_FOUND.format(name=release))
        last = history[-1]
        if failure is not None:
            if failure.killed:
                last.status, last.description = "uninstalling", "Deletion in progress (or silently failed)"
                self.storage.update(last, self.clock.unix())
                self._die(failure, "uninstall", release)
            raise HelmError("uninstall", release, self._text(failure, namespace, release))
        self.kube.delete_manifest(namespace, last.manifest)
        for rel in history:
            self.storage.delete(namespace, release, rel.version)

    def _prune(self, namespace: str, release: str, max_history: int) -> None:
        """helm's removeLeastRecent(max-1) before a create: oldest first, never the deployed one."""
        if max_history <= 0:
            return
        history = self.storage.history(namespace, release)
        deployed = next((r.version for r in reversed(history) if r.status == "deployed"), None)
        excess = len(history) - (max_history - 1)
        for rel in history:
            if excess <= 0:
                break
            if rel.version != deployed:
                self.storage.delete(namespace, release, rel.version)
                excess -= 1
