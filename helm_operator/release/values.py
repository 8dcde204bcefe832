"""Compose a release's values: `valuesFrom` sources in order, then
`spec.values`, merged deeply (maps merge, everything else is replaced).

Reads ConfigMaps and Secrets through `kube`, external URLs over HTTP and
files inside the fetched chart, and parses each with `boundedyaml` in a
thread (size, nesting and alias expansion bounded; the event loop never
parses). `optional` skips a missing object, a missing key or invalid YAML;
any other error fails, and so does a source over a YAML limit, optional or
not: that is an attack or a mistake to see, not an absence. Error messages
name the source, never its content: values can hold secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncio

import aiohttp

from helm_operator import boundedyaml
from helm_operator.boundedyaml import Limits
from helm_operator.api.constants import ValuesSourceKind
from helm_operator.api.helmrelease import HelmRelease
from helm_operator.api.sources import ValuesSource
from helm_operator.api.values import merge_values
from helm_operator.chartsource.chartfiles import ChartFileEscapes, read_chart_file
from helm_operator.kube import Kube, NotFound
from helm_operator.redaction import redact_text


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


async def _read_body(resp: aiohttp.ClientResponse, where: str, limits: Limits) -> bytes:
    """The response body, refused as soon as it is larger than the YAML size limit."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limits.max_bytes:
            raise boundedyaml.LimitExceeded(
                where, f"the response is larger than the limit of {boundedyaml.human_bytes(limits.max_bytes)} "
                f"({limits.bytes_flag} raises it)", None, "bytes", limits.bytes_flag)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read(kube: Kube, source: ValuesSource, chart_dir: Path | None,
                http: aiohttp.ClientSession | None, limits: Limits) -> tuple[str | bytes, str]:
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
        assert source.url and http is not None
        try:
            async with http.get(source.url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    raise ValuesError(f"{where}: HTTP {resp.status}")
                return await _read_body(resp, where, limits), where
        except (aiohttp.ClientError, TimeoutError) as e:
            if source.optional:
                raise _Skip() from e
            raise ValuesError(f"{where}: {type(e).__name__}: {e}") from e
        except ValuesError:
            if source.optional:
                raise _Skip() from None
            raise
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
                         limits: Limits = boundedyaml.DEFAULT_LIMITS.documents) -> dict[str, Any]:
    """The values to give helm for `hr`, in COMPAT's merge order."""
    result: dict[str, Any] = {}
    http: aiohttp.ClientSession | None = None
    try:
        for source in hr.values_from:
            # An HTTP session only when a source needs one: this runs on every
            # resync of every HelmRelease, and most read no URL.
            if source.kind is ValuesSourceKind.EXTERNAL and http is None:
                http = aiohttp.ClientSession()
            try:
                text, where = await _read(kube, source, chart_dir, http, limits)
                result = merge_values(result, await _parse(text, where, source.optional, limits))
            except _Skip:
                continue
            except boundedyaml.LimitExceeded as e:
                raise ValuesError(str(e)) from None
    finally:
        if http is not None:
            await http.close()
    return merge_values(result, hr.values)


def referenced_objects(hr: HelmRelease) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of the ConfigMaps and Secrets `hr` reads values from."""
    refs: set[tuple[str, str, str]] = set()
    for source in hr.values_from:
        if source.kind is ValuesSourceKind.CONFIG_MAP and source.name and source.namespace:
            refs.add(("ConfigMap", source.namespace, source.name))
        elif source.kind is ValuesSourceKind.SECRET and source.name and source.namespace:
            refs.add(("Secret", source.namespace, source.name))
    return refs
