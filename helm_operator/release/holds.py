"""What holds a HelmRelease before anything is fetched: a spec that cannot be
parsed, a tenancy refusal, `spec.suspend`, dependencies not Ready (or a
cycle). Each says so in the status once and acts on nothing.

Place in the flow: right after parsing, before `gather`. The decisions
themselves are `state.precondition`'s; this room reads the dependencies
from the watch cache and writes the notes.
"""

from __future__ import annotations

from typing import Any

from helm_operator.api.conditions import get_condition, ready_for_generation
from helm_operator.api.constants import NO_CHART_SOURCE, ConditionType, Phase
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef, InvalidSpec
from helm_operator.release.base import DONE, SUSPENDED, EngineBase, Result, log
from helm_operator.release.record import Note, Outcome
from helm_operator.release.state import Decision, State
from helm_operator.runtime.logs import fields


class HoldsMixin(EngineBase):
    def _dependencies(self, hr: HelmRelease) -> tuple[list[str], list[str] | None]:
        """Which dependencies are not Ready (from the watch cache), and a dependency cycle, if any."""
        waiting = []
        for dependency in hr.controls.depends_on:
            obj = self.store.get(dependency.key)
            if obj is None:
                waiting.append(f"HelmRelease {dependency.key} not found")
                continue
            ready, why = ready_for_generation(obj)
            if not ready:
                waiting.append(f"{dependency.key} is not Ready ({why})")
        return waiting, self._cycle(hr) if hr.controls.depends_on else None

    def _cycle(self, hr: HelmRelease) -> list[str] | None:
        """The dependency chain from `hr` back to itself, if there is one."""
        def deps(key: str) -> list[str]:
            obj = self.store.get(key) or {}
            namespace = key.partition("/")[0]
            out = []
            for item in (obj.get("spec") or {}).get("dependsOn") or []:
                if isinstance(item, dict) and item.get("name"):
                    out.append(f"{item.get('namespace') or namespace}/{item['name']}")
            return out

        stack: list[tuple[str, list[str]]] = [(d.key, [hr.key, d.key]) for d in hr.controls.depends_on]
        seen: set[str] = set()
        while stack:
            key, path = stack.pop()
            if key == hr.key:
                return path
            if key in seen:
                continue
            seen.add(key)
            stack.extend((d, path + [d]) for d in deps(key))
        return None

    async def _hold(self, hr: HelmRelease, obj: dict[str, Any], d: Decision) -> Result:
        """Suspended or waiting for dependencies: say so, act on nothing."""
        self.settled.pop(hr.key, None)
        if d.state is State.SUSPENDED:
            if get_condition(hr.status.get("conditions"), SUSPENDED) is None:
                log.info("%s", d.reason, extra=fields(object=hr.key, action="suspend"))
            await self._note(hr, obj, Note(conditions=((SUSPENDED, "True", "Suspended", d.reason),),
                                           fields={"observedGeneration": hr.generation}))
            return DONE
        log.info("%s: %s", d.state.value, d.reason, extra=fields(object=hr.key))
        await self._note(hr, obj, Note(conditions=((ConditionType.READY, "False", d.state.value, d.reason),),
                                       fields={"observedGeneration": hr.generation}))
        return DONE  # a dependency becoming Ready enqueues this one (watching.HelmReleaseEvents)

    async def _release_holds(self, hr: HelmRelease, obj: dict[str, Any]) -> HelmRelease:
        """Resumed, or its dependencies are Ready: clear what said it was held."""
        conditions = hr.status.get("conditions")
        ready = get_condition(conditions, ConditionType.READY) or {}
        if get_condition(conditions, SUSPENDED) is not None:
            log.info("resumed", extra=fields(object=hr.key, action="resume"))
            hr = await self._note(hr, obj, Note(remove=(SUSPENDED,)))
        if ready.get("reason") == State.WAITING.value:
            hr = await self._note(hr, obj, Note(conditions=(
                (ConditionType.READY, "Unknown", "DependenciesReady", "dependencies are Ready"),)))
        return hr

    async def _invalid(self, ref: HelmReleaseRef, obj: dict[str, Any], e: InvalidSpec) -> Result:
        log.warning("invalid HelmRelease: %s", e, extra=fields(object=ref.key, error=e))
        self.settled.pop(ref.key, None)
        phase = Phase.CHART_FETCH_FAILED if str(e) == NO_CHART_SOURCE else Phase.FAILED
        ready = get_condition(ref.status.get("conditions"), ConditionType.READY) or {}
        if not (ref.status.get("observedGeneration") == ref.generation and ready.get("message") == str(e)):
            await self.recorder.record(ref, obj, Outcome(phase, str(e)))
        return DONE  # nothing to retry until the HelmRelease changes

    async def _refused(self, hr: HelmRelease, obj: dict[str, Any], refused: str) -> Result:
        """The tenancy policy refuses this HelmRelease: say why once, act on nothing."""
        log.warning("refused: %s", refused, extra=fields(object=hr.key, error=refused))
        self.settled.pop(hr.key, None)
        ready = get_condition(hr.status.get("conditions"), ConditionType.READY) or {}
        if not (hr.status.get("observedGeneration") == hr.generation and ready.get("message") == refused):
            await self.recorder.record(hr, obj, Outcome(Phase.FAILED, refused))
        return DONE
