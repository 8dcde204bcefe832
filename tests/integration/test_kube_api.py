"""The one way to the API server, against the real kube-apiserver: each
failure arrives as its class of the one error tree with the server's own
message, and the two discovery documents (aggregated, per group version)
describe the same kinds."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from helm_operator.kube import Conflict, Forbidden, Invalid, Kube, NotFound, Unreachable
from helm_operator.kube import discovery
from helm_operator.kube.apply import CONFIGMAP
from helm_operator.kube.lease import LeaseStore
from helm_operator.kube.rest import RestClient
from tests.cluster.localcluster import LocalCluster
from tests.integration.hr import helmrelease, new_namespace


def test_aggregated_discovery_names_the_same_kinds_as_reading_each_group(
        cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    kube = Kube.from_kubeconfig(cluster.kubeconfig)
    aggregated = asyncio.run(discovery.DiscoveryCache(kube.rest).refresh())
    monkeypatch.setattr(discovery, "AGGREGATED", "application/json")  # what an old API server answers
    per_group = asyncio.run(discovery.DiscoveryCache(kube.rest).refresh())
    assert aggregated.lookup("helm.fluxcd.io/v1", "HelmRelease") is not None
    assert aggregated.types == per_group.types
    assert sorted(map(repr, aggregated.preferred)) == sorted(map(repr, per_group.preferred))


def test_each_failure_is_its_class_naming_the_call_the_object_and_the_servers_words(
        cluster: LocalCluster) -> None:
    ns = new_namespace(cluster)
    kube = Kube.from_kubeconfig(cluster.kubeconfig)

    async def scenario() -> None:
        with pytest.raises(NotFound, match=rf'^get ConfigMap {ns}/absent: configmaps "absent" not found$'):
            await kube.get_configmap_data(ns, "absent")
        assert await kube.get_helmrelease(ns, "absent") is None

        lease = LeaseStore(kube.rest, ns, "leader")
        await lease.create({"holderIdentity": "a"})
        with pytest.raises(Conflict, match=rf"^create Lease {ns}/leader: .*already exists"):
            await lease.create({"holderIdentity": "b"})
        with pytest.raises(Conflict, match=rf"^update Lease {ns}/leader: .*the object has been modified"):
            await lease.update("1", {"holderIdentity": "b"})

        bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name", "namespace": ns}}
        with pytest.raises(Invalid, match=rf'^apply ConfigMap {ns}/Not_A_Name: ConfigMap "Not_A_Name" is invalid'):
            await kube.cluster.apply(CONFIGMAP, bad, field_manager="test")

        nobody = RestClient.from_kubeconfig(cluster.kubeconfig)
        nobody.api_client.set_default_header("Impersonate-User", "nobody")
        with pytest.raises(Forbidden, match=rf'^get Secret {ns}/s: secrets "s" is forbidden: User "nobody"'):
            await Kube(nobody).get_secret_data(ns, "s")

        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        gone = RestClient.from_kubeconfig(cluster.kubeconfig)
        gone.api_client.configuration.host = f"https://127.0.0.1:{port}"
        with pytest.raises(Unreachable, match="^list HelmReleases: cannot reach the API server"):
            await Kube(gone).list_helmreleases()

    asyncio.run(scenario())


def test_helmreleases_status_and_events_round_trip_as_plain_json(cluster: LocalCluster) -> None:
    ns = new_namespace(cluster)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(helmrelease("web", {"chart": {"name": "x"}})))
    kube = Kube.from_kubeconfig(cluster.kubeconfig)

    async def scenario() -> None:
        [listed] = await kube.list_helmreleases(ns)
        stored = await kube.patch_helmrelease_status(
            ns, "web", {"phase": "Failed", "conditions": [
                {"type": "Ready", "status": "False", "message": "fetch https://bob:s3cret@charts.example/ failed"}]})
        assert stored["status"]["phase"] == "Failed"
        assert "s3cret" not in json.dumps(stored)
        assert (await kube.get_helmrelease(ns, "web"))["status"] == stored["status"]  # type: ignore[index]
        await kube.emit_event(listed, "Warning", "FailedReleaseSync", "helm upgrade failed")

    asyncio.run(scenario())
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    [event] = [e for e in events if e["reason"] == "FailedReleaseSync"]
    assert event["involvedObject"]["kind"] == "HelmRelease" and event["involvedObject"]["name"] == "web"
    assert event["message"] == "helm upgrade failed" and event["type"] == "Warning"
