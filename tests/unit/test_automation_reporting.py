"""reporting: what automation tells users per HelmRelease, from the problems
its scans and passes find: one Warning event per distinct problem, again when
it changes, a Normal event when all clear, and the ImageAutomation condition."""

from __future__ import annotations

from helm_operator.api.automation import AutomationPolicy, read_policy
from helm_operator.automation import reporting
from helm_operator.automation.registry import AuthenticationFailed, NotFound, RateLimited, RegistryUnavailable
from helm_operator.automation.reporting import Condition, Notice, Problem, ProblemBook, Stage

KEY = "apps/web"
AUTOMATED = {KEY: read_policy({"fluxcd.io/automated": "true"})}
DOWN = Problem("RegistryUnavailable", "listing tags for r/app: cannot reach r")
HELD = Problem(reporting.TAG_HELD, "container web (r/app): the current tag '9' is no longer in the registry")


def report(book: ProblemBook, policies: dict[str, AutomationPolicy] = AUTOMATED, **kw: object) -> Notice:
    [notice] = book.report(policies, {KEY: 2}, **kw)  # type: ignore[arg-type]
    return notice


def test_a_problem_is_told_once_and_again_only_when_it_changes() -> None:
    book = ProblemBook()
    book.record(Stage.SCAN, {KEY: [DOWN]})
    first = report(book)
    assert first.events == (("Warning", "ImageAutomationFailed", DOWN.message),)
    assert first.condition == Condition("False", "RegistryUnavailable", DOWN.message)
    book.record(Stage.SCAN, {KEY: [DOWN]})
    assert report(book).events == ()
    changed = Problem("RegistryUnavailable", "listing tags for r/app: HTTP 503 from r after 5 attempts")
    book.record(Stage.SCAN, {KEY: [changed]})
    assert report(book).events == (("Warning", "ImageAutomationFailed", changed.message),)


def test_when_every_problem_clears_a_normal_event_and_the_condition_turns_true() -> None:
    book = ProblemBook()
    book.record(Stage.SCAN, {KEY: [DOWN]})
    report(book)
    book.record(Stage.SCAN, {KEY: []})
    cleared = report(book)
    assert cleared.events == (("Normal", "ImageAutomationRecovered",
                               "image automation works again (RegistryUnavailable resolved)"),)
    assert cleared.condition == Condition("True", "Automated", "2 container image(s) follow their tag filters")
    assert report(book).events == ()
    book.record(Stage.SCAN, {KEY: [DOWN]})   # back again: told again
    assert report(book).events == (("Warning", "ImageAutomationFailed", DOWN.message),)


def test_scan_and_pass_problems_add_up_and_each_stage_replaces_only_its_own() -> None:
    book = ProblemBook()
    book.record(Stage.PASS, {KEY: [HELD]})
    book.record(Stage.SCAN, {KEY: [DOWN]})
    notice = report(book)
    assert [e[1] for e in notice.events] == ["ImageAutomationFailed", "ImageAutomationHeld"]
    assert notice.condition == Condition("False", "RegistryUnavailable", f"{DOWN.message}; {HELD.message}")
    book.record(Stage.SCAN, {})              # the registry answers again; the held tag stays until a pass
    notice = report(book)
    assert notice.events == () and notice.condition is not None and notice.condition.reason == reporting.TAG_HELD


def test_locked_releases_are_paused_not_failing_and_unautomated_ones_lose_the_condition() -> None:
    book = ProblemBook()
    locked = {KEY: read_policy({"fluxcd.io/automated": "true", "fluxcd.io/locked": "true",
                                "fluxcd.io/locked_user": "alice"})}
    notice = report(book, locked)
    assert notice.events == () and notice.condition == Condition(
        "False", "Locked", "locked by alice: automation is paused until it is unlocked")
    ignored = {KEY: read_policy({"fluxcd.io/automated": "true", "fluxcd.io/ignore": "true"})}
    assert report(book, ignored) == Notice(KEY)
    assert book.report({}, {}, ["apps/old"]) == [Notice("apps/old")]


def test_registry_failures_name_their_kind() -> None:
    reasons = [reporting.registry_problem(e).reason for e in (
        RegistryUnavailable("listing tags", "r/app", "cannot reach r"),
        RateLimited("listing tags", "r/app", "HTTP 429"),
        AuthenticationFailed("listing tags", "r/app", "the registry refused the credentials"),
        NotFound("listing tags", "r/app", "not found (HTTP 404)"),
    )]
    assert reasons == ["RegistryUnavailable", "RegistryUnavailable", "RegistryAuthFailed", "ImageNotFound"]
