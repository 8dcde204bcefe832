"""HelmRelease helpers for the operator tests: create, patch, read, wait."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from tests.cluster.localcluster import LocalCluster
from tests.integration.helpers import eventually


def new_namespace(cluster: LocalCluster, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def helmrelease(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": meta, "spec": spec}


def apply(cluster: LocalCluster, ns: str, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(doc))


def get(cluster: LocalCluster, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", "-n", ns, kind, name, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def status(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    obj = get(cluster, ns, "helmrelease", name) or {}
    return obj.get("status", {})


def condition(st: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions", []) if c["type"] == ctype), {})


def wait_phase(cluster: LocalCluster, ns: str, name: str, *phases: str, timeout: float = 120,
               generation: int | None = None) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, ns, "helmrelease", name) or {}
        st = obj.get("status", {})
        gen = generation if generation is not None else obj.get("metadata", {}).get("generation")
        if st.get("phase") in phases and st.get("observedGeneration") == gen:
            return st
        return None

    return eventually(probe, timeout=timeout, interval=0.5, what=f"HelmRelease {ns}/{name} phase in {phases}")


def events(cluster: LocalCluster, ns: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                          f"involvedObject.name={name},involvedObject.kind=HelmRelease", "-o", "json")
    return json.loads(out.stdout)["items"]


def hello_chart(repo_url: str, version: str = "0.1.0") -> dict[str, Any]:
    return {"repository": repo_url + "/", "name": "hello", "version": version}


def helm_history(cluster: LocalCluster, ns: str, release: str) -> list[dict[str, Any]]:
    """`helm history` of a release; empty when it does not exist."""
    r = subprocess.run([cluster.binary("helm"), "history", release, "-n", ns, "-o", "json"],
                       env=cluster.env(), capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else []
