"""What of a drift the HelmRelease cares about. Pure.

Place in the flow: `drift.DriftDetector` finds the objects of a release
that differ from its manifest; this module drops what
`spec.driftDetection.ignore` names (JSON pointers, for the objects a target
selects: typically fields a mutating webhook or an autoscaler owns) and the
objects annotated `helm.toolkit.fluxcd.io/driftDetection: disabled`; the
reconciler then warns or corrects, as `spec.driftDetection.mode` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from helm_operator.api.controls import DRIFT_OPT_OUT, DriftIgnore, DriftTarget
from helm_operator.release.drift import Drift


def _selector_matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Equality-based selectors (`a=b,c!=d,e,!f`), as Kubernetes label selectors write them."""
    if not selector:
        return True
    for term in (t.strip() for t in selector.split(",")):
        if not term:
            continue
        if "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term or "=" in term:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _targets(target: DriftTarget | None, drift: Drift) -> bool:
    if target is None:
        return True
    group, _, version = drift.api_version.rpartition("/")
    return all((
        target.group is None or target.group == group,
        target.version is None or target.version == version,
        target.kind is None or target.kind == drift.kind,
        target.name is None or target.name == drift.name,
        target.namespace is None or target.namespace == drift.namespace,
        _selector_matches(target.label_selector, drift.labels),
        _selector_matches(target.annotation_selector, drift.annotations),
    ))


def _under(path: str, pointer: str) -> bool:
    return path == pointer or path.startswith(pointer.rstrip("/") + "/")


def ignored_paths(drift: Drift, ignore: Sequence[DriftIgnore]) -> list[str]:
    """The JSON pointers the rules ignore on this object (left out when it is put back)."""
    return [p for rule in ignore if _targets(rule.target, drift) for p in rule.paths]


def relevant(drifts: Sequence[Drift], ignore: Sequence[DriftIgnore]) -> list[Drift]:
    """The drifts left after the ignore rules and the per-object opt-out."""
    out = []
    for drift in drifts:
        if drift.annotations.get(DRIFT_OPT_OUT) == "disabled":
            continue
        if drift.missing:
            out.append(drift)
            continue
        pointers = [p for rule in ignore if _targets(rule.target, drift) for p in rule.paths]
        paths = tuple(p for p in drift.paths if not any(_under(p, ptr) for ptr in pointers))
        if paths:
            out.append(replace(drift, paths=paths))
    return out
