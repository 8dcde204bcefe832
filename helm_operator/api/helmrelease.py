"""The HelmRelease v1 model: `parse(obj)` applies every default of COMPAT §1.

Place in the flow: the first step of a reconcile (and of the CLI) turns the
camelCase dict from the Kubernetes API into a frozen `HelmRelease` whose
fields are final: no caller applies a default again. A spec that cannot be
acted on raises `InvalidSpec` with a message for the status. `parse_ref`
reads only what deleting or reporting on a release needs, and never fails
on the spec's chart or values, so a broken HelmRelease can still be
finalized. No I/O, no `kubernetes` import.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api._fields import InvalidSpec, read_bool, read_int, read_map, read_str, type_name
from helm_operator.api.constants import (
    DEFAULT_GIT_REF,
    DEFAULT_MAX_HISTORY,
    DEFAULT_ROLLBACK_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    FINALIZER,
    MAX_RELEASE_NAME_LENGTH,
    SINGULAR,
)
from helm_operator.api.controls import Controls, Requests, parse_controls, parse_requests
from helm_operator.api.sources import (
    ChartSource,
    SecretRef,
    ValuesSource,
    parse_chart_source,
    parse_values_sources,
)

__all__ = [
    "ChartSource", "HelmRelease", "HelmReleaseRef", "InvalidSpec", "Rollback", "SecretRef",
    "Test", "ValuesSource", "default_release_name", "format_antecedent", "parse", "parse_antecedent",
    "parse_ref",
]

HELM_V2_REFUSED = (
    "helmVersion v2 is not supported: this operator runs Helm v4; set helmVersion: v3 or remove the field"
)
# Helm's own rule for release names (DNS-1123 labels joined by dots).
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, kw_only=True)
class Rollback:
    """`spec.rollback`: what to do when an upgrade that made a revision fails."""

    enable: bool = False
    retry: bool = False
    max_retries: int = DEFAULT_ROLLBACK_MAX_RETRIES  # 0 = unlimited
    force: bool = False
    recreate: bool = False
    disable_hooks: bool = False
    timeout: int = DEFAULT_TIMEOUT
    wait: bool = False


@dataclass(frozen=True, kw_only=True)
class Test:
    """`spec.test`: Helm tests after each successful install or upgrade."""

    __test__ = False  # not a pytest test class

    enable: bool = False
    ignore_failures: bool = False
    timeout: int = DEFAULT_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class HelmReleaseRef:
    """Metadata, raw status and the release's identity: enough to delete it."""

    namespace: str
    name: str
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    deletion_timestamp: str | None = None
    finalizers: tuple[str, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)
    target_namespace: str = ""
    release_name: str = ""
    # spec.serviceAccountName (ours, COMPAT §4): helm acts as this
    # ServiceAccount of the HelmRelease's namespace. Here because deleting
    # a release acts as it too.
    service_account_name: str | None = None

    @property
    def key(self) -> str:
        """`namespace/name`: the queue key and how logs name the object."""
        return f"{self.namespace}/{self.name}"

    @property
    def antecedent(self) -> str:
        """The value of the antecedent annotation this HelmRelease writes."""
        return format_antecedent(self.namespace, self.name)

    @property
    def is_deleting(self) -> bool:
        return self.deletion_timestamp is not None

    @property
    def has_finalizer(self) -> bool:
        return FINALIZER in self.finalizers


@dataclass(frozen=True, kw_only=True)
class HelmRelease(HelmReleaseRef):
    """A HelmRelease with every default applied; see COMPAT §1 for meanings."""

    chart: ChartSource
    helm_version: str | None = None  # "v3" or None; v2 is refused
    max_history: int = DEFAULT_MAX_HISTORY  # 0 = unlimited
    timeout: int = DEFAULT_TIMEOUT
    reset_values: bool | None = None  # None (unset) resets like True
    skip_crds: bool = False
    wait: bool = False
    force_upgrade: bool = False
    disable_openapi_validation: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    values_from: tuple[ValuesSource, ...] = ()
    rollback: Rollback = field(default_factory=Rollback)
    test: Test = field(default_factory=Test)
    controls: Controls = field(default_factory=Controls)  # suspend, dependsOn, driftDetection

    @property
    def requests(self) -> Requests:
        """The reconcile.fluxcd.io/* request annotations."""
        return parse_requests(self.annotations)


def format_antecedent(namespace: str, name: str) -> str:
    """`<ns>:helmrelease/<name>`, as Flux v1 wrote on a release's objects."""
    return f"{namespace}:{SINGULAR}/{name}"


def parse_antecedent(value: str) -> tuple[str, str] | None:
    """(namespace, name) from an antecedent annotation; None if malformed."""
    namespace, sep, rest = value.partition(":")
    kind, slash, name = rest.partition("/")
    if not (sep and slash and namespace and name) or kind.lower() != SINGULAR:
        return None
    return namespace, name


def parse_ref(obj: Mapping[str, Any]) -> HelmReleaseRef:
    """Metadata, status and release identity; the spec's sources are not read."""
    return HelmReleaseRef(**_ref_fields(obj))


def parse(obj: Mapping[str, Any], *, default_git_ref: str = DEFAULT_GIT_REF,
          limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> HelmRelease:
    """The full model, or InvalidSpec saying what to change in the manifest.

    `limits` bound the inline `spec.values` (nesting and size) before any
    code walks them: the YAML limits, applied to what the API server decoded.
    """
    ref = _ref_fields(obj)
    _check_release_name(ref["release_name"])
    _check_service_account_name(read_str(read_map(obj, "spec", "spec"), "serviceAccountName",
                                         "spec.serviceAccountName"))
    spec = read_map(obj, "spec", "spec")
    rollback = _parse_rollback(read_map(spec, "rollback", "spec.rollback"))
    test = _parse_test(read_map(spec, "test", "spec.test"))
    wait = read_bool(spec, "wait", "spec.wait")
    return HelmRelease(
        **ref,
        chart=parse_chart_source(read_map(spec, "chart", "spec.chart"), ref["namespace"], default_git_ref),
        helm_version=_parse_helm_version(spec),
        max_history=read_int(spec, "maxHistory", "spec.maxHistory", DEFAULT_MAX_HISTORY),
        timeout=read_int(spec, "timeout", "spec.timeout", DEFAULT_TIMEOUT),
        reset_values=read_bool(spec, "resetValues", "spec.resetValues"),
        skip_crds=bool(read_bool(spec, "skipCRDs", "spec.skipCRDs")),
        wait=wait if wait is not None else (rollback.enable or test.enable),
        force_upgrade=bool(read_bool(spec, "forceUpgrade", "spec.forceUpgrade")),
        disable_openapi_validation=bool(
            read_bool(spec, "disableOpenAPIValidation", "spec.disableOpenAPIValidation")
        ),
        values=_parse_values(spec, limits),
        values_from=parse_values_sources(spec, ref["namespace"]),
        rollback=rollback,
        test=test,
        controls=parse_controls(spec, ref["namespace"]),
    )


def _ref_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of HelmReleaseRef, read from metadata and spec."""
    meta = read_map(obj, "metadata", "metadata")
    namespace = read_str(meta, "namespace", "metadata.namespace")
    name = read_str(meta, "name", "metadata.name")
    if namespace is None or name is None:
        raise InvalidSpec("a HelmRelease needs metadata.namespace and metadata.name")
    spec = read_map(obj, "spec", "spec")
    target = read_str(spec, "targetNamespace", "spec.targetNamespace") or namespace
    release_name = read_str(spec, "releaseName", "spec.releaseName")
    values = {
        "namespace": namespace,
        "name": name,
        "uid": meta.get("uid") or "",
        "generation": int(meta.get("generation") or 0),
        "resource_version": meta.get("resourceVersion") or "",
        "annotations": dict(meta.get("annotations") or {}),
        "labels": dict(meta.get("labels") or {}),
        "deletion_timestamp": meta.get("deletionTimestamp"),
        "finalizers": tuple(meta.get("finalizers") or ()),
        "status": copy.deepcopy(dict(obj.get("status") or {})),
        "target_namespace": target,
        "release_name": release_name or default_release_name(namespace, name, target),
        # Read leniently: a broken value must not stop a delete; `parse` refuses it.
        "service_account_name": spec.get("serviceAccountName") or None
        if isinstance(spec.get("serviceAccountName"), str) else None,
    }
    return values


def default_release_name(namespace: str, name: str, target_namespace: str) -> str:
    """Flux v1's name: `<ns>-<name>`, or `<ns>-<target>-<name>` across namespaces."""
    if namespace == target_namespace:
        return f"{namespace}-{name}"
    return f"{namespace}-{target_namespace}-{name}"


def _check_release_name(release_name: str) -> None:
    """Refuse names Helm would refuse, with the fix, before calling Helm."""
    if len(release_name) > MAX_RELEASE_NAME_LENGTH:
        raise InvalidSpec(
            f"release name {release_name!r} is longer than Helm's limit of {MAX_RELEASE_NAME_LENGTH} "
            "characters; set a shorter spec.releaseName"
        )
    if not _RELEASE_NAME.match(release_name):
        raise InvalidSpec(
            f"release name {release_name!r} is not valid for Helm (lower-case letters, digits, '-' and '.'); "
            "set spec.releaseName"
        )


def _check_service_account_name(name: str | None) -> None:
    """A ServiceAccount name is a DNS subdomain; anything else (a ':' or '/' reaching
    into another namespace) is refused before helm sees it."""
    if not name:
        return
    if len(name) > 253 or not _RELEASE_NAME.match(name):
        raise InvalidSpec(
            f"spec.serviceAccountName {name!r} is not a ServiceAccount name (lower-case letters, digits, "
            "'-' and '.'); name a ServiceAccount of the HelmRelease's own namespace"
        )


def _parse_helm_version(spec: Mapping[str, Any]) -> str | None:
    version = read_str(spec, "helmVersion", "spec.helmVersion")
    if version == "v2":
        raise InvalidSpec(HELM_V2_REFUSED)
    if version not in (None, "v3"):
        raise InvalidSpec(f"spec.helmVersion must be v3 or absent, got {version!r}")
    return version


def _parse_values(spec: Mapping[str, Any], limits: boundedyaml.Limits) -> dict[str, Any]:
    """A deep copy, so that the model never shares state with the input.

    Checked against `limits` first, without recursion: deepcopy, the merge
    and the digest all recurse into the values.
    """
    values = spec.get("values")
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidSpec(
            f"spec.values must be a map of chart values (key: value), got {type_name(values)}; "
            "move the values under keys or use valuesFrom"
        )
    try:
        boundedyaml.check_tree(values, "spec.values", limits)
    except boundedyaml.LimitExceeded as e:
        raise InvalidSpec(str(e)) from None
    return copy.deepcopy(dict(values))


def _parse_rollback(section: Mapping[str, Any]) -> Rollback:
    where = "spec.rollback"

    def flag(key: str) -> bool:
        return bool(read_bool(section, key, f"{where}.{key}"))

    return Rollback(
        enable=flag("enable"),
        retry=flag("retry"),
        max_retries=read_int(section, "maxRetries", f"{where}.maxRetries", DEFAULT_ROLLBACK_MAX_RETRIES),
        force=flag("force"),
        recreate=flag("recreate"),
        disable_hooks=flag("disableHooks"),
        timeout=read_int(section, "timeout", f"{where}.timeout", DEFAULT_TIMEOUT),
        wait=flag("wait"),
    )


def _parse_test(section: Mapping[str, Any]) -> Test:
    """`cleanup` is Helm 2 only: read for its type, then ignored."""
    where = "spec.test"
    read_bool(section, "cleanup", f"{where}.cleanup")
    return Test(
        enable=bool(read_bool(section, "enable", f"{where}.enable")),
        ignore_failures=bool(read_bool(section, "ignoreFailures", f"{where}.ignoreFailures")),
        timeout=read_int(section, "timeout", f"{where}.timeout", DEFAULT_TIMEOUT),
    )
