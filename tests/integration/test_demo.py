"""The README's run command works: the demo runs to the end of its
automation step on its own local world, then stops everything."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def test_demo_runs_through_the_automation_step(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tests.demo", "--workdir", str(tmp_path / "demo"), "--no-wait"],
                            capture_output=True, text=True, timeout=600)
    print(f"demo took {time.monotonic() - started:.0f}s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all 5 HelmReleases are Ready" in result.stdout
    assert "Auto-release" in result.stdout
    assert "now runs" in result.stdout and "acme/web:1.0.1" in result.stdout
