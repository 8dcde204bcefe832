"""Graceful stop on SIGTERM and SIGINT for the long-running roles.

A pod's containers get SIGTERM on shutdown; as PID 1 a process without a
handler would ignore it and be killed at the end of the grace period, in the
middle of whatever helm call or sync pass was running.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Call `stop` on SIGTERM or SIGINT (where the running loop supports it)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError):
            pass
