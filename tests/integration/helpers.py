"""Small helpers the integration tests share: polling and reading logs."""

from __future__ import annotations

import re
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


def holds(probe: Callable[[], T], *, window: float, interval: float = 0.5, what: str = "condition") -> T:
    """Check that `probe` stays truthy for the whole `window` (seconds); fail at the first lapse.

    The negative check of a test ("no new revision for the next 20 s"): the
    window is named by the caller, and a lapse fails at once with its value.
    """
    deadline = time.monotonic() + window
    while True:
        value = probe()
        if not value:
            raise AssertionError(f"{what} stopped holding; value {value!r}")
        if time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


# What a refusal by the API server looks like in our processes' logs, and
# nothing else: urllib3's debug line for a response with status 403, the
# kubernetes client's ApiException text, and the API server's own Forbidden
# message (which our KubeError and helm's stderr carry). A bare "403" would
# also match a millisecond timestamp (15:31:03,403), a port or a size.
_REFUSAL = re.compile(
    r'HTTP/\d(?:\.\d)?" 403 '          # urllib3: "GET /api/... HTTP/1.1" 403 123
    r"|^\(403\)$|\bReason: Forbidden\b"  # kubernetes.client ApiException, one line each
    r"|\b403 Forbidden\b"               # status and reason, as our watch logs them
    r'|\bis forbidden: User "'          # the API server's Status message (KubeError, helm)
)


def api_refusals(log_text: str) -> list[str]:
    """The log lines that show the API server refusing a request (HTTP 403)."""
    return [line for line in log_text.splitlines() if _REFUSAL.search(line)]
