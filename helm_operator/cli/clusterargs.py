"""What every command that talks to the cluster as a person shares: the
kubectl-style flags (`--kubeconfig`, `--context`, `-n`, `-A`), connecting,
`-o table|json|yaml` printing, and one-line errors.

Place in the flow: `cli/release.py` and `cli/diff.py` call these before and
after their work. Errors a user can fix (no kubeconfig, an unknown context,
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
from helm_operator.kube import Kube, KubeError

USER_AGENT = f"helm-operator-cli/{__version__}"
FIELD_MANAGER = "helm-operator-cli"  # who changed spec.suspend or the request annotations


class CommandError(Exception):
    """A failure the user can act on; the message is the whole line."""


def add_cluster_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False,
                      namespace_help: str | None = None) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)")
    g.add_argument("--context", default=None, help="kubeconfig context to use (default: the current context)")
    g.add_argument("-n", "--namespace", default=None,
                   help=namespace_help or "namespace of the HelmRelease (default: the context's namespace, "
                                          "else default)")
    if all_namespaces:
        g.add_argument("-A", "--all-namespaces", action="store_true",
                       help="every namespace (ignores --namespace)")


def add_output_flag(p: argparse.ArgumentParser, choices: Sequence[str], default: str,
                    tables: bool = False) -> None:
    p.add_argument("-o", "--output", choices=list(choices), default=default,
                   help=f"output format: {', '.join(choices)} (default {default}); json and yaml are "
                        "for scripts")
    if tables:
        p.add_argument("--no-headers", action="store_true", help="leave out the table's header line")


@dataclass
class Cluster:
    """A connection made from the flags."""

    kube: Kube
    namespace: str          # -n, else the context's namespace, else default
    kubeconfig: Path | None
    context: str | None


def connect(args: argparse.Namespace) -> Cluster:
    """A Kube from the flags, found as kubectl finds it; KubeError when that is impossible."""
    from helm_operator.kube.rest import kubeconfig_namespace
    from helm_operator.kube.client import load_cli_client

    api = load_cli_client(args.kubeconfig, args.context)
    api.user_agent = USER_AGENT  # the API server's audit log tells our requests apart
    # $KUBECONFIG as it is now (the client library reads it once, at import), a list of files merged
    path = str(args.kubeconfig) if args.kubeconfig else os.environ.get("KUBECONFIG") or None
    namespace = args.namespace or kubeconfig_namespace(path, args.context) or "default"
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
