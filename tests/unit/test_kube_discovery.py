"""Discovery: reading the aggregated documents and the per-group ones into the
same kinds, and the cache's rules (one shared cache; an unknown kind
rediscovers at most once per interval; a refresh replaces it). The real API
server's answers are checked against each other in
tests/integration/test_kube_api.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_operator.kube.discovery import Discovery, DiscoveryCache, ResourceType, parse_aggregated, parse_group_version

CORE = {"kind": "APIGroupDiscoveryList", "items": [{"metadata": {}, "versions": [{"version": "v1", "resources": [
    {"resource": "configmaps", "responseKind": {"group": "", "version": "", "kind": "ConfigMap"},
     "scope": "Namespaced", "verbs": ["get", "list", "delete"]},
    {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster", "verbs": ["get", "list"],
     "subresources": [{"subresource": "status", "responseKind": {"kind": "Namespace"}, "verbs": ["get"]}]},
]}]}]}
GROUPS = {"kind": "APIGroupDiscoveryList", "items": [{"metadata": {"name": "autoscaling"}, "versions": [
    {"version": "v2", "resources": [{"resource": "horizontalpodautoscalers", "scope": "Namespaced",
                                     "responseKind": {"kind": "HorizontalPodAutoscaler"}, "verbs": ["list"]}]},
    {"version": "v1", "resources": [{"resource": "horizontalpodautoscalers", "scope": "Namespaced",
                                     "responseKind": {"kind": "HorizontalPodAutoscaler"}, "verbs": ["list"]}]},
]}]}


def test_aggregated_discovery_gives_every_version_and_prefers_the_first() -> None:
    d = Discovery()
    parse_aggregated(CORE, d)
    parse_aggregated(GROUPS, d)
    assert d.lookup("v1", "ConfigMap") == ResourceType("v1", "ConfigMap", "configmaps", True,
                                                       frozenset({"get", "list", "delete"}))
    assert d.namespaced("v1", "Namespace") is False
    assert d.lookup("autoscaling/v1", "HorizontalPodAutoscaler") is not None
    assert [rt.group_version for rt in d.preferred if rt.kind == "HorizontalPodAutoscaler"] == ["autoscaling/v2"]
    assert d.lookup("v1", "Pod") is None


def test_a_group_version_document_leaves_out_subresources() -> None:
    doc = {"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True, "verbs": ["list"]},
                         {"name": "deployments/status", "kind": "Deployment", "namespaced": True}]}
    assert parse_group_version("apps/v1", doc) == [
        ResourceType("apps/v1", "Deployment", "deployments", True, frozenset({"list"}))]


class _Rest:
    """Answers discovery paths from a dict; counts requests."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.paths: list[str] = []

    async def request(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.paths.append(path)
        return self.answers[path]


async def test_an_unknown_kind_rediscovers_at_most_once_per_interval() -> None:
    rest = _Rest({"/api": CORE, "/apis": GROUPS})
    cache = DiscoveryCache(rest, rediscover_after=3600)  # type: ignore[arg-type]
    assert (await cache.resource_type("v1", "ConfigMap")) is not None
    assert (await cache.resource_type("v1", "Namespace")) is not None
    assert len(rest.paths) == 2  # one discovery: two documents
    assert await cache.resource_type("example.com/v1", "Widget") is None
    assert len(rest.paths) == 2  # within the interval: no second discovery
    cache._rediscover_after = 0
    assert await cache.resource_type("example.com/v1", "Widget") is None
    assert len(rest.paths) == 4


async def test_a_refresh_replaces_the_shared_cache_and_a_new_group_version_joins_it() -> None:
    rest = _Rest({"/api": CORE, "/apis": {"kind": "APIGroupDiscoveryList", "items": []},
                  "/apis/example.com/v1": {"resources": [{"name": "widgets", "kind": "Widget", "namespaced": True}]}})
    cache = DiscoveryCache(rest)  # type: ignore[arg-type]
    first = await cache.refresh()
    assert cache.current is first
    await cache.group_version("example.com/v1")
    assert first.lookup("example.com/v1", "Widget") is not None
    second = await cache.refresh()
    assert cache.current is second and second is not first


async def test_an_api_server_without_aggregated_discovery_is_read_group_by_group() -> None:
    rest = _Rest({
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {"kind": "APIGroupList", "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1"}],
                                                      "preferredVersion": {"groupVersion": "apps/v1"}}]},
        "/api/v1": {"resources": [{"name": "configmaps", "kind": "ConfigMap", "namespaced": True, "verbs": ["list"]}]},
        "/apis/apps/v1": {"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True,
                                         "verbs": ["list"]}]},
    })
    d = await DiscoveryCache(rest).refresh()  # type: ignore[arg-type]
    assert {rt.kind for rt in d.preferred} == {"ConfigMap", "Deployment"}
    assert sorted(rest.paths) == ["/api", "/api/v1", "/apis", "/apis/apps/v1"]


def _kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a server that is never contacted: these tests only assemble."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n")
    return path


def test_the_operator_builds_one_cluster_api_shared_by_drift_ownership_and_deletion(tmp_path: Path) -> None:
    from helm_operator.operator.process import Operator, OperatorSettings

    op = Operator(OperatorSettings(kubeconfig=_kubeconfig(tmp_path), cache_dir=tmp_path / "cache"))
    assert op.reconciler.drift is not None
    assert op.reconciler.cluster is op.kube.cluster  # ownership checks and stamps, the uninstall guard
    assert op.reconciler.drift.api is op.kube.cluster
    assert op.kube.cluster.rest is op.kube.rest


def test_the_syncer_shares_one_cluster_api_across_sources_markers_and_status(tmp_path: Path) -> None:
    from helm_operator.gitsync.config import SourceConfig, SyncerConfig
    from helm_operator.gitsync.marker import ClusterMarker
    from helm_operator.gitsync.syncer import Syncer
    from helm_operator.kube.apply import ClusterApi

    cluster = ClusterApi.from_kubeconfig(_kubeconfig(tmp_path))
    config = SyncerConfig(sources=(SourceConfig("a", "file:///a", readonly=True), SourceConfig("b", "file:///b")),
                          workdir=tmp_path / "work")
    syncer = Syncer(config, cluster, "default")
    assert [s.cluster for s in syncer.sources] == [cluster, cluster]
    marker = syncer.sources[0].marker
    assert isinstance(marker, ClusterMarker) and marker.cluster is cluster
