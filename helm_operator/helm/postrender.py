"""The antecedent post-renderer: `helm.fluxcd.io/antecedent` goes into the
manifest helm applies, not onto the objects afterwards.

Flux v1 annotated every object of a release after helm ran, and so did we:
one PATCH per object per install, which for a small chart was a third of
the API requests of an install and kept kube-apiserver busy beside helm.
Helm 4 takes post-renderers only as plugins, so the operator ships one
(`plugins/antecedent`: a plugin.yaml and an awk program, started in about a
millisecond) and points helm at it with `HELM_PLUGINS`, ahead of the user's
own plugin directory. The annotation is then applied with the objects, owned
by helm's field manager, and stored in the release's manifest, where the
ownership code reads it: objects a chart writes in flow style, which the
awk line scan leaves alone, are still patched (`release.ownership.unstamped`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

PLUGIN_NAME = "helm-operator-antecedent"
PLUGINS_DIR = Path(__file__).parent / "plugins"


@functools.cache
def available() -> bool:
    """Whether the post-renderer can run here (it needs `awk`). Without it helm would fail
    every install, so the operator leaves it out and patches the annotation on instead."""
    if shutil.which("awk"):
        return True
    log.warning("awk not found on PATH: the antecedent annotation is patched onto each object after "
                "helm runs (one request per object) instead of going into the manifest; install awk")
    return False


def post_renderer_args(antecedent: str) -> list[str]:
    """helm flags that run the antecedent post-renderer with this value."""
    return ["--post-renderer", PLUGIN_NAME, "--post-renderer-args", f"antecedent={antecedent}"]


def _default_plugins_dir(env: Mapping[str, str]) -> str:
    """Where helm looks for plugins when HELM_PLUGINS is not set (helm's helmpath rules)."""
    data = env.get("HELM_DATA_HOME") or os.path.join(
        env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME", "/"), ".local", "share"), "helm")
    return os.path.join(data, "plugins")


def helm_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with our plugin directory ahead of the plugins helm would find anyway."""
    out = dict(env)
    out["HELM_PLUGINS"] = os.pathsep.join((str(PLUGINS_DIR), env.get("HELM_PLUGINS") or _default_plugins_dir(env)))
    return out
