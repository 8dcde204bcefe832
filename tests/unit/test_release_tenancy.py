"""Scenarios for the tenant lockdown policy (`helm_operator.release.tenancy`):
pure decisions on parsed HelmReleases, and helm's RBAC errors explained."""

from __future__ import annotations

from typing import Any

import pytest

from helm_operator.api.helmrelease import parse, parse_ref
from helm_operator.release.tenancy import (
    TenancyPolicy,
    delete_refusal,
    explain_forbidden,
    impersonation,
    refusal,
)

LOCKED = TenancyPolicy(no_cross_namespace_refs=True)


def hr(namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    spec.setdefault("chart", {"repository": "https://charts.example.com/", "name": "web", "version": "1.0.0"})
    return {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
            "metadata": {"namespace": namespace, "name": "web"}, "spec": spec}


# ------------------------------------------------------------ impersonation


def test_without_any_service_account_helm_acts_as_the_operator() -> None:
    assert impersonation(parse(hr()), TenancyPolicy()) is None


def test_spec_service_account_name_is_impersonated_in_the_helmreleases_namespace() -> None:
    release = parse(hr(serviceAccountName="deployer", targetNamespace="elsewhere"))
    assert impersonation(release, TenancyPolicy()) == "system:serviceaccount:team-a:deployer"


def test_the_default_service_account_applies_only_to_releases_that_name_none() -> None:
    policy = TenancyPolicy(default_service_account="helm")
    assert impersonation(parse(hr()), policy) == "system:serviceaccount:team-a:helm"
    assert impersonation(parse(hr(serviceAccountName="own")), policy) == "system:serviceaccount:team-a:own"
    assert impersonation(parse_ref(hr()), policy) == "system:serviceaccount:team-a:helm"


# ---------------------------------------------------- cross-namespace refs


def test_everything_in_one_namespace_is_accepted_under_lockdown() -> None:
    release = parse(hr(targetNamespace="team-a", valuesFrom=[
        {"configMapKeyRef": {"name": "cm"}}, {"secretKeyRef": {"name": "s", "namespace": "team-a"}}]))
    assert refusal(release, LOCKED) is None


def test_cross_namespace_refs_are_allowed_without_the_flag() -> None:
    release = parse(hr(targetNamespace="prod", valuesFrom=[{"secretKeyRef": {"name": "s", "namespace": "x"}}]))
    assert refusal(release, TenancyPolicy()) is None


def test_every_cross_namespace_reference_is_named_in_one_refusal() -> None:
    release = parse(hr(
        targetNamespace="kube-system",
        valuesFrom=[{"configMapKeyRef": {"name": "cm", "namespace": "team-b"}},
                    {"secretKeyRef": {"name": "db", "namespace": "team-b"}}],
    ))
    message = refusal(release, LOCKED)
    assert message is not None
    assert message.startswith("cross-namespace references are not allowed (--no-cross-namespace-refs)")
    assert "spec.targetNamespace kube-system" in message
    assert "ConfigMap team-b/cm" in message and "Secret team-b/db" in message
    assert message.endswith("Keep every reference in namespace team-a")


def test_a_git_secret_ref_in_another_namespace_is_refused() -> None:
    release = parse(hr(chart={"git": "https://git.example.com/c.git", "path": "charts/web",
                              "secretRef": {"name": "creds", "namespace": "flux"}}))
    message = refusal(release, LOCKED)
    assert message is not None and "spec.chart.secretRef reads Secret flux/creds" in message


def test_deleting_a_release_aimed_at_another_namespace_uninstalls_nothing_under_lockdown() -> None:
    assert delete_refusal(parse_ref(hr(targetNamespace="prod")), LOCKED) is not None
    assert delete_refusal(parse_ref(hr(targetNamespace="prod")), TenancyPolicy()) is None
    assert delete_refusal(parse_ref(hr()), LOCKED) is None


# ------------------------------------------------------ RBAC refusals explained


def test_a_service_account_refused_a_namespaced_create_is_told_which_rule_to_add() -> None:
    helm = ('INSTALLATION FAILED: failed to create resource: deployments.apps "team-a-web" is forbidden: '
            'User "system:serviceaccount:team-a:deployer" cannot create resource "deployments" in API group '
            '"apps" in the namespace "team-a"')
    message = explain_forbidden(helm)
    assert message is not None
    assert "ServiceAccount team-a/deployer" in message
    assert "may not create deployments.apps in namespace team-a" in message
    assert ('{apiGroups: ["apps"], resources: [deployments], '
            'verbs: [get, list, watch, create, update, patch, delete]}') in message
    assert ("kubectl -n team-a create role deployer-deployments "
            "--verb=get,list,watch,create,update,patch,delete --resource=deployments.apps") in message
    assert "--serviceaccount=team-a:deployer" in message


def test_a_core_group_and_cluster_scope_refusal_asks_for_a_cluster_role() -> None:
    helm = ('namespaces is forbidden: User "system:serviceaccount:team-a:deployer" cannot list resource '
            '"namespaces" in API group "" at the cluster scope')
    message = explain_forbidden(helm)
    assert message is not None
    assert "may not list namespaces at the cluster scope" in message
    assert '{apiGroups: [""], resources: [namespaces], verbs: [get, list, watch, create' in message
    assert "ClusterRole" in message


def test_an_operator_that_may_not_impersonate_is_told_so() -> None:
    helm = ('serviceaccounts "deployer" is forbidden: User "system:serviceaccount:flux:helm-operator" cannot '
            'impersonate resource "serviceaccounts" in API group "" in the namespace "team-a"')
    message = explain_forbidden(helm)
    assert message is not None
    assert "the operator (system:serviceaccount:flux:helm-operator)" in message
    assert "may not impersonate ServiceAccount team-a/deployer" in message
    assert "impersonate on serviceaccounts" in message


def test_a_verb_helm_does_not_usually_need_is_added_to_the_rule() -> None:
    helm = ('roles.rbac.authorization.k8s.io "r" is forbidden: User "system:serviceaccount:a:d" cannot escalate '
            'resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "a"')
    message = explain_forbidden(helm)
    assert message is not None and "may not escalate roles.rbac.authorization.k8s.io" in message
    assert "verbs: [get, list, watch, create, update, patch, delete, escalate]" in message


@pytest.mark.parametrize("text", ["", "UPGRADE FAILED: context deadline exceeded",
                                  "template: hello/templates/fail.yaml:2:4: render failure"])
def test_other_errors_are_left_as_helm_said_them(text: str) -> None:
    assert explain_forbidden(text) is None
