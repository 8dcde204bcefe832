"""The package type-checks: `mypy --strict` over helm_operator/ finds no error.

Type hints are part of how the code explains itself; this keeps them true.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_error_in_the_package() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "helm_operator"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_finds_no_unused_or_undefined_name() -> None:
    """Unused imports and undefined names (pyflakes' checks) anywhere in the tree: dead code or a bug."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                             "helm_operator", "tests", "benchmarks", "hack"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
