"""The Helm chart `charts/helm-operator`, rendered by the real `helm` binary.

Each scenario renders the chart with `helm template` and a value set (the
defaults, an ssh source, an https source, cluster-admin, two replicas with
leader election, garbage collection, registry flags) and checks the objects;
invalid value sets must be refused by `values.schema.json`. The containers'
arguments are parsed with the program's own argument parser, and the sync
sources file with the syncer's own loader, so the chart cannot drift from
the CLI. No cluster is needed: `helm template` runs offline.
"""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_operator.cli import build_parser
from helm_operator.gitsync.config import SourceConfig, load_sources
from tests.cluster.localcluster import ensure_binaries
from tests.integration.charttemplate import CHART, NAME, NAMESPACE, REPO, parse_cli, render, render_text, run_helm

CRD = REPO / "crds" / "helmrelease.yaml"

SSH_SOURCE = {
    "git.sources[0].name": "apps",
    "git.sources[0].url": "ssh://git@github.com/org/cluster.git",
    "git.sources[0].branch": "main",
    "git.sources[0].paths[0]": "clusters/prod",
    "git.sources[0].pollInterval": "1m",
    "git.ssh.secretName": "flux-git-deploy",
    "git.ssh.knownHosts": "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
}
HTTPS_SOURCE = {
    "git.sources[0].name": "apps",
    "git.sources[0].url": "https://git.example.com/org/cluster.git",
    "git.sources[0].readonly": "true",
    "git.https.secretName": "git-https-credentials",
}


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def cli_has_flag(command: str, flag: str) -> bool:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([command, "--help"])
    return flag in out.getvalue()


def rules(objects: list[dict[str, Any]], kind: str = "ClusterRole", name: str = NAME) -> list[dict[str, Any]]:
    return one(objects, kind, name)["rules"]


def verbs_for(rule_list: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {v for r in rule_list if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}


# ---------------------------------------------------------------- the chart


def test_crd_is_a_symlink_to_the_single_source_with_the_same_bytes() -> None:
    link = CHART / "crds" / "helmrelease.yaml"
    assert link.is_symlink()
    assert not Path(link.readlink()).is_absolute(), "an absolute link breaks in other checkouts"
    assert link.resolve() == CRD.resolve()
    assert link.read_bytes() == CRD.read_bytes()


def test_rendered_crd_is_the_repository_crd() -> None:
    docs = render(None, "--include-crds")
    crd = one(docs, "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD.read_text())


def test_packaged_chart_contains_the_crd_bytes(tmp_path: Path) -> None:
    proc = run_helm("package", str(CHART), "-d", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    import tarfile

    [archive] = tmp_path.glob("helm-operator-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("helm-operator/crds/helmrelease.yaml")
        assert member is not None and member.read() == CRD.read_bytes()


def test_lint_is_clean() -> None:
    proc = run_helm("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


# ------------------------------------------------------------------ defaults


def test_defaults_render_the_operator_alone_with_least_privilege() -> None:
    docs = render()
    assert sorted(d["kind"] for d in docs) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment",
         "Secret"])
    deploy = one(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == NAME
    assert pod["terminationGracePeriodSeconds"] > 300, "must outlast helm's default 300 s timeout"
    assert pod["securityContext"]["runAsNonRoot"] is True

    [operator] = pod["containers"]
    assert operator["name"] == "operator"
    args = parse_cli(operator["args"])
    assert args.command == "run"
    assert (args.workers, args.log_format, args.allow_namespace) == (4, "text", None)
    assert str(args.cache_dir).startswith("/var/cache/helm-operator")
    assert "--leader-elect" not in operator["args"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert operator[probe]["httpGet"] == {"path": path, "port": "http-operator"}
    assert operator["ports"] == [{"name": "http-operator", "containerPort": 3030, "protocol": "TCP"}]
    sc = operator["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in operator["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {"emptyDir"} == set(volumes[mounts["/tmp"]]) - {"name"}
    assert {"emptyDir"} == set(volumes[mounts["/var/cache/helm-operator"]]) - {"name"}
    env = env_of(operator)
    assert env["HOME"] == "/tmp" and env["HELM_CACHE_HOME"].startswith("/var/cache/helm-operator")
    assert "GIT_SSH_COMMAND" not in env

    cluster_rules = rules(docs)
    assert not any("*" in r["verbs"] for r in cluster_rules), "no wildcard verbs by default"
    assert not any("*" in r["resources"] for r in cluster_rules), "no wildcard resources by default"
    assert verbs_for(cluster_rules, "helm.fluxcd.io", "helmreleases") >= {"get", "list", "watch", "patch"}
    assert "delete" not in verbs_for(cluster_rules, "helm.fluxcd.io", "helmreleases")
    assert verbs_for(cluster_rules, "helm.fluxcd.io", "helmreleases/status") >= {"patch"}
    assert verbs_for(cluster_rules, "", "events") >= {"create", "patch"}
    assert verbs_for(cluster_rules, "", "secrets") == {"get", "list", "watch"}
    assert verbs_for(rules(docs, "Role"), "coordination.k8s.io", "leases") == {"get", "create", "update"}
    assert not [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-release")]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == NAME
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]


def test_every_rbac_rule_is_commented() -> None:
    """Each rule says who needs it (the wildcard release role is explained
    once, above the object)."""
    text = render_text({**SSH_SOURCE, "git.sources[0].garbageCollection": "true",
                        "rbac.releaseNamespaces[0]": "apps"})
    checked = 0
    for chunk in text.split("\n---\n"):
        doc = yaml.safe_load(chunk)
        if not doc or doc["kind"] not in ("ClusterRole", "Role"):
            continue
        lines = chunk.splitlines()
        if doc["metadata"]["name"].endswith("-release"):
            assert sum(ln.startswith("#") for ln in lines) >= 3
            continue
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[i - 1].strip().startswith("#"), f"rule without a comment: {lines[i:i + 3]}"
                checked += 1
    assert checked >= 8


def test_notes_say_how_to_check_it_works() -> None:
    proc = run_helm("install", NAME, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                    "--set-string", "git.sources[0].name=apps", "--set-string",
                    "git.sources[0].url=https://git.example.com/x.git")
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    for expected in ("kubectl -n flux get pods", "-c operator", "kubectl get hr -A",
                     "helm-operator sync-status", "rbac.releaseNamespaces is empty"):
        assert expected in notes, expected


# ------------------------------------------------------------- Git sources


def test_ssh_source_runs_the_syncer_with_the_key_and_known_hosts(tmp_path: Path) -> None:
    docs = render(SSH_SOURCE)
    c = containers(docs)
    assert list(c) == ["syncer", "operator"]
    syncer = c["syncer"]
    args = parse_cli(syncer["args"])
    assert args.command == "sync"
    assert str(args.git_ssh_key) == "/etc/helm-operator/ssh/identity"
    assert str(args.git_known_hosts) == "/etc/helm-operator/known-hosts/known_hosts"
    assert args.default_namespace == NAMESPACE
    assert args.listen_port == 3031 and str(args.workdir).startswith("/var/cache/helm-operator")
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} \
        in syncer["env"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert syncer[probe]["httpGet"] == {"path": path, "port": "http-syncer"}

    # The sources file is what the syncer's own loader accepts.
    sources_cm = one(docs, "ConfigMap", f"{NAME}-sync")
    config = tmp_path / "sources.yaml"
    config.write_text(sources_cm["data"]["sources.yaml"])
    [source] = load_sources(config, SourceConfig(name="default", url=""))
    assert (source.name, source.url, source.branch, source.paths, source.poll_interval) == (
        "apps", "ssh://git@github.com/org/cluster.git", "main", ("clusters/prod",), 60.0)
    assert str(args.config) == "/etc/helm-operator/sync/sources.yaml"
    mount = next(m for m in syncer["volumeMounts"] if m["name"] == "sync-config")
    assert mount["mountPath"] == "/etc/helm-operator/sync"

    known_hosts = one(docs, "ConfigMap", f"{NAME}-known-hosts")["data"]["known_hosts"]
    assert known_hosts.startswith("github.com ssh-ed25519 ")

    # The operator uses the same key for ssh:// chart sources of HelmReleases.
    ssh_command = env_of(c["operator"])["GIT_SSH_COMMAND"]
    assert "-i /etc/helm-operator/ssh/identity" in ssh_command
    assert "UserKnownHostsFile=/etc/helm-operator/known-hosts/known_hosts" in ssh_command
    assert "StrictHostKeyChecking=yes" in ssh_command
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    key_volume = next(v for v in pod["volumes"] if v["name"] == "git-ssh")
    assert key_volume["secret"] == {"secretName": "flux-git-deploy", "defaultMode": 0o440}
    assert pod["securityContext"]["fsGroup"] == 10001
    for container in c.values():
        assert {m["name"] for m in container["volumeMounts"]} >= {"git-ssh", "git-known-hosts"}

    service = one(docs, "Service")
    assert {p["port"] for p in service["spec"]["ports"]} == {3030, 3031}
    assert verbs_for(rules(docs, "Role"), "", "configmaps") >= {"get", "create", "patch"}
    assert "create" in verbs_for(rules(docs), "helm.fluxcd.io", "helmreleases")


def test_https_source_mounts_the_credentials_secret_for_the_syncer_only() -> None:
    docs = render(HTTPS_SOURCE)
    c = containers(docs)
    args = parse_cli(c["syncer"]["args"])
    assert str(args.git_https_credentials_dir) == "/etc/helm-operator/git-https"
    assert args.git_ssh_key is None and args.git_known_hosts is None
    assert "git-https" in {m["name"] for m in c["syncer"]["volumeMounts"]}
    assert "git-https" not in {m["name"] for m in c["operator"]["volumeMounts"]}
    volume = next(v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "git-https")
    assert volume["secret"]["secretName"] == "git-https-credentials"
    sources = yaml.safe_load(one(docs, "ConfigMap", f"{NAME}-sync")["data"]["sources.yaml"])
    assert sources["sources"][0]["readonly"] is True
    assert "GIT_SSH_COMMAND" not in env_of(c["operator"])


def test_garbage_collection_adds_list_everything_and_deletes() -> None:
    docs = render({**HTTPS_SOURCE, "git.sources[0].garbageCollection": "true"})
    cluster_rules = rules(docs)
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]} in cluster_rules
    assert "delete" in verbs_for(cluster_rules, "helm.fluxcd.io", "helmreleases")
    assert "delete" in verbs_for(cluster_rules, "", "namespaces")
    assert not any(r["verbs"] == ["*"] for r in cluster_rules)


# ---------------------------------------------------------------------- RBAC


def test_release_namespaces_get_everything_inside_them_only() -> None:
    docs = render({"rbac.releaseNamespaces[0]": "apps", "rbac.releaseNamespaces[1]": "monitoring"})
    release_role = one(docs, "ClusterRole", f"{NAME}-release")
    assert release_role["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == f"{NAME}-release"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["apps", "monitoring"]
    assert all(b["roleRef"]["name"] == f"{NAME}-release" for b in bindings)
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"
                and d["roleRef"]["name"] == f"{NAME}-release"], "never bound cluster-wide"


def test_cluster_admin_binds_cluster_admin_instead_of_narrow_rules() -> None:
    docs = render({"rbac.clusterAdmin": "true"})
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "cluster-admin"}
    assert binding["subjects"][0]["name"] == NAME
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "Role")]


def test_rbac_create_false_renders_no_rbac() -> None:
    docs = render({"rbac.create": "false", "serviceAccount.create": "false", "serviceAccount.name": "ops"})
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                                 "ServiceAccount")]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


# ------------------------------------------------ replicas, leader election


def test_two_replicas_with_leader_election() -> None:
    docs = render({"replicaCount": "2", "leaderElection.enabled": "true"})
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    operator = containers(docs)["operator"]
    assert "--leader-elect" in operator["args"]
    assert "POD_NAMESPACE" in env_of(operator)
    args = parse_cli(operator["args"])
    assert args.leader_elect is True
    assert args.leader_election_name == NAME, "one Lease per installation"
    assert args.lease_duration == 15.0
    # The Lease's namespace is the pod's ($POD_NAMESPACE), where the chart's
    # Role allows leases.
    assert env_of(operator)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_registry_secrets_become_flags_unless_switched_off() -> None:
    values = {"registry.secretNames[0]": "ghcr-pull", "registry.secretNames[1]": "ops/ecr-pull"}
    off = containers(render({**values, "registry.passFlags": "false"}))["operator"]["args"]
    assert not [a for a in off if "registry" in a]
    args = containers(render(values))["operator"]["args"]
    assert [a for a in args if a.startswith("--registry-secret")] == [
        f"--registry-secret={NAMESPACE}/ghcr-pull", "--registry-secret=ops/ecr-pull"]
    if cli_has_flag("run", "--registry-secret"):
        parse_cli(args)


def test_operator_settings_reach_its_flags() -> None:
    docs = render({"operator.workers": "8", "operator.logFormat": "json", "operator.allowNamespace": "apps",
                   "operator.chartsSyncInterval": "10m", "operator.gitDefaultRef": "main",
                   "image.tag": "1.2.3", "service.enabled": "false"})
    operator = containers(docs)["operator"]
    args = parse_cli(operator["args"])
    assert (args.workers, args.log_format, args.allow_namespace, args.charts_sync_interval,
            args.git_default_ref) == (8, "json", "apps", 600.0, "main")
    assert operator["image"].endswith(":1.2.3")
    assert not [d for d in docs if d["kind"] == "Service"]


# ------------------------------------------------------------------- schema


@pytest.mark.parametrize(("values", "complaint"), [
    ({"replicaCount": "2"}, "leaderElection"),
    ({"replicaCount": "3", "leaderElection.enabled": "false"}, "leaderElection"),
    ({"operator.workers": "0"}, "workers"),
    ({"operator.logFormat": "xml"}, "logFormat"),
    ({"operator.chartsSyncInterval": "soon"}, "chartsSyncInterval"),
    ({"gitt.url": "x"}, "gitt"),
    ({"git.sources[0].name": "apps"}, "url"),
    ({"git.sources[0].name": "Apps_1", "git.sources[0].url": "https://x/y.git"}, "name"),
    ({"git.sources[0].name": "a", "git.sources[0].url": "https://x/y.git", "git.sources[0].gc": "true"}, "gc"),
    ({"rbac.clusteradmin": "true"}, "clusteradmin"),
    ({"rbac.releaseNamespaces[0]": "Not A Namespace"}, "releaseNamespaces"),
])
def test_invalid_values_are_refused_by_the_schema(values: dict[str, str], complaint: str) -> None:
    args = ["template", NAME, str(CHART), "--namespace", NAMESPACE]
    for key, value in values.items():
        plain = value in ("true", "false") or value.isdigit()
        args += ["--set" if plain else "--set-string", f"{key}={value}"]
    proc = run_helm(*args)
    assert proc.returncode != 0, f"accepted {values}"
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


def test_automation_passes_git_and_registry_flags_to_the_operator() -> None:
    """With automation on, `helm-operator run` gets the Git target of the first
    source and the registry settings, and they parse with the CLI's own parser."""
    import subprocess as _sp
    import yaml as _yaml

    from helm_operator.cli import build_parser

    helm = str(ensure_binaries() / "helm")
    chart = Path(__file__).resolve().parents[2] / "charts" / "helm-operator"
    out = _sp.run([helm, "template", "t", str(chart), "--set", "automation.enabled=true",
                   "--set", "git.sources[0].name=apps", "--set", "git.sources[0].url=ssh://git@example.com/o/c.git",
                   "--set", "git.sources[0].branch=main", "--set", "automation.paths={releases}",
                   "--set", "registry.secretNames={regcred}"],
                  check=True, capture_output=True, text=True).stdout
    deployment = next(d for d in _yaml.safe_load_all(out) if d and d["kind"] == "Deployment")
    operator = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["args"][0] == "run")
    args = build_parser().parse_args(operator["args"])
    assert args.git_url == "ssh://git@example.com/o/c.git"
    assert args.git_branch == "main"
    assert args.git_path == ["releases"]
    assert args.registry_secret == ["default/regcred"]


def test_automation_without_a_repository_is_refused() -> None:
    import subprocess as _sp


    helm = str(ensure_binaries() / "helm")
    chart = Path(__file__).resolve().parents[2] / "charts" / "helm-operator"
    result = _sp.run([helm, "template", "t", str(chart), "--set", "automation.enabled=true"],
                     capture_output=True, text=True)
    assert result.returncode != 0
    assert "automation.enabled needs automation.gitUrl" in result.stderr


# ------------------------------------------------------- tenancy and triggers


def test_the_webhook_token_is_generated_mounted_and_required_by_default() -> None:
    docs = render(SSH_SOURCE)
    secret = one(docs, "Secret", f"{NAME}-webhook")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 48 and token.isalnum()
    again = one(render(SSH_SOURCE), "Secret", f"{NAME}-webhook")["data"]["token"]
    assert again != secret["data"]["token"], "random when there is no cluster to look the old one up in"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-token")
    assert volume["secret"]["secretName"] == f"{NAME}-webhook"
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]
    for name, container in containers(docs).items():
        args = parse_cli(container["args"])
        assert str(args.webhook_token_file) == "/etc/helm-operator/webhook/token", name
        assert args.webhook_listen is None, name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-token")
        assert mount == {"name": "webhook-token", "mountPath": "/etc/helm-operator/webhook", "readOnly": True}
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] in ("/healthz", "/readyz"), "probes need no token"


def test_an_existing_token_secret_is_used_instead_of_generating_one() -> None:
    docs = render({"webhook.token.existingSecret": "hooks", "webhook.token.secretKey": "github"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-token")
    assert volume["secret"]["secretName"] == "hooks"
    assert volume["secret"]["items"] == [{"key": "github", "path": "token"}]


def test_triggers_without_a_token_when_switched_off() -> None:
    docs = render({"webhook.token.enabled": "false"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    operator = containers(docs)["operator"]
    assert parse_cli(operator["args"]).webhook_token_file is None
    assert "webhook-token" not in {m["name"] for m in operator["volumeMounts"]}


def test_triggers_on_their_own_ports_with_their_own_service_ports() -> None:
    docs = render({**HTTPS_SOURCE, "webhook.separatePort": "true"})
    c = containers(docs)
    for name, port in (("operator", 3040), ("syncer", 3041)):
        args = parse_cli(c[name]["args"])
        assert args.webhook_listen == f"0.0.0.0:{port}", name
        assert {"name": f"hook-{name}", "containerPort": port, "protocol": "TCP"} in c[name]["ports"]
    ports = {p["name"]: p["port"] for p in one(docs, "Service")["spec"]["ports"]}
    assert ports == {"http-operator": 3030, "http-syncer": 3031, "hook-operator": 3040, "hook-syncer": 3041}


def test_the_network_policy_admits_metrics_and_triggers_from_their_own_peers() -> None:
    prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    ingress = {"namespaceSelector": {"matchLabels": {"name": "ingress"}}}
    values = {**HTTPS_SOURCE, "networkPolicy.enabled": "true", "webhook.separatePort": "true",
              "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring",
              "networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.name": "ingress"}
    policy = one(render(values), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == NAME
    metrics, hooks = policy["spec"]["ingress"]
    assert [p["port"] for p in metrics["ports"]] == ["http-operator", "http-syncer"]
    assert metrics["from"] == [prometheus]
    assert [p["port"] for p in hooks["ports"]] == ["hook-operator", "hook-syncer"]
    assert hooks["from"] == [ingress]

    shared = one(render({**values, "webhook.separatePort": "false"}), "NetworkPolicy")
    [both] = shared["spec"]["ingress"]
    assert both["from"] == [prometheus, ingress], "triggers share the port: both peers get in"
    anyone = one(render({"networkPolicy.enabled": "true"}), "NetworkPolicy")
    [open_rule] = anyone["spec"]["ingress"]
    assert "from" not in open_rule and [p["port"] for p in open_rule["ports"]] == ["http-operator"]
    assert not [d for d in render() if d["kind"] == "NetworkPolicy"], "off by default"


def test_tenancy_values_reach_the_operators_flags() -> None:
    assert parse_cli(containers(render())["operator"]["args"]).default_service_account is None
    docs = render({"tenancy.defaultServiceAccount": "helm", "tenancy.noCrossNamespaceRefs": "true",
                   "tenancy.externalSources.allow[0]": "10.0.0.0/8",
                   "tenancy.externalSources.allow[1]": "charts.example.com",
                   "tenancy.externalSources.deny[0]": "*"})
    args = parse_cli(containers(docs)["operator"]["args"])
    assert args.default_service_account == "helm"
    assert args.no_cross_namespace_refs is True
    assert args.external_source_allow == ["10.0.0.0/8", "charts.example.com"]
    assert args.external_source_deny == ["*"]


def test_the_operator_may_impersonate_service_accounts_and_check_they_exist() -> None:
    assert verbs_for(rules(render()), "", "serviceaccounts") == {"get", "impersonate"}


@pytest.mark.parametrize(("values", "complaint"), [
    ({"tenancy.defaultServiceAccount": "Not_A_Name"}, "defaultServiceAccount"),
    ({"webhook.ports.operator": "3030", "webhook.separatePort": "true"}, "operator"),
    ({"webhook.tokn.enabled": "true"}, "tokn"),
    ({"tenancy.externalSources.allow[0]": "two words"}, "allow"),
])
def test_invalid_tenancy_and_webhook_values_are_refused_by_the_schema(values: dict[str, str],
                                                                      complaint: str) -> None:
    args = ["template", NAME, str(CHART), "--namespace", NAMESPACE]
    for key, value in values.items():
        plain = value in ("true", "false") or value.isdigit()
        args += ["--set" if plain else "--set-string", f"{key}={value}"]
    proc = run_helm(*args)
    assert proc.returncode != 0, f"accepted {values}"
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


def test_lint_is_clean_with_every_new_option() -> None:
    proc = run_helm("lint", "--strict", str(CHART), "--set", "webhook.separatePort=true",
                    "--set", "networkPolicy.enabled=true", "--set", "tenancy.noCrossNamespaceRefs=true",
                    "--set", "tenancy.defaultServiceAccount=helm",
                    "--set", "webhook.token.existingSecret=hooks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_user_roles_aggregate_what_the_release_commands_need_into_view_and_edit() -> None:
    assert not [d for d in render() if d["metadata"]["name"].endswith(("-view", "-edit"))], "off by default"
    docs = render({"rbac.userRoles": "true"})
    view, edit = one(docs, "ClusterRole", f"{NAME}-view"), one(docs, "ClusterRole", f"{NAME}-edit")
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in view["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"} == {
        f"{aggregate}view", f"{aggregate}edit", f"{aggregate}admin"}
    assert {k for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"} == {
        f"{aggregate}edit", f"{aggregate}admin"}
    # get/history: get, list; --wait: watch; reconcile/suspend/resume: patch. Nothing else.
    assert verbs_for(view["rules"], "helm.fluxcd.io", "helmreleases") == {"get", "list", "watch"}
    assert verbs_for(edit["rules"], "helm.fluxcd.io", "helmreleases") == {"patch"}
    assert len(view["rules"]) == len(edit["rules"]) == 1
