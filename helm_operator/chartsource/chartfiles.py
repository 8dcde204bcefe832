"""Read a file named by ``valuesFrom[].chartFileRef`` from a fetched chart.

Place in the flow: the values builder calls `read_chart_file` with the
directory of a `FetchedChart`. The path comes from a HelmRelease, so it is
untrusted: it must stay inside the chart directory after resolving `..`,
absolute paths and symlinks. This module does not parse YAML.
"""

from __future__ import annotations

import os
from pathlib import Path


class ChartFileEscapes(ValueError):
    """A chartFileRef path points outside the chart directory; message is user-facing."""


def read_chart_file(chart_dir: Path, relative: str) -> str:
    """Return the text of `relative` inside `chart_dir`.

    Raises ChartFileEscapes when the path (after symlinks) leaves the chart
    directory, FileNotFoundError when there is no such file.
    """
    if not relative or "\x00" in relative:
        raise ChartFileEscapes(f"chart file path {relative!r} is not a valid relative path")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise ChartFileEscapes(f"chart file path {relative} must be relative to the chart directory")
    root = Path(chart_dir).resolve(strict=True)
    target = (root / relative).resolve(strict=False)
    if target != root and not target.is_relative_to(root):
        raise ChartFileEscapes(f"chart file path {relative} points outside the chart directory")
    if target.is_dir():
        raise IsADirectoryError(f"chart file {relative} is a directory, not a file")
    if not target.is_file():
        raise FileNotFoundError(f"chart file {relative} not found in the chart")
    return target.read_text(encoding="utf-8")
