"""Flags shared by the long-running commands: YAML limits, health thresholds,
and logging set-up.

Each command module of this package turns flags into its role's own frozen
settings; this module holds only what they share. Logging goes through one handler whose
`RedactingFilter` removes URL credentials from every line and its fields,
whatever logger wrote it (defence in depth: messages are meant to be built
redacted); `runtime.logs` formats the lines as text or JSON.
"""

from __future__ import annotations

import argparse
import logging
import sys

from helm_operator import boundedyaml
from helm_operator.boundedyaml import YamlLimits, human_bytes
from helm_operator.cli.parsing import add_listen_flag, count, duration, parse_duration, parse_size, size
from helm_operator.redaction import redact_text
from helm_operator.runtime import logs
from helm_operator.runtime.logs import extra_fields

# The parsers of durations and sizes live with the other flag types (`parsing`); named here too
# because the command modules have always found them here.
__all__ = ["parse_duration", "parse_size", "add_yaml_limit_flags", "yaml_limits_from_args", "RedactingFilter",
           "allow_api_json_depth", "add_process_flags", "add_health_flags", "add_logging_flags", "setup_logging", "LOG_LEVELS"]


def add_yaml_limit_flags(parser: argparse.ArgumentParser, *, charts: bool) -> None:
    """The flags of `boundedyaml`'s limits; `charts` (the operator) adds those for chart files.

    The node limit's default differs: the operator walks values on its event
    loop, the syncer parses and applies files off it.
    """
    nodes = boundedyaml.DEFAULT_VALUES_MAX_NODES if charts else boundedyaml.DEFAULT_MAX_NODES
    g = parser.add_argument_group("limits on YAML from users (values, manifests, config)")
    g.add_argument("--yaml-max-bytes", type=size, metavar="SIZE", default=boundedyaml.DEFAULT_MAX_BYTES,
                   help="largest YAML file or values source, and the most text its aliases may "
                        f"expand to (default {human_bytes(boundedyaml.DEFAULT_MAX_BYTES).replace(' ', '')})")
    g.add_argument("--yaml-max-depth", type=count, metavar="N", default=boundedyaml.DEFAULT_MAX_DEPTH,
                   help=f"deepest nesting of maps and lists (default {boundedyaml.DEFAULT_MAX_DEPTH})")
    g.add_argument("--yaml-max-nodes", type=count, metavar="N", default=nodes,
                   help="most maps, lists and scalars in one file or values source once its aliases "
                        f"(*name) are expanded (default {nodes})")
    if charts:
        g.add_argument("--chart-yaml-max-bytes", type=size, metavar="SIZE",
                       default=boundedyaml.DEFAULT_CHART_MAX_BYTES,
                       help="largest chart file read (a Helm repository's index.yaml, Chart.yaml) "
                            f"(default {human_bytes(boundedyaml.DEFAULT_CHART_MAX_BYTES).replace(' ', '')})")
        g.add_argument("--chart-yaml-max-nodes", type=count, metavar="N",
                       default=boundedyaml.DEFAULT_CHART_MAX_NODES,
                       help="most nodes in one chart file, aliases expanded "
                            f"(default {boundedyaml.DEFAULT_CHART_MAX_NODES})")


def yaml_limits_from_args(args: argparse.Namespace) -> YamlLimits:
    """The limits set by `add_yaml_limit_flags` (chart ones default when absent)."""
    return YamlLimits.from_flags(
        max_bytes=args.yaml_max_bytes, max_depth=args.yaml_max_depth, max_nodes=args.yaml_max_nodes,
        chart_max_bytes=getattr(args, "chart_yaml_max_bytes", boundedyaml.DEFAULT_CHART_MAX_BYTES),
        chart_max_nodes=getattr(args, "chart_yaml_max_nodes", boundedyaml.DEFAULT_CHART_MAX_NODES))


class RedactingFilter(logging.Filter):
    """Remove the userinfo of every URL from a record's message, exception text and fields.

    The message is formatted here (``msg % args``) and stored back, so the
    handler's formatter only sees redacted text; a traceback is rendered
    here too and kept as ``exc_text``, which formatters print as is.
    """

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for key, value in extra_fields(record).items():  # the structured fields (logs.fields)
            if isinstance(value, str):
                setattr(record, key, redact_text(value))
        return True


# kubectl and the API server accept JSON nested up to 10 000 levels; Python's
# json decoder counts each level against the recursion limit (1000 by default).
API_JSON_MAX_DEPTH = 10_000


def allow_api_json_depth() -> None:
    """Let the kubernetes client decode every object the API server can hold.

    With the default recursion limit a single HelmRelease whose spec.values
    nest 1000 levels deep (accepted by the API server) cannot be decoded: the
    HelmRelease watch and list fail for every release, over and over. With
    this limit they decode (json is C code: measured fine at 10 000 levels on
    an 8 MiB thread stack), and `boundedyaml.check_tree` then refuses the deep
    values of that one release with a status. Recursion in our own Python code
    stays bounded by the YAML depth limit.
    """
    sys.setrecursionlimit(max(sys.getrecursionlimit(), API_JSON_MAX_DEPTH + 2_000))


def add_process_flags(parser: argparse.ArgumentParser, *, port: int, serves: str,
                      old_listen_port: bool = False) -> None:
    """What every long-running command (`run`, `sync`) takes alike: where it listens, how it logs,
    when ``/healthz`` fails. `old_listen_port` keeps the syncer's ``--listen-port N`` (unlisted)."""
    g = parser.add_argument_group("process (the same on run and sync)")
    add_listen_flag(parser, port, serves, old_port_flag=old_listen_port, group=g)
    add_logging_flags(g)
    add_health_flags(g)


def add_health_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """When ``/healthz`` fails: the same on every long-running command (see `runtime.health`)."""
    from helm_operator.runtime.health import DEFAULT_API_THRESHOLD, DEFAULT_LOOP_THRESHOLD

    parser.add_argument("--api-unreachable-threshold", type=duration, default=DEFAULT_API_THRESHOLD,
                        metavar="DURATION",
                        help="/healthz fails once the API server has been unreachable this long "
                             f"(default {DEFAULT_API_THRESHOLD:.0f}s)")
    parser.add_argument("--loop-stall-threshold", type=duration, default=DEFAULT_LOOP_THRESHOLD,
                        metavar="DURATION",
                        help="/healthz fails when the event loop was blocked this long since the previous "
                             f"check (default {DEFAULT_LOOP_THRESHOLD:.0f}s; 0 = never)")


LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(text: str) -> str:
    level = text.strip().lower()
    return "warning" if level == "warn" else level


def add_logging_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--log-level`` and ``--log-format``: the same on every long-running command."""
    parser.add_argument("--log-level", type=_log_level, choices=LOG_LEVELS, default="info",
                        help="least severe lines written (default info; debug adds library lines "
                             "such as helm command lines and urllib3 retries)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text: 'TIME LEVEL logger: object: message key=value'; json: one object per "
                             "line with ts, level, logger, msg and the fields object, action, revision, "
                             "duration_ms, error (default text)")


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """One handler on the root logger: `fmt` ``text`` or ``json`` (see `runtime.logs`), redacted.

    Library noise (urllib3 retries, pyhelm3's failed commands) is folded to
    DEBUG; the lines that say what a failure means come from our code.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter(fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logs.fold_library_noise()
