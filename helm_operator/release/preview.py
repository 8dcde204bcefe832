"""Preview one HelmRelease as the operator would reconcile it, without acting:
the configuration it asks for, the live release, and what would change.

Place in the flow: `helm-operator diff` (`cli/diff.py`) builds a `Previewer`
and asks it about each HelmRelease of a file. It reuses the operator's own
parts, so the answer is the operator's: `ChartFetcher` (the same caches,
credentials and `helm dependency update`), `compose_values` (the same merge
order, YAML limits and externalSourceRef host policy), the same
configuration digest, and helm's storage read through the API (a
metadata-only LIST of the release's Secrets, one GET of the revision
compared). When the digest equals the deployed revision's, the operator
would do nothing and neither does the preview: no rendering. Otherwise it
renders with `helm template --dry-run=server` and the upgrade's flags.

ConfigMaps and Secrets defined in the files given to `diff` take the place
of the cluster's (the syncer would apply them before the operator looks);
the others are read from the cluster, once each.

What this module does NOT do: it changes nothing in the cluster, runs no
install, upgrade or hook, and prints nothing (`cli/diff.py` does).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api.constants import ValuesSourceKind
from helm_operator.api.helmrelease import HelmRelease, format_antecedent
from helm_operator.api.values import merge_values
from helm_operator.chartsource import FetchedChart
from helm_operator.helm import Helm
from helm_operator.helm.storage import RevisionMeta, decode_release_json, owner_label, parse_owner, revision_meta
from helm_operator.kube import Kube, NotFound
from helm_operator.release import manifestdiff
from helm_operator.release.actions.deploy import DeployRequest, options
from helm_operator.release.charts import ChartFetcher
from helm_operator.release.hostpolicy import HostPolicy
from helm_operator.release.state import digest_in, last_deployed
from helm_operator.release.values import compose_values, configuration_digest

ObjectId = tuple[str, str]  # (namespace, name)


class PreviewError(Exception):
    """The preview of one HelmRelease failed; the message says what and what to do."""


class OverlayKube(Kube):
    """`Kube` whose ConfigMaps and Secrets come from the files being previewed when they
    define them, else from the cluster; each read once. Remembers every Secret value it
    served, so that none is ever printed."""

    def __init__(self, kube: Kube, configmaps: Mapping[ObjectId, dict[str, str]],
                 secrets: Mapping[ObjectId, dict[str, str]]) -> None:
        super().__init__(kube.api_client)
        self._files = {"ConfigMap": dict(configmaps), "Secret": dict(secrets)}
        self._read: dict[tuple[str, str, str], dict[str, str] | None] = {}
        self.from_files: set[tuple[str, str, str]] = set()  # (kind, namespace, name) served from the files
        self.secret_texts: set[str] = set()
        self.requests = 0  # GETs sent to the API server

    async def _data(self, kind: str, namespace: str, name: str) -> dict[str, str]:
        key = (kind, namespace, name)
        if key not in self._read:
            if (namespace, name) in self._files[kind]:
                self._read[key] = self._files[kind][(namespace, name)]
                self.from_files.add(key)
            else:
                self.requests += 1
                read = super().get_configmap_data if kind == "ConfigMap" else super().get_secret_data
                try:
                    self._read[key] = await read(namespace, name)
                except NotFound:
                    self._read[key] = None
        data = self._read[key]
        if data is None:
            raise NotFound(f"get {kind} {namespace}/{name}: not found", 404)
        if kind == "Secret":
            self.secret_texts.update(data.values())
        return dict(data)

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        return await self._data("ConfigMap", namespace, name)

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        return await self._data("Secret", namespace, name)


def secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    """A Secret document's data as text, as the API server would store it (stringData wins)."""
    out: dict[str, str] = {}
    for k, v in (doc.get("data") or {}).items():
        try:
            out[str(k)] = base64.b64decode(str(v)).decode("utf-8", errors="replace")
        except ValueError:
            out[str(k)] = ""
    for k, v in (doc.get("stringData") or {}).items():
        out[str(k)] = str(v)
    return out


@dataclass
class LiveRelease:
    """The revision the desired configuration is compared with (helm's storage)."""

    revision: int
    status: str
    chart: str                 # name-version ("" when the record was not read: in sync)
    digest: str | None         # the configuration digest it applied, when known
    values: dict[str, Any]
    manifest: str


@dataclass
class Preview:
    hr: HelmRelease
    chart_revision: str
    chart: str                 # name-version of the fetched chart
    digest: str
    action: str                # install, upgrade, none
    reason: str                # one line: why
    live: LiveRelease | None = None
    values_diff: list[str] = field(default_factory=list)
    objects: list[manifestdiff.ObjectChange] = field(default_factory=list)
    from_files: list[str] = field(default_factory=list)  # values sources taken from the files

    @property
    def changed(self) -> bool:
        return self.action != "none"


class Previewer:
    """Previews HelmReleases with the operator's parts (see the module docstring)."""

    def __init__(self, kube: OverlayKube, helm: Helm, charts: ChartFetcher, hosts: HostPolicy,
                 values_limits: boundedyaml.Limits, chart_limits: boundedyaml.Limits) -> None:
        self.kube = kube
        self.helm = helm
        self.charts = charts
        self.hosts = hosts
        self.values_limits = values_limits
        self.chart_limits = chart_limits
        self.storage_requests = 0  # LISTs and GETs of helm's release Secrets

    async def preview(self, hr: HelmRelease) -> Preview:
        chart = await self.charts.fetch(hr)
        values = await compose_values(self.kube, hr, chart.path, self.hosts, self.values_limits)
        digest = configuration_digest(hr, chart.revision, values)
        revisions = await self._revisions(hr)
        newest = revisions[0] if revisions else None
        chart_id = await asyncio.to_thread(self._chart_id, chart)
        kinds = {ValuesSourceKind.CONFIG_MAP: "ConfigMap", ValuesSourceKind.SECRET: "Secret"}
        sources = [f"{k} {ns}/{n}" for k, ns, n in sorted(self.kube.from_files)
                   if any((kinds.get(s.kind), s.namespace, s.name) == (k, ns, n) for s in hr.values_from)]
        base = Preview(hr, chart.revision, chart_id, digest, "upgrade", "", from_files=sources)
        if newest is not None and newest.owner and newest.owner != owner_label(hr.namespace, hr.name):
            owner = parse_owner(newest.owner)
            raise PreviewError(f"release {hr.release_name} appears to be managed by "
                               f"{format_antecedent(*owner) if owner else 'another HelmRelease'}; the operator "
                               "would not touch it: rename one of the releases (spec.releaseName)")
        if newest is not None and newest.status == "deployed" and newest.matches(digest):
            # The operator's own revision says it: no need to read the record.
            base.action, base.reason = "none", f"in sync: revision {newest.revision} applied this configuration"
            base.live = LiveRelease(newest.revision, newest.status, "", newest.attempt_digest, {}, "")
            return base
        target = last_deployed(revisions) or newest
        live = await self._live(hr, target) if target is not None and target.status != "uninstalled" else None
        if (newest is not None and newest.status == "deployed" and not newest.ours and live is not None
                and target == newest and live.digest and digest.startswith(live.digest)):
            base.action, base.live = "none", live  # made by an older operator: the digest is in its description
            base.reason = f"in sync: revision {newest.revision} applied this configuration"
            return base
        if live is None:
            base.action, base.reason = "install", "release does not exist: the operator would install it"
        else:
            base.reason = (f"the configuration differs from revision {live.revision} ({live.status}): the "
                           "operator would upgrade")
        base.live = live
        reuse = hr.reset_values is False and live is not None
        effective = merge_values(live.values, values) if reuse and live is not None else values
        manifest = await self._render(hr, chart, effective, digest, newest, install=live is None)
        sensitive = manifestdiff.Sensitive.build(await self._secret_values(hr), self.kube.secret_texts,
                                                 live.values if live else None)
        base.values_diff, base.objects = await asyncio.to_thread(self._compare, live, effective, manifest, sensitive)
        return base

    def _compare(self, live: LiveRelease | None, values: dict[str, Any], manifest: str,
                 sensitive: manifestdiff.Sensitive) -> tuple[list[str], list[manifestdiff.ObjectChange]]:
        """The values diff and the object diffs (CPU only: run in a thread)."""
        values_diff = manifestdiff.diff_values(live.values if live else None, values, sensitive)
        before = manifestdiff.split_manifest(live.manifest, f"revision {live.revision}", self.chart_limits) \
            if live else {}
        after = manifestdiff.split_manifest(manifest, "helm template output", self.chart_limits)
        return values_diff, manifestdiff.diff_objects(before, after, sensitive)

    def _chart_id(self, chart: FetchedChart) -> str:
        try:
            meta = boundedyaml.load((chart.path / "Chart.yaml").read_bytes(), "Chart.yaml", self.chart_limits)
        except (OSError, boundedyaml.YamlError):
            return chart.revision
        if not isinstance(meta, dict):
            return chart.revision
        return f"{meta.get('name', '')}-{meta.get('version', '')}"

    async def _revisions(self, hr: HelmRelease) -> tuple[RevisionMeta, ...]:
        self.storage_requests += 1
        items = await self.kube.list_metadata("v1", "secrets", hr.target_namespace,
                                              f"owner=helm,name={hr.release_name}")
        found = []
        for item in items:
            parsed = revision_meta(item.get("metadata") or {})
            if parsed is not None and parsed[0] == hr.release_name:
                found.append(parsed[1])
        return tuple(sorted(found, key=lambda r: r.revision, reverse=True))

    async def _live(self, hr: HelmRelease, meta: RevisionMeta) -> LiveRelease | None:
        self.storage_requests += 1
        try:
            data = (await self.kube.get_secret_raw(hr.target_namespace, meta.secret)).get("release")
        except NotFound:
            return None
        if not data:
            return None
        doc = await asyncio.to_thread(decode_release_json, data)
        info = doc.get("info") or {}
        chart_meta = (doc.get("chart") or {}).get("metadata") or {}
        description = str(info.get("description", ""))
        # ours: the label; made by an older operator: the description (a hand upgrade inherits our labels)
        digest = meta.attempt_digest if meta.ours else digest_in(description) if meta.attempt_revision is None \
            else None
        return LiveRelease(meta.revision, meta.status, f"{chart_meta.get('name', '')}-{chart_meta.get('version', '')}",
                           digest, dict(doc.get("config") or {}), str(doc.get("manifest", "")))

    async def _render(self, hr: HelmRelease, chart: FetchedChart, values: dict[str, Any], digest: str,
                      newest: RevisionMeta | None, install: bool) -> str:
        opts = options(DeployRequest(hr, chart.path, values, digest, (newest.revision if newest else 0) + 1,
                                     install=install))
        return await self.helm.template(hr.release_name, chart.path, hr.target_namespace, values, opts,
                                        is_upgrade=not install)

    async def _secret_values(self, hr: HelmRelease) -> list[dict[str, Any]]:
        """The values documents `hr` reads from Secrets (already read: no request)."""
        docs = []
        for source in hr.values_from:
            if source.kind is not ValuesSourceKind.SECRET or not source.name or not source.namespace:
                continue
            try:
                data = await self.kube.get_secret_data(source.namespace, source.name)
            except NotFound:
                continue
            text = data.get(source.key or "values.yaml")
            if text is None:
                continue
            try:
                doc = await asyncio.to_thread(boundedyaml.load, text, source.describe(), self.values_limits)
            except boundedyaml.YamlError:
                continue
            if isinstance(doc, dict):
                docs.append(doc)
        return docs
