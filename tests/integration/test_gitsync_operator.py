"""End to end with the release operator: a HelmRelease committed to Git is
applied by the syncer and installed by `helm-operator run`; a version bump in
Git, pulled in by the trigger endpoint, upgrades the release; removing the
file with garbage collection on uninstalls it."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from tests.cluster.localcluster import LocalCluster
from tests.integration.conftest import ChartRepo, OperatorProcess
from tests.integration.gitsync_support import GitRemote, SyncerProcess
from tests.integration.helpers import eventually
from tests.integration.hr import get, hello_chart, wait_phase


def release_file(ns: str, chart: dict[str, str], message: str) -> str:
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
         "metadata": {"name": "web", "namespace": ns},
         "spec": {"chart": chart, "values": {"message": message}}},
    ])


def test_helmrelease_from_git_is_applied_by_the_syncer_and_installed_by_the_operator(
        cluster: LocalCluster, chart_repo: ChartRepo, operator: OperatorProcess, tmp_path: Path) -> None:
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    remote = GitRemote(tmp_path / "git")
    remote.write("releases/web.yaml", release_file(ns, hello_chart(chart_repo.url), "from git"))
    remote.commit()
    with SyncerProcess(cluster, tmp_path / "w", "--git-url", remote.url, "--source-name", ns,
                       "--git-poll-interval", "1h", "--sync-garbage-collection") as syncer:
        st = wait_phase(cluster, ns, "web", "Succeeded", timeout=180)
        assert st["revision"] == "0.1.0"
        assert get(cluster, ns, "deployment", f"{ns}-web-hello") is not None

        remote.write("releases/web.yaml", release_file(ns, hello_chart(chart_repo.url, "0.2.0"), "bumped"))
        remote.commit("bump hello to 0.2.0")
        assert syncer.post("/api/v1/sync?wait=true")["results"][0]["ok"]
        st = wait_phase(cluster, ns, "web", "Succeeded", generation=2, timeout=180)
        assert st["revision"] == "0.2.0"

        # Only the HelmRelease leaves Git; the namespace stays.
        remote.write("releases/web.yaml", release_file(ns, hello_chart(chart_repo.url), "x").split("---")[0])
        remote.commit("remove the release")
        assert syncer.post("/api/v1/sync?wait=true")["results"][0]["deleted"] == 1
        eventually(lambda: get(cluster, ns, "helmrelease", "web") is None, timeout=120,
                   what="HelmRelease uninstalled and gone")
        eventually(lambda: get(cluster, ns, "deployment", f"{ns}-web-hello") is None, timeout=60,
                   what="release objects removed")
