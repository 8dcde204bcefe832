"""Release controls, compatible extensions of `helm.fluxcd.io/v1` (COMPAT
section 4): `spec.suspend`, `spec.dependsOn`, `spec.driftDetection`, and the
`reconcile.fluxcd.io/*` request annotations Flux v2's CLI writes.

Place in the flow: `helmrelease.parse` reads these with the rest of the
spec; `release/state` and the reconciler act on them. Every field is
optional and absent means v1 behaviour. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from helm_operator.api._fields import InvalidSpec, read_bool, read_list, read_map, read_str, type_name

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
DRIFT_OPT_OUT = "helm.toolkit.fluxcd.io/driftDetection"  # value "disabled" on a live object


class DriftMode(StrEnum):
    DISABLED = "disabled"  # never compare live objects
    WARN = "warn"          # report drifted paths (event, Drifted condition), change nothing
    ENABLED = "enabled"    # report and put the objects back


@dataclass(frozen=True)
class Dependency:
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DriftTarget:
    """Which objects an ignore rule applies to; empty fields match anything."""

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    label_selector: str | None = None
    annotation_selector: str | None = None


@dataclass(frozen=True)
class DriftIgnore:
    paths: tuple[str, ...]          # JSON pointers (RFC 6901)
    target: DriftTarget | None = None


@dataclass(frozen=True)
class DriftDetection:
    mode: DriftMode | None = None   # None: the operator's --default-drift-mode
    ignore: tuple[DriftIgnore, ...] = ()


@dataclass(frozen=True)
class Requests:
    """The request annotations' tokens (empty when absent)."""

    reconcile: str = ""
    force: str = ""
    reset: str = ""


@dataclass(frozen=True)
class Controls:
    suspend: bool = False
    depends_on: tuple[Dependency, ...] = ()
    drift: DriftDetection = field(default_factory=DriftDetection)


def parse_controls(spec: Mapping[str, Any], namespace: str) -> Controls:
    return Controls(
        suspend=bool(read_bool(spec, "suspend", "spec.suspend")),
        depends_on=_depends_on(spec, namespace),
        drift=_drift(read_map(spec, "driftDetection", "spec.driftDetection")),
    )


def parse_requests(annotations: Mapping[str, str]) -> Requests:
    return Requests(reconcile=str(annotations.get(REQUESTED_AT) or ""), force=str(annotations.get(FORCE_AT) or ""),
                    reset=str(annotations.get(RESET_AT) or ""))


def _depends_on(spec: Mapping[str, Any], namespace: str) -> tuple[Dependency, ...]:
    out = []
    for i, item in enumerate(read_list(spec, "dependsOn", "spec.dependsOn")):
        where = f"spec.dependsOn[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidSpec(f"{where} must be a map with name (and namespace), got {type_name(item)}")
        name = read_str(item, "name", f"{where}.name")
        if not name:
            raise InvalidSpec(f"{where}.name is required: the name of a HelmRelease this one waits for")
        out.append(Dependency(read_str(item, "namespace", f"{where}.namespace") or namespace, name))
    return tuple(out)


def _drift(section: Mapping[str, Any]) -> DriftDetection:
    mode_text = read_str(section, "mode", "spec.driftDetection.mode")
    mode = None
    if mode_text is not None:
        try:
            mode = DriftMode(mode_text)
        except ValueError:
            raise InvalidSpec(f"spec.driftDetection.mode must be disabled, warn or enabled, got {mode_text!r}") from None
    rules = []
    for i, item in enumerate(read_list(section, "ignore", "spec.driftDetection.ignore")):
        where = f"spec.driftDetection.ignore[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidSpec(f"{where} must be a map with paths (and target), got {type_name(item)}")
        paths = read_list(item, "paths", f"{where}.paths")
        if not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise InvalidSpec(f"{where}.paths must be a list of JSON pointers such as /spec/replicas")
        target = None
        if item.get("target") is not None:
            t = read_map(item, "target", f"{where}.target")
            target = DriftTarget(**{attr: read_str(t, key, f"{where}.target.{key}") for attr, key in (
                ("group", "group"), ("version", "version"), ("kind", "kind"), ("name", "name"),
                ("namespace", "namespace"), ("label_selector", "labelSelector"),
                ("annotation_selector", "annotationSelector"))})
        rules.append(DriftIgnore(tuple(paths), target))
    return DriftDetection(mode, tuple(rules))
