"""The chart's sharding, syncer leader election and shutdown grace, rendered
by the real `helm` binary.

`sharding.shards` adds one operator-only Deployment per shard, each watching
`sharding.fluxcd.io/key=<name>` with its own Lease, while the main operator
serves the rest (`notin`); the shard pods are the main pod's operator in
every setting but their selector, Lease, workers and resources. The syncer
elects a leader with `leaderElection.enabled`, and the pod's grace period
must outlast the operator's. Arguments are parsed with the program's own
parser. Which HelmReleases each selector picks is checked against the real
API server in test_chart_shards_install.py. (Helm only, no cluster.)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from helm_operator.kube.watch import shard_label_keys
from tests.integration.charttemplate import CHART, NAME, NAMESPACE, helm_args, parse_cli, render, run_helm

KEY = "sharding.fluxcd.io/key"
SOURCE = {"git.sources[0].name": "apps", "git.sources[0].url": "https://git.example.com/org/cluster.git"}
TWO_SHARDS = {"sharding.shards[0].name": "shard1", "sharding.shards[1].name": "shard2"}
LEADER = {"replicaCount": "2", "leaderElection.enabled": "true"}
SCHEDULING = {
    "nodeSelector.pool": "ops", "tolerations[0].key": "dedicated", "tolerations[0].operator": "Exists",
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight": "1",
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key":
        "zone",
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator":
        "Exists",
    "topologySpreadConstraints[0].maxSkew": "1", "topologySpreadConstraints[0].topologyKey": "zone",
    "topologySpreadConstraints[0].whenUnsatisfiable": "ScheduleAnyway",
    "priorityClassName": "ops-critical", "imagePullSecrets[0]": "pull", "podLabels.team": "platform",
    "podAnnotations.owner": "ops",
}
EVERYTHING = {  # every option that reaches the operator container or its pod
    **SOURCE, **SCHEDULING, "git.ssh.secretName": "deploy-key", "git.ssh.knownHosts": "github.com ssh-ed25519 AAAA",
    "git.https.secretName": "git-https", "webhook.separatePort": "true", "tenancy.defaultServiceAccount": "helm",
    "tenancy.noCrossNamespaceRefs": "true", "tenancy.externalSources.deny[0]": "*", "operator.allowNamespace": "apps",
    "automation.enabled": "true", "registry.secretNames[0]": "regcred", "operator.extraArgs[0]": "--oci-plain-http",
    "operator.extraEnv[0].name": "HTTPS_PROXY", "operator.extraEnv[0].value": "http://proxy:3128",
    "extraVolumes[0].name": "ca", "extraVolumes[0].configMap.name": "ca", "extraVolumeMounts[0].name": "ca",
    "extraVolumeMounts[0].mountPath": "/etc/ssl/ca", "operator.maxParallelInstalls": "2",
}


def refused(values: dict[str, str]) -> str:
    """stderr of a `helm template` that must fail."""
    proc = run_helm("template", NAME, str(CHART), "--namespace", NAMESPACE, *helm_args(values))
    assert proc.returncode != 0, f"accepted {values}"
    return proc.stderr


def objects(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in pod(deployment)["containers"] if c["name"] == name]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A matchLabels selector against an object's labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def lint(values: dict[str, str]) -> None:
    proc = run_helm("lint", "--strict", str(CHART), *helm_args(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


# ----------------------------------------------------------- no shards


def test_without_shards_the_operator_serves_every_helmrelease_alone() -> None:
    docs = render(SOURCE)
    assert list(objects(docs, "Deployment")) == [NAME]
    operator = container(objects(docs, "Deployment")[NAME], "operator")
    assert parse_cli(operator["args"]).watch_label_selector is None
    assert not [a for a in operator["args"] if "watch-label-selector" in a]
    assert not [d for d in docs if "helm.fluxcd.io/shard" in d["metadata"].get("labels", {})]
    assert list(objects(docs, "Service")) == [NAME]


# -------------------------------------------------------------- shards


def test_each_shard_runs_one_operator_on_its_label_and_the_main_one_serves_the_rest() -> None:
    docs = render({**SOURCE, **TWO_SHARDS})
    deployments = objects(docs, "Deployment")
    assert list(deployments) == [NAME, f"{NAME}-shard1", f"{NAME}-shard2"]
    main = parse_cli(container(deployments[NAME], "operator")["args"])
    assert main.watch_label_selector == f"{KEY} notin (shard1,shard2)"
    assert [c["name"] for c in pod(deployments[NAME])["containers"]] == ["syncer", "operator"]
    for shard in ("shard1", "shard2"):
        deployment = deployments[f"{NAME}-{shard}"]
        assert [c["name"] for c in pod(deployment)["containers"]] == ["operator"], "no syncer in a shard"
        args = parse_cli(container(deployment, "operator")["args"])
        assert args.command == "run"
        assert args.watch_label_selector == f"{KEY}={shard}"
        # Each revision gets the shard label copied, so the storage watch is the shard's too.
        assert shard_label_keys(args.watch_label_selector) == shard_label_keys(main.watch_label_selector) == (KEY,)
        assert args.leader_elect is False, "one replica, leaderElection off: no Lease"
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert "sync-config" not in {v["name"] for v in pod(deployment)["volumes"]}
        assert deployment["metadata"]["labels"]["helm.fluxcd.io/shard"] == shard


def test_a_shard_pod_is_the_main_operator_in_every_setting_but_its_own() -> None:
    """With every option that reaches the operator set, the shard's container
    equals the main one except for its selector; its pod has the same
    identity, security, scheduling and the volumes the operator mounts."""
    docs = render({**EVERYTHING, **TWO_SHARDS})
    deployments = objects(docs, "Deployment")
    main, shard = deployments[NAME], deployments[f"{NAME}-shard1"]
    main_op, shard_op = container(main, "operator"), container(shard, "operator")
    selector = [a for a in shard_op["args"] if a.startswith("--watch-label-selector=")]
    assert selector == [f"--watch-label-selector={KEY}=shard1"]
    strip = lambda args: [a for a in args if not a.startswith("--watch-label-selector=")]
    assert strip(shard_op["args"]) == strip(main_op["args"])
    assert {k: v for k, v in shard_op.items() if k != "args"} == {k: v for k, v in main_op.items() if k != "args"}
    args = parse_cli(shard_op["args"])
    assert (args.max_parallel_installs, args.allow_namespace, args.default_service_account) == (2, "apps", "helm")
    assert args.git_url == "https://git.example.com/org/cluster.git", "image automation for its own releases"
    assert args.webhook_listen == "0.0.0.0:3040"

    main_pod, shard_pod = pod(main), pod(shard)
    for key in ("serviceAccountName", "terminationGracePeriodSeconds", "priorityClassName", "imagePullSecrets",
                "securityContext", "nodeSelector", "tolerations", "affinity"):
        assert shard_pod[key] == main_pod[key], key
    # The spread counts the shard's own pods, as the main pod's counts its own.
    [spread] = shard_pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == shard["spec"]["selector"]["matchLabels"]
    assert {k: v for k, v in spread.items() if k != "labelSelector"} == {
        k: v for k, v in main_pod["topologySpreadConstraints"][0].items() if k != "labelSelector"}
    # Volumes: the main pod's except what only the syncer reads.
    main_volumes = {v["name"]: v for v in main_pod["volumes"]}
    shard_volumes = {v["name"]: v for v in shard_pod["volumes"]}
    assert set(main_volumes) - set(shard_volumes) == {"sync-config", "git-https"}
    assert all(shard_volumes[n] == main_volumes[n] for n in shard_volumes)
    assert {m["name"] for m in shard_op["volumeMounts"]} <= set(shard_volumes)
    template = shard["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "platform" and template["annotations"]["owner"] == "ops"
    assert template["annotations"]["checksum/config"] == main["spec"]["template"]["metadata"]["annotations"][
        "checksum/config"], "a known_hosts change rolls the shards too"


def test_per_shard_workers_installs_resources_and_replicas() -> None:
    docs = render({**TWO_SHARDS, "operator.workers": "6",
                   "sharding.shards[0].workers": "12", "sharding.shards[0].maxParallelInstalls": "3",
                   "sharding.shards[0].resources.requests.cpu": "1500m",
                   "sharding.shards[0].replicaCount": "0"})
    deployments = objects(docs, "Deployment")
    first, second = deployments[f"{NAME}-shard1"], deployments[f"{NAME}-shard2"]
    assert first["spec"]["replicas"] == 0, "0 is a replica count, not 'unset'"
    assert (parse_cli(container(first, "operator")["args"]).workers,
            parse_cli(container(first, "operator")["args"]).max_parallel_installs) == (12, 3)
    assert container(first, "operator")["resources"] == {"requests": {"cpu": "1500m"}}
    # The other shard takes the operator's settings.
    args = parse_cli(container(second, "operator")["args"])
    assert (args.workers, args.max_parallel_installs) == (6, 0)
    assert container(second, "operator")["resources"] == container(deployments[NAME], "operator")["resources"]
    assert not [a for a in container(second, "operator")["args"] if a.startswith("--max-parallel-installs")]


def test_every_shard_elects_on_its_own_lease_and_no_two_leases_share_a_name() -> None:
    docs = render({**SOURCE, **TWO_SHARDS, **LEADER, "sharding.shards[1].replicaCount": "3"})
    deployments = objects(docs, "Deployment")
    leases = {}
    for name, deployment in deployments.items():
        for c in pod(deployment)["containers"]:
            args = parse_cli(c["args"])
            assert args.leader_elect is True, (name, c["name"])
            assert args.lease_duration == 15.0
            leases[(name, c["name"])] = args.leader_election_name
            # The Lease is in the pod's namespace, where the Role allows leases.
            assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} \
                in c["env"]
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate", name
    assert leases == {(NAME, "syncer"): f"{NAME}-syncer", (NAME, "operator"): NAME,
                      (f"{NAME}-shard1", "operator"): f"{NAME}-shard1",
                      (f"{NAME}-shard2", "operator"): f"{NAME}-shard2"}
    assert (deployments[f"{NAME}-shard1"]["spec"]["replicas"], deployments[f"{NAME}-shard2"]["spec"]["replicas"]) \
        == (2, 3), "a shard's replicas default to replicaCount"
    role = objects(docs, "Role")[NAME]
    lease_verbs = {v for r in role["rules"] if "leases" in r["resources"] for v in r["verbs"]}
    assert lease_verbs == {"get", "create", "update"}, "what LeaseStore does: get, create, update"


def test_a_shard_with_several_replicas_elects_even_without_leader_election() -> None:
    docs = render({**TWO_SHARDS, "sharding.shards[1].replicaCount": "2"})
    deployments = objects(docs, "Deployment")
    one, two = (parse_cli(container(deployments[f"{NAME}-{s}"], "operator")["args"]) for s in ("shard1", "shard2"))
    assert one.leader_elect is False and two.leader_elect is True
    assert two.leader_election_name == f"{NAME}-shard2"
    assert deployments[f"{NAME}-shard2"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1,
                                                                                   "maxUnavailable": "100%"}
    assert parse_cli(container(deployments[NAME], "operator")["args"]).leader_elect is False


def test_shard_pods_are_never_selected_by_the_main_objects_and_vice_versa() -> None:
    """The main Deployment's selector is immutable and has no shard term: the
    shard pods carry another app.kubernetes.io/name, so the main Deployment,
    Service, PDB and NetworkPolicy (and `kubectl logs/exec deploy/<fullname>`)
    never reach a shard pod, and the shards' own objects reach only theirs."""
    docs = render({**SOURCE, **TWO_SHARDS, "podDisruptionBudget.enabled": "true", "networkPolicy.enabled": "true",
                   "serviceMonitor.enabled": "true"})
    deployments = objects(docs, "Deployment")
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    shard_pods = [pod_labels[f"{NAME}-shard1"], pod_labels[f"{NAME}-shard2"]]
    main_selector = deployments[NAME]["spec"]["selector"]["matchLabels"]
    assert not any(selects(main_selector, labels) for labels in shard_pods)
    for name, d in deployments.items():
        matched = [n for n, labels in pod_labels.items() if selects(d["spec"]["selector"]["matchLabels"], labels)]
        assert matched == [name], f"{name}'s selector matches the pods of {matched}"

    services, pdbs, policies = objects(docs, "Service"), objects(docs, "PodDisruptionBudget"), objects(
        docs, "NetworkPolicy")
    assert set(services) == {NAME, f"{NAME}-shards"}
    assert not any(selects(services[NAME]["spec"]["selector"], labels) for labels in shard_pods)
    assert all(selects(services[f"{NAME}-shards"]["spec"]["selector"], labels) for labels in shard_pods)
    assert not selects(services[f"{NAME}-shards"]["spec"]["selector"], pod_labels[NAME])
    assert [p["name"] for p in services[f"{NAME}-shards"]["spec"]["ports"]] == ["http-operator"]
    assert services[f"{NAME}-shards"]["spec"]["type"] == "ClusterIP"

    assert set(pdbs) == {NAME, f"{NAME}-shard1", f"{NAME}-shard2"}
    for name, pdb in pdbs.items():
        matched = [n for n, labels in pod_labels.items() if selects(pdb["spec"]["selector"]["matchLabels"], labels)]
        assert matched == [name], name

    assert set(policies) == {NAME, f"{NAME}-shards"}
    assert not any(selects(policies[NAME]["spec"]["podSelector"]["matchLabels"], labels) for labels in shard_pods)
    assert all(selects(policies[f"{NAME}-shards"]["spec"]["podSelector"]["matchLabels"], labels)
               for labels in shard_pods)
    [rule] = policies[f"{NAME}-shards"]["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["http-operator"]

    # One ServiceMonitor scrapes both Services: the shards' one carries the same labels.
    [monitor] = objects(docs, "ServiceMonitor").values()
    for service in services.values():
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {p["name"] for p in services[f"{NAME}-shards"]["spec"]["ports"]} <= ports
    assert monitor["spec"]["podTargetLabels"] == ["helm.fluxcd.io/shard"]
    assert all(labels["helm.fluxcd.io/shard"] for labels in shard_pods)


def test_network_policy_admits_the_shards_metrics_from_the_same_peers() -> None:
    values = {**TWO_SHARDS, "networkPolicy.enabled": "true", "webhook.separatePort": "true",
              "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring",
              "networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.name": "ingress"}
    policies = objects(render(values), "NetworkPolicy")
    [shards] = policies[f"{NAME}-shards"]["spec"]["ingress"]
    assert shards["from"] == policies[NAME]["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert policies[f"{NAME}-shards"]["spec"]["policyTypes"] == ["Ingress"]


def test_pod_disruption_budget_guard_counts_each_electing_shard() -> None:
    values = {**TWO_SHARDS, "podDisruptionBudget.enabled": "true", "sharding.shards[1].replicaCount": "2"}
    assert "below the 2 replicas of shard shard2" in refused(values)
    pdbs = objects(render({**values, "podDisruptionBudget.maxUnavailable": "2"}), "PodDisruptionBudget")
    assert {n: p["spec"]["maxUnavailable"] for n, p in pdbs.items()} == {
        NAME: 2, f"{NAME}-shard1": 2, f"{NAME}-shard2": 2}
    assert objects(render({**values, "podDisruptionBudget.maxUnavailable": "100%"}), "PodDisruptionBudget")


def test_no_service_objects_for_shards_when_the_service_is_off() -> None:
    docs = render({**TWO_SHARDS, "service.enabled": "false"})
    assert not objects(docs, "Service")
    assert len(objects(docs, "Deployment")) == 3


def test_notes_name_the_shards_and_how_to_move_a_helmrelease() -> None:
    proc = run_helm("install", NAME, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                    *helm_args(TWO_SHARDS))
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    for expected in (f"logs deploy/{NAME}-shard1", f"logs deploy/{NAME}-shard2",
                     f"label hr <name> {KEY}=shard1 --overwrite", "no shard claims"):
        assert expected in notes, expected
    plain = run_helm("install", NAME, str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    assert "shard" not in plain.stdout.split("NOTES:", 1)[1].lower()


# ------------------------------------------------- syncer leader election


def test_the_syncer_elects_a_leader_on_its_own_lease() -> None:
    off = parse_cli(container(objects(render(SOURCE), "Deployment")[NAME], "syncer")["args"])
    assert off.leader_elect is False
    syncer = container(objects(render({**SOURCE, **LEADER, "leaderElection.leaseDuration": "20s"}),
                               "Deployment")[NAME], "syncer")
    args = parse_cli(syncer["args"])
    assert args.command == "sync"
    assert (args.leader_elect, args.leader_election_name, args.lease_duration) == (True, f"{NAME}-syncer", 20.0)
    # Its Lease goes to --namespace, default $POD_NAMESPACE: the pod's.
    assert args.namespace is None
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} \
        in syncer["env"]


# ---------------------------------------------------------- grace periods


def test_the_shutdown_grace_period_reaches_every_operator() -> None:
    docs = render({**TWO_SHARDS, "operator.shutdownGracePeriod": "2m", "terminationGracePeriodSeconds": "125"})
    for name, deployment in objects(docs, "Deployment").items():
        assert parse_cli(container(deployment, "operator")["args"]).shutdown_grace_period == 120.0, name
        assert pod(deployment)["terminationGracePeriodSeconds"] == 125, name
    default = container(objects(render(), "Deployment")[NAME], "operator")
    assert parse_cli(default["args"]).shutdown_grace_period == 25.0
    assert pod(objects(render(), "Deployment")[NAME])["terminationGracePeriodSeconds"] == 330


@pytest.mark.parametrize(("grace", "pod_seconds"), [("25s", "29"), ("2m", "124"), ("5m30s", "330"),
                                                     ("1m500ms", "65")])
def test_a_pod_grace_period_that_does_not_outlast_the_operators_is_refused(grace: str, pod_seconds: str) -> None:
    err = refused({"operator.shutdownGracePeriod": grace, "terminationGracePeriodSeconds": pod_seconds})
    assert "must be at least 5 more than operator.shutdownGracePeriod" in err


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize(("values", "complaint"), [
    ({"sharding.shards[0].name": "Shard_1"}, "name"),
    ({"sharding.shards[0].name": "syncer"}, "name"),
    ({"sharding.shards[0].workers": "4"}, "name"),
    ({"sharding.shards[0].name": "a", "sharding.shards[0].workers": "0"}, "workers"),
    ({"sharding.shards[0].name": "a", "sharding.shards[0].replicas": "2"}, "replicas"),
    ({"sharding.shards[0].name": "a", "sharding.shards[0].maxParallelInstalls": "-1"}, "maxParallelInstalls"),
    ({"sharding.shard[0].name": "a"}, "shard"),
    ({"operator.shutdownGracePeriod": "soon"}, "shutdownGracePeriod"),
    ({"operator.shutdownGracePeriod": "1.5m"}, "shutdownGracePeriod"),
    ({"operator.maxParallelInstalls": "-2"}, "maxParallelInstalls"),
])
def test_bad_sharding_and_grace_values_are_refused_by_the_schema(values: dict[str, str], complaint: str) -> None:
    err = refused(values)
    assert "schema" in err and complaint in err, err


def test_duplicate_and_overlong_shard_names_are_refused() -> None:
    err = refused({"sharding.shards[0].name": "a", "sharding.shards[1].name": "a"})
    assert 'the shard name "a" appears twice' in err
    err = refused({"sharding.shards[0].name": "s" * 50})
    assert "longer than 63 characters" in err


def test_the_schema_documents_every_new_value() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    operator = schema["properties"]["operator"]["properties"]
    assert {"shutdownGracePeriod", "maxParallelInstalls"} <= set(operator)
    shard = schema["properties"]["sharding"]["properties"]["shards"]["items"]
    assert shard["additionalProperties"] is False and shard["required"] == ["name"]
    assert set(shard["properties"]) == {"name", "replicaCount", "workers", "maxParallelInstalls", "resources"}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["sharding"] == {"shards": []}
    assert defaults["operator"]["shutdownGracePeriod"] == "25s"


# ------------------------------------------------------------------ lint


LINTED = {
    "two shards": {**SOURCE, **TWO_SHARDS},
    "shards with leader election": {**SOURCE, **TWO_SHARDS, **LEADER},
    "shard overrides": {**TWO_SHARDS, "sharding.shards[0].replicaCount": "2", "sharding.shards[0].workers": "8",
                        "sharding.shards[0].maxParallelInstalls": "2",
                        "sharding.shards[0].resources.limits.memory": "2Gi"},
    "shards with every pod option": {**EVERYTHING, **TWO_SHARDS},
    "shards with monitoring and policies": {**SOURCE, **TWO_SHARDS, "serviceMonitor.enabled": "true",
                                            "podDisruptionBudget.enabled": "true",
                                            "networkPolicy.enabled": "true", "webhook.separatePort": "true"},
    "shutdown grace": {"operator.shutdownGracePeriod": "4m", "terminationGracePeriodSeconds": "300"},
    "syncer leader election": {**SOURCE, **LEADER},
}


@pytest.mark.parametrize("option", sorted(LINTED))
def test_each_new_option_renders_and_lints_strictly_clean(option: str) -> None:
    render(LINTED[option])
    lint(LINTED[option])


def test_shards_leave_the_rest_of_the_chart_as_it_was() -> None:
    """Adding shards changes the main operator's selector and adds the shards'
    objects; every other object renders exactly as without them."""
    values = {**SOURCE, "serviceMonitor.enabled": "true", "podDisruptionBudget.enabled": "true",
              "networkPolicy.enabled": "true", "webhook.token.existingSecret": "hooks"}
    plain = {(d["kind"], d["metadata"]["name"]): d for d in render(values)}
    sharded = {(d["kind"], d["metadata"]["name"]): d for d in render({**values, **TWO_SHARDS})}
    added = set(sharded) - set(plain)
    assert added == {("Deployment", f"{NAME}-shard1"), ("Deployment", f"{NAME}-shard2"),
                     ("Service", f"{NAME}-shards"), ("NetworkPolicy", f"{NAME}-shards"),
                     ("PodDisruptionBudget", f"{NAME}-shard1"), ("PodDisruptionBudget", f"{NAME}-shard2")}
    assert not set(plain) - set(sharded)
    for key, doc in plain.items():
        other = copy.deepcopy(sharded[key])
        if key == ("Deployment", NAME):
            op = container(other, "operator")
            op["args"] = [a for a in op["args"] if not a.startswith("--watch-label-selector=")]
        if key[0] == "ServiceMonitor":
            other["spec"].pop("podTargetLabels")
        assert other == doc, key
