"""What the bounded YAML loader costs per parse. Prints numbers.

For typical values files (1, 4 and 10 KiB), a 20 MB Helm repository
index.yaml (generated like a large public one: 40 versions per chart) and the
hostile inputs (alias bombs, deep nesting): the limit scan alone
(`boundedyaml.check`), the load after it (`boundedyaml.load`), and what the
operator did before (PyYAML's pure-Python `safe_load` for values, libyaml's
`CBaseLoader` for the index).

    .venv/bin/python -m benchmarks.boundedyaml_cost [--index-mb 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import yaml

from helm_operator import boundedyaml
from helm_operator.boundedyaml import DEFAULT_LIMITS

VALUES_ITEM = """\
service{i}:
  enabled: true
  replicaCount: 2
  image:
    repository: registry.example.com/team/service{i}
    tag: "1.4.{i}"
    pullPolicy: IfNotPresent
  resources:
    limits: {{cpu: 500m, memory: 256Mi}}
    requests: {{cpu: 100m, memory: 128Mi}}
  env:
    - name: LOG_LEVEL
      value: info
    - name: FEATURE_FLAGS
      value: "a,b,c"
  ingress:
    enabled: false
    hosts: [service{i}.example.com]
"""

INDEX_VERSION = """\
  - annotations:
      category: Database
      licenses: Apache-2.0
    apiVersion: v2
    appVersion: 1.{v}.0
    created: "2023-01-0{d}T10:00:00.123456789Z"
    dependencies:
    - name: common
      repository: oci://registry-1.docker.io/bitnamicharts
      tags:
      - bitnami-common
      version: 2.x.x
    description: A chart {name} that deploys something useful, with a long description line.
    digest: {digest}
    home: https://bitnami.com
    icon: https://bitnami.com/assets/stacks/{name}/img/{name}-stack-220x234.png
    keywords:
    - {name}
    - database
    maintainers:
    - name: VMware, Inc.
      url: https://github.com/bitnami/charts
    name: {name}
    sources:
    - https://github.com/bitnami/charts/tree/main/bitnami/{name}
    urls:
    - https://charts.example.com/{name}-{v}.1.0.tgz
    version: {v}.1.0
"""


def values_text(size: int) -> str:
    parts: list[str] = []
    i = 0
    while sum(map(len, parts)) < size:
        parts.append(VALUES_ITEM.format(i=i))
        i += 1
    return "".join(parts)


def index_text(size: int) -> str:
    parts = ["apiVersion: v1\nentries:\n"]
    total = 0
    n = 0
    while total < size:
        name = f"chart{n}"
        parts.append(f"  {name}:\n")
        for v in range(40):
            chunk = INDEX_VERSION.format(v=v, d=v % 9 + 1, name=name, digest=f"{n:032x}{v:032x}")
            parts.append(chunk)
            total += len(chunk)
        n += 1
    parts.append('generated: "2024-01-01T00:00:00Z"\n')
    return "".join(parts)


def bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Best of `repeat` runs, in seconds (the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            fn()
        except boundedyaml.YamlError:
            pass
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-mb", type=float, default=20.0)
    args = parser.parse_args()
    docs = DEFAULT_LIMITS.documents
    charts = DEFAULT_LIMITS.charts
    print("values files (best of 200):")
    for kib in (1, 4, 10):
        text = values_text(kib * 1024)
        scan = timed(lambda: boundedyaml.check(text, "values", docs), 200)
        load = timed(lambda: boundedyaml.load(text, "values", docs), 200)
        before = timed(lambda: yaml.safe_load(text), 200)
        print(f"  {len(text) / 1024:5.1f} KiB: check {scan * 1e6:7.0f} us, check+load {load * 1e6:7.0f} us, "
              f"before (pure-Python safe_load) {before * 1e6:7.0f} us")
    text = index_text(int(args.index_mb * 1024 * 1024))
    print(f"index.yaml of {len(text) / 2**20:.1f} MiB (best of 3):")
    scan = timed(lambda: boundedyaml.check(text, "index.yaml", charts), 3)
    load = timed(lambda: boundedyaml.load(text, "index.yaml", charts, strings_only=True), 3)
    before = timed(lambda: yaml.load(text, Loader=yaml.CBaseLoader), 3)  # noqa: S506 - the old path
    print(f"  check {scan:.2f} s, check+load {load:.2f} s, before (CBaseLoader, GC on) {before:.2f} s")
    print("hostile inputs (best of 20):")
    for levels in (6, 7, 8, 9):
        hostile = bomb(levels)
        refused = timed(lambda: boundedyaml.load(hostile, "bomb", docs), 20)
        print(f"  alias bomb of 10^{levels} elements ({len(hostile)} bytes): refused in {refused * 1e3:.2f} ms")
    deep = "[" * 20000 + "]" * 20000
    refused = timed(lambda: boundedyaml.load(deep, "deep", docs), 20)
    print(f"  20 000 nested flow lists: refused in {refused * 1e3:.2f} ms")
    deep = "".join(" " * i + "k:\n" for i in range(1000))
    refused = timed(lambda: boundedyaml.load(deep, "deep", docs), 20)
    print(f"  1000 nested block maps ({len(deep) // 1024} KiB): refused in {refused * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
