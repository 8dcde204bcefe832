"""How every subcommand reads its flags: one parser class, the value types,
`--listen HOST:PORT`, and usage errors that name the flag and the accepted form.

Place in the flow: `cli.build_parser` makes the top parser a `Parser`;
argparse makes every subcommand's parser the same class, so each of them:

- answers a bad value with one line naming the flag and what it accepts,
  ``helm-operator run: --charts-sync-interval: '3x' is not a duration; use
  e.g. 30s, 3m, 1h`` (exit 2), from the messages of the types below;
- answers an unknown flag, a missing one or a clash with its *own* usage and
  one line (``helm-operator list-workloads: unknown flag --bogus``), not the
  top-level usage argparse prints when a subcommand leaves arguments over;
- answers an unknown subcommand with the closest names.

What this module does NOT do: define any subcommand's flags (the command
modules do) or run anything.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from helm_operator.runtime.http import parse_listen

USAGE_ERROR = 2  # argparse's exit code for a command line it cannot use, kept


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors say which flag is wrong and what it accepts (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exit_on_error", False)  # ArgumentErrors reach `parse_known_args` below
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        try:
            parsed, extras = super().parse_known_args(args, namespace)
        except argparse.ArgumentError as e:
            self._argument_error(e)
        if extras and not self._subcommands():
            # A subcommand's parser: what it does not know is wrong here, said with this usage
            # (argparse would hand it up and print the top-level usage instead).
            self._usage_error(_unrecognized(extras))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """argparse's own complaints (missing flags, arguments left over): usage and one line."""
        self._usage_error(_plain(message))

    # ---- the two kinds of error --------------------------------------------------------

    def _argument_error(self, e: argparse.ArgumentError) -> NoReturn:
        flag = e.argument_name or ""
        message = e.message
        choices = _CHOICE.match(message)
        if choices and self._subcommands() and flag in ("COMMAND", "KIND"):
            wanted = choices["value"].strip("'")
            known = [c.strip("'") for c in choices["choices"].split(", ")]
            close = difflib.get_close_matches(wanted, known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(known)}"
            self._usage_error(f"unknown {flag.lower()} {wanted!r}{hint}")
        if not flag or any(message.startswith(s) for s in _STRUCTURAL):   # newer Pythons raise some of
            # argparse's own complaints (missing, left over) as errors without a flag
            self._usage_error(f"{flag}: {_plain(message)}" if flag else _plain(message))
        self.exit(USAGE_ERROR, f"{self.prog}: {flag}: {_value_message(message)}\n")

    def _usage_error(self, line: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: {line}\nSee '{self.prog} --help' for usage.\n")

    def _subcommands(self) -> bool:
        return any(isinstance(a, argparse._SubParsersAction) for a in self._actions)


# argparse's messages (3.11+), and what a person reads instead.
_CHOICE = re.compile(r"^invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)$")
_INVALID = re.compile(r"^invalid (?P<type>\S+) value: (?P<value>.*)$")
_STRUCTURAL = ("expected ", "not allowed with argument", "ignored explicit argument")
_TYPE_WORDS = {"int": "a whole number", "float": "a number"}


def _value_message(message: str) -> str:
    m = _CHOICE.match(message)
    if m:
        choices = ", ".join(c.strip("'") for c in m["choices"].split(", "))
        return f"{m['value']} is not one of {choices}"
    m = _INVALID.match(message)
    if m:
        return f"{m['value']} is not {_TYPE_WORDS.get(m['type'], 'a valid ' + m['type'])}"
    return message  # the message of one of our types: already says what is accepted


def _plain(message: str) -> str:
    if message.startswith("the following arguments are required: "):
        return "missing " + message.split(": ", 1)[1]
    if message.startswith("unrecognized arguments: "):
        return _unrecognized(message.split(": ", 1)[1].split())
    return message


def _unrecognized(extras: Sequence[str]) -> str:
    flags = [a for a in extras if a.startswith("-")]
    if flags:
        return f"unknown flag{'s' if len(flags) > 1 else ''} {' '.join(flags)}"
    return f"unexpected argument{'s' if len(extras) > 1 else ''} {' '.join(repr(a) for a in extras)}"


# ---- value types: each raises ArgumentTypeError saying what it accepts ----------------

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration ("3m", "1h30m", "45s", "500ms") or plain seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 3m, 1h")
    h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


_SIZE = re.compile(r"^(\d+)\s*(?:([KMG])(i?)B?)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``16Mi``, ``64MiB``, ``3M`` (decimal), ``1048576``: Kubernetes-style sizes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"invalid size {text!r}: use e.g. 512Ki, 16Mi, 1Gi or a number of bytes")
    number, unit, binary = m.groups()
    if unit is None:
        return int(number)
    power = "KMG".index(unit.upper()) + 1
    return int(int(number) * (1024 if binary else 1000) ** power)


def duration(text: str) -> float:
    """Seconds from ``30s``, ``3m``, ``1h30m``, ``500ms`` or a plain number of seconds."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 30s, 3m, 1h") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use e.g. 30s, 3m, 1h (or 0)")
    return seconds


def size(text: str) -> int:
    """Bytes from ``512Ki``, ``16Mi``, ``1Gi``, ``3M`` or a plain number of bytes."""
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 512Ki, 16Mi, 1Gi or a number of "
                                         "bytes") from None


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; use e.g. 4") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use 0 or more")
    return value


def positive(text: str) -> int:
    """A whole number, 1 or more."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


def rate(text: str) -> float:
    """A number above 0 (requests per second)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; use e.g. 10 or 0.5") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def address(text: str) -> str:
    """``HOST:PORT``, kept as written (the command splits it with `runtime.http.parse_listen`)."""
    try:
        parse_listen(text, "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT; use e.g. 0.0.0.0:3040 or "
                                         "[::]:3040") from None
    return text


# ---- --listen HOST:PORT, with the syncer's old --listen HOST --listen-port N ---------------

class _Listen(argparse.Action):
    """``--listen HOST:PORT`` sets both `listen_host` and `listen_port`; a bare HOST (the
    syncer's old spelling, beside ``--listen-port``) sets the host only."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        text = str(values).strip()
        if text and not text.startswith("[") and text.count(":") != 1:
            namespace.listen_host = text   # no colon: a host name or IPv4; several: an IPv6 address alone
            return
        try:
            namespace.listen_host, namespace.listen_port = parse_listen(text, "")
        except ValueError:
            raise argparse.ArgumentError(self, f"{text!r} is not HOST:PORT; use e.g. 0.0.0.0:3031 "
                                               "or [::]:3031") from None


def add_listen_flag(p: argparse.ArgumentParser, port: int, what: str, *, old_port_flag: bool = False,
                    group: argparse._ArgumentGroup | None = None) -> None:
    """``--listen HOST:PORT`` (default ``0.0.0.0:<port>``) into `listen_host` and `listen_port`.

    `old_port_flag` keeps the syncer's ``--listen-port N`` working, unlisted (charts and scripts pass it).
    """
    p.set_defaults(listen_host="0.0.0.0", listen_port=port)
    (group or p).add_argument("--listen", action=_Listen, metavar="HOST:PORT",
                              help=f"address of {what} (default 0.0.0.0:{port}; port 0 picks a free one)")
    if old_port_flag:
        p.add_argument("--listen-port", type=_port, dest="listen_port", help=argparse.SUPPRESS)


def _port(text: str) -> int:
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return value


def hidden(p: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """A flag accepted for old scripts and charts but not listed (`--help` leaves it out)."""
    p.add_argument(*flags, help=argparse.SUPPRESS, **kwargs)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                                   argparse.ArgumentParser]]:
    """Every parser under `parser` with its command words, each once (aliases left out), depth first."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    found += walk(sub, (*path, name))
    return found

