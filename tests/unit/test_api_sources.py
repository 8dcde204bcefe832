"""Scenarios for chart sources and value sources of a HelmRelease spec."""

from __future__ import annotations

from typing import Any

import pytest

from helm_operator.api.constants import NO_CHART_SOURCE, ChartSourceKind, ValuesSourceKind
from helm_operator.api.helmrelease import ChartSource, InvalidSpec, SecretRef, ValuesSource, parse


def manifest(chart: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    spec["chart"] = chart if chart is not None else {"git": "ssh://git@example.com/c.git", "path": "app"}
    return {"metadata": {"namespace": "team", "name": "app"}, "spec": spec}


def test_git_chart_ref_defaults_to_master() -> None:
    chart = parse(manifest({"git": "ssh://git@example.com/c.git", "path": "charts/app"})).chart
    assert chart == ChartSource(kind=ChartSourceKind.GIT, git="ssh://git@example.com/c.git",
                                path="charts/app", ref="master")
    assert chart.describe() == "git ssh://git@example.com/c.git//charts/app@master"


def test_git_chart_ref_default_is_configurable() -> None:
    assert parse(manifest(), default_git_ref="main").chart.ref == "main"


def test_git_chart_explicit_ref_and_options() -> None:
    chart = parse(manifest({
        "git": "https://example.com/c.git", "path": "app", "ref": "v1.2.0",
        "secretRef": {"name": "creds"}, "skipDepUpdate": True,
    })).chart
    assert chart.ref == "v1.2.0" and chart.skip_dep_update
    assert chart.secret_ref == SecretRef(name="creds", namespace="team")


def test_git_secret_ref_namespace_can_be_given() -> None:
    chart = parse(manifest({"git": "file:///c", "path": "app", "secretRef": {"name": "s", "namespace": "ops"}})).chart
    assert chart.secret_ref == SecretRef(name="s", namespace="ops")


def test_helm_repository_chart() -> None:
    chart = parse(manifest({
        "repository": "https://charts.example.com/", "name": "podinfo", "version": "6.5.0",
        "chartPullSecret": {"name": "repo-creds"},
    })).chart
    assert chart.kind is ChartSourceKind.HELM
    assert (chart.repository, chart.name, chart.version, chart.pull_secret) == (
        "https://charts.example.com/", "podinfo", "6.5.0", "repo-creds")
    assert chart.git is None and chart.secret_ref is None
    assert chart.describe() == "helm https://charts.example.com/ podinfo@6.5.0"


def test_oci_chart() -> None:
    chart = parse(manifest({"repository": "oci://ghcr.io/org/charts", "name": "app", "version": "1.0.0"})).chart
    assert chart.kind is ChartSourceKind.OCI and chart.pull_secret is None
    assert str(chart) == "oci oci://ghcr.io/org/charts app@1.0.0"


def test_complete_git_source_wins_over_a_repository_as_in_flux_v1() -> None:
    chart = parse(manifest({"git": "file:///c", "path": "app", "repository": "https://x", "name": "a",
                            "version": "1"})).chart
    assert chart.kind is ChartSourceKind.GIT


def test_incomplete_git_falls_back_to_a_complete_repository() -> None:
    chart = parse(manifest({"git": "file:///c", "repository": "https://x", "name": "a", "version": "1"})).chart
    assert chart.kind is ChartSourceKind.HELM


@pytest.mark.parametrize(
    ("chart", "hint"),
    [
        ({}, "set spec.chart.git and spec.chart.path"),
        ({"git": "ssh://x/y"}, "add spec.chart.path"),
        ({"repository": "https://x", "name": "a"}, "add spec.chart.version"),
        ({"repository": "https://x"}, "add spec.chart.name and spec.chart.version"),
        ({"repository": "ftp://x", "name": "a", "version": "1"}, "http(s):// URL"),
        ({"repository": "oci://", "name": "a", "version": "1"}, "oci://host/path"),
        ({"repository": "https://x", "name": "", "version": "1"}, "add spec.chart.name"),
    ],
)
def test_incomplete_chart_source_gives_the_flux_v1_message_and_a_hint(chart: dict[str, Any], hint: str) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse(manifest(chart))
    assert str(err.value) == NO_CHART_SOURCE
    assert err.value.hint is not None and hint in err.value.hint


def test_config_map_and_secret_sources_default_namespace_and_key() -> None:
    hr = parse(manifest(targetNamespace="prod", valuesFrom=[
        {"configMapKeyRef": {"name": "cm"}},
        {"secretKeyRef": {"name": "s", "namespace": "ops", "key": "extra.yaml", "optional": True}},
    ]))
    assert hr.values_from == (
        ValuesSource(kind=ValuesSourceKind.CONFIG_MAP, name="cm", namespace="team", key="values.yaml"),
        ValuesSource(kind=ValuesSourceKind.SECRET, name="s", namespace="ops", key="extra.yaml", optional=True),
    )


def test_external_and_chart_file_sources() -> None:
    hr = parse(manifest(valuesFrom=[
        {"externalSourceRef": {"url": "https://example.com/v.yaml"}},
        {"chartFileRef": {"path": "values-prod.yaml", "optional": True}},
    ]))
    assert hr.values_from == (
        ValuesSource(kind=ValuesSourceKind.EXTERNAL, url="https://example.com/v.yaml"),
        ValuesSource(kind=ValuesSourceKind.CHART_FILE, path="values-prod.yaml", optional=True),
    )
    assert hr.values_from[1].describe() == "chartFileRef values-prod.yaml (optional)"


def test_value_file_secrets_become_secret_sources_before_values_from() -> None:
    hr = parse(manifest(valueFileSecrets=[{"name": "old"}], valuesFrom=[{"configMapKeyRef": {"name": "cm"}}]))
    assert [(s.kind, s.name) for s in hr.values_from] == [
        (ValuesSourceKind.SECRET, "old"), (ValuesSourceKind.CONFIG_MAP, "cm")]
    assert hr.values_from[0] == ValuesSource(
        kind=ValuesSourceKind.SECRET, name="old", namespace="team", key="values.yaml")
    assert hr.values_from[0].describe() == "secretKeyRef team/old[values.yaml]"


@pytest.mark.parametrize(
    "entry",
    [{}, {"configMapKeyRef": {"name": "a"}, "secretKeyRef": {"name": "b"}}],
    ids=["no-kind", "two-kinds"],
)
def test_values_from_entry_needs_exactly_one_kind_and_the_error_names_its_index(entry: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.valuesFrom\[1\] needs exactly one of"):
        parse(manifest(valuesFrom=[{"configMapKeyRef": {"name": "ok"}}, entry]))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"configMapKeyRef": {}}, "needs a name"),
        ({"externalSourceRef": {"url": "ftp://x"}}, "http:// or https://"),
        ({"chartFileRef": {}}, "needs a path"),
        ({"chartFileRef": {"path": "../secrets.yaml"}}, "inside the chart directory"),
        ({"chartFileRef": {"path": "/etc/passwd"}}, "inside the chart directory"),
        ("configMapKeyRef", "must be a map"),
    ],
)
def test_incomplete_values_sources_are_refused(entry: Any, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse(manifest(valuesFrom=[entry]))


def test_value_file_secret_without_name_is_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.valueFileSecrets\[0\] needs a name"):
        parse(manifest(valueFileSecrets=[{}]))


def test_chart_file_path_that_stays_inside_after_normalising_is_accepted() -> None:
    hr = parse(manifest(valuesFrom=[{"chartFileRef": {"path": "envs/../values.yaml"}}]))
    assert hr.values_from[0].path == "envs/../values.yaml"
