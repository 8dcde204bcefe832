"""`helm template` of the project's chart with the pinned helm, shared by the chart tests.

Why one module: the render, operability and shards tests each need the same
way to turn a value set into objects and to parse a container's arguments
with the program's own parser; three copies drifted apart before.
No cluster is needed: `helm template` runs offline.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from helm_operator.cli import build_parser
from tests.cluster.localcluster import ensure_binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "helm-operator"
NAMESPACE = "flux"
NAME = "helm-operator"  # release name "helm-operator": the full name is the same


@cache
def helm() -> str:
    """The pinned helm binary (built once into the cache folder if missing)."""
    return str(ensure_binaries() / "helm")


def helm_args(values: dict[str, str]) -> list[str]:
    """`values` as --set-string pairs, except true/false and integers, which go through --set."""
    args = []
    for key, value in values.items():
        plain = value in ("true", "false") or value.isdigit()
        args += ["--set" if plain else "--set-string", f"{key}={value}"]
    return args


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)


def render_text(values: dict[str, str] | None = None, *extra: str) -> str:
    """`helm template` output of the chart with `values` (see `helm_args`) and `extra` arguments."""
    proc = run_helm("template", NAME, str(CHART), "--namespace", NAMESPACE, *extra, *helm_args(values or {}))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render(values: dict[str, str] | None = None, *extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_text(values, *extra)) if d]


def parse_cli(args: list[str]) -> argparse.Namespace:
    """A container's arguments as `helm-operator` itself parses them."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(args)
        except SystemExit:
            raise AssertionError(f"helm-operator refuses {args}: {err.getvalue()}") from None
