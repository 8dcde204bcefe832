"""Tag filters: the grammar, invalid filters, the `latest` rule, pre-releases,
never moving to an older tag (forced releases outside the filter, a current
tag gone from the registry or impossible to place), and our alphabetical and
numerical orders."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helm_operator.automation.policy import (
    Choice, FilterType, InvalidFilter, TagInfo, choose, needs_build_time_of, needs_timestamps, newest,
    parse_filter,
)


def tags(*names: str) -> list[TagInfo]:
    return [TagInfo(n) for n in names]


def built(**days: int) -> list[TagInfo]:
    """Tags with build times: `built(a=1)` is tag `a` built on day 1."""
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [TagInfo(tag.replace("_", "-"), base + timedelta(days=n)) for tag, n in days.items()]


# ── grammar ──────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, kind, expression", [
    ("glob:1.*", FilterType.GLOB, "1.*"),
    ("1.*", FilterType.GLOB, "1.*"),
    ("*", FilterType.GLOB, "*"),
    ("semver:~1.2", FilterType.SEMVER, "~1.2"),
    ("semver: >=1.0 <2", FilterType.SEMVER, ">=1.0 <2"),
    ("regexp:^v\\d+$", FilterType.REGEXP, "^v\\d+$"),
    ("regex:^v\\d+$", FilterType.REGEXP, "^v\\d+$"),
    ("alphabetical:rel-*", FilterType.ALPHABETICAL, "rel-*"),
    ("numerical:*", FilterType.NUMERICAL, "*"),
])
def test_filter_types_are_read_from_their_prefix_and_glob_is_the_default(
        text: str, kind: FilterType, expression: str) -> None:
    f = parse_filter(text)
    assert (f.type, f.expression) == (kind, expression)


@pytest.mark.parametrize("text, allowed, refused", [
    ("glob:1.*", ["1.", "1.2", "1.2.3"], ["11", "v1.2", "x1.2"]),
    ("glob:*-prod", ["a-prod", "-prod"], ["a-prod1", "prod"]),
    ("glob:1.2.3", ["1.2.3"], ["1x2x3", "1.2.34"]),       # `.` is literal
    ("glob:a*b*c", ["abc", "aXbYc"], ["acb"]),
    ("regexp:^v\\d", ["v1", "v12-x"], ["1", "xv1"]),
    ("regexp:prod", ["prod", "x-prod-1"], ["PROD"]),      # unanchored
])
def test_glob_matches_the_whole_tag_and_regexp_searches_anywhere(
        text: str, allowed: list[str], refused: list[str]) -> None:
    f = parse_filter(text)
    assert [t for t in allowed + refused if f.matches(t)] == allowed


@pytest.mark.parametrize("text, message", [
    ("", "empty expression"),
    ("glob:", "empty expression"),
    ("semver:", "empty semver constraint"),
    ("alphabetical:", "use 'alphabetical:*'"),
    ("semver:latest", "'latest' is not a comparison"),
    ("semver:>=1.0 <2 junk", "'junk' is not a comparison"),
    ("semver:1.2.3.4", "is not a comparison"),
    ("semver:>=1.0 ||", "empty alternative"),
    ("semver:!=1.x", "needs a full version"),
    ("regexp:(unclosed", "bad regular expression"),
    ("glob:1.?", "only tag characters"),
    ("glob:{a,b}", "only tag characters"),
    ("numerical:[0-9]", "only tag characters"),
    ("version:1.2", "unknown filter type 'version'; use one of glob:"),
])
def test_an_invalid_filter_raises_with_a_message_for_the_user(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter) as error:
        parse_filter(text)
    assert message in str(error.value)
    assert repr(text) in str(error.value)


def test_only_glob_and_regexp_need_build_times() -> None:
    needing = {t: needs_timestamps(parse_filter(f"{t}:*" if t != "regexp" else "regexp:.")) for t in
               ("glob", "regexp", "semver", "alphabetical", "numerical")}
    assert needing == {"glob": True, "regexp": True, "semver": False, "alphabetical": False, "numerical": False}


# ── latest ───────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text", ["*", "glob:*", "regexp:.*", "regexp:^latest$", "glob:lat*", "alphabetical:*"])
def test_latest_is_never_chosen_by_a_filter_other_than_glob_latest(text: str) -> None:
    found = built(latest=9, v1=1)
    assert not parse_filter(text).matches("latest")
    assert newest(parse_filter(text), found, None) in (None, "v1")


@pytest.mark.parametrize("text", ["glob:latest", "latest"])
def test_latest_is_chosen_when_the_filter_is_exactly_glob_latest(text: str) -> None:
    assert newest(parse_filter(text), built(latest=10, v1=9), "v1") == "latest"


def test_a_current_latest_does_not_stop_a_move_to_a_real_tag() -> None:
    assert newest(parse_filter("*"), built(latest=9, v1=1), "latest") == "v1"
    assert newest(parse_filter("alphabetical:*"), tags("latest", "a"), "latest") == "a"


# ── semver ───────────────────────────────────────────────────────────────────

VERSIONS = tags("1.0.0", "1.2.0", "v1.2.5", "1.2", "1.3.0", "1.3.1-rc.1", "2.0.0", "2.1.0-beta.1",
                "not-a-version", "1.2.3.4", "latest")


@pytest.mark.parametrize("constraint, expected", [
    ("~1.2", "v1.2.5"),
    ("^1.2", "1.3.0"),
    ("1.2.x", "v1.2.5"),
    (">=1.0 <2", "1.3.0"),
    (">=1.0, <2", "1.3.0"),                 # Masterminds: comma means and
    (">= 1.0 < 1.3", "v1.2.5"),             # spaces after operators
    ("~1.2 || ^2", "2.0.0"),
    ("1.0 - 1.2", "v1.2.5"),
    ("~>1.2", "v1.2.5"),
    (">=1.2, != 1.3.0, <2", "v1.2.5"),
    ("v1.2.0", "1.2.0"),
    ("*", "2.0.0"),
    ("~3", None),
])
def test_semver_picks_the_greatest_version_the_constraint_allows(constraint: str, expected: str | None) -> None:
    assert newest(parse_filter(f"semver:{constraint}"), VERSIONS, None) == expected


@pytest.mark.parametrize("constraint, expected", [
    (">=1.3.0-0 <2", "1.3.1-rc.1"),
    (">=2.0.0-alpha", "2.1.0-beta.1"),
    ("^2.1.0-0", "2.1.0-beta.1"),
    (">=1.3.0 <2", "1.3.0"),
    (">=2", "2.0.0"),
])
def test_pre_releases_count_only_when_the_constraint_names_one(constraint: str, expected: str) -> None:
    assert newest(parse_filter(f"semver:{constraint}"), VERSIONS, None) == expected


def test_tags_with_and_without_v_compare_as_versions() -> None:
    f = parse_filter("semver:>=1")
    assert newest(f, tags("v1.9.0", "1.10.0", "v1.2"), None) == "1.10.0"
    assert f.matches("v1.2") and f.matches("1") and not f.matches("1.02.0")


def test_semver_never_moves_to_an_older_version_even_outside_the_range() -> None:
    f = parse_filter("semver:~1.2")
    assert newest(f, VERSIONS, "1.3.0") is None
    assert newest(f, VERSIONS, "2.0.0") is None
    assert newest(f, [*VERSIONS, TagInfo("v2.0.0")], "v2.0.0") is None
    assert newest(f, [*VERSIONS, TagInfo("1.2.1")], "1.2.1") == "v1.2.5"


def test_semver_keeps_a_current_tag_that_is_not_a_version_and_says_why() -> None:
    choice = choose(parse_filter("semver:~1.2"), VERSIONS, "not-a-version")
    assert choice.tag is None
    assert choice.held is not None and "'not-a-version' is not a version" in choice.held
    assert "semver:~1.2 cannot tell" in choice.held


def test_an_equal_version_keeps_the_current_spelling() -> None:
    assert newest(parse_filter("semver:~1.2"), tags("1.2.5", "v1.2.5"), "v1.2.5") == "v1.2.5"
    assert newest(parse_filter("semver:~1.2"), tags("1.2.5", "v1.2.5"), "1.2.5") == "1.2.5"


def test_build_metadata_does_not_order_versions() -> None:
    assert newest(parse_filter("semver:~1.2"), tags("1.2.3", "1.2.3+b2", "1.2.4+b1"), "1.2.3") == "1.2.4+b1"


# ── build time (glob, regexp) ────────────────────────────────────────────────

def test_glob_and_regexp_choose_the_most_recently_built_matching_tag() -> None:
    found = built(main_3=1, main_10=2, main_2=3, dev_9=4)
    assert newest(parse_filter("main-*"), found, None) == "main-2"
    assert newest(parse_filter("regexp:^main-1"), found, None) == "main-10"


def test_build_time_order_never_moves_to_an_older_image() -> None:
    found = built(a=1, b=3, c=2)
    assert newest(parse_filter("regexp:^[ac]$"), found, "b") is None
    assert newest(parse_filter("*"), found, "c") == "b"


def test_tags_without_a_build_time_rank_below_dated_ones() -> None:
    found = [*built(a=1), TagInfo("b", None)]
    assert newest(parse_filter("*"), found, None) == "a"
    assert newest(parse_filter("*"), [TagInfo("b"), TagInfo("c")], None) == "c"
    assert newest(parse_filter("b"), found, "a") is None


def test_a_tag_of_the_same_build_as_the_current_one_keeps_the_current() -> None:
    assert newest(parse_filter("*"), built(v1=5, v1_0=5), "v1") == "v1"


# ── ours: alphabetical and numerical ─────────────────────────────────────────

def test_alphabetical_picks_the_lexically_greatest_matching_tag() -> None:
    found = tags("2024-05-01.1", "2024-05-02.1", "2024-04-30.9", "x-9")
    f = parse_filter("alphabetical:2024-*")
    assert newest(f, found, None) == "2024-05-02.1"
    assert newest(f, [*found, TagInfo("2024-06-01.1")], "2024-06-01.1") == "2024-06-01.1"
    assert newest(f, found, "2024-04-30.9") == "2024-05-02.1"
    assert newest(f, found, "x-9") is None          # outside the glob, still ranked by its text


def test_numerical_compares_tags_as_numbers() -> None:
    found = tags("9", "10", "100.5", "2.75", "abc", "1e9", "-5", "101", "99")
    f = parse_filter("numerical:*")
    assert newest(f, found, None) == "101"
    assert newest(f, found, "101") == "101"
    assert newest(f, found, "99") == "101"
    assert newest(parse_filter("numerical:1*"), found, None) == "101"
    assert newest(parse_filter("numerical:1*"), found, "100.5") == "101"
    assert newest(parse_filter("numerical:9"), found, "10") is None


# ── forced releases, and currents that cannot be placed ─────────────────────

def dated(*pairs: tuple[str, int]) -> list[TagInfo]:
    """Tags with build days, for tag names `built()` cannot spell: `dated(("1.0.5", 2))`."""
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [TagInfo(tag, base + timedelta(days=n)) for tag, n in pairs]


# filter, tags before (newest last), a forced tag outside the filter, a later allowed tag newer than it
FORCED = {
    "glob": ("glob:1.0.*", dated(("1.0.0", 1), ("1.0.5", 2)), dated(("1.1.0", 3)), dated(("1.0.6", 4))),
    "regexp": ("regexp:^1\\.0\\.", dated(("1.0.0", 1), ("1.0.5", 2)), dated(("1.1.0", 3)), dated(("1.0.6", 4))),
    "alphabetical": ("alphabetical:*-stable", tags("2024-05-01-stable", "2024-05-02-stable"),
                     tags("2024-05-03-hotfix"), tags("2024-05-04-stable")),
    "numerical": ("numerical:1*", tags("10", "11"), tags("20"), tags("100")),
    "semver": ("semver:~1.0", tags("1.0.0", "1.0.5"), tags("1.1.0"), []),   # nothing in ~1.0 beats 1.1.0
}


@pytest.mark.parametrize("kind", sorted(FORCED))
def test_a_forced_release_outside_the_filter_stays_until_an_allowed_tag_is_newer(kind: str) -> None:
    text, before, forced, later = FORCED[kind]
    f = parse_filter(text)
    current = forced[0].tag
    assert not f.matches(current)
    assert newest(f, before, None) == before[-1].tag                    # what it would move back to
    assert choose(f, before + forced, current) == Choice(None)          # kept, and nothing to report
    if later:
        assert choose(f, before + forced + later, current) == Choice(later[0].tag)


@pytest.mark.parametrize("text", ["glob:1.0.*", "regexp:^1\\.0\\."])
def test_build_time_order_keeps_a_current_tag_whose_build_time_is_unknown(text: str) -> None:
    found = [*dated(("1.0.0", 1), ("1.0.5", 2)), TagInfo("1.1.0")]      # listed, not dated
    choice = choose(parse_filter(text), found, "1.1.0")
    assert choice.tag is None
    assert choice.held is not None and "'1.1.0' has no build time" in choice.held


@pytest.mark.parametrize("kind", sorted(FORCED))
def test_a_current_tag_gone_from_the_registry_is_kept_and_said_so(kind: str) -> None:
    text, before, forced, later = FORCED[kind]
    f = parse_filter(text)
    for current in (forced[0].tag, before[0].tag):       # outside the filter, and allowed
        found = [t for t in before + later if t.tag != current]
        choice = choose(f, found, current)
        assert choice.tag is None, current
        assert choice.held is not None and f"the current tag {current!r} is no longer in the registry" in choice.held


@pytest.mark.parametrize("text, current, why", [
    ("semver:*", "stable", "is not a version"),
    ("numerical:*", "hotfix-1", "is not a number"),
])
def test_a_current_tag_the_order_cannot_place_is_kept_and_said_so(text: str, current: str, why: str) -> None:
    choice = choose(parse_filter(text), tags("1", "2", current), current)
    assert choice.tag is None and choice.held is not None and why in choice.held


def test_alphabetical_places_any_current_tag_by_its_text() -> None:
    f = parse_filter("alphabetical:rel-*")
    assert choose(f, tags("rel-1", "rel-2", "hotfix"), "hotfix") == Choice("rel-2")   # "hotfix" < "rel-2"
    assert choose(f, tags("rel-1", "rel-2", "zzz"), "zzz") == Choice(None)


def test_nothing_is_held_when_the_filter_allows_no_tag() -> None:
    assert choose(parse_filter("glob:9.*"), dated(("1.0.0", 1)), "gone") == Choice(None)
    assert choose(parse_filter("semver:~9"), tags("1.0.0", "stable"), "stable") == Choice(None)


def test_no_current_tag_and_an_unallowed_latest_are_no_bound() -> None:
    found = dated(("1.0.0", 1), ("1.0.5", 2))
    assert choose(parse_filter("glob:1.0.*"), found, None) == Choice("1.0.5")
    assert choose(parse_filter("glob:1.0.*"), found, "latest") == Choice("1.0.5")   # even when not listed
    assert choose(parse_filter("semver:*"), tags("1.0.0"), "latest") == Choice("1.0.0")


def test_the_current_tags_build_time_is_needed_only_under_build_time_order() -> None:
    assert needs_build_time_of(parse_filter("glob:1.0.*"), "1.1.0")
    assert needs_build_time_of(parse_filter("regexp:^1"), "2.0")
    assert needs_build_time_of(parse_filter("glob:latest"), "latest")
    assert not needs_build_time_of(parse_filter("glob:1.0.*"), "latest")
    assert not needs_build_time_of(parse_filter("glob:1.0.*"), "")
    assert not needs_build_time_of(parse_filter("glob:1.0.*"), None)
    for text in ("semver:~1.0", "alphabetical:*", "numerical:*"):
        assert not needs_build_time_of(parse_filter(text), "1.1.0")


# ── properties ───────────────────────────────────────────────────────────────

version_tags = st.builds(lambda a, b, c, v: f"{'v' if v else ''}{a}.{b}.{c}",
                         st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.booleans())


@given(st.lists(version_tags, min_size=1, max_size=12), version_tags)
def test_semver_choice_is_never_below_the_current_version(found: list[str], current: str) -> None:
    chosen = newest(parse_filter("semver:*"), tags(*found, current), current)
    key = lambda t: tuple(int(p) for p in t.lstrip("v").split("."))  # noqa: E731
    if chosen is None:
        assert all(key(t) < key(current) for t in found)
    else:
        assert key(chosen) >= key(current) and key(chosen) == max(key(t) for t in found + [current])


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=12), st.integers(0, 1000))
def test_numerical_choice_is_the_maximum_when_not_below_current(numbers: list[int], current: int) -> None:
    chosen = newest(parse_filter("numerical:*"), tags(*map(str, numbers), str(current)), str(current))
    assert chosen == str(max(max(numbers), current))


@given(st.dictionaries(st.sampled_from(["a1", "a2", "a3", "b1", "b2", "b3"]), st.integers(0, 5), min_size=1),
       st.sampled_from(["a1", "a2", "a3", "b1", "b2", "b3"]))
def test_build_time_choice_is_never_built_before_the_current_image(days: dict[str, int], current: str) -> None:
    f = parse_filter("glob:a*")                       # b* tags stand for forced releases outside it
    found = dated(*days.items())
    choice = choose(f, found, current)
    if current not in days:
        assert choice.tag is None
        return
    assert choice.held is None
    newer = [t for t, d in days.items() if f.matches(t) and d > days[current]]
    if choice.tag is None:
        assert not newer
    else:
        assert days[choice.tag] >= days[current]
        assert days[choice.tag] == max([days[current], *(d for t, d in days.items() if f.matches(t))])
