"""The antecedent post-renderer's awk program on what helm 4 hands a post-renderer.

The input is the shape helm 4.3 sends (kyaml, two-space indentation, its own
`postrenderer.helm.sh/postrender-filename` annotation in every document);
`tests/integration/test_operator_releases.py` proves the plugin through the
real helm against the real cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from helm_operator.api.constants import ANTECEDENT_ANNOTATION
from helm_operator.helm.postrender import PLUGIN_NAME, PLUGINS_DIR, helm_environment, post_renderer_args

AWK = PLUGINS_DIR / "antecedent" / "antecedent.awk"
OURS = "apps:helmrelease/web"
FILENAME = "postrenderer.helm.sh/postrender-filename"

HELM_INPUT = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  annotations:
    {FILENAME}: 'web/templates/configmap.yaml'
data:
  y: |
    {FILENAME}: not-a-key
    {ANTECEDENT_ANNOTATION}: kept
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
  annotations:
    "{ANTECEDENT_ANNOTATION}": "other:helmrelease/x"
    note: |
      {ANTECEDENT_ANNOTATION}: inside a value
    {FILENAME}: 'web/templates/deployment.yaml'
spec:
  template:
    metadata:
      annotations:
        {FILENAME}: 'nested, not the document'
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: flow, annotations: {{{FILENAME}: 'web/templates/flow.yaml'}}}}
"""


def post_render(text: str, antecedent: str = OURS) -> list[dict[str, Any]]:
    awk = shutil.which("awk")
    assert awk, "the post-renderer needs awk (Debian's mawk is in every image we build on)"
    out = subprocess.run([awk, "-f", str(AWK), f"antecedent={antecedent}"], input=text, text=True,
                         capture_output=True, check=True, timeout=10)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_every_block_style_document_gets_the_antecedent_once() -> None:
    configmap, deployment, flow = post_render(HELM_INPUT)
    assert configmap["metadata"]["annotations"] == {FILENAME: "web/templates/configmap.yaml",
                                                     ANTECEDENT_ANNOTATION: OURS}
    # a chart's own antecedent is replaced, not duplicated (a duplicate key would be invalid YAML)
    assert deployment["metadata"]["annotations"][ANTECEDENT_ANNOTATION] == OURS
    assert deployment["metadata"]["annotations"]["note"] == f"{ANTECEDENT_ANNOTATION}: inside a value\n"
    # flow style is passed through as it came (the engine patches such objects afterwards)
    assert ANTECEDENT_ANNOTATION not in flow["metadata"]["annotations"]


def test_text_outside_the_documents_metadata_is_left_alone() -> None:
    configmap, deployment, _ = post_render(HELM_INPUT)
    assert configmap["data"]["y"] == f"{FILENAME}: not-a-key\n{ANTECEDENT_ANNOTATION}: kept\n"
    assert deployment["metadata"]["labels"] == {"app": "web"}
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {FILENAME: "nested, not the document"}


def test_output_differs_from_input_only_by_our_lines() -> None:
    awk = shutil.which("awk")
    assert awk
    out = subprocess.run([awk, "-f", str(AWK), f"antecedent={OURS}"], input=HELM_INPUT, text=True,
                         capture_output=True, check=True, timeout=10).stdout.splitlines()
    added = [line for line in out if line not in HELM_INPUT.splitlines()]
    removed = [line for line in HELM_INPUT.splitlines() if line not in out]
    assert added == [f"    {ANTECEDENT_ANNOTATION}: '{OURS}'"] * 2  # the two block-style documents
    assert removed == [f'    "{ANTECEDENT_ANNOTATION}": "other:helmrelease/x"']


def test_the_plugin_is_found_by_the_name_the_operator_passes() -> None:
    meta = yaml.safe_load((PLUGINS_DIR / "antecedent" / "plugin.yaml").read_text())
    assert (meta["name"], meta["type"], meta["runtime"]) == (PLUGIN_NAME, "postrenderer/v1", "subprocess")
    assert post_renderer_args(OURS) == ["--post-renderer", PLUGIN_NAME, "--post-renderer-args",
                                        f"antecedent={OURS}"]


@pytest.mark.parametrize(("env", "rest"), [
    ({"HOME": "/home/u"}, "/home/u/.local/share/helm/plugins"),
    ({"HOME": "/home/u", "XDG_DATA_HOME": "/xdg"}, "/xdg/helm/plugins"),
    ({"HOME": "/home/u", "HELM_DATA_HOME": "/hd"}, "/hd/plugins"),
    ({"HOME": "/home/u", "HELM_PLUGINS": "/mine"}, "/mine"),
])
def test_our_plugins_come_first_and_the_users_stay_reachable(env: dict[str, str], rest: str) -> None:
    assert helm_environment(env)["HELM_PLUGINS"] == os.pathsep.join((str(PLUGINS_DIR), rest))


def test_without_awk_helm_gets_no_post_renderer_and_the_operator_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image without awk must not fail every install: the flag is left out (and the engine's
    `ownership.unstamped` then finds every object unannotated)."""
    from helm_operator.helm import client, postrender
    from helm_operator.helm.client import UpgradeOptions
    postrender.available.cache_clear()
    monkeypatch.setattr(postrender.shutil, "which", lambda name: None)
    try:
        assert "--post-renderer" not in client._rendering_flags(UpgradeOptions(antecedent=OURS))
    finally:
        monkeypatch.undo()
        postrender.available.cache_clear()
    assert "--post-renderer" in client._rendering_flags(UpgradeOptions(antecedent=OURS))
