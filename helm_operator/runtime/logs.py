"""How the long-running roles (`run`, `sync`) write their log lines.

Place in the flow: every module logs through the standard `logging` module;
`settings.setup_logging` puts one handler on the root logger with a
formatter from here. A line carries its facts as structured fields, passed
as logging ``extra`` (build them with `fields`), not baked into the message:

    log.warning("helm %s failed", verb, extra=fields(object=hr.key, action=verb, error=message))

- ``object``: what the line is about (``namespace/name`` of a HelmRelease,
  ``source/NAME`` of a syncer source);
- ``action``: what was done or decided (``install``, ``upgrade``, ``sync``);
- ``revision``: a helm revision or a Git commit;
- ``duration_ms``: how long it took, in milliseconds;
- ``error``: what failed, as text (redacted like every message).

Both formats show them: `JsonFormatter` (python-json-logger) writes one JSON
object per line with keys ``ts``, ``level``, ``logger``, ``msg`` and the
fields; `TextFormatter` writes ``TS LEVEL logger: object: message key=value``
so a person reads the same sentence as before. Timestamps are RFC 3339 with
milliseconds and the zone offset in both.

Library noise is folded (`fold_library_noise`): urllib3's "Retrying ..."
warnings (three per request while the API server is down; the watch logs one
line per distinct failure with its meaning) and pyhelm3's "command failed"
warnings (the engine logs every helm failure with what it means for the
release) become DEBUG lines, shown only with ``--log-level debug``.

What this module does NOT do: redact (`settings.RedactingFilter` does, on
the handler, before any formatter runs) or decide what is worth logging.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

FIELDS = ("object", "action", "revision", "duration_ms", "error")

# Attributes every LogRecord has; anything else on a record came in `extra`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def fields(object: str | None = None, action: str | None = None,  # noqa: A002 - the field's name
           revision: str | int | None = None, duration_ms: float | None = None,
           error: str | BaseException | None = None, **more: Any) -> dict[str, Any]:
    """The ``extra`` of a log call: the given fields, without the ones left out.

    `duration_ms` is rounded to a whole millisecond; an exception `error`
    becomes its text.
    """
    out: dict[str, Any] = {}
    if object is not None:
        out["object"] = object
    if action is not None:
        out["action"] = action
    if revision is not None:
        out["revision"] = revision
    if duration_ms is not None:
        out["duration_ms"] = round(duration_ms)
    if error is not None:
        out["error"] = str(error) if isinstance(error, BaseException) else error
    out.update((k, v) for k, v in more.items() if v is not None)
    return out


def since_ms(started: float, now: float) -> float:
    """Milliseconds between two `time.monotonic()`/`perf_counter()` readings."""
    return (now - started) * 1000.0


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (everything given as ``extra``), in a stable order."""
    found = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_")}
    ordered = {k: found.pop(k) for k in FIELDS if k in found}
    ordered.update(sorted(found.items()))
    return ordered


def rfc3339(created: float) -> str:
    """``2026-12-01T16:06:37.123+00:00``: local time with milliseconds and the zone offset."""
    return dt.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``TS LEVEL logger: object: message key=value ...`` plus a traceback when there is one."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return rfc3339(record.created)

    def format(self, record: logging.LogRecord) -> str:
        extra = extra_fields(record)
        subject = extra.pop("object", None)
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: "
        if subject is not None:
            line += f"{subject}: "
        line += record.getMessage()
        for key, value in extra.items():
            line += f" {key}={_text_value(value)}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text)


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the fields, ``traceback``."""

    def __init__(self) -> None:
        super().__init__(["asctime", "levelname", "name", "message"],
                         rename_fields={"asctime": "ts", "levelname": "level", "name": "logger",
                                        "message": "msg", "exc_info": "traceback", "stack_info": "stack"},
                         json_ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return rfc3339(record.created)

    def format(self, record: logging.LogRecord) -> str:
        # The library renders `exc_info` itself; a traceback the redacting
        # filter already rendered (and redacted) as `exc_text` must win.
        if not (record.exc_info and record.exc_text):
            return super().format(record)
        exc_info, record.exc_info = record.exc_info, None
        try:
            return super().format(record)
        finally:
            record.exc_info = exc_info

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data.get("level", "")).lower()
        return log_data


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``--log-format`` `fmt` (``text`` or ``json``)."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: use text or json")


class Demote(logging.Filter):
    """Turn a library's records that `match` (below ERROR) into DEBUG records.

    Attached to the library's own logger: a demoted record goes on to the
    root handler only when the root logger is enabled for DEBUG.
    """

    def __init__(self, match: Callable[[logging.LogRecord], bool] = lambda record: True) -> None:
        super().__init__()
        self._match = match

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.levelno <= logging.DEBUG or not self._match(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _urllib3_retry(record: logging.LogRecord) -> bool:
    return str(record.msg).startswith("Retrying ")


# (logger, which of its records) folded to DEBUG; see the module docstring.
NOISY_LIBRARIES: tuple[tuple[str, Callable[[logging.LogRecord], bool]], ...] = (
    ("urllib3.connectionpool", _urllib3_retry),
    ("pyhelm3.command", lambda record: True),
)


def fold_library_noise() -> None:
    """Put a `Demote` filter on each noisy library logger (once)."""
    for name, match in NOISY_LIBRARIES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, Demote) for f in logger.filters):
            logger.addFilter(Demote(match))
