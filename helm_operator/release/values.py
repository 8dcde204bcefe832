"""Compose a release's values: `valuesFrom` sources in order, then
`spec.values`, merged deeply (maps merge, everything else is replaced).

Reads ConfigMaps and Secrets through `kube`, external URLs over HTTP (only
hosts the operator's host policy allows: `release.external`) and files
inside the fetched chart, and parses each with `boundedyaml` in a thread
(size, nesting and alias expansion bounded; the event loop never parses).
`optional` skips a missing object, a missing key or invalid YAML; any other
error fails, and so does a source over a YAML limit, optional or not: that
is an attack or a mistake to see, not an absence. Error messages name the
source, never its content: values can hold secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncio

from helm_operator import boundedyaml
from helm_operator.api.constants import ValuesSourceKind
from helm_operator.api.helmrelease import HelmRelease
from helm_operator.api.sources import ValuesSource
from helm_operator.api.values import merge_values, values_digest
from helm_operator.chartsource.chartfiles import ChartFileEscapes, read_chart_file
from helm_operator.kube import Kube, NotFound
from helm_operator.release.external import ExternalSourceError, ExternalSourceRefused, fetch_text
from helm_operator.boundedyaml import Limits
from helm_operator.redaction import redact_text
from helm_operator.release.hostpolicy import HostPolicy


class ValuesError(Exception):
    """Values could not be composed; the message names the failing source.

    URL credentials are removed from the message however it was built.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


class _Skip(Exception):
    """An optional source is missing or unusable."""


async def _parse(text: str | bytes, where: str, optional: bool, limits: Limits) -> dict[str, Any]:
    try:
        doc = await asyncio.to_thread(boundedyaml.load, text, where, limits)
    except boundedyaml.LimitExceeded:
        raise  # never skipped, even when optional
    except boundedyaml.YamlError as e:
        if optional:
            raise _Skip() from None
        at = f" at line {e.line}" if e.line else ""
        raise ValuesError(f"{where} is not valid YAML{at}: fix the YAML or mark the source optional") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        if optional:
            raise _Skip()
        raise ValuesError(f"{where} must hold a YAML mapping of values, not a {type(doc).__name__}")
    return doc


async def _read(kube: Kube, source: ValuesSource, chart_dir: Path | None,
                hosts: HostPolicy) -> tuple[str, str]:
    """Return (text, description) of one source; raise _Skip when optional and absent."""
    where = source.describe()
    if source.kind in (ValuesSourceKind.CONFIG_MAP, ValuesSourceKind.SECRET):
        assert source.name and source.namespace
        try:
            if source.kind is ValuesSourceKind.CONFIG_MAP:
                data = await kube.get_configmap_data(source.namespace, source.name)
            else:
                data = await kube.get_secret_data(source.namespace, source.name)
        except NotFound as e:
            if source.optional:
                raise _Skip() from e
            kind = "ConfigMap" if source.kind is ValuesSourceKind.CONFIG_MAP else "Secret"
            raise ValuesError(f"{where}: {kind} {source.namespace}/{source.name} not found; "
                              "create it or mark the source optional") from e
        key = source.key or "values.yaml"
        if key not in data:
            if source.optional:
                raise _Skip()
            raise ValuesError(f"{where}: key {key!r} not found")
        return data[key], where
    if source.kind is ValuesSourceKind.EXTERNAL:
        assert source.url
        try:
            return await fetch_text(source.url, hosts), where
        except ExternalSourceRefused as e:
            raise ValuesError(f"{where}: {e}") from None  # never optional: the policy forbids the spec
        except ExternalSourceError as e:
            if source.optional:
                raise _Skip() from e
            raise ValuesError(f"{where}: {e}") from None
    if source.kind is ValuesSourceKind.CHART_FILE:
        assert source.path is not None
        if chart_dir is None:
            raise ValuesError(f"{where}: the chart is not available on disk")
        try:
            return read_chart_file(chart_dir, source.path), where
        except ChartFileEscapes as e:
            raise ValuesError(f"{where}: {e}") from e  # never optional: it is a spec error
        except (FileNotFoundError, IsADirectoryError) as e:
            if source.optional:
                raise _Skip() from e
            raise ValuesError(f"{where}: no such file in the chart") from e
    raise ValuesError(f"{where}: unknown source kind")


async def compose_values(kube: Kube, hr: HelmRelease, chart_dir: Path | None,
                         hosts: HostPolicy | None = None,
                         limits: Limits = boundedyaml.DEFAULT_LIMITS.documents) -> dict[str, Any]:
    """The values to give helm for `hr`, in COMPAT's merge order.

    `hosts` limits externalSourceRef URLs; None is the default policy
    (loopback, link-local and cloud metadata denied).
    """
    result: dict[str, Any] = {}
    policy = hosts or HostPolicy()
    for source in hr.values_from:
        try:
            text, where = await _read(kube, source, chart_dir, policy)
            result = merge_values(result, await _parse(text, where, source.optional, limits))
        except _Skip:
            continue
        except boundedyaml.LimitExceeded as e:
            raise ValuesError(str(e)) from None
    return merge_values(result, hr.values)


def configuration_digest(hr: HelmRelease, chart_revision: str, values: dict[str, Any]) -> str:
    """The digest of the configuration `hr` asks for: what the operator labels each
    revision with, and compares to decide whether to upgrade (`helm-operator diff` too)."""
    return values_digest({
        "chart": hr.chart.describe(), "revision": chart_revision, "values": values,
        "release": hr.release_name, "namespace": hr.target_namespace,
        "resetValues": hr.reset_values, "skipCRDs": hr.skip_crds,
    })


def referenced_objects(hr: HelmRelease) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of the ConfigMaps and Secrets `hr` reads values from."""
    refs: set[tuple[str, str, str]] = set()
    for source in hr.values_from:
        if source.kind is ValuesSourceKind.CONFIG_MAP and source.name and source.namespace:
            refs.add(("ConfigMap", source.namespace, source.name))
        elif source.kind is ValuesSourceKind.SECRET and source.name and source.namespace:
            refs.add(("Secret", source.namespace, source.name))
    return refs
