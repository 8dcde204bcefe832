"""Scenarios for `helm_operator.api.helmrelease`: metadata, names, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from helm_operator.api.constants import FINALIZER
from helm_operator.api.helmrelease import (
    HELM_V2_REFUSED,
    HelmRelease,
    InvalidSpec,
    Rollback,
    Test,
    format_antecedent,
    parse,
    parse_antecedent,
    parse_ref,
)

GIT_CHART = {"git": "ssh://git@example.com/charts.git", "path": "charts/app"}


def manifest(namespace: str = "team", name: str = "app", **spec: Any) -> dict[str, Any]:
    """A HelmRelease dict as the API returns it, with a Git chart by default."""
    spec.setdefault("chart", dict(GIT_CHART))
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"namespace": namespace, "name": name},
        "spec": spec,
    }


def test_metadata_fields_are_read_from_the_api_object() -> None:
    obj = manifest()
    obj["metadata"].update(
        uid="u-1", generation=3, resourceVersion="42", annotations={"a": "b"}, labels={"l": "v"},
        deletionTimestamp="2026-11-26T05:00:00Z", finalizers=[FINALIZER],
    )
    obj["status"] = {"phase": "Deployed"}
    hr = parse(obj)
    assert (hr.uid, hr.generation, hr.resource_version) == ("u-1", 3, "42")
    assert hr.annotations == {"a": "b"} and hr.labels == {"l": "v"}
    assert hr.deletion_timestamp == "2026-11-26T05:00:00Z" and hr.is_deleting
    assert hr.finalizers == (FINALIZER,) and hr.has_finalizer
    assert hr.status == {"phase": "Deployed"}
    assert hr.key == "team/app"


def test_metadata_defaults_when_fields_are_absent() -> None:
    hr = parse(manifest())
    assert (hr.uid, hr.generation, hr.resource_version) == ("", 0, "")
    assert hr.annotations == {} and hr.labels == {} and hr.finalizers == ()
    assert hr.deletion_timestamp is None and not hr.is_deleting and not hr.has_finalizer
    assert hr.status == {}


def test_missing_namespace_or_name_is_refused() -> None:
    obj = manifest()
    del obj["metadata"]["namespace"]
    with pytest.raises(InvalidSpec, match="metadata.namespace"):
        parse(obj)


def test_release_name_is_namespace_and_name_when_target_is_the_same_namespace() -> None:
    assert parse(manifest(targetNamespace="team")).release_name == "team-app"
    assert parse(manifest()).release_name == "team-app"


def test_release_name_includes_target_namespace_when_it_differs() -> None:
    hr = parse(manifest(targetNamespace="prod"))
    assert hr.release_name == "team-prod-app"
    assert hr.target_namespace == "prod"


def test_explicit_release_name_wins() -> None:
    assert parse(manifest(releaseName="mine", targetNamespace="prod")).release_name == "mine"


def test_empty_release_name_and_target_namespace_mean_default() -> None:
    hr = parse(manifest(releaseName="", targetNamespace=""))
    assert (hr.release_name, hr.target_namespace) == ("team-app", "team")


def test_target_namespace_defaults_to_the_helmrelease_namespace() -> None:
    assert parse(manifest()).target_namespace == "team"


def test_release_name_longer_than_helm_allows_asks_for_a_shorter_one() -> None:
    with pytest.raises(InvalidSpec, match="set a shorter spec.releaseName"):
        parse(manifest(name="a" * 60))


def test_release_name_helm_would_refuse_is_reported() -> None:
    with pytest.raises(InvalidSpec, match="not valid for Helm"):
        parse(manifest(releaseName="Bad_Name"))


def test_parse_ref_reads_identity_even_when_the_chart_is_broken() -> None:
    """A broken HelmRelease must still be deletable: its release is known."""
    ref = parse_ref(manifest(chart={}, targetNamespace="prod"))
    assert (ref.key, ref.release_name, ref.target_namespace) == ("team/app", "team-prod-app", "prod")
    with pytest.raises(InvalidSpec):
        parse(manifest(chart={}))


def test_helm_version_v2_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidSpec) as err:
        parse(manifest(helmVersion="v2"))
    assert str(err.value) == HELM_V2_REFUSED
    assert "set helmVersion: v3 or remove the field" in err.value.message


@pytest.mark.parametrize("version", ["v3", None])
def test_helm_version_v3_or_absent_is_accepted(version: str | None) -> None:
    spec = {"helmVersion": version} if version else {}
    assert parse(manifest(**spec)).helm_version == version


def test_unknown_helm_version_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="v3 or absent"):
        parse(manifest(helmVersion="v4"))


def test_spec_defaults_follow_the_contract() -> None:
    hr = parse(manifest())
    assert hr.max_history == 10
    assert hr.timeout == 300
    assert hr.reset_values is None
    assert (hr.skip_crds, hr.force_upgrade, hr.disable_openapi_validation, hr.wait) == (False,) * 4
    assert hr.values == {} and hr.values_from == ()
    assert hr.rollback == Rollback() and hr.test == Test()


def test_explicit_spec_fields_are_kept() -> None:
    hr = parse(manifest(
        maxHistory=0, timeout=60, resetValues=True, skipCRDs=True, forceUpgrade=True,
        disableOpenAPIValidation=True, wait=True,
    ))
    assert (hr.max_history, hr.timeout, hr.reset_values) == (0, 60, True)
    assert hr.skip_crds and hr.force_upgrade and hr.disable_openapi_validation and hr.wait


def test_reset_values_false_stays_distinct_from_unset() -> None:
    assert parse(manifest(resetValues=False)).reset_values is False
    assert parse(manifest()).reset_values is None


@pytest.mark.parametrize("section", ["rollback", "test"])
def test_wait_defaults_to_true_when_rollback_or_test_is_enabled(section: str) -> None:
    assert parse(manifest(**{section: {"enable": True}})).wait is True


def test_explicit_wait_false_wins_over_rollback_enabled() -> None:
    assert parse(manifest(wait=False, rollback={"enable": True})).wait is False


def test_rollback_defaults_and_explicit_fields() -> None:
    assert Rollback() == Rollback(
        enable=False, retry=False, max_retries=5, force=False, recreate=False,
        disable_hooks=False, timeout=300, wait=False,
    )
    hr = parse(manifest(rollback={
        "enable": True, "retry": True, "maxRetries": 0, "force": True, "recreate": True,
        "disableHooks": True, "timeout": 30, "wait": True,
    }))
    assert hr.rollback == Rollback(
        enable=True, retry=True, max_retries=0, force=True, recreate=True,
        disable_hooks=True, timeout=30, wait=True,
    )


def test_test_defaults_and_cleanup_is_accepted_and_ignored() -> None:
    assert Test() == Test(enable=False, ignore_failures=False, timeout=300)
    hr = parse(manifest(test={"enable": True, "ignoreFailures": True, "timeout": 90, "cleanup": True}))
    assert hr.test == Test(enable=True, ignore_failures=True, timeout=90)


def test_values_are_copied_not_shared_with_the_input() -> None:
    obj = manifest(values={"image": {"tag": "1.0"}})
    hr = parse(obj)
    obj["spec"]["values"]["image"]["tag"] = "2.0"
    assert hr.values == {"image": {"tag": "1.0"}}


@pytest.mark.parametrize("values", [["a", "b"], "replicas: 2", 3])
def test_values_that_are_not_a_map_are_refused_with_a_clear_message(values: Any) -> None:
    with pytest.raises(InvalidSpec, match="spec.values must be a map"):
        parse(manifest(values=values))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"maxHistory": "10"}, "spec.maxHistory must be a whole number"),
        ({"timeout": -1}, "spec.timeout must be 0 or more"),
        ({"wait": "yes"}, "spec.wait must be true or false"),
        ({"rollback": {"maxRetries": True}}, "spec.rollback.maxRetries"),
        ({"rollback": []}, "spec.rollback must be a map"),
        ({"test": {"timeout": 1.5}}, "spec.test.timeout"),
    ],
)
def test_fields_of_the_wrong_type_name_their_path(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec, match=field.replace(".", r"\.")):
        parse(manifest(**spec))


def test_invalid_spec_is_a_value_error() -> None:
    assert issubclass(InvalidSpec, ValueError)


def test_antecedent_round_trips() -> None:
    hr = parse(manifest())
    assert hr.antecedent == "team:helmrelease/app" == format_antecedent("team", "app")
    assert parse_antecedent(hr.antecedent) == ("team", "app")


@pytest.mark.parametrize("value", ["", "team", "team:deployment/app", ":helmrelease/app", "team:helmrelease/"])
def test_malformed_antecedent_reads_as_none(value: str) -> None:
    assert parse_antecedent(value) is None


def test_model_is_frozen() -> None:
    hr = parse(manifest())
    assert isinstance(hr, HelmRelease)
    with pytest.raises(AttributeError):
        hr.timeout = 1  # type: ignore[misc]


# ------------------------------------------------ serviceAccountName (ours)


def test_service_account_name_is_read_and_absent_means_none() -> None:
    assert parse(manifest(serviceAccountName="deployer")).service_account_name == "deployer"
    assert parse(manifest()).service_account_name is None
    assert parse(manifest(serviceAccountName="")).service_account_name is None
    assert parse_ref(manifest(serviceAccountName="deployer")).service_account_name == "deployer"


@pytest.mark.parametrize("name", ["other:deployer", "ns/deployer", "Deployer", "-x", "x" * 254])
def test_a_service_account_name_reaching_elsewhere_is_refused(name: str) -> None:
    with pytest.raises(InvalidSpec, match="spec.serviceAccountName"):
        parse(manifest(serviceAccountName=name))


def test_a_broken_service_account_name_never_stops_a_delete() -> None:
    """parse_ref reads what deleting needs and must not fail on the spec."""
    assert parse_ref(manifest(serviceAccountName=42)).service_account_name is None
