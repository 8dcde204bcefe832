"""What every command that talks to the cluster shares: the kubectl-style
flags (`--kubeconfig`, `--context`, `-n`, `-A`), connecting, `-o
table|json|yaml` printing, and one-line errors.

Place in the flow: the commands a person runs (`release.py`, `diff.py`,
`workloads.py`, `sync-status` in `sync.py`) call these before and after
their work; `run` and `sync` use `startup_errors` for what stops them
before they start. Errors a user can fix (no kubeconfig, an unknown context,
an API server that does not answer, a refusal) become one line on stderr
saying what failed and what to do, never a traceback.

What this module does NOT do: it decides nothing about HelmReleases.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helm_operator import __version__
from helm_operator.cli.errors import CommandError  # one kind of failure a user can act on, for all commands
from helm_operator.kube import Kube, KubeError

USER_AGENT = f"helm-operator-cli/{__version__}"
FIELD_MANAGER = "helm-operator-cli"  # who changed spec.suspend or the request annotations


def add_cluster_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False,
                      namespace_help: str | None = None,
                      kubeconfig_help: str = "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, "
                                             "else in-cluster)") -> None:
    """``--kubeconfig``, ``--context``, ``-n/--namespace`` and, with `all_namespaces`, ``-A``: kubectl's."""
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH", help=kubeconfig_help)
    g.add_argument("--context", default=None, metavar="NAME",
                   help="kubeconfig context to use (default: the current context)")
    g.add_argument("-n", "--namespace", default=None,
                   help=namespace_help or "namespace of the HelmRelease (default: the context's namespace, "
                                          "else default)")
    if all_namespaces:
        g.add_argument("-A", "--all-namespaces", action="store_true",
                       help="every namespace (ignores --namespace)")


def add_output_flag(p: argparse.ArgumentParser, choices: Sequence[str], default: str,
                    tables: bool = False) -> None:
    """``-o/--output`` among `choices`, and with `tables` ``--no-headers``, as kubectl has them."""
    machine = [c for c in choices if c in ("json", "yaml")]
    p.add_argument("-o", "--output", choices=list(choices), default=default,
                   help=f"output format: {', '.join(choices)} (default {default}); {' and '.join(machine)} "
                        f"{'are' if len(machine) > 1 else 'is'} for scripts")
    if tables:
        p.add_argument("--no-headers", action="store_true", help="leave out the table's header line")


@dataclass
class Cluster:
    """A connection made from the flags."""

    kube: Kube
    namespace: str          # -n, else the context's namespace, else default
    kubeconfig: Path | None
    context: str | None


def connect(args: argparse.Namespace, fallback_namespace: Callable[[], str] = lambda: "default") -> Cluster:
    """A Kube from the flags, found as kubectl finds it; KubeError when that is impossible.

    The namespace: ``-n``, else the context's, else `fallback_namespace()`.
    """
    from helm_operator.kube.rest import kubeconfig_namespace
    from helm_operator.kube.client import load_cli_client

    api = load_cli_client(args.kubeconfig, args.context)
    api.user_agent = USER_AGENT  # the API server's audit log tells our requests apart
    # $KUBECONFIG as it is now (the client library reads it once, at import), a list of files merged
    path = str(args.kubeconfig) if args.kubeconfig else os.environ.get("KUBECONFIG") or None
    namespace = args.namespace or kubeconfig_namespace(path, args.context) or fallback_namespace()
    return Cluster(Kube(api), namespace, args.kubeconfig, args.context)


def _unreachable(e: BaseException) -> str | None:
    """A one-line reason when `e` is the API server not answering (connection, TLS, timeout)."""
    import urllib3.exceptions

    from helm_operator.kube.errors import Unreachable

    if isinstance(e, Unreachable) and e.__cause__ is not None:
        e = e.__cause__  # what urllib3 said, with the address it could not reach

    if isinstance(e, urllib3.exceptions.MaxRetryError):
        reason = e.reason or e
        pool = getattr(e, "pool", None)
        where = f" {pool.scheme}://{pool.host}:{pool.port}" if pool is not None else ""
        return f"cannot reach the API server{where} ({type(reason).__name__}); check that the " \
               "cluster runs and that --kubeconfig/--context name it"
    if isinstance(e, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return f"cannot reach the API server ({type(e).__name__}: {e}); check that the cluster runs and " \
               "that --kubeconfig/--context name it"
    return None


def one_line_errors(command: str) -> Callable[[Callable[[argparse.Namespace], int]],
                                              Callable[[argparse.Namespace], int]]:
    """Run a handler so that every failure is one line `helm-operator <command>: ...` and exit code 1
    (the handler's own codes otherwise)."""
    def wrap(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            quiet_logs()
            try:
                return handler(args)
            except CommandError as e:
                return fail(command, str(e))
            except KubeError as e:
                reason = _unreachable(e)
                if reason is not None:
                    return fail(command, reason)
                hint = ""
                if e.status == 403:
                    hint = "; ask for RBAC on helmreleases (docs/release-controls.md lists what each command needs)"
                elif e.status == 401:
                    hint = "; the kubeconfig's credentials were refused: log in again"
                return fail(command, f"{e}{hint}")
            except KeyboardInterrupt:
                return fail(command, "interrupted")
            except Exception as e:  # noqa: BLE001 - a person reads this: one line, never a traceback
                reason = _unreachable(e)
                if reason is None:
                    reason = f"unexpected error ({type(e).__name__}: {e}); please report it"
                return fail(command, reason)
        return run
    return wrap


def startup_errors(command: str) -> Callable[[Callable[[argparse.Namespace], int]],
                                             Callable[[argparse.Namespace], int]]:
    """For a long-running command (`run`, `sync`): what stops it before it starts (no usable
    kubeconfig, an unknown context, a setting it cannot use) is one line `helm-operator <command>: ...`
    and exit code 1. Once it runs, the process reports through its logs and /healthz, as before."""
    from helm_operator.kube.errors import KubeConfigError

    def wrap(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except (CommandError, KubeConfigError) as e:
                return fail(command, str(e))
        return run
    return wrap


def quiet_logs() -> None:
    """Only errors, redacted: a person reads one line per outcome, not the libraries' warnings (a
    watch retrying, pyhelm3 naming the helm command that failed: the error says it already)."""
    from helm_operator.cli.settings import setup_logging

    setup_logging("error")
    logging.getLogger("pyhelm3").setLevel(logging.CRITICAL)


def fail(command: str, message: str, code: int = 1) -> int:
    print(f"helm-operator {command}: {' '.join(message.split())}", file=sys.stderr)
    return code


def dump(doc: Any, output: str) -> str:
    """`doc` as the text of `-o json` or `-o yaml`."""
    if output == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], no_headers: bool = False) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart, the last one not padded."""
    lines = [list(headers)] if not no_headers else []
    lines += [[" ".join(str(cell).split()) for cell in row] for row in rows]
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        out.append("   ".join(cells).rstrip())
    return "\n".join(out) + "\n"
