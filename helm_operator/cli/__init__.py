"""The `helm-operator` command: one entry point, one module per group of
subcommands (`cli/run.py`, `cli/sync.py`, `cli/workloads.py`, ...), and the
plumbing those share (`parsing`, `clusterargs`, `settings`, `errors`,
`workload`, `output`, `gitchange`, `registryaccess`, `completion`).

The package is the top of the house: it parses arguments, builds each
role's settings and hands over to the role (`operator`, `gitsync`,
`automation`, `release`); no behaviour of its own lives here, so each
subcommand can be found by name.

One convention holds for every subcommand, as in kubectl and flux (the
reference, docs/cli.md, is generated from the parsers by
hack/cli-reference.py): the cluster flags of `clusterargs`, ``-o`` and
``--no-headers`` on what lists or shows, the process flags of
`settings.add_process_flags` on what runs, help on every flag, usage errors
from `parsing.Parser` (exit 2), failures as one line on stderr (exit 1), and
shell completion from the same parser (`completion`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from helm_operator import __version__
from helm_operator.cli.completion import autocomplete
from helm_operator.cli.parsing import Parser
from helm_operator.cli.settings import allow_api_json_depth


# Each group of subcommands: a module with `register(subparsers)` that adds
# them and sets `handler` on each. Listed here so `--help` shows all.
COMMAND_MODULES = (
    "helm_operator.cli.run",             # run
    "helm_operator.cli.sync",            # sync, sync-status
    "helm_operator.cli.workloads",       # list-workloads, list-images
    "helm_operator.cli.imagerelease",    # release
    "helm_operator.cli.imagepolicy",     # automate, deautomate, lock, unlock, policy
    "helm_operator.cli.release",         # reconcile, suspend, resume, get, history (hr)
    "helm_operator.cli.diff",            # diff -f FILE
    "helm_operator.cli.completion",      # completion bash|zsh|fish
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every role's subcommands."""
    parser = Parser(
        prog="helm-operator",
        description="GitOps delivery for Kubernetes, focused on Helm.",
        epilog="Run 'helm-operator COMMAND --help' for the flags of a command. Exit codes: 0 done, 1 failed "
               "(one line on stderr says what and what to do), 2 a command line it cannot use.",
    )
    parser.add_argument("--version", action="version", version=f"helm-operator {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not name.startswith(e.name or "\0"):  # a real missing dependency, not a role not built yet
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    autocomplete(parser)  # a TAB in a shell that loaded `helm-operator completion`: answered, then exit
    args = parser.parse_args(argv)
    allow_api_json_depth()  # every command reads objects from the API; one deep HelmRelease must not break `get -A`
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args) or 0)

