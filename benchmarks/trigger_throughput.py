"""How many POST /api/v1/sync-git one operator absorbs per second, without a
webhook token, with the right token, and refusing a wrong one; and how fast
/healthz answers during the burst. Prints numbers; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.cluster.localcluster import LocalCluster, ensure_binaries
from tests.integration.conftest import start_operator

TOKEN = "benchmark-webhook-token-0123456789abcdef"


async def _burst(url: str, total: int, concurrency: int, token: str | None) -> tuple[float, dict[int, int], float]:
    """(requests per second, statuses, slowest /healthz during the burst in seconds)."""
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    slowest = 0.0
    done = asyncio.Event()

    async def health(session: aiohttp.ClientSession) -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.perf_counter()
            async with session.get(f"{url}/healthz") as r:
                await r.read()
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        for _ in range(n):
            async with session.post(f"{url}/api/v1/sync-git", headers=headers) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency + 1)
    async with aiohttp.ClientSession(connector=connector) as session:
        prober = asyncio.create_task(health(session))
        started = time.perf_counter()
        share = total // concurrency
        await asyncio.gather(*(worker(session, share) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        done.set()
        await prober
    return share * concurrency / elapsed, statuses, slowest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-triggers-"))
    token_file = work / "token"
    token_file.write_text(TOKEN)
    with LocalCluster(workdir=work / "cluster", bin_dir=ensure_binaries(), verbose=False) as cluster:
        for label, flags, token in (("no token configured", (), None),
                                    ("token configured, right token", ("--webhook-token-file", str(token_file)),
                                     TOKEN),
                                    ("token configured, wrong token", ("--webhook-token-file", str(token_file)),
                                     "wrong")):
            op = start_operator(cluster, work / label.replace(" ", "-").replace(",", ""), *flags)
            try:
                rate, statuses, slowest = asyncio.run(
                    _burst(f"http://127.0.0.1:{op.port}", args.requests, args.concurrency, token))
            finally:
                op.stop()
            print(f"{label:32s} {args.requests} POSTs: {rate:7.0f}/s  statuses {statuses}  "
                  f"slowest /healthz {slowest * 1000:.0f} ms")


if __name__ == "__main__":
    main()
