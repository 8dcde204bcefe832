"""Tenant lockdown: what a HelmRelease may do, decided before anything is done.

Place in the flow: the reconciler calls `refusal(hr, policy)` right after
parsing a HelmRelease, before fetching a chart or reading a values source;
a message means "record it as the status (phase Failed) and wait for the
HelmRelease to change". It passes `impersonation(hr, policy)` to every helm
action, so helm acts as the release's ServiceAccount, and turns an RBAC
refusal in helm's error text into advice with `explain_forbidden`. On
deletion, `delete_refusal(ref, policy)` says when not to uninstall.

Everything is off by default (v1 behaviour) and one flag away:

- ``spec.serviceAccountName``: helm acts as ``system:serviceaccount:<the
  HelmRelease's namespace>:<name>``, so a release can only create what that
  ServiceAccount may; ``--default-service-account NAME`` applies it to
  releases that name none (then every release runs as a ServiceAccount of its
  own namespace);
- ``--no-cross-namespace-refs``: ``targetNamespace``, ``valuesFrom``
  ConfigMap/Secret references and ``chart.secretRef`` must stay in the
  HelmRelease's namespace (``chartPullSecret`` always does);
- the externalSourceRef host policy (`hostpolicy.HostPolicy`), carried here
  so the reconciler holds one policy object; it needs DNS, so it is checked
  where the URL is fetched (`release.external`), not here.

Pure: no I/O, no clients. What this module does NOT do: check that a
ServiceAccount exists (the reconciler asks the API when it matters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from helm_operator.api.constants import ValuesSourceKind
from helm_operator.api.helmrelease import HelmRelease, HelmReleaseRef
from helm_operator.release.hostpolicy import HostPolicy

NO_CROSS_NAMESPACE_FLAG = "--no-cross-namespace-refs"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
# What helm does to each kind of a chart (install, upgrade with --wait, uninstall).
HELM_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")

# The API server's Forbidden message, as helm prints it, e.g.
#   deployments.apps "web" is forbidden: User "system:serviceaccount:team-a:deployer"
#   cannot create resource "deployments" in API group "apps" in the namespace "team-a"
_FORBIDDEN = re.compile(
    r'(?:"(?P<name>[^"]*)" )?is forbidden: User "(?P<user>[^"]+)" cannot (?P<verb>[\w:-]+) resource "(?P<resource>[^"]+)"'
    r' in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)


@dataclass(frozen=True)
class TenancyPolicy:
    """The operator's lockdown flags; the default changes nothing."""

    default_service_account: str | None = None   # --default-service-account
    no_cross_namespace_refs: bool = False        # --no-cross-namespace-refs
    external_hosts: HostPolicy = field(default_factory=HostPolicy)  # --external-source-allow/-deny


def service_account(ref: HelmReleaseRef, policy: TenancyPolicy) -> str | None:
    """The ServiceAccount (of the HelmRelease's namespace) helm acts as, if any."""
    return ref.service_account_name or policy.default_service_account or None


def impersonation(ref: HelmReleaseRef, policy: TenancyPolicy) -> str | None:
    """The user name helm impersonates (``--kube-as-user``), or None to act as the operator."""
    name = service_account(ref, policy)
    return f"{SERVICE_ACCOUNT_PREFIX}{ref.namespace}:{name}" if name else None


def refusal(hr: HelmRelease, policy: TenancyPolicy) -> str | None:
    """Why the operator must not act on `hr` under `policy`; None when it may."""
    if not policy.no_cross_namespace_refs:
        return None
    problems: list[str] = []
    target = delete_refusal(hr, policy)
    if target:
        problems.append(target)
    for source in hr.values_from:
        if source.kind in (ValuesSourceKind.CONFIG_MAP, ValuesSourceKind.SECRET) \
                and source.namespace and source.namespace != hr.namespace:
            kind = "ConfigMap" if source.kind is ValuesSourceKind.CONFIG_MAP else "Secret"
            problems.append(f"valuesFrom {source.kind} reads {kind} {source.namespace}/{source.name} "
                            f"from another namespace")
    secret_ref = hr.chart.secret_ref
    if secret_ref is not None and secret_ref.namespace != hr.namespace:
        problems.append(f"spec.chart.secretRef reads Secret {secret_ref.namespace}/{secret_ref.name} "
                        f"from another namespace")
    if not problems:
        return None
    return (f"cross-namespace references are not allowed ({NO_CROSS_NAMESPACE_FLAG}): "
            + "; ".join(problems)
            + f". Keep every reference in namespace {hr.namespace}")


def delete_refusal(ref: HelmReleaseRef, policy: TenancyPolicy) -> str | None:
    """Why a release of `ref` must not be touched at all (not even uninstalled); None if it may.

    Only the target namespace matters here: a HelmRelease the policy refused
    never installed anything there, so deleting it must not uninstall a
    release someone else put in that namespace.
    """
    if policy.no_cross_namespace_refs and ref.target_namespace != ref.namespace:
        return (f"spec.targetNamespace {ref.target_namespace} is outside the HelmRelease's namespace "
                f"{ref.namespace}")
    return None


def explain_forbidden(helm_error: str) -> str | None:
    """A status message for an RBAC refusal in helm's error text; None if there is none.

    It names who was refused, the verb and the resource, and the RBAC that
    would allow it: for a ServiceAccount helm impersonated, a Role and
    RoleBinding in that namespace; for the operator not allowed to
    impersonate, the rule its own ServiceAccount needs.
    """
    match = _FORBIDDEN.search(helm_error)
    if match is None:
        return None
    user, verb, resource = match["user"], match["verb"], match["resource"]
    group, namespace = match["group"], match["namespace"]
    qualified = f"{resource}.{group}" if group else resource
    where = f"in namespace {namespace}" if namespace else "at the cluster scope"
    group_field = f'"{group}"' if group else '""'
    if verb == "impersonate":
        target = f"ServiceAccount {namespace}/{match['name']}" if namespace and match["name"] else resource
        return (f"RBAC refused the operator ({user}): it may not impersonate {target}, so it cannot act as "
                f"the release's ServiceAccount: give the operator's own ServiceAccount the verb impersonate "
                f"on serviceaccounts (the helm-operator chart does, with rbac.create)")
    if user.startswith(SERVICE_ACCOUNT_PREFIX):
        sa_namespace, _, sa_name = user.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        who = f"ServiceAccount {sa_namespace}/{sa_name}"
        # helm reads, creates, patches and deletes each kind it manages: asking
        # for the refused verb alone would only move the refusal to the next one.
        verbs = list(HELM_VERBS) + ([verb] if verb not in HELM_VERBS else [])
        rule = f"{{apiGroups: [{group_field}], resources: [{resource}], verbs: [{', '.join(verbs)}]}}"
        if namespace:
            role = f"{sa_name}-{_slug(resource)}"
            how = (f"add the rule {rule} to a Role in namespace {namespace} bound to it by a RoleBinding, "
                   f"e.g. kubectl -n {namespace} create role {role} --verb={','.join(verbs)} "
                   f"--resource={qualified} && kubectl -n {namespace} create rolebinding {role} "
                   f"--role={role} --serviceaccount={sa_namespace}:{sa_name}")
        else:
            how = f"add the rule {rule} to a ClusterRole bound to it by a ClusterRoleBinding"
        return (f"RBAC refused {who} (spec.serviceAccountName, or the operator's "
                f"--default-service-account), which helm acts as: it may not {verb} {qualified} {where}. "
                f"To allow helm to manage {qualified}, {how}; the next retry then succeeds")
    return f"RBAC refused {user}: it may not {verb} {qualified} {where}"


def _slug(resource: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", resource.lower()).strip("-")
