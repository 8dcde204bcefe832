"""In-place tag edits per second on a multi-document file. Prints numbers."""

from __future__ import annotations

import timeit

from helm_operator.automation.yamledit import set_values

DOC = """\
---
# release {i}
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app{i}
  namespace: apps
  annotations:
    fluxcd.io/automated: "true"
spec:
  chart: {{repository: https://charts.example.com/, name: app, version: 1.0.0}}
  values:
    image:
      repository: registry.example.com/app{i}   # the image
      tag: "1.0.{i}"
    replicaCount: 2
"""


def main() -> None:
    for documents in (1, 50, 200):
        text = "".join(DOC.format(i=i) for i in range(documents))
        target = documents - 1
        updates = [(("spec", "values", "image", "tag"), "2.0.0")]
        n = 20
        seconds = timeit.timeit(lambda: set_values(text, "HelmRelease", "apps", f"app{target}", updates),
                                number=n) / n
        noop = [(("spec", "values", "image", "tag"), f"1.0.{target}")]
        noop_s = timeit.timeit(lambda: set_values(text, "HelmRelease", "apps", f"app{target}", noop),
                               number=n) / n
        print(f"{documents:4d} documents ({len(text) / 1024:.0f} KiB): edit {seconds * 1000:.1f} ms "
              f"({1 / seconds:.0f}/s), no-op {noop_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
