"""The release commands' pure parts: the request token Flux writes, when a
request counts as answered, what `get` and `history` show, and that every
flag of every new command says what it does."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from helm_operator.cli import build_parser, hrview
from helm_operator.cli.clusterargs import connect, table

NEW_COMMANDS = ("reconcile", "suspend", "resume", "get", "history", "diff")


def hr(status: dict | None = None, spec: dict | None = None, generation: int = 2) -> dict:
    return {"metadata": {"namespace": "apps", "name": "web", "generation": generation},
            "spec": spec or {}, "status": status or {}}


def cond(type_: str, status: str, reason: str = "R", message: str = "m") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_the_token_is_go_rfc3339nano_in_utc_as_flux_writes_it() -> None:
    assert hrview.request_token(1_767_225_600_123_456_789) == "2026-01-01T00:00:00.123456789Z"
    assert hrview.request_token(1_767_225_600_120_000_000) == "2026-01-01T00:00:00.12Z"  # trailing zeros go
    assert hrview.request_token(1_767_225_600_000_000_000) == "2026-01-01T00:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", hrview.request_token())


def test_reconcile_writes_requested_at_and_with_force_or_reset_the_same_token_again() -> None:
    assert hrview.request_annotations("t", False, False) == {"reconcile.fluxcd.io/requestedAt": "t"}
    assert hrview.request_annotations("t", True, False) == {"reconcile.fluxcd.io/requestedAt": "t",
                                                            "reconcile.fluxcd.io/forceAt": "t"}
    assert hrview.request_annotations("t", False, True) == {"reconcile.fluxcd.io/requestedAt": "t",
                                                            "reconcile.fluxcd.io/resetAt": "t"}


def test_a_request_is_answered_once_echoed_and_no_attempt_is_running() -> None:
    assert hrview.reconcile_answer(hr({"lastHandledReconcileAt": "old"}), "t", False) is None
    busy = hr({"lastHandledReconcileAt": "t", "conditions": [cond("Reconciling", "True"), cond("Ready", "True")]})
    assert hrview.reconcile_answer(busy, "t", False) is None
    done = hr({"lastHandledReconcileAt": "t", "revision": "0.1.0", "conditions": [cond("Ready", "True", "Succeeded")]})
    verdict = hrview.reconcile_answer(done, "t", False)
    assert verdict is not None and verdict.ok and verdict.revision == "0.1.0" and not verdict.forced
    assert hrview.reconcile_answer(done, "t", True) is None, "a reset waits for lastHandledResetAt too"
    failed = hr({"lastHandledReconcileAt": "t", "lastHandledForceAt": "t",
                 "conditions": [cond("Ready", "False", "DeployFailed", "boom")]})
    verdict = hrview.reconcile_answer(failed, "t", False)
    assert verdict is not None and not verdict.ok and verdict.forced and verdict.message == "boom"


def test_a_resume_is_answered_when_the_new_generation_is_reconciled_and_no_longer_suspended() -> None:
    ready = [cond("Ready", "True")]
    assert hrview.resume_answer(hr({"observedGeneration": 1, "conditions": ready}), 2) is None
    assert hrview.resume_answer(hr({"observedGeneration": 2, "conditions": [*ready, cond("Suspended", "True")]}),
                                2) is None
    assert hrview.resume_answer(hr({"observedGeneration": 2, "conditions": [cond("Ready", "Unknown")]}), 2) is None
    verdict = hrview.resume_answer(hr({"observedGeneration": 2, "conditions": ready}), 2)
    assert verdict is not None and verdict.ok


def test_get_shows_phase_revision_ready_message_suspended_and_failures() -> None:
    obj = hr({"phase": "DeployFailed", "revision": "a" * 40, "failures": 3,
              "conditions": [cond("Ready", "False", "DeployFailed", "helm upgrade failed:\n  boom")]},
             spec={"suspend": True})
    s = hrview.summary(obj)
    assert (s["ready"], s["phase"], s["suspended"], s["failures"]) == ("False", "DeployFailed", True, 3)
    assert hrview.get_row(s, False) == ["web", "False", "DeployFailed", "a" * 12, "true", "3",
                                        "helm upgrade failed:\n  boom"]
    out = table(hrview.GET_COLUMNS, [hrview.get_row(s, False)])
    assert out.splitlines()[1].endswith("helm upgrade failed: boom"), "one line per release"
    assert table(hrview.GET_COLUMNS, [hrview.get_row(s, False)], no_headers=True).count("\n") == 1
    assert hrview.summary(hr())["message"].startswith("not reconciled yet")


def test_history_rows_come_from_status_history_newest_first() -> None:
    obj = hr({"history": [
        {"revision": 2, "action": "upgrade", "status": "deployed", "chartName": "hello", "chartVersion": "0.2.0",
         "appVersion": "1.0.0", "configDigest": "0123456789abcdef", "testResult": "passed",
         "lastDeployed": "2026-01-01T00:00:00Z"},
        {"revision": 1, "action": "install", "status": "superseded", "chartName": "hello", "chartVersion": "0.1.0"}]})
    assert hrview.history_rows(obj) == [
        ["2", "upgrade", "deployed", "hello-0.2.0", "1.0.0", "passed", "0123456789ab", "2026-01-01T00:00:00Z"],
        ["1", "install", "superseded", "hello-0.1.0", "-", "-", "-", "-"]]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", NEW_COMMANDS)
def test_every_flag_of_the_new_commands_has_help(command: str) -> None:
    parser = _subparsers(build_parser())[command]
    if command != "diff":
        kinds = _subparsers(parser)
        assert {"helmrelease", "hr", "helmreleases", "hrs"} <= set(kinds)
        parser = kinds["hr"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command}: {action.option_strings or action.dest} has no help"


def test_the_namespace_defaults_to_the_chosen_contexts_as_kubectl_does(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:

    kubeconfig = tmp_path / "config"
    cluster = {"server": "https://127.0.0.1:1"}
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                     {"name": "b", "context": {"cluster": "c", "user": "u", "namespace": "team-b"}},
                     {"name": "plain", "context": {"cluster": "c", "user": "u"}}]}))
    parser = build_parser()

    def ns(*flags: str) -> str:
        return connect(parser.parse_args(["get", "hr", "--kubeconfig", str(kubeconfig), *flags])).namespace
    assert ns() == "team-a"
    assert ns("--context", "b") == "team-b"
    assert ns("--context", "plain") == "default"
    assert ns("--context", "b", "-n", "apps") == "apps"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert connect(parser.parse_args(["get", "hr", "--context", "b"])).namespace == "team-b"


def test_an_api_server_that_does_not_answer_is_one_line_naming_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from helm_operator.cli import main

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}]}))
    for args in (["get", "hr"], ["suspend", "hr", "web"], ["history", "hr", "web", "-o", "json"]):
        assert main([*args, "--kubeconfig", str(kubeconfig)]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        [line] = err.splitlines()
        assert line.startswith(f"helm-operator {args[0]}: cannot reach the API server https://127.0.0.1:1 ")
