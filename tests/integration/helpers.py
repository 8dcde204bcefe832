"""Small helpers the integration tests share: polling and kube clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.25,
               what: str = "condition") -> T:
    """Call `probe` until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - the probe decides what is transient
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}, "
                         f"last error {last_error!r}")
