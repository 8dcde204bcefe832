"""The YAML limit flags of `helm-operator run` and `helm-operator sync`: sizes, defaults, where they land."""

from __future__ import annotations

import pytest

from helm_operator import boundedyaml
from helm_operator.cli import build_parser
from helm_operator.gitsync.config import from_args
from helm_operator.cli.settings import parse_size, yaml_limits_from_args


@pytest.mark.parametrize(("text", "size"), [("16Mi", 16 * 2**20), ("64MiB", 64 * 2**20), ("512Ki", 512 * 1024),
                                            ("1Gi", 2**30), ("3M", 3_000_000), ("1048576", 1048576)])
def test_sizes_read_like_kubernetes_quantities(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_size_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="use e.g. 512Ki, 16Mi"):
        parse_size("lots")


def test_run_defaults_bound_values_tighter_than_the_syncer_bounds_files() -> None:
    run = build_parser().parse_args(["run"])
    limits = yaml_limits_from_args(run)
    assert limits == boundedyaml.DEFAULT_LIMITS
    assert limits.documents.max_nodes == 250_000 and limits.documents.max_bytes == 16 * 2**20
    assert limits.documents.max_depth == 128
    assert (limits.charts.max_bytes, limits.charts.max_nodes) == (64 * 2**20, 10_000_000)

    sync = from_args(build_parser().parse_args(["sync", "--git-url", "file:///r.git"]))
    assert sync.yaml_limits == boundedyaml.Limits(16 * 2**20, 128, 1_000_000)
    assert sync.max_request_bytes == 3 * 2**20


def test_flags_change_every_limit() -> None:
    run = build_parser().parse_args(["run", "--yaml-max-bytes", "1Mi", "--yaml-max-depth", "40",
                                     "--yaml-max-nodes", "5000", "--chart-yaml-max-bytes", "8Mi",
                                     "--chart-yaml-max-nodes", "70000"])
    limits = yaml_limits_from_args(run)
    assert limits.documents == boundedyaml.Limits(2**20, 40, 5000)
    assert (limits.charts.max_bytes, limits.charts.max_depth, limits.charts.max_nodes) == (8 * 2**20, 40, 70000)
    sync = from_args(build_parser().parse_args(["sync", "--git-url", "file:///r.git", "--yaml-max-nodes", "9",
                                                "--max-request-bytes", "1Mi"]))
    assert sync.yaml_limits.max_nodes == 9 and sync.max_request_bytes == 2**20
