"""Log lines of the long-running roles: fields, both formats, timestamps, redaction, library noise.

Each test configures the real root handler with `settings.setup_logging`
(writing to a captured stderr) and logs through real loggers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator

import pytest

from helm_operator.runtime.logs import fields
from helm_operator.cli.settings import setup_logging

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
SECRET = "S3cretPass"


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_json_lines_carry_the_fields_apart_from_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    logging.getLogger("helm_operator.release.reconciler").warning(
        "helm %s failed (%s)", "upgrade", "Timeout",
        extra=fields(object="team-a/web", action="upgrade", revision=4, duration_ms=1234.4,
                     error=f"GET http://user:{SECRET}@charts.example.com/index.yaml: 401"))
    [line] = lines(capsys)
    doc = json.loads(line)
    assert doc["level"] == "warning"
    assert doc["logger"] == "helm_operator.release.reconciler"
    assert doc["msg"] == "helm upgrade failed (Timeout)"
    assert doc["object"] == "team-a/web" and doc["action"] == "upgrade"
    assert doc["revision"] == 4 and doc["duration_ms"] == 1234
    assert doc["error"] == "GET http://charts.example.com/index.yaml: 401"  # credentials redacted
    assert RFC3339_MS.match(doc["ts"]), doc["ts"]
    stamp = dt.datetime.fromisoformat(doc["ts"])
    assert stamp.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 60


def test_text_lines_read_as_a_sentence_with_the_fields_after(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text")
    logging.getLogger("helm_operator.release.reconciler").info(
        "%s: %s", "OutOfSync", "values digest changed",
        extra=fields(object="team-a/web", action="upgrade", duration_ms=2.0, error="two words"))
    [line] = lines(capsys)
    stamp, level, rest = line.split(" ", 2)
    assert RFC3339_MS.match(stamp), stamp
    assert level == "INFO"
    assert rest == ('helm_operator.release.reconciler: team-a/web: OutOfSync: values digest changed '
                    'action=upgrade duration_ms=2 error="two words"')


def test_a_traceback_is_redacted_in_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("text", "json"):
        setup_logging("info", fmt)
        try:
            raise RuntimeError(f"fetch of https://bot:{SECRET}@git.example.com/r.git failed")
        except RuntimeError:
            logging.getLogger("helm_operator.x").exception("unexpected", extra=fields(object="ns/a"))
    out = capsys.readouterr().err
    assert SECRET not in out
    json_line = next(line for line in out.splitlines() if line.startswith("{"))
    doc = json.loads(json_line)
    assert "RuntimeError: fetch of https://git.example.com/r.git failed" in doc["traceback"]
    assert doc["object"] == "ns/a"


def test_urllib3_retries_and_failed_helm_commands_are_debug_lines(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pyhelm3", "pyhelm3.command", "urllib3", "urllib3.connectionpool"):
        logging.getLogger(name).setLevel(logging.NOTSET)  # the CLI quiets pyhelm3 for its own run
    setup_logging("info", "json")
    urllib3 = logging.getLogger("urllib3.connectionpool")
    urllib3.warning("Retrying (%r) after connection broken by '%r': %s", "Retry(total=2)", "refused", "/api")
    logging.getLogger("pyhelm3.command").warning("command failed: %s", "helm upgrade --install web ./chart")
    logging.getLogger("pyhelm3.command").info("running command: %s", "helm upgrade --install web ./chart")
    urllib3.warning("Connection pool is full, discarding connection: %s", "127.0.0.1")  # not a retry: kept
    assert [json.loads(line)["msg"] for line in lines(capsys)] == [
        "Connection pool is full, discarding connection: 127.0.0.1"]

    setup_logging("debug", "json")
    urllib3.warning("Retrying (%r) after connection broken by '%r': %s", "Retry(total=2)", "refused", "/api")
    logging.getLogger("pyhelm3.command").warning("command failed: %s", "helm test web")
    docs = [json.loads(line) for line in lines(capsys)]
    assert [(d["logger"], d["level"]) for d in docs] == [("urllib3.connectionpool", "debug"),
                                                           ("pyhelm3.command", "debug")]


def test_warn_is_accepted_as_a_level() -> None:
    from helm_operator.cli import build_parser

    args = build_parser().parse_args(["sync", "--log-level", "WARN", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("warning", "json")
    assert build_parser().parse_args(["sync", "-v"]).verbose is True  # the old spelling still works
    assert build_parser().parse_args(["run", "--log-level", "debug"]).log_level == "debug"
