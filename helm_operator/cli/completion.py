"""`helm-operator completion bash|zsh|fish`: the shell's completion script, made by argcomplete.

Place in the flow: a person runs it once (``source <(helm-operator completion
bash)``, or writes the output where the shell loads completions); from then on
each TAB runs ``helm-operator`` with argcomplete's environment, and `cli.main`
hands the parser to `argcomplete.autocomplete` before parsing, which answers
with the subcommands, flags and choices of the real parser and exits. So the
completions can never differ from what the parser accepts; hidden aliases
(``--listen-port``, ``-v``) are not offered.

What this module does NOT do: complete values that need the cluster (names of
HelmReleases or namespaces): a TAB must not wait on the API server.
"""

from __future__ import annotations

import argparse
import sys

PROG = "helm-operator"
SHELLS = ("bash", "zsh", "fish")

_HOW = {
    "bash": "source <(helm-operator completion bash)        # e.g. in ~/.bashrc",
    "zsh": "source <(helm-operator completion zsh)         # e.g. in ~/.zshrc, after compinit",
    "fish": "helm-operator completion fish > ~/.config/fish/completions/helm-operator.fish",
}


def script(shell: str) -> str:
    """The completion script for `shell`, for the program named ``helm-operator`` on $PATH."""
    from argcomplete.shell_integration import shellcode

    return str(shellcode([PROG], shell=shell))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "completion", help="print the shell completion script for bash, zsh or fish",
        description="Print the script that makes the shell complete helm-operator's subcommands,\n"
                    "flags and their choices. Exit code 0. Load it with:\n\n  " + "\n  ".join(_HOW[s] for s in SHELLS),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="the shell to complete in: bash, zsh or fish")
    p.set_defaults(handler=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer a completion request from the shell script, if this run is one, and exit; else nothing."""
    import os

    if "_ARGCOMPLETE" not in os.environ:   # the common case costs one lookup, not an import
        return
    import argcomplete

    argcomplete.autocomplete(parser)
