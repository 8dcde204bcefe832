"""Where a release's chart and values come from: `spec.chart`, `valuesFrom`.

Pure parsing with the defaults of COMPAT §1. Fetching the chart or reading a
ConfigMap is the job of `chartsource/` and `release/`; this module only says
*what* to fetch. Re-exported by `helmrelease`, which is where callers look.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helm_operator.api._fields import InvalidSpec, read_bool, read_list, read_map, read_str
from helm_operator.api.constants import (
    DEFAULT_VALUES_KEY,
    NO_CHART_SOURCE,
    ChartSourceKind,
    ValuesSourceKind,
)
from helm_operator.redaction import redact_url

_HTTP = ("http://", "https://")
_OCI = "oci://"


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    """A Secret for Git basic auth; namespace already defaulted."""

    name: str
    namespace: str


@dataclass(frozen=True, kw_only=True)
class ChartSource:
    """One complete chart source; fields of the other kinds stay None."""

    kind: ChartSourceKind
    repository: str | None = None  # helm: http(s) URL; oci: oci://host/path
    name: str | None = None
    version: str | None = None
    pull_secret: str | None = None  # helm/oci: Secret name in the HR namespace
    git: str | None = None
    ref: str | None = None
    path: str | None = None
    secret_ref: SecretRef | None = None
    skip_dep_update: bool = False

    def describe(self) -> str:
        """A one-line id for logs and messages: what would be fetched, URL credentials removed.

        Also part of the release's configuration digest: credentials written
        into the URL are not configuration, changing them re-deploys nothing.
        """
        if self.kind is ChartSourceKind.GIT:
            return f"git {redact_url(str(self.git))}//{self.path}@{self.ref}"
        return f"{self.kind} {redact_url(str(self.repository))} {self.name}@{self.version}"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, kw_only=True)
class ValuesSource:
    """One `valuesFrom` entry. Only the fields of its `kind` are set.

    configMapKeyRef/secretKeyRef: name, namespace, key; externalSourceRef:
    url; chartFileRef: path.
    """

    kind: ValuesSourceKind
    name: str | None = None
    namespace: str | None = None
    key: str | None = None
    url: str | None = None
    path: str | None = None
    optional: bool = False

    def describe(self) -> str:
        """A one-line id for logs and messages (never the values)."""
        if self.kind is ValuesSourceKind.EXTERNAL:
            where = redact_url(str(self.url))
        elif self.kind is ValuesSourceKind.CHART_FILE:
            where = str(self.path)
        else:
            where = f"{self.namespace}/{self.name}[{self.key}]"
        return f"{self.kind} {where}" + (" (optional)" if self.optional else "")


def parse_chart_source(chart: Mapping[str, Any], namespace: str, default_git_ref: str) -> ChartSource:
    """The chart source, Git first then a repository, as Flux v1 chose.

    A source counts only when complete; otherwise InvalidSpec with the exact
    Flux v1 message and a hint naming what is missing.
    """
    where = "spec.chart"
    git = read_str(chart, "git", f"{where}.git")
    path = read_str(chart, "path", f"{where}.path")
    if git and path:
        return _git_source(chart, git, path, namespace, default_git_ref)
    repository = read_str(chart, "repository", f"{where}.repository")
    name = read_str(chart, "name", f"{where}.name")
    version = read_str(chart, "version", f"{where}.version")
    kind = _repository_kind(repository)
    if kind is not None and name and version:
        pull_secret = read_map(chart, "chartPullSecret", f"{where}.chartPullSecret")
        return ChartSource(
            kind=kind,
            repository=repository,
            name=name,
            version=version,
            pull_secret=read_str(pull_secret, "name", f"{where}.chartPullSecret.name"),
        )
    raise InvalidSpec(NO_CHART_SOURCE, hint=_missing_chart_fields(git, repository, kind, name, version))


def _git_source(
    chart: Mapping[str, Any], git: str, path: str, namespace: str, default_git_ref: str
) -> ChartSource:
    secret = read_map(chart, "secretRef", "spec.chart.secretRef")
    secret_ref = None
    if secret:
        secret_name = read_str(secret, "name", "spec.chart.secretRef.name")
        if secret_name is None:
            raise InvalidSpec("spec.chart.secretRef needs a name: the Secret holding username and password")
        secret_ns = read_str(secret, "namespace", "spec.chart.secretRef.namespace")
        secret_ref = SecretRef(name=secret_name, namespace=secret_ns or namespace)
    return ChartSource(
        kind=ChartSourceKind.GIT,
        git=git,
        ref=read_str(chart, "ref", "spec.chart.ref") or default_git_ref,
        path=path,
        secret_ref=secret_ref,
        skip_dep_update=bool(read_bool(chart, "skipDepUpdate", "spec.chart.skipDepUpdate")),
    )


def _repository_kind(repository: str | None) -> ChartSourceKind | None:
    """helm for http(s) URLs, oci for oci://host/path; None otherwise."""
    if repository is None:
        return None
    lowered = repository.lower()
    if lowered.startswith(_HTTP):
        return ChartSourceKind.HELM
    if lowered.startswith(_OCI) and len(repository) > len(_OCI):
        return ChartSourceKind.OCI
    return None


def _missing_chart_fields(
    git: str | None,
    repository: str | None,
    kind: ChartSourceKind | None,
    name: str | None,
    version: str | None,
) -> str:
    """What to add to spec.chart, for the InvalidSpec hint."""
    if git:
        return "spec.chart.git is set: add spec.chart.path, the chart's directory in the repository"
    if repository and kind is None:
        return (
            "spec.chart.repository must be an http(s):// URL serving index.yaml "
            "or an oci://host/path location"
        )
    if repository:
        fields = (("name", name), ("version", version))
        missing = " and ".join(f"spec.chart.{field}" for field, value in fields if not value)
        return f"spec.chart.repository is set: add {missing}"
    return (
        "set spec.chart.git and spec.chart.path, "
        "or spec.chart.repository, spec.chart.name and spec.chart.version"
    )


def parse_values_sources(spec: Mapping[str, Any], namespace: str) -> tuple[ValuesSource, ...]:
    """`valueFileSecrets` (deprecated) first, then `valuesFrom`, in order."""
    sources: list[ValuesSource] = []
    for index, entry in enumerate(read_list(spec, "valueFileSecrets", "spec.valueFileSecrets")):
        where = f"spec.valueFileSecrets[{index}]"
        name = read_str(_entry(entry, where), "name", f"{where}.name")
        if name is None:
            raise InvalidSpec(f"{where} needs a name: the Secret holding a values.yaml key")
        sources.append(
            ValuesSource(kind=ValuesSourceKind.SECRET, name=name, namespace=namespace, key=DEFAULT_VALUES_KEY)
        )
    for index, entry in enumerate(read_list(spec, "valuesFrom", "spec.valuesFrom")):
        sources.append(_values_source(_entry(entry, f"spec.valuesFrom[{index}]"), index, namespace))
    return tuple(sources)


def _entry(entry: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise InvalidSpec(f"{where} must be a map")
    return entry


def _values_source(entry: Mapping[str, Any], index: int, namespace: str) -> ValuesSource:
    """One valuesFrom entry: exactly one kind, with its defaults."""
    kinds = [kind for kind in ValuesSourceKind if entry.get(kind) is not None]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise InvalidSpec(
            f"spec.valuesFrom[{index}] needs exactly one of configMapKeyRef, secretKeyRef, "
            f"externalSourceRef, chartFileRef (found {found}); split it into one entry per source"
        )
    kind = kinds[0]
    where = f"spec.valuesFrom[{index}].{kind}"
    ref = read_map(entry, kind, where)
    optional = bool(read_bool(ref, "optional", f"{where}.optional"))
    if kind is ValuesSourceKind.EXTERNAL:
        return ValuesSource(kind=kind, url=_external_url(ref, where), optional=optional)
    if kind is ValuesSourceKind.CHART_FILE:
        return ValuesSource(kind=kind, path=_chart_file_path(ref, where), optional=optional)
    name = read_str(ref, "name", f"{where}.name")
    if name is None:
        raise InvalidSpec(f"{where} needs a name")
    return ValuesSource(
        kind=kind,
        name=name,
        namespace=read_str(ref, "namespace", f"{where}.namespace") or namespace,
        key=read_str(ref, "key", f"{where}.key") or DEFAULT_VALUES_KEY,
        optional=optional,
    )


def _external_url(ref: Mapping[str, Any], where: str) -> str:
    url = read_str(ref, "url", f"{where}.url")
    if url is None or not url.lower().startswith(_HTTP):
        raise InvalidSpec(f"{where}.url must be an http:// or https:// URL")
    return url


def _chart_file_path(ref: Mapping[str, Any], where: str) -> str:
    """A path inside the chart; escaping it is refused here already.

    The fetcher must still check the resolved path (symlinks); this catches
    the obvious cases early with a message that names the field.
    """
    path = read_str(ref, "path", f"{where}.path")
    if path is None:
        raise InvalidSpec(f"{where} needs a path relative to the chart directory")
    normal = posixpath.normpath(path)
    if posixpath.isabs(path) or normal == ".." or normal.startswith("../"):
        raise InvalidSpec(f"{where}.path must stay inside the chart directory, got {path!r}")
    return path
