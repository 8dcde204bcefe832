"""read_chart_file: chartFileRef paths must stay inside the chart directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_operator.chartsource import ChartFileEscapes, read_chart_file
from helm_operator.chartsource.model import redact_url, split_userinfo


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    chart = tmp_path / "charts" / "app"
    (chart / "ci").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("name: app\n")
    (chart / "values.yaml").write_text("replicas: 1\n")
    (chart / "ci" / "prod-values.yaml").write_text("replicas: 3\n")
    (tmp_path / "charts" / "secret.yaml").write_text("password: hunter2\n")
    return chart


def test_a_file_inside_the_chart_is_read(chart: Path) -> None:
    assert read_chart_file(chart, "ci/prod-values.yaml") == "replicas: 3\n"


def test_dot_segments_that_stay_inside_the_chart_are_allowed(chart: Path) -> None:
    assert read_chart_file(chart, "./ci/../values.yaml") == "replicas: 1\n"


def test_a_symlink_to_a_file_inside_the_chart_is_followed(chart: Path) -> None:
    (chart / "linked.yaml").symlink_to("ci/prod-values.yaml")

    assert read_chart_file(chart, "linked.yaml") == "replicas: 3\n"


def test_the_chart_directory_itself_may_be_reached_through_a_symlink(chart: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(chart)

    assert read_chart_file(alias, "values.yaml") == "replicas: 1\n"


@pytest.mark.parametrize("relative", ["../secret.yaml", "ci/../../secret.yaml", "../app-evil/x.yaml"])
def test_a_path_climbing_out_of_the_chart_is_refused(chart: Path, relative: str) -> None:
    with pytest.raises(ChartFileEscapes, match="outside the chart directory"):
        read_chart_file(chart, relative)


def test_an_absolute_path_is_refused(chart: Path) -> None:
    with pytest.raises(ChartFileEscapes, match="must be relative"):
        read_chart_file(chart, str(chart / "values.yaml"))


def test_a_symlink_pointing_out_of_the_chart_is_refused(chart: Path) -> None:
    (chart / "sneaky.yaml").symlink_to("../secret.yaml")
    (chart / "ci" / "dir-link").symlink_to("/etc")

    with pytest.raises(ChartFileEscapes):
        read_chart_file(chart, "sneaky.yaml")
    with pytest.raises(ChartFileEscapes):
        read_chart_file(chart, "ci/dir-link/hostname")


def test_an_escape_is_a_value_error(chart: Path) -> None:
    with pytest.raises(ValueError):
        read_chart_file(chart, "../secret.yaml")


@pytest.mark.parametrize("relative", ["", "values\x00.yaml"])
def test_an_empty_or_nul_path_is_refused(chart: Path, relative: str) -> None:
    with pytest.raises(ChartFileEscapes):
        read_chart_file(chart, relative)


def test_a_missing_file_raises_file_not_found(chart: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_chart_file(chart, "ci/staging-values.yaml")


def test_a_directory_is_not_a_file(chart: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_chart_file(chart, "ci")


# The URL hygiene every chart-source message relies on.


@pytest.mark.parametrize("url,shown", [
    ("https://user:token@charts.example.com/stable", "https://charts.example.com/stable"),
    ("https://ghp_token@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
    ("ssh://git:pw@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ("https://charts.example.com", "https://charts.example.com"),
])
def test_urls_in_messages_lose_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_credentials_in_an_http_url_are_split_off_and_decoded() -> None:
    assert split_userinfo("https://bot:p%40ss@host/charts") == ("https://host/charts", ("bot", "p@ss"))
    assert split_userinfo("ssh://git@host/repo") == ("ssh://git@host/repo", None)
    assert split_userinfo("/srv/git/repo") == ("/srv/git/repo", None)
