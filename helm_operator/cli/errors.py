"""How a subcommand fails: one line on stderr naming what failed and what to do, exit code 1.

Place in the flow: every command raises `CommandError` for a failure the
user can act on. The Git commands (`imagerelease`, `imagepolicy`) are
wrapped by `runner`, which runs each async handler on its own event loop and
turns the error into that line; the commands that read the cluster use
`clusterargs.one_line_errors` (the same line, and Kubernetes errors too).
What this module does NOT do: parse arguments or decide anything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from helm_operator.redaction import redact_text

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class CommandError(Exception):
    """A failure to report as one line on stderr, exit code 1 (URL credentials removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


def runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """`handler` as argparse's `handler` default: its exit code, or 1 and one line for a `CommandError`."""
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except CommandError as e:
            one_line = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # git output
            print(f"helm-operator {args.command}: {one_line}", file=sys.stderr)
            return 1
    return run
