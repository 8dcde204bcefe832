"""The workload a command names: ``namespace:helmrelease/name``, as fluxctl wrote it.

Place in the flow: every command that reads or changes one HelmRelease parses
`--workload` here (`parse_workload`), and says "did you mean ..." here when
no HelmRelease of that name exists (`unknown_workload`). The flags that say
where workloads are found (``--kubeconfig`` for the cluster,
``--k8s-default-namespace`` for documents in Git) are defined here too. What
this module does NOT do: read the cluster or Git (the callers pass what they
found).
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from helm_operator.cli.errors import CommandError


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:helmrelease/{self.name}"


def parse_workload(text: str, default_namespace: str = "default") -> Workload:
    """``ns:helmrelease/name`` (or ``helmrelease/name`` in the default namespace)."""
    namespace, colon, rest = text.strip().rpartition(":")
    if not colon:
        namespace = default_namespace
    kind, slash, name = rest.partition("/")
    if not slash or kind.lower() not in ("helmrelease", "helmreleases", "hr") or not name or not namespace \
            or "/" in name or ":" in namespace:
        raise CommandError(f"workload {text!r} is not of the form namespace:helmrelease/name; "
                           "list them with 'helm-operator list-workloads'")
    return Workload(namespace, name)


def workload_of(obj: Mapping[str, Any], default_namespace: str = "default") -> Workload:
    meta = obj.get("metadata") or {}
    return Workload(str(meta.get("namespace") or default_namespace), str(meta.get("name")))


def similar(wanted: Workload, known: Iterable[Workload], limit: int = 3) -> list[str]:
    """The known workloads closest to the one asked for, best first."""
    by_key = {f"{w.namespace}/{w.name}": str(w) for w in known}   # the common ":helmrelease/" would blur scores
    close = difflib.get_close_matches(f"{wanted.namespace}/{wanted.name}", sorted(by_key), n=limit, cutoff=0.6)
    if not close:  # the right name in another namespace
        close = [k for k in sorted(by_key) if k.endswith(f"/{wanted.name}")][:limit]
    return [by_key[k] for k in close]


def unknown_workload(wanted: Workload, known: Iterable[Workload], where: str) -> CommandError:
    known = list(known)
    close = similar(wanted, known)
    if close:
        hint = "did you mean " + " or ".join(close) + "?"
    elif known:
        hint = "known workloads: " + ", ".join(sorted(str(w) for w in known)[:5]) + \
            (", ..." if len(known) > 5 else "")
    else:
        hint = "there are none; check the namespace and paths"
    return CommandError(f"unknown workload {wanted}: no HelmRelease {wanted.namespace}/{wanted.name} {where}; {hint}")


def add_workload_flag(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-w", "--workload", required=required, metavar="NAMESPACE:helmrelease/NAME",
                   help="the HelmRelease, e.g. apps:helmrelease/web")


def add_default_namespace_flag(p: argparse.ArgumentParser, shown: bool = True,
                               text: str = "namespace of HelmRelease documents in Git that name none",
                               default: str | None = "default") -> None:
    p.add_argument("--k8s-default-namespace", default=default, metavar="NAMESPACE",
                   help=f"{text} (default: default)" if shown else argparse.SUPPRESS)


def add_kubeconfig_flag(p: argparse.ArgumentParser, shown: bool = True) -> None:
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default: $KUBECONFIG)" if shown else argparse.SUPPRESS)
