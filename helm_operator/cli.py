"""The `helm-operator` command: one entry point, one subcommand per role.

This module only parses arguments and hands over to the role's own module;
it holds no behaviour of its own, so each subcommand can be found by name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from helm_operator import __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser; subcommands are added by later roles."""
    parser = argparse.ArgumentParser(
        prog="helm-operator",
        description="GitOps delivery for Kubernetes, focused on Helm.",
    )
    parser.add_argument("--version", action="version", version=f"helm-operator {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
