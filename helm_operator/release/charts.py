"""Fetch the chart a HelmRelease names, with the credentials it names.

Dispatches to the shared caches in `chartsource` (Helm repository, Git) or
pulls OCI charts with `helm pull`; reads `chartPullSecret` / `secretRef`
Secrets (keys `username` and `password`) through `kube`. Credentials are
handed to the fetchers, never logged. Git charts get `helm dependency
update` once per revision unless `skipDepUpdate`.

Every cache (OCI included) is keyed by the source and the credentials that
read it (`chartsource.cachedir.AccessKeys`), so a release is only served
what its own credentials can read; the Secret is therefore read before the
cache is looked at (one GET per fetch, as for Helm repositories already).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from helm_operator import boundedyaml
from helm_operator.api.constants import ChartSourceKind
from helm_operator.api.helmrelease import HelmRelease
from helm_operator.chartsource import ChartFetchError, FetchedChart, GitMirrors, HelmRepoCache
from helm_operator.chartsource.cachedir import AccessKeys
from helm_operator.helm import Helm, HelmError
from helm_operator.kube import Kube, NotFound


class ChartFetcher:
    """One per operator: owns the chart caches shared by all releases."""

    def __init__(self, kube: Kube, helm: Helm, cache_dir: Path, git_poll_interval: float,
                 git_ssh_command: str | None = None, oci_plain_http: bool = False,
                 yaml_limits: boundedyaml.YamlLimits = boundedyaml.DEFAULT_LIMITS) -> None:
        self.kube = kube
        self.helm = helm
        self.cache_dir = cache_dir
        self.chart_yaml_limits = yaml_limits.charts
        self.helm_repos = HelmRepoCache(cache_dir, yaml_limits=yaml_limits.charts)
        self.git = GitMirrors(cache_dir, git_poll_interval)
        self.git_ssh_command = git_ssh_command
        self.oci_plain_http = oci_plain_http
        self._oci_keys = AccessKeys(cache_dir)
        self._locks: dict[str, asyncio.Lock] = {}
        # Git chart revisions last fetched, by (url, ref, path): what a
        # resync compares with, without running git (see `known_revision`).
        self._git_revisions: dict[tuple[str, str, str], str] = {}

    async def close(self) -> None:
        await self.helm_repos.close()

    async def _basic_auth(self, namespace: str, secret: str | None, what: str) -> tuple[str, str] | None:
        if not secret:
            return None
        try:
            data = await self.kube.get_secret_data(namespace, secret)
        except NotFound as e:
            raise ChartFetchError(f"{what} Secret {namespace}/{secret} not found; create it with "
                                  "keys 'username' and 'password'") from e
        if "username" not in data or "password" not in data:
            raise ChartFetchError(f"{what} Secret {namespace}/{secret} needs keys 'username' and 'password'")
        return data["username"], data["password"]

    async def fetch(self, hr: HelmRelease) -> FetchedChart:
        chart = hr.chart
        if chart.kind is ChartSourceKind.HELM:
            assert chart.repository and chart.name and chart.version
            auth = await self._basic_auth(hr.namespace, chart.pull_secret, "chartPullSecret")
            return await self.helm_repos.fetch(chart.repository, chart.name, chart.version, auth)
        if chart.kind is ChartSourceKind.GIT:
            assert chart.git and chart.ref is not None and chart.path is not None
            auth = None
            if chart.secret_ref:
                auth = await self._basic_auth(chart.secret_ref.namespace, chart.secret_ref.name, "secretRef")
            fetched = await self.git.fetch(chart.git, chart.ref, chart.path, auth, self.git_ssh_command)
            self._git_revisions[(chart.git, chart.ref, chart.path)] = fetched.revision
            if not chart.skip_dep_update:
                await self._dependency_update(fetched.path)
            return fetched
        assert chart.repository and chart.name and chart.version
        return await self._fetch_oci(hr)

    def known_revision(self, hr: HelmRelease) -> str | None:
        """The chart revision `fetch` would give, when known without I/O.

        Helm repository and OCI charts: the version the spec pins. Git: the
        revision of the last fetch, until the Git poller finds a newer one.
        """
        chart = hr.chart
        if chart.kind is ChartSourceKind.GIT:
            if not chart.git or chart.ref is None or chart.path is None:
                return None
            return self._git_revisions.get((chart.git, chart.ref, chart.path))
        return chart.version

    async def git_revision_changed(self, hr: HelmRelease) -> bool:
        """Whether the Git chart's path got a new commit since the last fetch (mirror fetched if due)."""
        chart = hr.chart
        if chart.kind is not ChartSourceKind.GIT or not chart.git or chart.ref is None or chart.path is None:
            return False
        auth = None
        if chart.secret_ref:
            auth = await self._basic_auth(chart.secret_ref.namespace, chart.secret_ref.name, "secretRef")
        revision = await self.git.revision(chart.git, chart.ref, chart.path, auth, self.git_ssh_command)
        key = (chart.git, chart.ref, chart.path)
        changed = self._git_revisions.get(key) != revision
        self._git_revisions[key] = revision  # what the next reconcile's fingerprint compares
        return changed

    async def _dependency_update(self, chart_dir: Path) -> None:
        """`helm dependency update` once per exported revision, only if the chart has dependencies."""
        chart_yaml = chart_dir / "Chart.yaml"
        marker = chart_dir / ".helm-operator-deps-updated"
        if marker.exists() or not chart_yaml.exists():
            return
        where = f"Chart.yaml of {chart_dir.name}"
        try:
            meta = await asyncio.to_thread(
                lambda: boundedyaml.load(chart_yaml.read_bytes(), where, self.chart_yaml_limits))
        except boundedyaml.YamlError as e:
            raise ChartFetchError(f"{e}; fix the chart") from None
        if isinstance(meta, dict) and meta.get("dependencies"):
            lock = self._locks.setdefault(str(chart_dir), asyncio.Lock())
            async with lock:
                if marker.exists():
                    return
                try:
                    await self.helm.dependency_update(chart_dir)
                except HelmError as e:
                    raise ChartFetchError(f"helm dependency update of {chart_dir.name} failed: {e.message}; "
                                          "fix the chart's dependencies or set skipDepUpdate") from e
        marker.touch()

    async def _fetch_oci(self, hr: HelmRelease) -> FetchedChart:
        chart = hr.chart
        assert chart.repository and chart.name and chart.version
        ref = f"{chart.repository.rstrip('/')}/{chart.name}"
        auth = await self._basic_auth(hr.namespace, chart.pull_secret, "chartPullSecret")
        key = self._oci_keys.key(ref, auth)
        final = self.cache_dir / "oci" / key / f"{chart.name}-{chart.version}"
        if (final / chart.name / "Chart.yaml").exists():
            return FetchedChart(final / chart.name, chart.version)
        lock = self._locks.setdefault(str(final), asyncio.Lock())
        async with lock:
            if (final / chart.name / "Chart.yaml").exists():
                return FetchedChart(final / chart.name, chart.version)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".pull-"))
            registry_config = tmp / "registry.json"
            try:
                host = ref.removeprefix("oci://").split("/", 1)[0]
                if auth:
                    await self.helm.registry_login(host, auth[0], auth[1], registry_config,
                                                   plain_http=self.oci_plain_http)
                await self.helm.pull_oci(ref, chart.version, tmp / "out", registry_config,
                                         plain_http=self.oci_plain_http)
                os.replace(tmp / "out", final) if not final.exists() else None
            except HelmError as e:
                raise ChartFetchError(f"pulling {ref} version {chart.version} failed: {e.message}"
                                      f"{_oci_auth_hint(e.message, auth)}") from e
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if not (final / chart.name / "Chart.yaml").exists():
            raise ChartFetchError(f"{ref} version {chart.version} holds no chart named {chart.name}")
        return FetchedChart(final / chart.name, chart.version)


def _oci_auth_hint(helm_error: str, auth: tuple[str, str] | None) -> str:
    """What to do when the registry refused the pull for want of (right) credentials."""
    lowered = helm_error.lower()
    if not any(word in lowered for word in ("credential not found", "401", "unauthorized", "denied")):
        return ""
    if auth is None:
        return "; the registry needs credentials: set spec.chart.chartPullSecret"
    return "; the credentials were refused: check the username and password in chartPullSecret"
